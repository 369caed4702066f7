"""The device's exactly-once memory: recent mutating command ids, their requests and their replies.

A mutating request is remembered by its command id with a digest of the request (type byte and
payload) and the reply it got, encoded once. A repeat of the same request under the same id is
answered from here and not applied again; a ``CommandQuery`` (SPEC 4.2) learns from here whether
a request was handled. A query for a request the device never handled retires that id: a late
copy of the request is then refused, never applied, so "not handled" stays true.

The memory belongs to the device, not to a session, and survives a restart: ``to_state`` and
``from_state`` are JSON-ready, and ``version`` changes with every entry so the owner knows to save
before the reply leaves. Pure: no I/O, no clock. Must not import ``device_mock`` or ``dashboard``.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from .codec import encode_payload
from .errors import ErrorCode
from .messages import DIGEST_SIZE, MAX_STORED_REPLY, CommandFate, CommandOutcome, CommandQuery, ErrorReply, MsgType

DEFAULT_CAPACITY = 16
Encoded = tuple[int, bytes]  # (reply message type, payload)


def request_digest(msg_type: int, payload: bytes) -> bytes:
    """What identifies a request beside its command id: SHA-256(type byte || payload), first 16 bytes."""
    return hashlib.sha256(bytes((msg_type,)) + payload).digest()[:DIGEST_SIZE]


@dataclass(frozen=True, slots=True)
class Remembered:
    """One remembered request: its type and digest, and the reply it got (or a retirement)."""

    request_type: int
    digest: bytes
    reply: Encoded
    retired: bool = False  # a query found it unhandled; the stored reply is the refusal of late copies


def _retired_reply(command_id: int) -> Encoded:
    refusal = ErrorReply(
        ErrorCode.STATE_CONFLICT,
        "",
        0,
        0,
        0,
        f"command 0x{command_id:08x} was reported as not handled; send it again under a new command id",
    )
    return int(MsgType.ERROR_REPLY), encode_payload(refusal)


class ReplyMemory:
    """The last ``capacity`` mutating command ids with their requests and replies."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 1:
            raise ValueError(f"reply memory capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self.version = 0
        self._entries: OrderedDict[int, Remembered] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def answer(self, command_id: int, msg_type: int, payload: bytes) -> Encoded | None:
        """The stored reply if this exact request was seen under ``command_id``, else None."""
        entry = self._entries.get(command_id)
        if entry is None or entry.request_type != msg_type or entry.digest != request_digest(msg_type, payload):
            return None
        return entry.reply

    def remember(self, command_id: int, msg_type: int, payload: bytes, reply: Encoded) -> None:
        """Store the reply a request got (replacing a different request under the same id)."""
        stored = (int(reply[0]), reply[1])
        self._put(command_id, Remembered(int(msg_type), request_digest(msg_type, payload), stored))

    def query(self, query: CommandQuery) -> CommandOutcome:
        """What became of the request ``query`` names; an unhandled one is retired from now on."""
        entry = self._entries.get(query.command_id)
        same = entry is not None and entry.request_type == query.request_type and entry.digest == query.request_digest
        if entry is not None and same and not entry.retired:
            reply_type, payload = entry.reply
            return CommandOutcome(query.command_id, CommandFate.HANDLED, reply_type, payload)
        if not same:
            retired = Remembered(query.request_type, query.request_digest, _retired_reply(query.command_id), True)
            self._put(query.command_id, retired)
        return CommandOutcome(query.command_id, CommandFate.NOT_HANDLED, 0, b"")

    def _put(self, command_id: int, entry: Remembered) -> None:
        if len(entry.reply[1]) > MAX_STORED_REPLY:
            raise ValueError(f"a stored reply holds at most {MAX_STORED_REPLY} bytes, got {len(entry.reply[1])}")
        self._entries[command_id] = entry
        self._entries.move_to_end(command_id)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
        self.version += 1

    # --- persistence ------------------------------------------------------------------------------
    def to_state(self) -> list[list[Any]]:
        """The entries oldest first, JSON-ready."""
        return [
            [command_id, e.request_type, e.digest.hex(), e.reply[0], e.reply[1].hex(), e.retired]
            for command_id, e in self._entries.items()
        ]

    @classmethod
    def from_state(cls, state: list[list[Any]], capacity: int = DEFAULT_CAPACITY) -> ReplyMemory:
        """Rebuild a memory from ``to_state`` output (``ValueError`` if it is not that)."""
        memory = cls(capacity)
        try:
            for command_id, request_type, digest, reply_type, reply, retired in state:
                reply_bytes = bytes.fromhex(reply)
                entry = Remembered(
                    int(request_type), bytes.fromhex(digest), (int(reply_type), reply_bytes), bool(retired)
                )
                memory._put(int(command_id), entry)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"saved reply memory is not a list of 6-item entries: {exc}") from exc
        memory.version = 0
        return memory
