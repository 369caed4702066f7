"""``DeviceClient``: the host side of the protocol over any serial-like port.

Stop-and-wait: one request in flight, correlated by command id. A request with no valid reply
within ``timeout`` is re-sent with the same command id (so the device applies it once) at most
``retries`` times, then ``LinkTimeout``; for a mutating request that went out, the
``CommandUnresolved`` kind of it, carrying the command id, because the device may have applied
it. ``resolve`` then learns its fate from the device's exactly-once memory (SPEC 4.2). A CRC hint
from the device triggers the re-send at once. Replies must verify against the session (tag, then
counter); unauthenticated frames are accepted only where the protocol allows them (identify
before a session, error replies). Pushed events that arrive meanwhile are verified and queued.
With ``auto_reopen``, a NO_SESSION refusal (the session expired or the device restarted) re-opens
the session and repeats the request once.
"""

from __future__ import annotations

import logging
import math
import os
import select
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

import serial

from .auth import KEY_SIZE, Rng, Session, host_session_from_challenge, load_pairing_key, session_open
from .codec import SCHEMA_FINGERPRINT, decode_payload, encode_payload
from .errors import (
    AUTH_REFUSALS,
    AuthError,
    CodecError,
    CommandNotHandled,
    CommandUnresolved,
    DeviceRejected,
    ErrorCode,
    FrameError,
    LinkError,
    LinkTimeout,
    PairingKeyError,
    ProtocolError,
    SchemaMismatch,
)
from .framing import FLAG_FROM_DEVICE, FLAG_PUSH, Frame, FrameDecoder, LinkStats, encode_frame
from .messages import (
    NONCE_SIZE,
    Actor,
    AlarmAck,
    Area,
    Bolus,
    BolusKind,
    BolusReply,
    ClockRead,
    ClockReply,
    ClockSet,
    CommandAck,
    CommandFate,
    CommandOutcome,
    CommandQuery,
    DiaryAdd,
    DiaryKind,
    DiaryPage,
    DiaryPush,
    DiaryRead,
    DiaryRecord,
    DosingMode,
    DosingSet,
    DrugConcentration,
    ErrorReply,
    EventCode,
    EventLogPage,
    EventLogRead,
    EventPush,
    EventRecord,
    FlexStep,
    IdentifyReply,
    IdentifyRequest,
    ImpedanceCheck,
    ImpedanceReply,
    Lifecycle,
    LifecycleSet,
    Message,
    MsgType,
    PatientBolusSettings,
    PeriodicBolus,
    ProgramRead,
    ProgramReply,
    PumpStatus,
    Refill,
    RefillReply,
    ScheduleRead,
    ScheduleReply,
    ScsStatus,
    SessionChallenge,
    SessionClose,
    SessionConfirm,
    SessionOpen,
    StatusRequest,
    StimProgramSet,
    TherapySet,
    stored_program_numbers,
)
from .replies import request_digest
from .transport import SerialLike, open_port

log = logging.getLogger(__name__)

Trace = Callable[[str, "Frame | FrameError"], None]
_M = TypeVar("_M", bound=Message)
_RETRY_NOW = object()


def _fate_unknown(exc: ProtocolError) -> bool:
    """True unless ``exc`` is the device's own answer to the request (a refusal after reading it)."""
    if isinstance(exc, DeviceRejected):
        return exc.code in AUTH_REFUSALS
    return not isinstance(exc, CodecError)


def _is_replay_refusal(frame: Frame) -> bool:
    try:
        reply = decode_payload(frame.msg_type, frame.payload)
    except ProtocolError:
        return False
    return isinstance(reply, ErrorReply) and reply.code == ErrorCode.REPLAY


@dataclass
class ClientStats:
    """Request-level counters of a client, beside the frame-level ``LinkStats``."""

    requests: int = 0
    bytes_tx: int = 0
    retries: int = 0
    timeouts: int = 0
    rejected: int = 0
    reopened: int = 0
    last_rtt_s: float = 0.0
    last_ok_at: float = 0.0


class DeviceClient:
    """Talks to one device: identify, session, typed requests, pushed events."""

    def __init__(
        self,
        port: SerialLike,
        pairing_key: bytes | None = None,
        *,
        timeout: float = 1.0,
        retries: int = 3,
        auto_reopen: bool = True,
        clock: Callable[[], float] = time.monotonic,
        rng: Rng = os.urandom,
        trace: Trace | None = None,
        owns_port: bool = False,
    ) -> None:
        if pairing_key is not None and len(pairing_key) != KEY_SIZE:
            raise PairingKeyError(f"a pairing key is {KEY_SIZE} bytes, got {len(pairing_key)}")
        self.port = port
        self.timeout = timeout
        self.retries = retries
        self.auto_reopen = auto_reopen
        self.identity: IdentifyReply | None = None
        self.session: Session | None = None
        self.session_limits: tuple[int, int] = (0, 0)
        self.pushes: deque[EventRecord] = deque(maxlen=1024)
        self.diary_pushes: deque[DiaryRecord] = deque(maxlen=1024)  # pushed diary entries (SPEC 4.7)
        self.decoder = FrameDecoder()
        self.link_stats: LinkStats = self.decoder.stats
        self.stats = ClientStats()
        self._key = pairing_key
        self._clock = clock
        self._rng = rng
        self._trace = trace
        self._owns_port = owns_port
        self._lock = threading.RLock()
        # Exactly pyserial's local port class: wrappers such as spy:// subclass it and must see every byte.
        self._fd = port.fileno() if type(port) is serial.Serial and port.is_open else None
        # poll, not select.select: select refuses descriptors above FD_SETSIZE (1024), which a
        # dashboard serving a thousand devices passes; a poll object holds no descriptor of its own.
        self._poller = select.poll() if self._fd is not None else None
        if self._poller is not None:
            self._poller.register(self._fd, select.POLLIN)
        self._next_id = int.from_bytes(rng(4), "little") or 1
        self._sent_id = 0  # command id of the request last written to the port
        self._closed = False

    @classmethod
    def connect(
        cls, url: str, key_file: str | os.PathLike[str] | None = None, baudrate: int = 115200, **kwargs: object
    ) -> DeviceClient:
        """Open ``url`` (any pyserial URL) and load the pairing key from ``key_file``."""
        key = load_pairing_key(key_file) if key_file is not None else None
        port = open_port(url, baudrate=baudrate)
        return cls(port, key, owns_port=True, **kwargs)  # type: ignore[arg-type]

    def counters(self) -> dict[str, int]:
        """The frame counters (``link_stats``) and the request counters (``stats``), as one flat dict."""
        stats = self.stats
        counters = self.link_stats.as_dict()
        counters.update(
            requests=stats.requests,
            retries=stats.retries,
            timeouts=stats.timeouts,
            rejected=stats.rejected,
            reopened=stats.reopened,
        )
        return counters

    def fileno(self) -> int | None:
        """The descriptor that turns readable when the device sends (for a selector); None if the port has none."""
        return self._fd

    # --- lifecycle -------------------------------------------------------------------------------
    def __enter__(self) -> DeviceClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the session if one is open (best effort), then the port if we own it. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self.session is not None:
            try:
                self.retries, self.timeout = 0, min(self.timeout, 0.5)
                self._exchange(SessionClose(), self._new_id())
            except ProtocolError as exc:
                log.debug("session close failed: %s", exc)
            self.session = None
        if self._owns_port:
            self.port.close()

    # --- session ---------------------------------------------------------------------------------
    def identify(self) -> IdentifyReply:
        """Ask who the device is; refuse a device whose schema fingerprint differs from ours."""
        reply = self._typed(IdentifyRequest(), IdentifyReply)
        if reply.schema_fingerprint != SCHEMA_FINGERPRINT:
            raise SchemaMismatch(
                f"device schema 0x{reply.schema_fingerprint:08x}, ours 0x{SCHEMA_FINGERPRINT:08x}: "
                "update the client or the device"
            )
        self.identity = reply
        return reply

    def open_session(self) -> None:
        """Run the challenge-response handshake with the pairing key."""
        if self._key is None:
            raise PairingKeyError("no pairing key: pass one to open a session")
        with self._lock:
            # The session in use stays until a new one is confirmed: a failed re-open (a flood, a
            # lockout, a lost frame) must not leave the client with none (SPEC 3.6).
            previous = self.session
            try:
                self._handshake(self._key)
            except BaseException:
                self.session = previous
                raise

    def _handshake(self, key: bytes) -> None:
        host_nonce = self._rng(NONCE_SIZE)
        request = session_open(key, host_nonce)
        frame = self._exchange(request, self._new_id())
        challenge = self._checked(request, frame)
        if not isinstance(challenge, SessionChallenge) or not frame.authenticated:
            raise ProtocolError("session open was not answered with a tagged SESSION_CHALLENGE")
        session = host_session_from_challenge(key, host_nonce, challenge.device_nonce, frame, self._clock())
        session.role = challenge.role  # tagged with the key this client holds: the device cannot be fooled on it
        self.session = session  # the confirm is sealed with the new session
        self._checked(SessionConfirm(), self._exchange(SessionConfirm(), self._new_id()))
        session.confirmed = True
        self.session_limits = (challenge.idle_timeout_s, challenge.absolute_timeout_s)

    @property
    def role(self) -> Actor | None:
        """The open session's role (CLINICIAN or PATIENT, by the key this client holds), None without one."""
        return self.session.role if self.session is not None else None

    def close_session(self) -> None:
        """End the session."""
        with self._lock:
            if self.session is not None:
                try:
                    self._exchange(SessionClose(), self._new_id())
                finally:
                    self.session = None

    # --- requests --------------------------------------------------------------------------------
    def request(self, message: Message) -> Message:
        """Send one request and return its reply; ``DeviceRejected`` when the device refuses.

        A mutating request that went out and got no answer of its own (a timeout, a failed port,
        a lost session that could not be re-opened) raises ``CommandUnresolved``: it may have been
        applied, and ``resolve`` asks the device which.
        """
        with self._lock:
            if message.NEEDS_SESSION and self.session is None:
                if not (self.auto_reopen and self._key is not None):
                    raise AuthError(f"{type(message).__name__} needs a session: call open_session()")
                self.open_session()
            command_id = self._new_id()
            try:
                return self._request(message, command_id)
            except ProtocolError as exc:
                if not (message.MUTATING and self._sent_id == command_id and _fate_unknown(exc)):
                    raise
                raise CommandUnresolved(
                    f"{type(message).__name__} (command 0x{command_id:08x}) may or may not have been applied: {exc}",
                    command_id,
                    message,
                ) from exc

    def _request(self, message: Message, command_id: int) -> Message:
        try:
            return self._checked(message, self._exchange(message, command_id))
        except DeviceRejected as exc:
            if not (exc.code == ErrorCode.NO_SESSION and self.auto_reopen and message.NEEDS_SESSION):
                raise
        # Same command id: if the lost session had applied it, the device answers from its memory.
        self.stats.reopened += 1
        self.open_session()
        return self._checked(message, self._exchange(message, command_id))

    def resolve(self, command_id: int, request: Message) -> Message:
        """The fate of a mutating request that got no answer (see ``CommandUnresolved``): its reply.

        Asks the device's exactly-once memory (SPEC 4.2) and returns the reply the request got
        then, without applying anything. Raises ``DeviceRejected`` if the device refused it,
        ``CommandNotHandled`` if it never handled it (it then never will: the id is retired), or
        a link error when the device cannot be asked now (the fate is still unknown: ask later).
        """
        payload = encode_payload(request)
        query = CommandQuery(command_id, int(request.TYPE), request_digest(request.TYPE, payload))
        outcome = self._typed(query, CommandOutcome)
        if outcome.command_id != command_id:
            raise ProtocolError(f"asked about command 0x{command_id:08x}, told about 0x{outcome.command_id:08x}")
        if outcome.fate == CommandFate.NOT_HANDLED:
            raise CommandNotHandled(
                f"{type(request).__name__} (command 0x{command_id:08x}) was never applied, and now never will be",
                command_id,
            )
        return self._decoded(request, outcome.reply_type, outcome.reply)

    def status(self) -> ScsStatus | PumpStatus:
        """A full telemetry snapshot."""
        reply = self.request(StatusRequest())
        assert isinstance(reply, ScsStatus | PumpStatus)
        return reply

    def read_events(self, from_seq: int, max_count: int = 8) -> EventLogPage:
        """One page of the event log from ``from_seq`` on."""
        reply = self.request(EventLogRead(from_seq, max_count))
        assert isinstance(reply, EventLogPage)
        return reply

    def events_since(self, from_seq: int) -> list[EventRecord]:
        """Every event-log entry from ``from_seq`` to the newest, paging as needed."""
        return _every_page(self.read_events, from_seq)

    def read_diary(self, from_seq: int, max_count: int = 8) -> DiaryPage:
        """One page of the patient's diary from ``from_seq`` on (a device with ``Capability.DIARY``)."""
        return self._typed(DiaryRead(from_seq, max_count), DiaryPage)

    def diary_since(self, from_seq: int) -> list[DiaryRecord]:
        """Every diary entry from ``from_seq`` to the newest, paging as needed."""
        return _every_page(self.read_diary, from_seq)

    def add_diary(self, kind: DiaryKind, value: int, time_ms: int = 0) -> DiaryRecord:
        """Add a score a person typed (for ``time_ms``, 0 = now); the entry the device wrote."""
        return self._typed(DiaryAdd(kind, value, time_ms), DiaryPage).entries[0]

    def set_lifecycle(self, lifecycle: Lifecycle) -> CommandAck:
        """Move the system on in its life (SPEC 4.7; the clinician's only)."""
        return self._typed(LifecycleSet(lifecycle), CommandAck)

    def programs(self) -> list[ProgramReply]:
        """Every stored stimulation program, by the status's ``stored_programs`` mask (a stimulator)."""
        status = self.status()
        if not isinstance(status, ScsStatus):
            raise ProtocolError("only a stimulator stores stimulation programs")
        return [self._typed(ProgramRead(n), ProgramReply) for n in stored_program_numbers(status.stored_programs)]

    def ack_alarm(self, code: EventCode) -> CommandAck:
        """Acknowledge an active alarm."""
        return self._typed(AlarmAck(code), CommandAck)

    def read_clock(self) -> ClockReply:
        """The device clock."""
        return self._typed(ClockRead(), ClockReply)

    def set_clock(self, time_ms: int) -> CommandAck:
        """Set the device clock."""
        return self._typed(ClockSet(time_ms), CommandAck)

    def set_program(
        self,
        program: int,
        areas: tuple[Area, ...],
        patient_amp_max_ua: int,
        activate: bool = True,
        ramp_s: int = 2,
        density_override: bool = False,
    ) -> CommandAck:
        """Store (and by default activate) a stimulation program; ``density_override`` accepts areas above
        the charge-density warning (SPEC 4.4)."""
        message = StimProgramSet(program, activate, tuple(areas), patient_amp_max_ua, ramp_s, density_override)
        return self._typed(message, CommandAck)

    def set_therapy(self, on: bool) -> CommandAck:
        """Turn therapy on or off."""
        return self._typed(TherapySet(on), CommandAck)

    def impedance_check(self) -> ImpedanceReply:
        """Measure every contact's impedance."""
        return self._typed(ImpedanceCheck(), ImpedanceReply)

    def set_dosing(
        self,
        mode: DosingMode,
        rate_ul_per_day: int,
        patient_bolus: PatientBolusSettings,
        alarm_volume_ul: int,
        steps: tuple[FlexStep, ...] = (),
        periodic_boluses: tuple[PeriodicBolus, ...] = (),
        utc_offset_min: int = 0,
    ) -> CommandAck:
        """Program the pump's dosing (flex steps and periodic boluses in the local time ``utc_offset_min``)."""
        message = DosingSet(
            mode, rate_ul_per_day, tuple(steps), patient_bolus, alarm_volume_ul, tuple(periodic_boluses), utc_offset_min
        )
        return self._typed(message, CommandAck)

    def read_schedule(self) -> ScheduleReply:
        """The pump's dosing program as it holds it."""
        return self._typed(ScheduleRead(), ScheduleReply)

    def bolus(self, kind: BolusKind, volume_ul: int, duration_min: int) -> BolusReply:
        """Deliver a bolus."""
        return self._typed(Bolus(kind, volume_ul, duration_min), BolusReply)

    def refill(
        self,
        withdrawn_ul: int,
        added_ul: int,
        drugs: tuple[DrugConcentration, ...],
        concentration_confirmed: bool,
        discrepancy_accepted: bool = False,
        bridge_bolus: bool = False,
    ) -> RefillReply:
        """Record a refill."""
        message = Refill(
            withdrawn_ul, added_ul, tuple(drugs), concentration_confirmed, discrepancy_accepted, bridge_bolus
        )
        return self._typed(message, RefillReply)

    def poll_pushes(self, wait_s: float = 0.0) -> list[EventRecord]:
        """Read what arrived unasked (for up to ``wait_s``) and return the pushed events queued so far."""
        with self._lock:
            deadline = self._clock() + wait_s
            while True:
                self._read_frames(None, block=wait_s > 0)  # no wait asked: only what is there already
                if self.pushes or self._clock() >= deadline:
                    break
            items = list(self.pushes)
            self.pushes.clear()
            return items

    # --- internals -------------------------------------------------------------------------------
    def _typed(self, message: Message, reply_cls: type[_M]) -> _M:
        reply = self.request(message)
        if not isinstance(reply, reply_cls):
            raise ProtocolError(f"{type(message).__name__} answered with {type(reply).__name__}")
        return reply

    def _checked(self, message: Message, frame: Frame) -> Message:
        """Decode a reply frame; raise ``DeviceRejected`` for an error reply."""
        return self._decoded(message, frame.msg_type, frame.payload)

    def _decoded(self, message: Message, msg_type: int, payload: bytes) -> Message:
        """Decode the reply to ``message``; raise ``DeviceRejected`` for an error reply."""
        reply = decode_payload(msg_type, payload)
        if isinstance(reply, ErrorReply):
            self.stats.rejected += 1
            raise DeviceRejected(reply.code, reply.message, reply.field, reply.value, reply.limit, reply.retry_after_ms)
        if reply.TYPE not in message.REPLIES:
            raise ProtocolError(f"{type(message).__name__} answered with {type(reply).__name__}")
        return reply

    def _new_id(self) -> int:
        command_id = self._next_id
        self._next_id = (self._next_id + 1) & 0xFFFFFFFF or 1
        return command_id

    def _exchange(self, message: Message, command_id: int) -> Frame:
        """Send ``message`` and return the frame answering it, re-sending on timeout."""
        if self._closed and not isinstance(message, SessionClose):
            raise LinkError("client is closed")
        payload = encode_payload(message)
        self.stats.requests += 1
        sealed = not isinstance(message, SessionOpen)
        for attempt in range(self.retries + 1):
            if attempt:
                self.stats.retries += 1
            session = self.session if sealed else None
            if session is not None and self._trace is None:  # the per-poll path: straight to bytes
                data = session.seal_wire(message.TYPE, command_id, payload)
            else:
                if session is None:
                    frame = Frame(message.TYPE, 0, 0, 0, command_id, payload)
                else:
                    frame = session.seal(message.TYPE, command_id, payload)
                if self._trace:
                    self._trace("tx", frame)
                data = encode_frame(frame)
            sent_at = self._clock()
            self._sent_id = command_id  # before the write: a failed write may still have sent bytes
            self._write(data)
            reply = self._await(command_id, message, sent_at + self.timeout)
            if isinstance(reply, Frame):
                now = self._clock()
                self.stats.last_rtt_s = now - sent_at
                self.stats.last_ok_at = now
                return reply
        self.stats.timeouts += 1
        raise LinkTimeout(
            f"no valid reply to {type(message).__name__} within {self.timeout:g} s after {self.retries + 1} tries"
        )

    def _write(self, data: bytes) -> None:
        try:
            if self._fd is not None:
                view = memoryview(data)
                while view:  # a pty or tty takes a frame at once; loop for the rare partial write
                    view = view[os.write(self._fd, view) :]
            else:
                self.port.write(data)
            self.stats.bytes_tx += len(data)
        except ProtocolError:
            raise
        except (OSError, serial.SerialException) as exc:
            raise LinkError(f"write failed: {exc}") from exc

    def _await(self, command_id: int, message: Message, deadline: float) -> Frame | object | None:
        while True:
            found = self._read_frames((command_id, message))
            if found is not None:
                return found
            if self._clock() >= deadline:
                return None

    def _read_available(self, block: bool = True) -> bytes:
        """What the port has, waiting up to its timeout for the first byte (``block``) or not at all."""
        if self._fd is not None:
            # A local serial port or pty: one poll and one read instead of pyserial's several.
            assert self._poller is not None
            timeout = self.port.timeout if block else 0
            if not self._poller.poll(None if timeout is None else math.ceil(timeout * 1000)):
                return b""
            data = os.read(self._fd, 4096)
            if not data:
                raise LinkError("the port was closed (end of file)")
            return data
        if not block and not self.port.in_waiting:
            if not getattr(self.port, "is_open", True):
                raise LinkError("the port was closed")
            return b""
        data = self.port.read(1)
        if data:
            waiting = self.port.in_waiting
            if waiting:
                data += self.port.read(waiting)
        return data

    def _read_frames(self, want: tuple[int, Message] | None, block: bool = True) -> Frame | object | None:
        try:
            data = self._read_available(block)
        except ProtocolError:
            raise
        except (OSError, serial.SerialException) as exc:
            raise LinkError(f"read failed: {exc}") from exc
        result: Frame | object | None = None
        for item in self.decoder.feed_events(data) if data else ():
            if self._trace:
                self._trace("rx", item)
            if isinstance(item, FrameError):
                continue
            verdict = self._accept(item, want)
            if verdict is not None and result is None:
                result = verdict
        return result

    def _accept(self, frame: Frame, want: tuple[int, Message] | None) -> Frame | object | None:
        if not frame.flags & FLAG_FROM_DEVICE:
            self.link_stats.frames_ok -= 1  # well formed, but our own frame looped back: not link data
            self.link_stats.malformed += 1
            return None
        if frame.flags & FLAG_PUSH:
            self._take_push(frame)
            return None
        if want is None:
            return None
        command_id, message = want
        if frame.command_id == 0 and not frame.authenticated and frame.msg_type == MsgType.ERROR_REPLY:
            return _RETRY_NOW  # the device saw a corrupted frame: ours, most likely
        if frame.command_id != command_id:
            return None  # a late or duplicated reply to an earlier request
        if frame.authenticated:
            if isinstance(message, SessionOpen):
                return frame  # verified by the handshake, which derives the key first
            if self.session is None:
                return None
            try:
                self.session.verify(frame, self._clock(), self.link_stats)
            except AuthError as exc:
                log.debug("reply dropped: %s", exc)
                return None
            return frame
        if frame.msg_type == MsgType.ERROR_REPLY and self.session is not None and _is_replay_refusal(frame):
            # The device refused a stale copy of this request (a duplicate, or one that arrived after
            # its retry), never the newest attempt: that one's own answer may still come, or a retry
            # gets it from the device's exactly-once cache.
            log.debug("replay refusal of an earlier copy of command %08x ignored", frame.command_id)
            return None
        if frame.msg_type == MsgType.ERROR_REPLY or self.session is None:
            return frame  # untagged: an error, or the reply to a request we sent untagged (SPEC 4)
        self.link_stats.mac_errors += 1
        return None

    def _take_push(self, frame: Frame) -> None:
        if self.session is None:
            return
        try:
            self.session.verify(frame, self._clock(), self.link_stats)
            push = decode_payload(frame.msg_type, frame.payload)
        except ProtocolError as exc:
            log.debug("push dropped: %s", exc)
            return
        if isinstance(push, EventPush):
            self.pushes.append(push.event)
        elif isinstance(push, DiaryPush):
            self.diary_pushes.append(push.entry)


def _every_page(read: Callable[[int], Any], from_seq: int) -> list[Any]:
    """The entries of ``read(seq)`` pages (``EventLogPage``, ``DiaryPage``) from ``from_seq`` to the newest."""
    entries: list[Any] = []
    seq = from_seq
    while True:
        page = read(seq)
        entries.extend(page.entries)
        if not page.entries or page.entries[-1].seq >= page.last_seq:
            return entries
        seq = page.entries[-1].seq + 1
