"""What a programming command touches, what came of it, and what the audit log says about it.

Pure helpers of ``DeviceLink.submit()`` and the programming view: the status fields a command can
change (its audit before/after), the ``CommandResult`` handed back to the UI, the audit text, and
the read-back check that compares what the device reports after a command with what was sent
(docs/security.md R12), and ``settle()``, which asks the device what became of a command whose reply
was lost (SPEC 4.2) so that no page reports a command as failed on a guess.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

from protocols.codec import to_json
from protocols.errors import (
    AUTH_REFUSALS,
    CodecError,
    CommandNotHandled,
    CommandUnresolved,
    DeviceRejected,
    LinkTimeout,
    PairingKeyError,
    ProtocolError,
    SchemaMismatch,
)
from protocols.messages import (
    AlarmAck,
    Bolus,
    ClockSet,
    DiaryAdd,
    DosingMode,
    DosingSet,
    ImpedanceCheck,
    LifecycleSet,
    Message,
    PumpStatus,
    Refill,
    ScsStatus,
    StimProgramSet,
    TherapySet,
)

from .words import readback_rows

Status = ScsStatus | PumpStatus

# CommandResult.error_code values that are not device refusals (those carry the ErrorCode name).
LINK = "LINK"  # never sent: the link was down or busy; nothing changed
INVALID = "INVALID"  # never sent: the command cannot be encoded
UNKNOWN = "UNKNOWN"  # sent, no reply, and the device could not be asked: it may have been applied
NOT_APPLIED = "NOT_APPLIED"  # sent, no reply, and the device confirmed it never applied it
SETTLE_ATTEMPTS = 2  # resolve tries right after a lost reply, each with the client's own retries

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
    LifecycleSet: ("lifecycle", "therapy_on", "infusing", "mode"),
    DiaryAdd: ("diary_seq",),
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


def settle(client: Any, lost: CommandUnresolved) -> tuple[Message | None, BaseException]:
    """Ask the device what became of a command whose reply was lost: (its reply, None) or (None, why).

    ``why`` is the device's refusal of it, ``CommandNotHandled`` when the device confirms it never
    applied it, or ``lost`` itself when the device cannot be asked now (its fate stays unknown).
    """
    for _ in range(SETTLE_ATTEMPTS):
        try:
            return client.resolve(lost.command_id, lost.request), None  # type: ignore[return-value]
        except (DeviceRejected, CommandNotHandled) as answer:
            if isinstance(answer, DeviceRejected) and answer.code in AUTH_REFUSALS:
                continue  # the session was refused, not the command: its fate is still unknown
            return None, answer
        except (ProtocolError, OSError):
            continue
    return None, lost


def outcome(
    reply: Message | None,
    failure: BaseException | None,
    command_id: int | None,
    link_down: BaseException | None,
    before: dict[str, Any],
    after: dict[str, Any],
) -> CommandResult:
    """The ``CommandResult`` of one command: applied, refused by the device, not applied, or unknown."""
    common: dict[str, Any] = {"before": before, "after": after, "command_id": command_id}
    if isinstance(failure, DeviceRejected):
        code = failure.code.name
        message = failure.reason or code
        limits = {"field": failure.field, "value": failure.value, "limit": failure.limit}
        return CommandResult(False, None, code, message, **limits, **common)
    if isinstance(failure, CommandNotHandled):
        return CommandResult(
            False, None, NOT_APPLIED, "no reply, and the device confirmed it did not apply it", **common
        )
    if failure is not None:
        if command_id is None and not isinstance(failure, CommandUnresolved):
            code = INVALID if isinstance(failure, CodecError) else LINK
            return CommandResult(False, None, code, f"not sent: {describe(failure)}", **common)
        cause = failure.__cause__ if isinstance(failure, CommandUnresolved) and failure.__cause__ else failure
        return CommandResult(
            False, None, UNKNOWN, f"no reply, so it may have been applied: {describe(cause)}", **common
        )
    assert reply is not None
    message = f"applied: {type(reply).__name__}"
    if link_down is not None:
        message += f"; read-back failed: {describe(link_down)}"
    return CommandResult(True, reply, None, message, **common)


def audit_text(result: CommandResult, link_down: BaseException | None) -> str:
    if result.ok:
        reply = json.dumps(to_json(result.reply), separators=(",", ":"))
        return f"{result.message} {reply}"
    if result.error_code not in (LINK, INVALID, UNKNOWN, NOT_APPLIED):
        text = f"rejected: {result.error_code} {result.message}"
        if result.field:
            text += f" ({result.field}={result.value}, limit {result.limit})"
        if link_down is not None:
            text += f"; read-back failed: {describe(link_down)}"
        return text
    return result.message


def readback_mismatches(command: Message, after: dict) -> list[str]:
    """Where the status read back after a command disagrees with what was sent (docs/security.md R12)."""
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
    sent = {key: want for key, want in expected.items() if key in after}
    got = {key: after[key] for key in sent}
    return [f"{label}: sent {want}, read back {seen}" for label, want, seen in readback_rows(sent, got)]
