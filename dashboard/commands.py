"""What a programming command touches, what came of it, and what the audit log says about it.

Pure helpers of ``DeviceLink.submit()`` and the programming view: the status fields a command can
change (its audit before/after), the ``CommandResult`` handed back to the UI, the audit text, and
the read-back check that compares what the device reports after a command with what was sent
(SECURITY.md R12).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

from protocols.codec import to_json
from protocols.errors import CodecError, DeviceRejected, LinkTimeout, PairingKeyError, ProtocolError, SchemaMismatch
from protocols.messages import (
    AlarmAck,
    Bolus,
    ClockSet,
    DosingMode,
    DosingSet,
    ImpedanceCheck,
    Message,
    PumpStatus,
    Refill,
    ScsStatus,
    StimProgramSet,
    TherapySet,
)

Status = ScsStatus | PumpStatus

# Status fields each command can change: the before/after of its audit entry.
TOUCHED: dict[type[Message], tuple[str, ...]] = {
    StimProgramSet: ("therapy_on", "active_program", "areas", "patient_amp_max_ua"),
    TherapySet: ("therapy_on", "infusing", "mode"),
    ImpedanceCheck: ("impedance_ohm",),
    DosingSet: ("mode", "rate_ul_per_day", "patient_bolus", "alarm_volume_ul"),
    Bolus: ("bolus_active", "reservoir_ul", "patient_boluses_today"),
    Refill: ("reservoir_ul", "drugs", "next_refill_ms"),
    AlarmAck: ("alarms",),
    ClockSet: ("time_ms",),
}
_DEFAULT_TOUCHED = ("therapy_on", "infusing", "mode", "rate_ul_per_day", "alarms")


@dataclass(frozen=True)
class CommandResult:
    """The outcome of ``DeviceLink.submit()``: the reply or the refusal, and its audit entry."""

    ok: bool
    reply: Message | None
    error_code: str | None  # ErrorCode name of a refusal, "LINK" for a link failure, "INVALID" if unencodable
    message: str
    field: str | None = None  # of a refusal: the offending field, its value and the limit it broke
    value: int | None = None
    limit: int | None = None
    before: dict[str, Any] = dc_field(default_factory=dict)  # touched status fields before the command
    after: dict[str, Any] = dc_field(default_factory=dict)  # the same fields read back after it
    audit_id: int | None = None
    command_id: int | None = None  # the protocol command id (None if it never reached the wire)


def touched_fields(status: Status | None, command: Message) -> dict[str, Any]:
    """The status fields ``command`` can change, as JSON (empty without a status)."""
    if status is None:
        return {}
    names = TOUCHED.get(type(command), _DEFAULT_TOUCHED)
    return {n: to_json(getattr(status, n)) for n in names if n in status.__dataclass_fields__}


def describe(exc: BaseException) -> str:
    """A technical-alarm text for a failure."""
    if isinstance(exc, SchemaMismatch):
        return f"schema mismatch: {exc}"
    if isinstance(exc, LinkTimeout):
        return f"no reply: {exc}"
    if isinstance(exc, DeviceRejected):
        return f"device refused: {exc}"
    if isinstance(exc, PairingKeyError):
        return f"pairing key: {exc}"
    if isinstance(exc, ProtocolError):
        return str(exc)
    if isinstance(exc, OSError):
        return f"port error: {exc}"
    return f"internal error: {type(exc).__name__}: {exc}"


def outcome(
    reply: Message | None,
    failure: BaseException | None,
    command_id: int | None,
    link_down: BaseException | None,
    before: dict[str, Any],
    after: dict[str, Any],
) -> CommandResult:
    common: dict[str, Any] = {"before": before, "after": after, "command_id": command_id}
    if isinstance(failure, DeviceRejected):
        code = failure.code.name
        message = failure.reason or code
        limits = {"field": failure.field, "value": failure.value, "limit": failure.limit}
        return CommandResult(False, None, code, message, **limits, **common)
    if failure is not None:
        if command_id is None:
            code = "INVALID" if isinstance(failure, CodecError) else "LINK"
            return CommandResult(False, None, code, f"not sent: {describe(failure)}", **common)
        return CommandResult(False, None, "LINK", f"no reply, outcome unknown: {describe(failure)}", **common)
    assert reply is not None
    message = f"applied: {type(reply).__name__}"
    if link_down is not None:
        message += f"; read-back failed: {describe(link_down)}"
    return CommandResult(True, reply, None, message, **common)


def audit_text(result: CommandResult, link_down: BaseException | None) -> str:
    if result.ok:
        reply = json.dumps(to_json(result.reply), separators=(",", ":"))
        return f"{result.message} {reply}"
    if result.error_code not in ("LINK", "INVALID"):
        text = f"rejected: {result.error_code} {result.message}"
        if result.field:
            text += f" ({result.field}={result.value}, limit {result.limit})"
        if link_down is not None:
            text += f"; read-back failed: {describe(link_down)}"
        return text
    return result.message


def short(value: object, limit: int = 90) -> str:
    """A field value as compact JSON text, cut to ``limit`` characters for display."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":")) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 1] + "…"


def readback_mismatches(command: Message, after: dict) -> list[str]:
    """Where the status read back after a command disagrees with what was sent (SECURITY.md R12)."""
    expected: dict[str, object] = {}
    if isinstance(command, StimProgramSet) and command.activate:
        expected = {"active_program": command.program, "areas": to_json(command.areas)}
    elif isinstance(command, TherapySet):
        key = "therapy_on" if "therapy_on" in after else "infusing"
        expected = {key: command.on} if key == "therapy_on" or not command.on else {}
    elif isinstance(command, DosingSet):
        expected = {"alarm_volume_ul": command.alarm_volume_ul, "mode": command.mode.name}
        if command.mode == DosingMode.CONTINUOUS:
            expected["rate_ul_per_day"] = command.rate_ul_per_day
    return [
        f"{key}: sent {short(want)}, read back {short(after[key])}"
        for key, want in expected.items()
        if key in after and after[key] != want
    ]
