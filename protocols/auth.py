"""Pairing keys, session key derivation, frame tags, replay protection and session lifetimes.

Sans-IO: time comes in as ``now`` (seconds on the link's monotonic wall clock, never the simulated
device clock), randomness through an injected ``rng``. The handshake (SPEC.md, "Sessions"):

1. host -> device  SESSION_OPEN(host_nonce, open_proof), no session, no tag; open_proof is the
                   first 16 bytes of HMAC-SHA256(pairing key, "implant-telemetry/1 open" || host_nonce)
2. device -> host  SESSION_CHALLENGE(device_nonce, limits), new session id, tagged with K_d2h
3. host -> device  SESSION_CONFIRM, tagged with K_h2d; the device replies COMMAND_ACK

``K_h2d || K_d2h = HKDF-SHA256(ikm=pairing key, salt=host_nonce || device_nonce,
info="implant-telemetry/1 session" || session_id (u32 LE), length=64)``. Each frame's tag is the
first 16 bytes of HMAC-SHA256(K_direction, header || payload), compared with
``hmac.compare_digest``. The receive counter advances only after the tag verified.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import string
import struct
import tempfile
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import (
    LockedOut,
    MacError,
    MalformedFrame,
    NoSession,
    OversizeFrame,
    PairingKeyError,
    ReplayError,
    SessionExpired,
)
from .framing import (
    FLAG_AUTH,
    FLAG_FROM_DEVICE,
    FLAG_PUSH,
    HEADER,
    MAX_PAYLOAD,
    PROTOCOL_VERSION,
    TAG_SIZE,
    Frame,
    LinkStats,
    wire_bytes,
)
from .messages import OPEN_PROOF_SIZE, Actor, SessionOpen

KEY_SIZE = 32
HKDF_INFO = b"implant-telemetry/1 session"
Rng = Callable[[int], bytes]


# --- pairing keys --------------------------------------------------------------------------------
def generate_pairing_key(rng: Rng = os.urandom) -> bytes:
    """A new random 32-byte pairing key."""
    return rng(KEY_SIZE)


def write_pairing_key(path: str | os.PathLike[str], key: bytes, label: str = "") -> Path:
    """Write ``key`` as hex to ``path`` atomically, readable by the owner only."""
    if len(key) != KEY_SIZE:
        raise PairingKeyError(f"a pairing key is {KEY_SIZE} bytes, got {len(key)}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    header = f"# implant-telemetry pairing key{' for ' + label if label else ''}; keep it secret\n"
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".key-")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(header + key.hex() + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def load_pairing_key(path: str | os.PathLike[str]) -> bytes:
    """Read a pairing key file: 64 hex digits, blank lines and ``#`` comments allowed."""
    source = Path(path)
    try:
        text = source.read_text(encoding="ascii")
    except FileNotFoundError:
        raise PairingKeyError(f"pairing key file {source} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PairingKeyError(f"cannot read pairing key file {source}: {exc}") from exc
    lines = [line.strip() for line in text.splitlines()]
    digits = "".join(line for line in lines if line and not line.startswith("#"))
    if len(digits) != 2 * KEY_SIZE:
        raise PairingKeyError(f"pairing key file {source} holds {len(digits)} hex digits, {2 * KEY_SIZE} expected")
    if any(c not in string.hexdigits for c in digits):
        raise PairingKeyError(f"pairing key file {source} holds characters other than hex digits")
    return bytes.fromhex(digits)


# --- key derivation and tags ---------------------------------------------------------------------
def hkdf_sha256(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    """HKDF (RFC 5869) with SHA-256: extract, then expand to ``length`` bytes."""
    prk = hmac.new(salt or bytes(32), ikm, hashlib.sha256).digest()
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


@dataclass(frozen=True)
class SessionKeys:
    """The two directional keys of a session."""

    host_to_device: bytes = field(repr=False)
    device_to_host: bytes = field(repr=False)


def derive_session_keys(pairing_key: bytes, host_nonce: bytes, device_nonce: bytes, session_id: int) -> SessionKeys:
    """Derive a session's keys from the pairing key and both nonces (see module docstring)."""
    info = HKDF_INFO + session_id.to_bytes(4, "little")
    okm = hkdf_sha256(pairing_key, host_nonce + device_nonce, info, 2 * KEY_SIZE)
    return SessionKeys(okm[:KEY_SIZE], okm[KEY_SIZE:])


def _keyed_sha256(key: bytes) -> Any:
    """HMAC-SHA256 state keyed once, to be ``copy()``-ed per frame.

    Where OpenSSL backs ``hmac``, its native object is used directly: the pure-Python wrapper
    adds a copy of itself on every frame, about a third of a tag's cost.
    """
    mac = hmac.new(key, digestmod=hashlib.sha256)
    native = getattr(mac, "_hmac", None)
    return native if native is not None and hasattr(native, "copy") else mac


def compute_tag(key: bytes, mac_input: bytes) -> bytes:
    """The 16-byte frame tag: HMAC-SHA256 truncated to 128 bits."""
    return hmac.new(key, mac_input, hashlib.sha256).digest()[:TAG_SIZE]


# --- one session's state -------------------------------------------------------------------------
@dataclass
class Session:
    """One side's view of a session: keys, counters in both directions, times of use."""

    session_id: int
    keys: SessionKeys
    is_device: bool
    opened_at: float
    last_rx_at: float
    tx_counter: int = 0
    rx_counter: int = 0
    confirmed: bool = False
    host_nonce: bytes = b""
    device_nonce: bytes = b""
    role: Actor = Actor.CLINICIAN  # whose pairing key opened it (SPEC 3.8)

    def seal(self, msg_type: int, command_id: int, payload: bytes, push: bool = False) -> Frame:
        """Build the next outgoing frame of this session, tagged."""
        flags, _, tag = self._next_tagged(msg_type, command_id, payload, push)
        return Frame(msg_type, flags, self.session_id, self.tx_counter, command_id, payload, tag)

    def seal_wire(self, msg_type: int, command_id: int, payload: bytes, push: bool = False) -> bytes:
        """Like ``seal``, but return the frame's wire bytes at once (the per-poll path: no ``Frame``)."""
        _, header, tag = self._next_tagged(msg_type, command_id, payload, push)
        return wire_bytes(header + payload, tag)

    def _next_tagged(self, msg_type: int, command_id: int, payload: bytes, push: bool) -> tuple[int, bytes, bytes]:
        if len(payload) > MAX_PAYLOAD:
            raise OversizeFrame(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
        flags = FLAG_AUTH | (FLAG_FROM_DEVICE if self.is_device else 0) | (FLAG_PUSH if push else 0)
        counter = self.tx_counter + 1
        try:
            header = HEADER.pack(PROTOCOL_VERSION, msg_type, flags, self.session_id, counter, command_id, len(payload))
        except struct.error as exc:
            raise MalformedFrame(f"header field out of range: {exc}") from exc
        self.tx_counter = counter  # only a frame that was built uses up a counter value
        mac = self._tx_mac.copy()  # the keyed state is computed once per session, not per frame
        mac.update(header)
        mac.update(payload)
        return flags, header, mac.digest()[:TAG_SIZE]

    def __post_init__(self) -> None:
        tx, rx = (self.keys.device_to_host, self.keys.host_to_device)
        if not self.is_device:
            tx, rx = rx, tx
        self._tx_mac = _keyed_sha256(tx)
        self._rx_mac = _keyed_sha256(rx)

    def verify(self, frame: Frame, now: float, stats: LinkStats | None = None) -> None:
        """Check a received frame's tag, then its counter; only then advance the counter."""
        flags = frame.flags
        from_device = bool(flags & FLAG_FROM_DEVICE)
        if not flags & FLAG_AUTH or frame.session_id != self.session_id or from_device == self.is_device:
            raise MacError("frame is not tagged for this session and direction")
        mac = self._rx_mac.copy()
        mac.update(frame.mac_input())
        expected = mac.digest()[:TAG_SIZE]
        if not hmac.compare_digest(expected, frame.tag):
            if stats is not None:
                stats.mac_errors += 1
            raise MacError("frame tag does not verify")
        if frame.counter <= self.rx_counter:
            if stats is not None:
                stats.replays += 1
            raise ReplayError(f"counter {frame.counter} not above last accepted {self.rx_counter}")
        if stats is not None and frame.counter > self.rx_counter + 1:
            stats.seq_gaps += 1
        self.rx_counter = frame.counter
        self.last_rx_at = now


OPEN_PROOF_LABEL = b"implant-telemetry/1 open"
USED_NONCES = 64  # host nonces a device remembers, so a recorded SessionOpen cannot be replayed


def open_proof(pairing_key: bytes, host_nonce: bytes) -> bytes:
    """The proof of the pairing key a SessionOpen carries (SPEC 3.5)."""
    return hmac.new(pairing_key, OPEN_PROOF_LABEL + host_nonce, hashlib.sha256).digest()[:OPEN_PROOF_SIZE]


def session_open(pairing_key: bytes, host_nonce: bytes) -> SessionOpen:
    """The SessionOpen a key holder sends for ``host_nonce``."""
    return SessionOpen(host_nonce, open_proof(pairing_key, host_nonce))


# --- device side: sessions, expiry, lockout ------------------------------------------------------
@dataclass(frozen=True)
class AuthPolicy:
    """Session limits, the lockout after repeated failures and the wake-up budget (docs/security.md R7, R10)."""

    idle_timeout_s: int = 300
    absolute_timeout_s: int = 3600
    max_failures: int = 5
    failure_window_s: float = 60.0
    lockout_initial_s: float = 1.0
    lockout_max_s: float = 60.0
    # R10 wake-up budget: frames per second a device examines outside its verified active session.
    flood_frames_per_s: int = 50


class DeviceSessions:
    """The device's sessions: one active, at most one pending (opened, not yet confirmed).

    The device holds one pairing key per role: the clinician's and, if provisioned, the patient's.
    The key a ``SessionOpen`` proves decides the session's role; the session's keys derive from it.
    """

    def __init__(
        self,
        pairing_key: bytes,
        policy: AuthPolicy | None = None,
        rng: Rng = os.urandom,
        patient_key: bytes | None = None,
    ) -> None:
        keys = {Actor.CLINICIAN: pairing_key}
        if patient_key is not None:
            keys[Actor.PATIENT] = patient_key
        for role, key in keys.items():
            if len(key) != KEY_SIZE:
                raise PairingKeyError(f"a pairing key is {KEY_SIZE} bytes, got {len(key)} ({role.name.lower()} key)")
        if patient_key is not None and hmac.compare_digest(pairing_key, patient_key):
            raise PairingKeyError("the patient's pairing key must differ from the clinician's")
        self._keys = keys
        self.policy = policy or AuthPolicy()
        self._rng = rng
        self.active: Session | None = None
        self.pending: Session | None = None
        self._failures: deque[float] = deque()
        self._next_lockout_s = self.policy.lockout_initial_s
        self.locked_until = 0.0
        self._used_nonces: deque[bytes] = deque(maxlen=USED_NONCES)

    def open(self, host_nonce: bytes, proof: bytes, now: float) -> tuple[Session, bytes]:
        """Start a pending session for ``host_nonce``; return it and the device nonce.

        A wrong ``proof`` raises ``LockedOut`` during a lockout, else ``MacError`` (the caller counts
        it). A right one is served even during a lockout: only a key holder can make it. A nonce
        used before raises ``ReplayError`` (a recorded open sent again), except the re-sent open of
        the pending session, which gets the same challenge.
        """
        role = self._role_proven(host_nonce, proof)
        if role is None:
            if now < self.locked_until:
                wait = self.locked_until - now
                raise LockedOut(f"session opening locked out for {wait:.1f} s after failed attempts", wait)
            raise MacError("session open: the proof of the pairing key does not verify")
        pending = self.pending
        if pending is not None and pending.host_nonce == host_nonce and not self.expired(pending, now):
            return pending, pending.device_nonce  # a re-sent open: same challenge, no new session
        if host_nonce in self._used_nonces:
            raise ReplayError("session open: this host nonce was used before")
        self._used_nonces.append(host_nonce)
        device_nonce = self._rng(len(host_nonce))
        session_id = 0
        while session_id == 0 or (self.active and session_id == self.active.session_id):
            session_id = int.from_bytes(self._rng(4), "little")
        keys = derive_session_keys(self._keys[role], host_nonce, device_nonce, session_id)
        self.pending = Session(
            session_id, keys, True, now, now, host_nonce=host_nonce, device_nonce=device_nonce, role=role
        )
        return self.pending, device_nonce

    def _role_proven(self, host_nonce: bytes, proof: bytes) -> Actor | None:
        """The role whose key ``proof`` proves, or None. Every key is tried: the time taken tells nothing."""
        proven = None
        for role, key in self._keys.items():
            if hmac.compare_digest(proof, open_proof(key, host_nonce)):
                proven = role
        return proven

    def authenticate(self, frame: Frame, now: float, stats: LinkStats | None = None) -> Session:
        """Find the frame's session, expire it if due, and verify the frame against it.

        A ``MacError`` is the caller's to count with ``record_failure``.
        """
        session = self._find(frame.session_id)
        if session is None:
            raise NoSession(f"no session 0x{frame.session_id:08x}")
        if self.expired(session, now):
            self._drop(session)
            raise SessionExpired(f"session 0x{session.session_id:08x} expired")
        session.verify(frame, now, stats)
        return session

    def confirm(self, session: Session) -> None:
        """Promote the pending session to active, replacing any previous one."""
        session.confirmed = True
        self.active = session
        if self.pending is session:
            self.pending = None
        self._failures.clear()
        self._next_lockout_s = self.policy.lockout_initial_s

    def close(self, session: Session) -> None:
        """End ``session``."""
        self._drop(session)

    def expired(self, session: Session, now: float) -> bool:
        """True when the session passed its idle or absolute limit."""
        return (
            now - session.last_rx_at > self.policy.idle_timeout_s
            or now - session.opened_at > self.policy.absolute_timeout_s
        )

    def expire_due(self, now: float) -> list[Session]:
        """Drop and return the sessions whose limits passed."""
        due = [s for s in (self.active, self.pending) if s is not None and self.expired(s, now)]
        for session in due:
            self._drop(session)
        return due

    def record_failure(self, now: float) -> bool:
        """Count an authentication failure; return True when it starts a lockout."""
        window = self.policy.failure_window_s
        self._failures.append(now)
        while self._failures and now - self._failures[0] > window:
            self._failures.popleft()
        if len(self._failures) < self.policy.max_failures:
            return False
        self._failures.clear()
        self.locked_until = now + self._next_lockout_s
        self._next_lockout_s = min(2 * self._next_lockout_s, self.policy.lockout_max_s)
        return True  # a pending session stays: only a key holder could have opened it

    def _find(self, session_id: int) -> Session | None:
        for session in (self.active, self.pending):
            if session is not None and session.session_id == session_id:
                return session
        return None

    def _drop(self, session: Session) -> None:
        if self.active is session:
            self.active = None
        if self.pending is session:
            self.pending = None


# --- host side: the handshake --------------------------------------------------------------------
def host_session_from_challenge(
    pairing_key: bytes, host_nonce: bytes, device_nonce: bytes, challenge: Frame, now: float
) -> Session:
    """Derive the host's session from a SESSION_CHALLENGE frame and verify the device's tag."""
    keys = derive_session_keys(pairing_key, host_nonce, device_nonce, challenge.session_id)
    session = Session(challenge.session_id, keys, is_device=False, opened_at=now, last_rx_at=now)
    session.verify(challenge, now)
    return session
