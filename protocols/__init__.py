"""The implant-telemetry wire protocol: framing, integrity, authentication, messages, client.

A sans-IO core (``framing``, ``codec``, ``auth``, ``endpoint``) that never touches a port, a thread
or a clock, plus the one client (``client.DeviceClient``) and transports (``transport``). The byte
layout is specified in ``SPEC.md`` beside this file, with test vectors in ``vectors.json``.
Imports nothing from ``device_mock`` or ``dashboard``.
"""

from .codec import SCHEMA_FINGERPRINT, decode_payload, encode_payload
from .errors import (
    DeviceRejected,
    ErrorCode,
    LinkError,
    LinkTimeout,
    ProtocolError,
)
from .framing import PROTOCOL_VERSION, Frame, FrameDecoder, FrameFlags, LinkStats, encode_frame

__all__ = [
    "PROTOCOL_VERSION",
    "SCHEMA_FINGERPRINT",
    "DeviceRejected",
    "ErrorCode",
    "Frame",
    "FrameDecoder",
    "FrameFlags",
    "LinkError",
    "LinkStats",
    "LinkTimeout",
    "ProtocolError",
    "decode_payload",
    "encode_frame",
    "encode_payload",
]
