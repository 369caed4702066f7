"""The message registry: type byte <-> message class, payload encode/decode, schema fingerprint.

Pure functions over bytes. The fingerprint is the first four bytes (little-endian u32) of the
SHA-256 of ``schema_text()``: every message's type, name and fields with their wire types and enum
members. A device and a client built from different schemas see different fingerprints at
identify and refuse to go on, instead of misreading fields.
"""

from __future__ import annotations

import hashlib
from dataclasses import MISSING
from dataclasses import fields as dc_fields
from enum import IntEnum
from typing import Any

from .errors import MalformedPayload, UnknownMessageType
from .fields import Blob, Enum, FixedBytes, Layout, ListOf, Record, layout_of
from .messages import MESSAGES, Message, MsgType

REGISTRY: dict[int, type[Message]] = {cls.TYPE.value: cls for cls in MESSAGES}
if len(REGISTRY) != len(MESSAGES):
    raise RuntimeError("two message classes share a type byte")
_LAYOUTS: dict[int, Layout] = {msg_type: layout_of(cls) for msg_type, cls in REGISTRY.items()}


def message_class(msg_type: int) -> type[Message]:
    """The class registered for ``msg_type``, or ``UnknownMessageType``."""
    try:
        return REGISTRY[msg_type]
    except KeyError:
        raise UnknownMessageType(f"unknown message type 0x{msg_type:02x}") from None


def encode_payload(message: Message) -> bytes:
    """Encode a message's fields into its payload bytes."""
    out = bytearray()
    layout_of(type(message)).encode_into(message, out)
    return bytes(out)


def decode_payload(msg_type: int, payload: bytes) -> Message:
    """Decode ``payload`` as the message registered for ``msg_type``; the payload must be used up."""
    layout = _LAYOUTS.get(msg_type) or layout_of(message_class(msg_type))  # the latter raises: unknown type
    message, end = layout.decode_from(payload, 0)
    if end != len(payload):
        raise MalformedPayload(f"{layout.cls.__name__}: {len(payload) - end} bytes left over")
    return message


def schema_text() -> str:
    """Canonical description of every message, one line each, in type order."""
    lines = []
    for msg_type in sorted(REGISTRY):
        cls = REGISTRY[msg_type]
        lines.append(f"0x{msg_type:02x} {layout_of(cls).spec_record()}")
    return "\n".join(lines) + "\n"


def _fingerprint() -> int:
    digest = hashlib.sha256(schema_text().encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "little")


SCHEMA_FINGERPRINT = _fingerprint()


def max_payload_size(msg_type: MsgType) -> int:
    """Largest payload the message can encode to, in bytes."""
    return layout_of(message_class(msg_type)).max_size()


def to_json(value: Any) -> Any:
    """A field value as JSON: enums by name, bytes as hex, records as objects."""
    if isinstance(value, IntEnum):
        return value.name
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, tuple):
        return [to_json(v) for v in value]
    if hasattr(value, "__dataclass_fields__"):
        return {f.name: to_json(getattr(value, f.name)) for f in dc_fields(value)}
    return value


def from_json(cls: type, data: dict[str, Any]) -> Any:
    """Rebuild a message or record of ``cls`` from ``to_json`` output.

    A field added later with a default (one at the end of a message) may be missing: JSON saved
    before it existed still reads, with that default.
    """
    values = {}
    defaults = {f.name for f in dc_fields(cls) if f.default is not MISSING}
    for info in layout_of(cls).fields:
        if info.name in data or info.name not in defaults:
            values[info.name] = _value_from_json(info.wire, data[info.name])
    return cls(**values)


def _value_from_json(wire: Any, raw: Any) -> Any:
    if isinstance(wire, Enum):
        return wire.enum_cls[raw]
    if isinstance(wire, FixedBytes | Blob):
        return bytes.fromhex(raw)
    if isinstance(wire, Record):
        return from_json(wire.cls, raw)
    if isinstance(wire, ListOf):
        if isinstance(wire.item, type):
            return tuple(from_json(wire.item, item) for item in raw)
        return tuple(_value_from_json(wire.item, item) for item in raw)
    return raw
