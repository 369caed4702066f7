"""``implant-ctl``: talk to a device from a shell or a script.

Every command identifies the device, opens a session with the pairing key (except ``identify``),
does its one thing and closes the session. Text output is in the units a person reads
(``ctl_text``); ``--json``, before or after the command, prints one JSON document per reply with
the wire names and units (enumerations by name; SPEC.md section 11). The exit code tells the kind
of failure, so scripts can branch without parsing text.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from . import ctl_text
from .client import DeviceClient
from .codec import to_json
from .errors import (
    AUTH_REFUSALS,
    AuthError,
    CommandNotHandled,
    CommandUnresolved,
    DeviceRejected,
    ErrorCode,
    LinkError,
    LinkTimeout,
    PairingKeyError,
    ProtocolError,
    SchemaMismatch,
)
from .messages import (
    Actor,
    AlarmAck,
    AlarmTest,
    AmplitudeSet,
    Area,
    Bolus,
    BolusKind,
    ChargingSet,
    ClockSet,
    DiaryAdd,
    DiaryKind,
    DosingMode,
    DosingSet,
    Drug,
    DrugConcentration,
    EventCode,
    FlexStep,
    ImpedanceCheck,
    Lifecycle,
    LifecycleSet,
    Message,
    MriCheckDone,
    MriModeSet,
    PatientBolusSettings,
    PeriodicBolus,
    ProgramSelect,
    Refill,
    StimProgramSet,
    TherapySet,
    Waveform,
)

EXIT_OK = 0
EXIT_PROTOCOL = 1
EXIT_USAGE = 2
EXIT_LINK = 3
EXIT_TIMEOUT = 4
EXIT_AUTH = 5
EXIT_REFUSED = 6
EXIT_SCHEMA = 7
EXIT_KEY = 8
EXIT_UNKNOWN = 9

JSON_HELP = "print JSON with the wire field names and units instead of text (before or after the command)"

EPILOG = """exit codes: 0 ok, 1 protocol error, 2 usage, 3 port cannot be opened or failed,
4 no reply (timeout), 5 authentication or session refused (bad key, locked out, another --role),
6 the device refused the command (out of range, state conflict, unsupported), 7 schema mismatch,
8 pairing key file missing or invalid, 9 no reply to a command that changes the device and its
fate could not be learnt: it MAY HAVE BEEN APPLIED (run it again with --resolve ID to ask).
A command whose reply was lost is resolved before exiting: 0 and the reply if it was applied,
4 if the device confirmed it was not."""

log = logging.getLogger("implant-ctl")


def _contacts(text: str) -> int:
    """'0,2-4' -> bit mask of contacts 0, 2, 3, 4."""
    mask = 0
    for part in filter(None, text.split("+")):
        low, _, high = part.partition("-")
        for contact in range(int(low), int(high or low) + 1):
            if not 0 <= contact < 32:
                raise argparse.ArgumentTypeError(f"contact {contact} outside 0-31")
            mask |= 1 << contact
    return mask


def parse_area(text: str) -> Area:
    """Parse ``anodes=0,cathodes=1+2,amp=3500,pw=300,rate=50[,wave=tonic,burst=5@500,cycle=30/90]``."""
    try:
        fields = dict(item.split("=", 1) for item in text.split(","))
        burst_pulses, _, burst_rate = fields.get("burst", "0@0").partition("@")
        cycle_on, _, cycle_off = fields.get("cycle", "0/0").partition("/")
        return Area(
            anode_mask=_contacts(fields["anodes"]),
            cathode_mask=_contacts(fields["cathodes"]),
            amplitude_ua=int(fields["amp"]),
            pulse_width_us=int(fields["pw"]),
            rate_hz=int(fields["rate"]),
            waveform=Waveform[fields.get("wave", "tonic").upper()],
            burst_pulses=int(burst_pulses),
            burst_rate_hz=int(burst_rate or 0),
            cycle_on_s=int(cycle_on),
            cycle_off_s=int(cycle_off or 0),
        )
    except (KeyError, ValueError) as exc:
        raise argparse.ArgumentTypeError(
            f"bad area {text!r} ({exc}); expected anodes=0,cathodes=1+2,amp=µA,pw=µs,rate=Hz"
            "[,wave=tonic|burst|high_frequency,burst=PULSES@HZ,cycle=ON_S/OFF_S]"
        ) from None


def parse_drug(text: str) -> DrugConcentration:
    """Parse ``morphine:10000000`` (drug name, ng/mL)."""
    name, _, conc = text.partition(":")
    try:
        return DrugConcentration(Drug[name.upper()], int(conc))
    except (KeyError, ValueError):
        names = ", ".join(d.name.lower() for d in Drug)
        raise argparse.ArgumentTypeError(
            f"bad drug {text!r}; expected NAME:NG_PER_ML with NAME one of {names}"
        ) from None


def _minute(text: str) -> int:
    """``HH:MM`` as the minute of the day."""
    hours, sep, minutes = text.partition(":")
    if not sep or not hours.isdigit() or not minutes.isdigit() or int(hours) > 23 or int(minutes) > 59:
        raise ValueError(text)
    return int(hours) * 60 + int(minutes)


def parse_step(text: str) -> FlexStep:
    """Parse ``08:00=600`` (local time, µL/day)."""
    when, _, rate = text.partition("=")
    try:
        return FlexStep(_minute(when), int(rate))
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad flex step {text!r}; expected HH:MM=UL_PER_DAY, e.g. 08:00=600") from None


def parse_periodic(text: str) -> PeriodicBolus:
    """Parse ``12:00=100/60`` (local time, µL over minutes)."""
    when, _, size = text.partition("=")
    volume, _, minutes = size.partition("/")
    try:
        return PeriodicBolus(_minute(when), int(volume), int(minutes))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"bad periodic bolus {text!r}; expected HH:MM=UL/MIN, e.g. 12:00=100/60"
        ) from None


def _event_code(text: str) -> EventCode:
    try:
        return EventCode[text.upper()] if not text.isdigit() else EventCode(int(text))
    except (KeyError, ValueError):
        raise argparse.ArgumentTypeError(f"unknown alarm code {text!r}") from None


def _command_id(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad command id {text!r}; expected a number such as 0x00001234") from None
    if not 1 <= value <= 0xFFFF_FFFF:
        raise argparse.ArgumentTypeError(f"command id {text} outside 1..0xffffffff")
    return value


class _Usage(Exception):
    """A combination of options the parser cannot refuse by itself."""


class _RoleMismatch(Exception):
    """The key opened a session of another role than ``--role`` asked for."""


def build_parser() -> argparse.ArgumentParser:
    """The command-line grammar."""
    parser = argparse.ArgumentParser(
        prog="implant-ctl",
        description=__doc__.splitlines()[0],
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--port",
        required=True,
        help="pyserial URL or pty path of the device (e.g. /dev/pts/5, socket://127.0.0.1:7000)",
    )
    parser.add_argument("--key", help="pairing key file of the device (needed for everything but identify)")
    parser.add_argument(
        "--role",
        choices=["clinician", "patient"],
        default="clinician",
        help="whose controller this is: the session must open in this role, or nothing is sent "
        "(patient: the device's patient.key; SPEC 3.8; default clinician)",
    )
    parser.add_argument("--baud", type=int, default=115200, help="baud rate (default 115200)")
    parser.add_argument("--timeout", type=float, default=1.0, help="reply timeout per try, s (default 1.0)")
    parser.add_argument("--retries", type=int, default=3, help="re-sends after a timeout (default 3)")
    parser.add_argument(
        "--resolve-s",
        type=float,
        default=10.0,
        help="how long to keep asking what became of a command whose reply was lost, s (default 10)",
    )
    parser.add_argument(
        "--resolve",
        type=_command_id,
        metavar="ID",
        help="do not send the command: ask what became of it when it was sent as command ID (exit code 9 "
        "names it); give the same command and arguments",
    )
    parser.add_argument("--json", action="store_true", help=JSON_HELP)
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log every frame sent and received")
    # People type the option after the command too; SUPPRESS keeps a subcommand without it from
    # resetting the value given before the command.
    after = argparse.ArgumentParser(add_help=False)
    after.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help=JSON_HELP)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("identify", help="who the device is (no key needed)", parents=[after])
    sub.add_parser("status", help="one telemetry snapshot", parents=[after])
    events = sub.add_parser("events", help="event log entries", parents=[after])
    events.add_argument("--from", dest="from_seq", type=int, default=1, help="first sequence number (default 1)")
    ack = sub.add_parser("ack", help="acknowledge an alarm", parents=[after])
    ack.add_argument("code", type=_event_code, help="alarm code name (e.g. LOW_RESERVOIR) or number")
    therapy = sub.add_parser("therapy", help="turn therapy on or off", parents=[after])
    therapy.add_argument("state", choices=["on", "off"])
    sub.add_parser("impedance", help="measure every contact's impedance", parents=[after])
    select = sub.add_parser("select", help="make a stored stimulation program the active one", parents=[after])
    select.add_argument("program", type=int, help="stored program number")
    amplitude = sub.add_parser("amplitude", help="change an area's amplitude in the active program", parents=[after])
    amplitude.add_argument("--area", type=int, default=0, help="area index, from 0 (default 0)")
    amplitude.add_argument("--ua", type=int, required=True, help="new amplitude, µA")
    charge = sub.add_parser("charge", help="start or stop charging a rechargeable stimulator", parents=[after])
    charge.add_argument("state", choices=["on", "off"])
    sub.add_parser("programs", help="every stored stimulation program", parents=[after])
    diary = sub.add_parser(
        "diary", help="the patient's diary (SPEC 4.7), or add a score with --add KIND=VALUE", parents=[after]
    )
    diary.add_argument("--from", dest="from_seq", type=int, default=1, help="first sequence number (default 1)")
    diary.add_argument(
        "--add", metavar="KIND=VALUE", type=_diary_score, help="add a score: nrs=4, medication=30, pgic=6, odi=40, ..."
    )
    diary.add_argument("--at", type=_iso_ms, default=0, help="the time the added score is for (ISO; default now)")
    stage = sub.add_parser("lifecycle", help="move the system on: implanted, trial-ended, explanted", parents=[after])
    stage.add_argument("stage", type=_lifecycle, help="implanted | trial-ended | explanted")
    mri = sub.add_parser(
        "mri", help="put a stimulator into MRI mode or take it out (SPEC 4.5; the clinician's)", parents=[after]
    )
    mri.add_argument("state", choices=["on", "off"])
    sub.add_parser(
        "mri-check",
        help="confirm a pump was checked after an MRI scan: clears the check, restarts or resets delivery (SPEC 4.5)",
        parents=[after],
    )
    sub.add_parser("alarm-test", help="sound every alarm tone once (a pump's sounder)", parents=[after])
    program = sub.add_parser("program", help="store and activate a stimulation program", parents=[after])
    program.add_argument("--program", type=int, default=1, help="program number (default 1)")
    program.add_argument(
        "--area",
        type=parse_area,
        action="append",
        required=True,
        help="an area (repeat up to 4): " + parse_area.__doc__.split("``")[1],
    )
    program.add_argument(
        "--patient-max-ua", type=int, required=True, help="highest amplitude the patient may select, µA"
    )
    program.add_argument("--ramp-s", type=int, default=2, help="ramp-up time, s (default 2)")
    program.add_argument("--no-activate", action="store_true", help="store without activating")
    program.add_argument(
        "--density-override",
        action="store_true",
        help="accept areas above the charge-density warning (refused OVERRIDE_REQUIRED without it; SPEC 4.4)",
    )
    dose = sub.add_parser("dose", help="program pump dosing", parents=[after])
    dose.add_argument("--mode", choices=[m.name.lower() for m in DosingMode], default="continuous")
    dose.add_argument("--rate-ul-per-day", type=int, default=0, help="continuous rate, µL/day (--mode continuous)")
    dose.add_argument("--alarm-ul", type=int, default=2000, help="low-reservoir alarm volume, µL (default 2000)")
    dose.add_argument("--ptm", metavar="DOSE_UL/DURATION_MIN/LOCKOUT_MIN/MAX_PER_DAY", help="enable patient bolus")
    dose.add_argument(
        "--step",
        type=parse_step,
        action="append",
        default=[],
        metavar="HH:MM=UL_PER_DAY",
        help="a flex step from that local time on (repeat, in order; --mode flex)",
    )
    dose.add_argument(
        "--periodic",
        type=parse_periodic,
        action="append",
        default=[],
        metavar="HH:MM=UL/MIN",
        help="a periodic bolus every day at that local time: volume µL over minutes (repeat; --mode flex)",
    )
    dose.add_argument(
        "--utc-offset-min", type=int, default=0, help="local time of the flex day, minutes east of UTC (default 0)"
    )
    sub.add_parser("schedule", help="read back the pump's dosing program", parents=[after])
    bolus = sub.add_parser("bolus", help="deliver a bolus", parents=[after])
    bolus.add_argument("--kind", choices=[k.name.lower() for k in BolusKind], default="clinician")
    bolus.add_argument("--volume-ul", type=int, required=True, help="volume, µL")
    bolus.add_argument("--duration-min", type=int, default=1, help="delivery time, min (default 1)")
    refill = sub.add_parser("refill", help="record a refill", parents=[after])
    refill.add_argument("--withdrawn-ul", type=int, required=True, help="residual withdrawn, µL")
    refill.add_argument("--added-ul", type=int, required=True, help="volume added, µL")
    refill.add_argument(
        "--drug", type=parse_drug, action="append", required=True, help="NAME:NG_PER_ML (repeat per drug)"
    )
    refill.add_argument("--confirm-concentration", action="store_true", help="confirm the new concentrations")
    refill.add_argument("--accept-discrepancy", action="store_true", help="accept a residual discrepancy")
    refill.add_argument("--bridge-bolus", action="store_true", help="deliver a bridge bolus")
    clock = sub.add_parser("clock", help="read (or set) the device clock", parents=[after])
    clock.add_argument("--set-ms", type=int, help="set the device time, ms since epoch")
    watch = sub.add_parser("watch", help="poll status and print events until interrupted", parents=[after])
    watch.add_argument("--interval", type=float, default=1.0, help="poll interval, s (default 1.0)")
    watch.add_argument("--count", type=int, default=0, help="stop after this many polls (default: never)")
    return parser


def _diary_score(text: str) -> tuple[DiaryKind, int]:
    """``nrs=4`` -> (DiaryKind.NRS, 4); argparse reports the ValueError's message."""
    kind, sep, value = text.partition("=")
    names = ", ".join(k.name.lower() for k in DiaryKind)
    if not sep or kind.strip().upper() not in DiaryKind.__members__:
        raise argparse.ArgumentTypeError(f"{text!r}: give KIND=VALUE with KIND one of {names}")
    try:
        return DiaryKind[kind.strip().upper()], int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: the value is a whole number") from None


def _lifecycle(text: str) -> Lifecycle:
    """``trial-ended`` -> Lifecycle.TRIAL_ENDED."""
    key = text.strip().upper().replace("-", "_")
    if key not in Lifecycle.__members__ or key == "TRIAL":
        raise argparse.ArgumentTypeError(f"{text!r}: one of implanted, trial-ended, explanted")
    return Lifecycle[key]


def _iso_ms(text: str) -> int:
    """An ISO time (UTC unless it says otherwise) as ms since 1970."""
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO time such as 2026-01-08T08:00") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return round(when.timestamp() * 1000)


def _command_message(args: argparse.Namespace) -> Message | None:
    """The request a command that changes the device sends (None for the read-only commands)."""
    command = args.command
    if command == "ack":
        return AlarmAck(args.code)
    if command == "therapy":
        return TherapySet(args.state == "on")
    if command == "impedance":
        return ImpedanceCheck()
    if command == "select":
        return ProgramSelect(args.program)
    if command == "amplitude":
        return AmplitudeSet(args.area, args.ua)
    if command == "charge":
        return ChargingSet(args.state == "on")
    if command == "mri":
        return MriModeSet(args.state == "on")
    if command == "mri-check":
        return MriCheckDone()
    if command == "alarm-test":
        return AlarmTest()
    if command == "lifecycle":
        return LifecycleSet(args.stage)
    if command == "diary" and args.add is not None:
        kind, value = args.add
        return DiaryAdd(kind, value, args.at)
    if command == "program":
        areas, override = tuple(args.area), args.density_override
        return StimProgramSet(args.program, not args.no_activate, areas, args.patient_max_ua, args.ramp_s, override)
    if command == "dose":
        ptm = PatientBolusSettings(False, 0, 0, 0, 0)
        if args.ptm:
            dose_ul, duration, lockout, most = (int(x) for x in args.ptm.split("/"))
            ptm = PatientBolusSettings(True, dose_ul, duration, lockout, most)
        mode, steps, periodic = DosingMode[args.mode.upper()], tuple(args.step), tuple(args.periodic)
        return DosingSet(mode, args.rate_ul_per_day, steps, ptm, args.alarm_ul, periodic, args.utc_offset_min)
    if command == "bolus":
        return Bolus(BolusKind[args.kind.upper()], args.volume_ul, args.duration_min)
    if command == "refill":
        confirmed, accepted = args.confirm_concentration, args.accept_discrepancy
        return Refill(args.withdrawn_ul, args.added_ul, tuple(args.drug), confirmed, accepted, args.bridge_bolus)
    if command == "clock" and args.set_ms is not None:
        return ClockSet(args.set_ms)
    return None


def _run(args: argparse.Namespace, client: DeviceClient, emit: Callable[[Any], None]) -> None:
    command = args.command
    identity = client.identify()
    if command == "identify":
        emit(identity)
        return
    client.open_session()
    if client.role is not Actor[args.role.upper()]:
        granted = client.role.name.lower() if client.role is not None else "no"
        raise _RoleMismatch(f"--role {args.role}, but this key opened a {granted} session: check --key")
    message = _command_message(args)
    if args.resolve is not None:
        if message is None:
            raise _Usage(f"--resolve asks about a command that changes the device; {command} does not")
        emit(client.resolve(args.resolve, message))
    elif message is not None:
        emit(client.request(message))
    elif command == "status":
        emit(client.status())
    elif command == "events":
        emit(client.events_since(args.from_seq))
    elif command == "diary":
        entries = client.diary_since(args.from_seq)
        emit(entries if entries or args.json else "No diary entries.")
    elif command == "programs":
        stored = client.programs()
        emit(stored if stored or args.json else "No stored programs.")
    elif command == "schedule":
        emit(client.read_schedule())
    elif command == "clock":
        emit(client.read_clock())
    elif command == "watch":
        _watch(args, client, emit)
    client.close_session()


Emit = Callable[[Any], None]


def _settle(args: argparse.Namespace, client: DeviceClient, lost: CommandUnresolved, emit: Emit) -> int:
    """A command went out and its reply never came: ask the device what became of it (SPEC 4.2).

    Keeps asking for ``--resolve-s`` seconds. The reply it learns is printed as if it had arrived;
    a refusal is reported like any refusal; if the device cannot be reached the command's fate
    stays unknown, and the exit code says so (never "failed": it may have been applied).
    """
    name = type(lost.request).__name__
    deadline = time.monotonic() + args.resolve_s
    while True:
        try:
            reply = client.resolve(lost.command_id, lost.request)
        except CommandNotHandled:
            return _fail(
                EXIT_TIMEOUT,
                f"no reply; the device confirmed that {name} (command 0x{lost.command_id:08x}) was not applied",
                args.json,
                command_id=lost.command_id,
                applied=False,
            )
        except (LinkError, LinkTimeout, AuthError, DeviceRejected) as exc:
            if isinstance(exc, DeviceRejected) and exc.code not in AUTH_REFUSALS:
                raise  # the device's refusal of the command itself
            if time.monotonic() >= deadline:
                return _fail(
                    EXIT_UNKNOWN,
                    f"no reply: {name} (command 0x{lost.command_id:08x}) may have been applied, and the device "
                    f"could not be asked ({exc}); run the same command with --resolve 0x{lost.command_id:08x} "
                    "to learn its fate",
                    args.json,
                    command_id=lost.command_id,
                    applied=None,
                )
            time.sleep(min(args.timeout, max(0.0, deadline - time.monotonic())))
            continue
        print(
            f"implant-ctl: the reply was lost; the device confirmed {name} (command 0x{lost.command_id:08x})",
            file=sys.stderr,
        )
        emit(reply)
        return EXIT_OK


def _watch(args: argparse.Namespace, client: DeviceClient, emit: Callable[[Any], None]) -> None:
    next_seq = client.status().last_event_seq + 1
    polls = 0
    while not args.count or polls < args.count:
        status = client.status()
        emit(status)
        if status.last_event_seq >= next_seq:
            for event in client.events_since(next_seq):
                emit(event)
                next_seq = event.seq + 1
        polls += 1
        time.sleep(args.interval)


def _printer(as_json: bool) -> Callable[[Any], None]:
    def emit(value: Any) -> None:
        if as_json:
            data = to_json(tuple(value) if isinstance(value, list) else value)
            print(json.dumps(data, ensure_ascii=False), flush=True)
        else:
            print(ctl_text.render(value), flush=True)

    return emit


def _fail(exit_code: int, message: str, as_json: bool, **extra: Any) -> int:
    if as_json:
        print(json.dumps({"error": message, "exit_code": exit_code, **extra}, ensure_ascii=False))
    else:
        print(f"implant-ctl: {message}", file=sys.stderr)
    return exit_code


def main(argv: Sequence[str] | None = None, connect: Callable[..., DeviceClient] = DeviceClient.connect) -> int:
    """Entry point of ``implant-ctl``; returns the exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING - 10 * min(args.verbose, 1), format="%(name)s: %(message)s")
    if args.command != "identify" and not args.key:
        return _fail(EXIT_USAGE, f"{args.command} needs --key FILE (the device's pairing key)", args.json)

    def trace(direction: str, item: object) -> None:
        log.info("%s %s", direction, item)

    try:
        client = connect(
            args.port,
            args.key,
            args.baud,
            timeout=args.timeout,
            retries=args.retries,
            trace=trace if args.verbose else None,
        )
        with client:
            emit = _printer(args.json)
            try:
                _run(args, client, emit)
            except CommandUnresolved as lost:
                return _settle(args, client, lost, emit)
    except _Usage as exc:
        return _fail(EXIT_USAGE, str(exc), args.json)
    except _RoleMismatch as exc:
        return _fail(EXIT_AUTH, str(exc), args.json)
    except CommandNotHandled as exc:
        return _fail(EXIT_TIMEOUT, f"the device confirmed it was not applied: {exc}", args.json, applied=False)
    except KeyboardInterrupt:
        return EXIT_OK
    except DeviceRejected as exc:
        detail = dict(code=exc.code.name, field=exc.field, value=exc.value, limit=exc.limit)
        where = f" ({exc.field}={exc.value}, limit {exc.limit})" if exc.field else ""
        if exc.code in (ErrorCode.NO_SESSION, ErrorCode.BAD_MAC, ErrorCode.LOCKED_OUT, ErrorCode.REPLAY):
            return _fail(EXIT_AUTH, f"authentication failed: device refused: {exc}", args.json, **detail)
        return _fail(EXIT_REFUSED, f"device refused: {exc}{where}", args.json, **detail)
    except PairingKeyError as exc:
        return _fail(EXIT_KEY, str(exc), args.json)
    except LinkTimeout as exc:
        return _fail(EXIT_TIMEOUT, str(exc), args.json)
    except LinkError as exc:
        return _fail(EXIT_LINK, str(exc), args.json)
    except SchemaMismatch as exc:
        return _fail(EXIT_SCHEMA, str(exc), args.json)
    except AuthError as exc:
        return _fail(EXIT_AUTH, f"authentication failed: {exc}", args.json)
    except ProtocolError as exc:
        return _fail(EXIT_PROTOCOL, str(exc), args.json)
    return EXIT_OK


if __name__ == "__main__":
    raise SystemExit(main())
