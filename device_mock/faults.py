"""Faults and scenarios: line faults for the transport, and a timeline of actions in device time.

A scenario file (TOML) names a device, optional config overrides, a speed and seed, and a list of
events, each at a device-time offset from the scenario start::

    [scenario]
    name = "pump runs low over six weeks and is refilled"
    device = "pump"          # scs | pump: which device of the process it drives
    speed = 100000           # default for --speed
    seed = 3                 # default for --seed

    [config]                 # overrides of PumpConfig / ScsConfig fields
    capacity_ul = 20000

    [patient]                # overrides of the virtual patient's PatientConfig fields
    responder_rate = 0.6

    [[event]]
    at = "38d"               # s, m, h, d suffixes; plain numbers are seconds
    action = "refill"        # a programming command, by its message name or alias
    withdrawn_ul = 1500      # or "true": what the nurse really finds, the pump's true residual
    ...

Actions: the programming commands (``refill``, ``dosing``, ``bolus``, ``program``, ``therapy``,
``impedance``, ``mri_mode``, ``mri_check``)
with their message fields; ``fault`` (``name`` plus the model's fault parameters); ``line_noise``
(``flip_rate``, ``drop_rate``, ``duplicate_rate``, ``delay_rate``, ``delay_ms``, ``duration``);
``disconnect`` (``duration``); ``speed`` (``factor``). A ``refill`` may give ``withdrawn_ul = "true"``:
the residual withdrawn is then the drug really left (with the pump's flow error, and any drug an
occluded catheter kept back), rounded to a µL, which the device's residual check judges as usual.
Actions run at their exact device times as the model is advanced, so a scenario gives the same
event log at any speed.

Owns line faults, the scenario format and running its actions. A scenario drives whatever meets
``ScenarioTarget`` (``device.Device`` does); this module must not import ``device`` (which
imports it), ``server``, ``cli`` or ``dashboard``.
"""

from __future__ import annotations

import logging
import random
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from protocols.codec import from_json
from protocols.errors import DeviceRejected
from protocols.fields import BOOL, ListOf, layout_of
from protocols.messages import (
    Bolus,
    DosingSet,
    ImpedanceCheck,
    Message,
    MriCheckDone,
    MriModeSet,
    Refill,
    StimProgramSet,
    TherapySet,
)

from .clock import Clock
from .model import DeviceModel
from .patients.config import patient_config

log = logging.getLogger(__name__)

COMMANDS: dict[str, type[Message]] = {
    "refill": Refill,
    "dosing": DosingSet,
    "bolus": Bolus,
    "program": StimProgramSet,
    "therapy": TherapySet,
    "impedance": ImpedanceCheck,
    "mri_mode": MriModeSet,
    "mri_check": MriCheckDone,
}
TRUE_RESIDUAL = "true"  # a refill's withdrawn_ul: the residual really in the pump
LINK_ACTIONS = ("line_noise", "disconnect")
OTHER_ACTIONS = ("fault", "speed")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|y)?\s*$")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "y": 31_557_600_000}


class ScenarioError(ValueError):
    """A scenario file or fault specification is wrong; the message says where and why."""


def parse_duration_ms(value: object, where: str) -> int:
    """'38d', '90m', '1.5h', '250ms' or a number of seconds -> milliseconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value * 1000)
    match = _DURATION.match(str(value))
    if not match:
        raise ScenarioError(f"{where}: {value!r} is not a duration (e.g. 90s, 15m, 6h, 38d)")
    return int(float(match.group(1)) * _UNIT_MS[match.group(2) or "s"])


@dataclass
class LinkFaults:
    """Faults of the byte stream between a device and its host, consulted by the server."""

    rng: random.Random = field(default_factory=lambda: random.Random(0))
    flip_rate: float = 0.0
    drop_rate: float = 0.0
    duplicate_rate: float = 0.0
    delay_rate: float = 0.0
    delay_ms: float = 0.0
    noise_until_ms: int | None = None  # None: until changed
    down_until_ms: int = 0

    def set_noise(self, until_ms: int | None, **rates: float) -> None:
        """Turn line noise on (rates per byte) until ``until_ms`` (device time) or for good."""
        for name, value in rates.items():
            if not 0.0 <= value <= 1.0 and name != "delay_ms":
                raise ScenarioError(f"{name} {value} outside 0..1")
            setattr(self, name, float(value))
        self.noise_until_ms = until_ms

    def connected(self, now_ms: int) -> bool:
        """False while a disconnect fault holds the link down."""
        return now_ms >= self.down_until_ms

    def mangle(self, data: bytes, now_ms: int) -> tuple[bytes, float]:
        """Apply the noise in force: return the bytes to deliver and a delay in seconds."""
        if self.noise_until_ms is not None and now_ms >= self.noise_until_ms:
            self.flip_rate = self.drop_rate = self.duplicate_rate = self.delay_rate = 0.0
            self.noise_until_ms = None
        if not (self.flip_rate or self.drop_rate or self.duplicate_rate):
            out = data
        else:
            mangled = bytearray()
            for byte in data:
                if self.rng.random() < self.drop_rate:
                    continue
                if self.rng.random() < self.flip_rate:
                    byte ^= 1 << self.rng.randrange(8)
                mangled.append(byte)
                if self.rng.random() < self.duplicate_rate:
                    mangled.append(byte)
            out = bytes(mangled)
        delay = self.delay_ms / 1000.0 if self.delay_rate and self.rng.random() < self.delay_rate else 0.0
        return out, delay


class ScenarioTarget(Protocol):
    """What a scenario drives: a model to advance and command, its clock and its line faults.

    ``device.Device`` meets it; the ``speed`` action needs a clock with ``set_speed`` (``SimClock``).
    """

    model: DeviceModel
    clock: Clock
    link_faults: LinkFaults


@dataclass(frozen=True)
class Action:
    """One scenario event."""

    at_ms: int
    action: str
    params: dict[str, Any]
    where: str


@dataclass
class Scenario:
    """A timeline of actions in device time, run as the device advances."""

    name: str
    device: str | None
    actions: list[Action]
    start_ms: int = 0
    speed: float | None = None
    seed: int | None = None
    config: dict[str, Any] = field(default_factory=dict)
    fleet: dict[str, Any] = field(default_factory=dict)  # ``[fleet]``: FleetConfig fields for --fleet
    patient: dict[str, Any] = field(default_factory=dict)  # ``[patient]``: PatientConfig fields
    _next: int = 0

    @classmethod
    def empty(cls) -> Scenario:
        """No actions."""
        return cls("none", None, [])

    @classmethod
    def load(cls, path: str | Path) -> Scenario:
        """Read and check a scenario file; ``ScenarioError`` names the file and the entry."""
        source = Path(path)
        try:
            data = tomllib.loads(source.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ScenarioError(f"scenario file {source} does not exist") from None
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ScenarioError(f"scenario file {source}: {exc}") from exc
        head = data.get("scenario", {})
        device = head.get("device")
        if device not in (None, "scs", "pump", "scs-trial", "pump-trial"):
            raise ScenarioError(
                f"{source}: [scenario] device must be 'scs', 'pump', 'scs-trial' or 'pump-trial', not {device!r}"
            )
        actions = [_parse_action(entry, f"{source}: event {i + 1}") for i, entry in enumerate(data.get("event", []))]
        patient = dict(data.get("patient", {}))
        try:
            patient_config(patient)  # a wrong key or value is the file's error, whichever device reads it
        except (TypeError, ValueError) as exc:
            raise ScenarioError(f"{source}: {exc}") from exc
        actions.sort(key=lambda a: a.at_ms)
        return cls(
            name=str(head.get("name", source.stem)),
            device=device,
            actions=actions,
            speed=head.get("speed"),
            seed=head.get("seed"),
            config=dict(data.get("config", {})),
            fleet=dict(data.get("fleet", {})),
            patient=patient,
        )

    def check_faults(self, known: tuple[str, ...], kind: str) -> None:
        """Refuse a scenario whose fault actions name faults this device kind does not have."""
        for action in self.actions:
            if action.action == "fault" and action.params["name"] not in known:
                raise ScenarioError(
                    f"{action.where}: a {kind} has no fault {action.params['name']!r}; valid: {', '.join(known)}"
                )

    def position(self) -> int:
        """How many actions have run (persisted, so a restart does not repeat them)."""
        return self._next

    def resume(self, start_ms: int, position: int) -> None:
        """Anchor the timeline at ``start_ms`` and skip the actions already run."""
        self.start_ms = start_ms
        self._next = position

    def run_until(self, device: ScenarioTarget, t_ms: int) -> None:
        """Advance ``device``'s model to ``t_ms``, running every action due on the way."""
        model = device.model
        while self._next < len(self.actions):
            action = self.actions[self._next]
            due = self.start_ms + action.at_ms
            if due > t_ms:
                break
            model.advance_to(due)
            self._next += 1
            _run(action, device, due)
        model.advance_to(t_ms)


def _parse_action(entry: dict[str, Any], where: str) -> Action:
    params = dict(entry)
    name = params.pop("action", None)
    if "at" not in params:
        raise ScenarioError(f"{where}: missing 'at'")
    at_ms = parse_duration_ms(params.pop("at"), where)
    if name in COMMANDS:
        true_residual = name == "refill" and params.get("withdrawn_ul") == TRUE_RESIDUAL
        if true_residual:
            params["withdrawn_ul"] = 0  # filled in when the action runs, from the pump's true reservoir
        params = {"message": message_from_params(COMMANDS[name], params, where), "true_residual": true_residual}
    elif name in LINK_ACTIONS or name in OTHER_ACTIONS:
        for key in ("duration",):
            if key in params:
                params[key] = parse_duration_ms(params[key], where)
        if name == "fault" and "name" not in params:
            raise ScenarioError(f"{where}: a fault needs 'name'")
        if name == "speed" and "factor" not in params:
            raise ScenarioError(f"{where}: a speed change needs 'factor'")
    else:
        valid = ", ".join([*COMMANDS, *LINK_ACTIONS, *OTHER_ACTIONS])
        raise ScenarioError(f"{where}: unknown action {name!r}; valid: {valid}")
    return Action(at_ms, name, params, where)


def message_from_params(cls: type[Message], params: dict[str, Any], where: str) -> Message:
    """Build a command from scenario fields (enums by name); booleans and lists may be left out."""
    filled = dict(params)
    for info in layout_of(cls).fields:
        if info.name not in filled:
            if info.wire is BOOL:
                filled[info.name] = False
            elif isinstance(info.wire, ListOf):
                filled[info.name] = []
            else:
                raise ScenarioError(f"{where}: {cls.__name__} needs '{info.name}' ({info.doc})")
    unknown = set(filled) - {info.name for info in layout_of(cls).fields}
    if unknown:
        raise ScenarioError(f"{where}: {cls.__name__} has no field(s) {', '.join(sorted(unknown))}")
    try:
        return from_json(cls, filled)
    except (KeyError, TypeError, ValueError) as exc:
        raise ScenarioError(f"{where}: bad {cls.__name__} field value: {exc}") from exc


def _run(action: Action, device: ScenarioTarget, due_ms: int) -> None:
    params = action.params
    try:
        _dispatch(action, params, device, due_ms)
    except (DeviceRejected, ValueError) as exc:  # a scenario step the device refuses is reported, not fatal
        log.warning("%s: %s refused: %s", action.where, action.action, exc)


def _dispatch(action: Action, params: dict[str, Any], device: ScenarioTarget, due_ms: int) -> None:
    if action.action in COMMANDS:
        message = params["message"]
        if params["true_residual"]:
            true_ul = getattr(device.model, "true_reservoir_ul", None)
            if true_ul is None:
                raise ValueError('withdrawn_ul = "true" needs a pump')
            message = replace(message, withdrawn_ul=round(true_ul))
        device.model.apply(message)
    elif action.action == "fault":
        device.model.inject_fault(params["name"], {k: v for k, v in params.items() if k != "name"})
    elif action.action == "line_noise":
        until = due_ms + params["duration"] if "duration" in params else None
        rates = {k: v for k, v in params.items() if k != "duration"}
        device.link_faults.set_noise(until, **rates)
    elif action.action == "disconnect":
        device.link_faults.down_until_ms = due_ms + params.get("duration", 0)
    elif action.action == "speed":
        device.clock.set_speed(float(params["factor"]))
