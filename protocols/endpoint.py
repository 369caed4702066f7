"""The device side of the protocol, sans-IO: bytes in, bytes out, a handler for the therapy.

``DeviceEndpoint.receive(data, now)`` decodes frames, enforces authentication (only IDENTIFY and
SESSION_OPEN pass without a session), answers identify and the handshake itself, and hands every
other verified request to ``handler(message, role) -> reply``, ``role`` being the session's
(SPEC 3.8): a PATIENT session's mutating request whose type does not allow it is refused here as
NOT_PERMITTED before it reaches the handler or the reply memory. The handler refuses by raising
``DeviceRejected``; any other exception becomes a DEVICE_FAULT reply, never a crash. Mutating
commands are exactly-once: a ``ReplyMemory`` keeps the last command ids with their request and
reply, a repeat of the same request with the same id gets the stored reply unapplied, and a
``CommandQuery`` is answered from it. The owner persists ``replies`` (its ``version`` moves with
every new entry) before the reply bytes leave, so the promise holds across a restart.

Wake-up budget (docs/security.md R10, SPEC 3.7): a frame that claims the active confirmed session is
always verified, and once verified it is served without limit. Everything else (unauthenticated
frames, frames of other or pending sessions, session frames that fail verification, bad runs)
draws on a ``WakeBudget`` of ``policy.flood_frames_per_s`` per second; beyond it the item is
dropped unanswered and counted in ``stats.rate_limited``. ``on_wake(n)`` is told how many items
were examined outside the session (each costs the device battery); ``on_flood`` hears when a
flood episode starts and when it ends.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import replace

from .auth import AuthPolicy, DeviceSessions, Rng, Session
from .budget import WakeBudget
from .codec import SCHEMA_FINGERPRINT, decode_payload, encode_payload
from .errors import (
    AuthError,
    CrcError,
    DeviceRejected,
    ErrorCode,
    MacError,
    NoSession,
    ProtocolError,
    SessionExpired,
    UnsupportedVersion,
)
from .framing import (
    FLAG_AUTH,
    FLAG_FROM_DEVICE,
    FLAG_PUSH,
    MAX_PAYLOAD,
    PROTOCOL_VERSION,
    Frame,
    FrameDecoder,
    encode_frame,
)
from .messages import (
    Actor,
    CommandAck,
    CommandQuery,
    ErrorReply,
    EventCode,
    IdentifyReply,
    IdentifyRequest,
    Message,
    MsgType,
    SessionChallenge,
    SessionClose,
    SessionConfirm,
    SessionOpen,
)
from .replies import ReplyMemory

log = logging.getLogger(__name__)

Handler = Callable[[Message, Actor], Message]
# (code, argument, actor): a session event to log; returns its event-log sequence number.
SessionEventSink = Callable[[EventCode, int, Actor], int]
WakeSink = Callable[[int], None]  # n items examined outside the active session
# (flooding, frames, seconds): (True, budget per second, 0) at an episode's first drop,
# (False, frames dropped, episode length in s) once a whole window passed without a drop.
FloodSink = Callable[[bool, int, int], None]
_FIRST_REPLY_TYPE = 0x80
_NOT_FROM_HOST = FLAG_FROM_DEVICE | FLAG_PUSH


def _from_host(frame: Frame) -> bool:
    """A request a host may send: not flagged as the device's, and not a reply type."""
    return not frame.flags & _NOT_FROM_HOST and frame.msg_type < _FIRST_REPLY_TYPE


def _no_events(code: EventCode, arg: int, actor: Actor) -> int:
    return 0


def _no_wakes(count: int) -> None:
    return None


def _no_floods(flooding: bool, frames: int, seconds: int) -> None:
    return None


def _clip(text: str, max_bytes: int) -> str:
    return text.encode("utf-8")[:max_bytes].decode("utf-8", errors="ignore")


def error_reply(exc: ProtocolError) -> ErrorReply:
    """The ``ErrorReply`` a device sends for ``exc`` (texts clipped to their field sizes)."""
    if isinstance(exc, DeviceRejected):
        # int(): a refusal may name an enum value (a bolus kind); the wire field is a plain integer.
        value, limit, retry_ms = int(exc.value), int(exc.limit), int(exc.retry_after_ms)
        return ErrorReply(exc.code, _clip(exc.field, 32), value, limit, retry_ms, _clip(exc.reason, 160))
    retry_ms = int(getattr(exc, "retry_after_s", 0) * 1000)
    return ErrorReply(exc.code, "", 0, 0, retry_ms, _clip(str(exc), 160))


class DeviceEndpoint:
    """Serves one device over one byte stream. Not thread-safe: one I/O loop owns it."""

    def __init__(
        self,
        identity: IdentifyReply,
        handler: Handler,
        pairing_key: bytes,
        policy: AuthPolicy | None = None,
        rng: Rng = os.urandom,
        replies: ReplyMemory | None = None,
        on_session_event: SessionEventSink = _no_events,
        on_wake: WakeSink = _no_wakes,
        on_flood: FloodSink = _no_floods,
        patient_key: bytes | None = None,
    ) -> None:
        self.identity = replace(
            identity,
            protocol_version=PROTOCOL_VERSION,
            schema_fingerprint=SCHEMA_FINGERPRINT,
            max_payload=MAX_PAYLOAD,
        )
        self.handler = handler
        self.sessions = DeviceSessions(pairing_key, policy, rng, patient_key)
        self.decoder = FrameDecoder()
        self.stats = self.decoder.stats
        self._rng = rng
        self.replies = replies if replies is not None else ReplyMemory()
        self._on_event = on_session_event
        self.budget = WakeBudget(self.sessions.policy.flood_frames_per_s)
        self._on_wake = on_wake
        self._on_flood = on_flood

    # --- public API ------------------------------------------------------------------------------
    def receive(self, data: bytes, now: float) -> bytes:
        """Feed received bytes; return the bytes to send back (possibly empty)."""
        out = bytearray()
        wakes = 0
        for item in self.decoder.feed_events(data):
            claim: Session | AuthError | None = None
            if isinstance(item, Frame):
                claim = self._claim(item, now)
                if isinstance(claim, Session):  # the paired host: never limited, no wake-up to pay
                    out += self._on_frame(item, now, claim)
                    continue
            if not self._admit(now):
                continue
            wakes += 1
            if isinstance(item, Frame):
                out += self._on_frame(item, now, claim)
            elif isinstance(item, CrcError | UnsupportedVersion):
                # A hint that lets the host retransmit at once instead of waiting for its timeout.
                out += self._plain(MsgType.ERROR_REPLY, 0, error_reply(item))
        if wakes:
            self._on_wake(wakes)
        return bytes(out)

    def push(self, message: Message, now: float) -> bytes:
        """Encode an unsolicited message for the active session; empty when there is none."""
        session = self.sessions.active
        if session is None or self.sessions.expired(session, now):
            return b""
        return session.seal_wire(message.TYPE, 0, encode_payload(message), push=True)

    def tick(self, now: float) -> None:
        """Expire sessions whose limits passed and end a flood after a quiet window (call now and then).

        ``receive`` checks both as well, but only ``tick`` sees a flood end when the line falls silent.
        """
        for session in self.sessions.expire_due(now):
            self._on_event(EventCode.SESSION_EXPIRED, session.session_id, session.role)
        self._roll(now)

    # --- the wake-up budget ----------------------------------------------------------------------
    def _claim(self, frame: Frame, now: float) -> Session | AuthError | None:
        """Verify a frame that claims the active session: the session, or why it failed; None if no claim."""
        session = self.sessions.active
        if (
            session is None
            or frame.session_id != session.session_id
            or not frame.flags & FLAG_AUTH
            or not _from_host(frame)
            or not session.confirmed
            or self.sessions.expired(session, now)  # left to the budgeted path, which reports the expiry
        ):
            return None
        try:
            session.verify(frame, now, self.stats)
        except AuthError as exc:
            return exc
        return session

    def _admit(self, now: float) -> bool:
        """Take one item from the budget; False: drop it (counted, and a new flood reported)."""
        self._roll(now)
        budget = self.budget
        if budget.admit(now):
            return True
        self.stats.rate_limited += 1
        if budget.episode_dropped == 1:
            self._on_flood(True, budget.limit, 0)
        return False

    def _roll(self, now: float) -> None:
        ended = self.budget.roll(now)
        if ended is not None:
            self._on_flood(False, ended.dropped, round(ended.seconds))

    # --- one frame -------------------------------------------------------------------------------
    def _on_frame(self, frame: Frame, now: float, claim: Session | AuthError | None = None) -> bytes:
        """Serve one frame; ``claim`` is what ``_claim`` found (a verified session or its failure)."""
        if not _from_host(frame):
            self.stats.malformed += 1
            return b""
        session: Session | None = None
        try:
            if isinstance(claim, Session):
                session = claim
            elif frame.authenticated:
                session = self._authenticate(frame, now, claim)
            message = decode_payload(frame.msg_type, frame.payload)
            reply_bytes = self._dispatch(frame, message, session, now)
        except AuthError as exc:
            # Refusals of the session itself (no session, bad tag, replay, lockout) go untagged:
            # the sender may hold no valid session to check a tag with (SPEC 4.1).
            log.debug("frame refused: %s", exc)
            return self._plain(MsgType.ERROR_REPLY, frame.command_id, error_reply(exc))
        except ProtocolError as exc:
            return self._reply(session, frame.command_id, error_reply(exc))
        return reply_bytes

    def _authenticate(self, frame: Frame, now: float, refused: AuthError | None = None) -> Session:
        """Find and verify the frame's session; ``refused``: the verdict ``_claim`` already reached."""
        try:
            if refused is not None:
                raise refused  # verified once already (and counted): report it, do not verify again
            return self.sessions.authenticate(frame, now, self.stats)
        except SessionExpired:
            self._on_event(EventCode.SESSION_EXPIRED, frame.session_id, Actor.DEVICE)
            raise
        except MacError:
            self._failed_auth(frame.session_id, now)
            raise

    def _failed_auth(self, session_id: int, now: float) -> None:
        """Log AUTH_FAILURE and count it toward the lockout (logging LOCKOUT when one starts)."""
        self._on_event(EventCode.AUTH_FAILURE, session_id, Actor.DEVICE)
        if self.sessions.record_failure(now):
            self._on_event(EventCode.LOCKOUT, int(self.sessions.locked_until - now), Actor.DEVICE)

    def _dispatch(self, frame: Frame, message: Message, session: Session | None, now: float) -> bytes:
        command_id = frame.command_id
        if isinstance(message, IdentifyRequest):
            return self._reply(session, command_id, self.identity)
        if isinstance(message, SessionOpen):
            try:
                pending, device_nonce = self.sessions.open(message.host_nonce, message.open_proof, now)
            except MacError:
                self._failed_auth(0, now)  # a wrong proof is a guess at the key: it counts
                raise
            policy = self.sessions.policy
            challenge = SessionChallenge(device_nonce, policy.idle_timeout_s, policy.absolute_timeout_s, pending.role)
            return self._reply(pending, command_id, challenge)
        if session is None:
            raise NoSession(f"{type(message).__name__} needs an authenticated session")
        if isinstance(message, SessionConfirm):
            if session.confirmed:  # a re-sent confirm whose ack was lost
                return self._reply(session, command_id, CommandAck(0))
            self.sessions.confirm(session)
            seq = self._on_event(EventCode.SESSION_OPENED, session.session_id, session.role)
            return self._reply(session, command_id, CommandAck(seq))
        if not session.confirmed:
            raise NoSession("session not confirmed: send SESSION_CONFIRM first")
        if isinstance(message, SessionClose):
            seq = self._on_event(EventCode.SESSION_CLOSED, session.session_id, session.role)
            reply = self._reply(session, command_id, CommandAck(seq))
            self.sessions.close(session)
            return reply
        if isinstance(message, CommandQuery):
            return self._reply(session, command_id, self.replies.query(message))
        if session.role is Actor.PATIENT and message.MUTATING and not message.PATIENT_MAY:
            raise DeviceRejected(
                ErrorCode.NOT_PERMITTED,
                f"the patient's controller may not send {type(message).__name__}: it needs the clinician's",
            )
        reply_type, payload = self._handle(frame, message, session.role)
        return session.seal_wire(reply_type, command_id, payload)

    def _handle(self, frame: Frame, message: Message, role: Actor) -> tuple[int, bytes]:
        """The handler's reply, encoded once (and remembered for a mutating command)."""
        if message.MUTATING:
            cached = self.replies.answer(frame.command_id, frame.msg_type, frame.payload)
            if cached is not None:
                return cached
        try:
            reply = self.handler(message, role)
            if reply.TYPE not in message.REPLIES:
                raise TypeError(f"handler answered {type(message).__name__} with {type(reply).__name__}")
            # A reply that cannot be encoded is the device's fault, not the request's.
            encoded = (int(reply.TYPE), encode_payload(reply))
        except DeviceRejected as exc:
            encoded = (MsgType.ERROR_REPLY, encode_payload(error_reply(exc)))
        except Exception as exc:  # a fault in the device model must not take the link down
            log.exception("handler failed on %s", type(message).__name__)
            fault = ErrorReply(ErrorCode.DEVICE_FAULT, "", 0, 0, 0, _clip(f"device fault: {exc}", 160))
            encoded = (MsgType.ERROR_REPLY, encode_payload(fault))
        if message.MUTATING:
            self.replies.remember(frame.command_id, frame.msg_type, frame.payload, encoded)
        return encoded

    # --- encoding replies ------------------------------------------------------------------------
    def _reply(self, session: Session | None, command_id: int, message: Message) -> bytes:
        if session is None:
            return self._plain(message.TYPE, command_id, message)
        return session.seal_wire(message.TYPE, command_id, encode_payload(message))

    def _plain(self, msg_type: int, command_id: int, message: Message) -> bytes:
        frame = Frame(msg_type, FLAG_FROM_DEVICE, 0, 0, command_id, encode_payload(message))
        return encode_frame(frame)
