"""The one error tree of the protocol, and the wire error codes it maps to.

Every exception the codec, the authentication layer or the client raises is a ``ProtocolError``.
Leaves also inherit the matching built-in (``TimeoutError``, ``ConnectionError``, ``ValueError``)
so callers can catch either. Each class names the ``ErrorCode`` a device sends for it, which is how
the device endpoint turns an exception into an error reply without a lookup table.
"""

from __future__ import annotations

from enum import IntEnum


class ErrorCode(IntEnum):
    """Typed error codes carried by an ``ErrorReply`` (one byte on the wire)."""

    MALFORMED = 1
    CRC = 2
    NO_SESSION = 3
    BAD_MAC = 4
    REPLAY = 5
    OUT_OF_RANGE = 6
    UNSUPPORTED = 7
    BUSY = 8
    DEVICE_FAULT = 9
    LOCKED_OUT = 10
    STATE_CONFLICT = 11
    NOT_PERMITTED = 12  # the session's role may not do this (SPEC 3.8)
    OVERRIDE_REQUIRED = 13  # allowed only with the request's explicit override flag (SPEC 4.4)
    OFF_STEP = 14  # within its range but between the device's steps; `limit` is the nearest valid value


class ProtocolError(Exception):
    """Base of every error raised by ``protocols``."""

    code: ErrorCode = ErrorCode.MALFORMED


# --- framing -------------------------------------------------------------------------------------
class FrameError(ProtocolError):
    """A received byte run is not a valid frame."""


class MalformedFrame(FrameError):
    """COBS stuffing, header or length fields are inconsistent."""


class CrcError(FrameError):
    """The CRC-32C over the frame does not match."""

    code = ErrorCode.CRC


class OversizeFrame(FrameError):
    """More bytes arrived before a delimiter than the largest legal frame can hold."""


class UnsupportedVersion(FrameError):
    """The frame's protocol version byte is not one this codec speaks."""

    code = ErrorCode.UNSUPPORTED


# --- payload codec -------------------------------------------------------------------------------
class CodecError(ProtocolError, ValueError):
    """A payload cannot be encoded or decoded."""


class UnknownMessageType(CodecError):
    """The message type byte is not in the registry."""

    code = ErrorCode.UNSUPPORTED


class MalformedPayload(CodecError):
    """The payload is too short, too long, or holds a value its field cannot take."""


class EncodeError(CodecError):
    """A field value does not fit its wire representation (width, length, enum member)."""


# --- authentication ------------------------------------------------------------------------------
class AuthError(ProtocolError):
    """Base of the authentication and session errors."""

    code = ErrorCode.BAD_MAC


class MacError(AuthError):
    """The HMAC tag of a frame does not verify, or an authenticated frame carries no tag."""


class ReplayError(AuthError):
    """A verified frame's counter is not above the last accepted one."""

    code = ErrorCode.REPLAY


class NoSession(AuthError):
    """A request needs a session, and there is none (never opened, closed or expired)."""

    code = ErrorCode.NO_SESSION


class SessionExpired(NoSession):
    """The session passed its idle or absolute time limit."""


class LockedOut(AuthError):
    """Session opening is locked out after repeated authentication failures."""

    code = ErrorCode.LOCKED_OUT

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class PairingKeyError(ProtocolError, ValueError):
    """A pairing key file is missing, unreadable or not a 32-byte key."""


# --- link and client -----------------------------------------------------------------------------
class LinkError(ProtocolError, ConnectionError):
    """The port cannot be opened, or it failed or closed under us."""


class LinkTimeout(ProtocolError, TimeoutError):
    """No valid reply arrived within the timeout, after every retry."""


class CommandUnresolved(LinkTimeout):
    """A mutating request was sent but no answer came: it may or may not have been applied.

    ``command_id`` and ``request`` name it, so that ``DeviceClient.resolve`` can learn its fate
    from the device's exactly-once memory (SPEC 4.2) once the link is back.
    """

    def __init__(self, message: str, command_id: int, request: object) -> None:
        super().__init__(message)
        self.command_id = command_id
        self.request = request


class CommandNotHandled(ProtocolError):
    """The device confirmed that a request never reached its handler; it never will (SPEC 4.2)."""

    def __init__(self, message: str, command_id: int) -> None:
        super().__init__(message)
        self.command_id = command_id


class SchemaMismatch(ProtocolError):
    """The device's schema fingerprint differs from this codec's: fields would be misread."""

    code = ErrorCode.UNSUPPORTED


# Refusals a device sends before it looks at the request: they say nothing of its fate (SPEC 4.1).
AUTH_REFUSALS = frozenset(
    (ErrorCode.CRC, ErrorCode.NO_SESSION, ErrorCode.BAD_MAC, ErrorCode.REPLAY, ErrorCode.LOCKED_OUT)
)


class DeviceRejected(ProtocolError):
    """The device answered a request with an ``ErrorReply``; carries its typed fields."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        field: str = "",
        value: int = 0,
        limit: int = 0,
        retry_after_ms: int = 0,
    ) -> None:
        detail = f"{code.name}: {message}" if message else code.name
        super().__init__(detail)
        self.code = code
        self.reason = message
        self.field = field
        self.value = value
        self.limit = limit
        self.retry_after_ms = retry_after_ms
