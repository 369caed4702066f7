"""``implant-mock``: serve emulated stimulators and pumps on ptys, serial ports or TCP.

Prints, per device, its port (and stable symlink) and its pairing-key file, then serves until
Ctrl-C or SIGTERM, saving every device's state on the way out. A restart with the same
``--state`` resumes battery, reservoir, programs, event-log numbering and keys.

One process per state directory: ``--state`` is locked (``state_lock``) before anything in it is
read or written, and a second emulator on it exits with status 2 naming the holder's pid. The
stop handlers are installed first thing, so a Ctrl-C or SIGTERM at any moment, even while the
devices are being built, ends with the devices built so far saved, every transport closed, the
stop line and status 0.

Owns the command line and the process's life cycle; must not import ``dashboard``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import logging
import random
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from protocols.manifest import MANIFEST_NAME, ManifestDevice, write_manifest
from protocols.replies import ReplyMemory
from protocols.transport import raise_fd_limit

from .clock import MAX_SPEED, MIN_SPEED, SimClock
from .device import Device
from .faults import Action, LinkFaults, Scenario, ScenarioError, parse_duration_ms
from .fleet import FleetConfig, build_member, draw_member, fleet_config
from .model import DeviceModel
from .pump import Pump, PumpConfig
from .server import DEFAULT_SPIN_S, PtyTransport, SerialTransport, Served, Server, TcpTransport, Transport
from .state import StateError, StateStore
from .state_lock import StateLock
from .stim_families import SCS_FAMILIES, family_overrides
from .stimulator import ScsConfig, Stimulator
from .trial_devices import SERIAL_PREFIX, base_kind, config_overrides, treat

log = logging.getLogger("implant-mock")
DEFAULT_START = "2026-01-01T00:00:00Z"
KINDS: dict[str, tuple[type, type]] = {
    "scs": (Stimulator, ScsConfig),
    "pump": (Pump, PumpConfig),
    "scs-trial": (Stimulator, ScsConfig),  # trial_devices: external stimulator, temporary leads
    "pump-trial": (Pump, PumpConfig),  # trial_devices: intrathecal test doses
}
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
MAX_FLEET = 2_000  # a pty pair each; Linux's default pty limit is 4096 (/proc/sys/kernel/pty/max)
# Unchanged state is saved again this often; every change is saved at once anyway, and a restart
# replays device time from the saved state in closed form, so only a big fleet's disk load grows.
SAVE_EVERY_S = 1.0
SAVE_EVERY_S_PER_DEVICE = 0.1  # 1,000 devices: each every 100 s, 10 saves a second in all [E]
FDS_PER_DEVICE = 3  # a pty pair and the state heartbeat file
FDS_SPARE = 64  # the selector, stdio, state files being written, the lock


def _speed(text: str) -> float:
    value = float(text)
    if not MIN_SPEED <= value <= MAX_SPEED:
        raise argparse.ArgumentTypeError(f"speed {value:g} outside {MIN_SPEED:g}..{MAX_SPEED:g}")
    return value


def _start_ms(text: str) -> int:
    if text == "now":
        return int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--start {text!r} is not an ISO 8601 time or 'now'") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1000)


def _spin_us(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of µs: {text!r}") from None
    if not 0 <= value <= 100_000:
        raise argparse.ArgumentTypeError(f"spin {value} µs outside 0..100000")
    return value


def _fleet_size(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--fleet {text!r} is not a whole number of devices") from None
    if not 1 <= value <= MAX_FLEET:
        raise argparse.ArgumentTypeError(f"--fleet {value} outside 1..{MAX_FLEET}")
    return value


def _tcp(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"--tcp {text!r}: expected HOST:PORT (PORT 0 picks a free one)")
    return host, int(port)


def build_parser() -> argparse.ArgumentParser:
    """The command-line grammar."""
    p = argparse.ArgumentParser(prog="implant-mock", description=__doc__.splitlines()[0])
    p.add_argument(
        "--device",
        action="append",
        choices=sorted(KINDS),
        help="a device to serve (repeatable); default: one scs and one pump",
    )
    p.add_argument(
        "--fleet",
        type=_fleet_size,
        metavar="N",
        help="serve N devices, alternating scs and pump, each with seeded variety (implant age, programs, drugs, "
        "reservoir fill; a few with a fault): a clinic's worth for the dashboard's overview",
    )
    p.add_argument(
        "--link",
        action="append",
        default=[],
        metavar="PATH",
        help="stable symlink to a device's pty, in device order (repeatable)",
    )
    p.add_argument(
        "--port",
        action="append",
        default=[],
        metavar="DEV",
        help="serve on a real serial port instead of a pty, in device order (repeatable)",
    )
    p.add_argument(
        "--tcp",
        action="append",
        type=_tcp,
        default=[],
        metavar="HOST:PORT",
        help="serve on TCP for pyserial socket:// instead of a pty, in device order (repeatable)",
    )
    p.add_argument(
        "--patient",
        action="store_true",
        help="each implant treats a virtual patient who keeps a diary (trial devices always do; docs/patients.md)",
    )
    p.add_argument(
        "--family",
        choices=sorted(SCS_FAMILIES),
        help="stimulator family: the maker's ranges, steps and charge-density rule (default generic)",
    )
    p.add_argument("--baud", type=int, help="pace bytes at this baud rate's wire time (default: no pacing)")
    p.add_argument(
        "--speed", type=_speed, help="device seconds per wall second, 1 to 10,000,000 (default 1, or the scenario's)"
    )
    p.add_argument("--seed", type=int, help="seed of every random draw (default 1, or the scenario's)")
    p.add_argument(
        "--start", type=_start_ms, help=f"device time at first start, ISO 8601 or 'now' (default {DEFAULT_START})"
    )
    p.add_argument(
        "--state",
        default=".implant-mock",
        help="state directory: keys and device state, locked while in use: one emulator each (default .implant-mock)",
    )
    p.add_argument("--scenario", help="scenario file (TOML): config overrides and a timeline of actions")
    p.add_argument("--noise", help="line noise from the start: flip=RATE,drop=RATE,dup=RATE,delay=RATE,delay_ms=MS")
    p.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="NAME[:k=v,...][@TIME]",
        help="device fault, now or at a device-time offset (repeatable)",
    )
    p.add_argument(
        "--spin-us",
        type=_spin_us,
        default=round(DEFAULT_SPIN_S * 1e6),
        metavar="US",
        help="while a host polls back to back (next request within this time), poll the links for this long "
        f"instead of sleeping, µs; 0 always sleeps (default {round(DEFAULT_SPIN_S * 1e6)})",
    )
    p.add_argument("-v", "--verbose", action="count", default=0, help="log events and trace frames")
    return p


def _kinds(args: argparse.Namespace, scenario: Scenario) -> list[str]:
    if args.fleet:
        return ["scs" if i % 2 == 0 else "pump" for i in range(args.fleet)]
    if args.device:
        return list(args.device)
    if scenario.device:
        return [scenario.device]
    return ["scs", "pump"]


def _make_model(
    kind: str,
    state: dict[str, Any] | None,
    index: int,
    seed: int,
    start_ms: int,
    overrides: dict[str, Any],
    fleet: FleetConfig | None = None,
    patient_table: dict[str, Any] | None = None,
    patient: bool = False,
) -> DeviceModel:
    """Resume ``state``, or build afresh: with ``fleet``, a seeded fleet member lived up to ``start_ms``.

    A scenario's ``[config]`` ``overrides`` win over what the fleet drew. A trial kind, or any kind
    with ``patient``, treats a virtual patient built from the scenario's ``[patient]`` ``patient_table``.
    """
    patient_table = patient_table or {}
    model_cls, config_cls = KINDS[kind]
    if state is not None:
        if state.get("kind") not in (kind, base_kind(kind)):
            raise StateError(f"saved state is a {state.get('kind')}, not a {kind}: use another --state directory")
        return model_cls.from_state(state["model"])
    if base_kind(kind) == "scs":
        try:
            overrides = family_overrides(overrides)
        except ValueError as exc:
            raise ScenarioError(f"[config] {exc}") from exc
    prefix = SERIAL_PREFIX.get(kind, kind.upper())
    serial_no = f"{prefix}-{random.Random(f'{seed}:{kind}:{index}').randrange(16**6):06X}"
    fields = {f.name for f in dataclasses.fields(config_cls)}
    unknown = set(overrides) - fields
    if unknown:
        raise ScenarioError(
            f"[config] has no {kind} setting(s) {', '.join(sorted(unknown))}; valid: {', '.join(sorted(fields))}"
        )
    try:
        overrides = {**config_overrides(kind, seed, index, patient_table), **overrides}
    except (TypeError, ValueError) as exc:
        raise ScenarioError(f"[patient] {exc}") from exc
    if fleet is None:
        config = dataclasses.replace(config_cls(), serial=serial_no, **overrides)
        model = model_cls(config, start_ms, seed + index)
    else:
        member = draw_member(index, base_kind(kind), seed, fleet)
        config = dataclasses.replace(config_cls(), serial=serial_no, **{**member.overrides, **overrides})
        model = build_member(member, config, start_ms, seed + index, fleet)
    try:
        treat(model, kind, seed, index, start_ms, patient_table, patient)
    except (TypeError, ValueError) as exc:
        raise ScenarioError(f"[patient] {exc}") from exc
    return model


def _parse_kv(text: str, where: str) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for item in filter(None, text.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise ScenarioError(f"{where}: {item!r} is not KEY=VALUE")
        try:
            params[key] = int(value)
        except ValueError:
            try:
                params[key] = float(value)
            except ValueError:
                params[key] = value
    return params


NOISE_NAMES = {"flip": "flip_rate", "drop": "drop_rate", "dup": "duplicate_rate", "delay": "delay_rate"}


def _noise_rates(args: argparse.Namespace) -> dict[str, float]:
    """The --noise rates by ``LinkFaults`` name (empty without --noise)."""
    if not args.noise:
        return {}
    rates = {NOISE_NAMES.get(k, k): float(v) for k, v in _parse_kv(args.noise, "--noise").items()}
    unknown = set(rates) - {*NOISE_NAMES.values(), "delay_ms"}
    if unknown:
        raise ScenarioError(f"--noise has no {', '.join(sorted(unknown))}; valid: flip, drop, dup, delay, delay_ms")
    return rates


def _cli_faults(args: argparse.Namespace, scenario: Scenario, kind: str) -> None:
    """Turn the --fault options this kind knows into scenario actions at the start (or @TIME)."""
    for spec in args.fault:
        body, _, at = spec.partition("@")
        name, _, params = body.partition(":")
        if name not in KINDS[kind][0].FAULTS:
            continue
        at_ms = parse_duration_ms(at, f"--fault {spec}") if at else 0
        scenario.actions.append(
            Action(at_ms, "fault", {"name": name, **_parse_kv(params, f"--fault {spec}")}, f"--fault {spec}")
        )
    scenario.actions.sort(key=lambda a: a.at_ms)


def _transport(index: int, args: argparse.Namespace, baud: int) -> Transport:
    if index < len(args.port):
        return SerialTransport(args.port[index], baud)
    if index < len(args.port) + len(args.tcp):
        host, port = args.tcp[index - len(args.port)]
        return TcpTransport(host, port)
    pty_index = index - len(args.port) - len(args.tcp)
    return PtyTransport(args.link[pty_index] if pty_index < len(args.link) else None)


def _check_faults(args: argparse.Namespace, kinds: list[str]) -> None:
    for spec in args.fault:
        name = spec.partition("@")[0].partition(":")[0]
        if not any(name in KINDS[kind][0].FAULTS for kind in kinds):
            valid = sorted({f for kind in kinds for f in KINDS[kind][0].FAULTS})
            raise ScenarioError(f"--fault {spec}: no served device has fault {name!r}; valid: {', '.join(valid)}")


def build(args: argparse.Namespace, stop: threading.Event | None = None) -> list[Served]:
    """Create (or resume) every device with its transport; only those built before ``stop`` is set.

    A stop is looked at between devices, so the device being built when it comes is finished
    whole (its key written) and none is left half-made. On an error the transports opened so far
    are closed before it is raised.
    """
    base_scenario = Scenario.load(args.scenario) if args.scenario else Scenario.empty()
    kinds = _kinds(args, base_scenario)
    _check_faults(args, kinds)
    for kind in {k for k in kinds if base_scenario.device in (None, k)}:
        base_scenario.check_faults(KINDS[kind][0].FAULTS, kind)
    seed = args.seed if args.seed is not None else (base_scenario.seed or 1)
    speed = args.speed or base_scenario.speed or 1.0
    start_ms = args.start if args.start is not None else _start_ms(DEFAULT_START)
    served: list[Served] = []
    counters: dict[str, int] = {}
    noise = _noise_rates(args)
    fleet = None
    if args.fleet:
        try:
            fleet = fleet_config(base_scenario.fleet)
        except (TypeError, ValueError) as exc:
            raise ScenarioError(f"{args.scenario}: {exc}") from exc
    raise_fd_limit(len(kinds) * FDS_PER_DEVICE + FDS_SPARE)
    try:
        for index, kind in enumerate(kinds):
            if stop is not None and stop.is_set():
                break
            counters[kind] = counters.get(kind, 0) + 1
            name = f"{kind}-{counters[kind]}"
            store = StateStore(Path(args.state) / name)
            saved = store.load()
            scenario = (
                Scenario.load(args.scenario)
                if args.scenario and base_scenario.device in (None, kind)
                else Scenario.empty()
            )
            _cli_faults(args, scenario, kind)
            overrides = scenario.config if saved is None else {}
            if args.family and base_kind(kind) == "scs" and saved is None:
                overrides = {**overrides, "family": args.family}
            model = _make_model(kind, saved, index, seed, start_ms, overrides, fleet, scenario.patient, args.patient)
            key, new_key = store.pairing_key(f"{name} {model.serial}")
            patient_key, new_patient_key = store.patient_key(f"{name} {model.serial}")
            now_ms = store.resume_time_ms(saved) if saved else start_ms
            scenario.resume(
                saved["scenario_start_ms"] if saved else start_ms, saved["scenario_position"] if saved else 0
            )
            save_every = max(SAVE_EVERY_S, len(kinds) * SAVE_EVERY_S_PER_DEVICE)
            device = Device(
                model,
                SimClock(now_ms, speed),
                key,
                store=store,
                scenario=scenario,
                link_faults=LinkFaults(random.Random(seed * 7919 + index)),
                replies=_saved_replies(store, saved),
                patient_key=patient_key,
                save_interval_s=save_every,
                first_save_in_s=save_every * (index + 1) / len(kinds),
            )
            if noise:  # a property of this process's line, not a scenario step: a restart has it too
                device.link_faults.set_noise(None, **noise)
            transport = _transport(index, args, args.baud or 115200)
            item = Served(name, device, transport, args.baud, trace=args.verbose >= 1)
            served.append(item)
            _announce(item, store, (new_key, new_patient_key), saved is not None)
    except BaseException:
        for item in served:  # a --link symlink must not outlive a failed start
            item.transport.close()
        raise
    if len(served) < len(kinds):
        built = f"{len(served)} of {len(kinds)} device(s) built"
        print(f"implant-mock: stop requested during start-up, {built}", flush=True)
        return served
    manifest = write_manifest(Path(args.state) / MANIFEST_NAME, [_manifest_entry(item) for item in served])
    print(
        f"implant-mock: {len(served)} device(s), speed {speed:g}x, seed {seed}, state {args.state}, "
        f"manifest {manifest}. Ctrl-C or SIGTERM stops.",
        flush=True,
    )
    return served


def _manifest_entry(item: Served) -> ManifestDevice:
    """The manifest line of a served device: its stable --link symlink when it has one."""
    transport = item.transport
    if isinstance(transport, PtyTransport):
        port = str(transport.link.absolute()) if transport.link else transport.path
    else:
        port = transport.description  # the serial port's path, or socket://HOST:PORT
    model = item.device.model
    store = item.device.store
    assert store is not None
    return ManifestDevice(item.name, model.kind.name.lower(), port, Path(store.key_path), model.serial)


def _saved_replies(store: StateStore, saved: dict[str, Any] | None) -> ReplyMemory | None:
    """The exactly-once memory a saved state holds (None on first start)."""
    if saved is None:
        return None
    try:
        return ReplyMemory.from_state(saved.get("replies", []))
    except ValueError as exc:
        raise StateError(f"{store.state_path}: {exc}; move it away to start afresh") from exc


def _announce(item: Served, store: StateStore, new: tuple[bool, bool], resumed: bool) -> None:
    model = item.device.model
    marks = [" (new)" if made else "" for made in new]
    print(
        f"{item.name}: {model.kind.name} serial={model.serial} port={item.transport.description} "
        f"key={store.key_path}{marks[0]} patient-key={store.patient_key_path}{marks[1]} "
        f"state={'resumed' if resumed else 'new'}",
        flush=True,
    )


def _on_stop_signals(stop: threading.Event) -> Callable[[], None]:
    """Make SIGTERM and SIGINT set ``stop``; return what puts the previous handlers back."""
    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    for signum in STOP_SIGNALS:
        signal.signal(signum, lambda *_: stop.set())

    def restore() -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    return restore


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``implant-mock``."""
    stop = threading.Event()
    restore_signals = _on_stop_signals(stop)  # first: a stop during start-up must end cleanly too
    try:
        return _serve(build_parser().parse_args(argv), stop)
    finally:
        restore_signals()


def _serve(args: argparse.Namespace, stop: threading.Event) -> int:
    level = logging.WARNING if not args.verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(name)s: %(message)s")
    lock = StateLock(args.state)
    try:
        lock.acquire()  # before anything in the state directory is read or written
    except (StateError, OSError) as exc:
        print(f"implant-mock: {exc}", file=sys.stderr)
        return 2
    try:
        try:
            served = build(args, stop)
        except (ScenarioError, StateError, OSError, ValueError) as exc:
            print(f"implant-mock: {exc}", file=sys.stderr)
            return 2
        Server(served, spin_s=args.spin_us / 1e6, stop=stop).run()  # returns at once if already stopped
        print("implant-mock: stopped, state saved", flush=True)
        return 0
    finally:
        lock.release()


if __name__ == "__main__":
    raise SystemExit(main())
