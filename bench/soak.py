"""Soak and fault injection (docs/security.md R24): a gateway polls through a noisy, dropping link for hours.

``implant-mock`` runs as a subprocess serving an SCS and a pump, each on its own pty, with a
scenario this script writes: line noise on what the device sends (bit flips, dropped and
duplicated bytes, delays that reorder) for the whole run and a disconnect every
``--disconnect-every`` seconds (600 by default, the first at half that). Between each device's
pty and the gateway sits a relay thread with a pty pair of its own; it is the manipulator of the
host-to-device direction (pymodbus NullModem style): bit flips at a bit error rate, dropped and
inserted bytes, duplicated chunks and, periodically, a chunk held back and sent after the next
one. The relay also keeps the clean frames the host sent, for replay bursts, and decodes what
the device answers, so it can tell whether an injected frame was ever accepted.

A gateway thread per device drives a ``DeviceClient`` through the relay the way a monitoring
gateway does: status polls, event-log reads by sequence number, now and then therapy on/off and
an alarm acknowledge, a back-off after a timeout and a reconnect (port and session) after several,
waiting out a session-opening lockout. Between its own requests it fires, straight at the
emulator's port (behind the manipulator), replay bursts (captured authenticated frames sent again
verbatim) and forgery bursts (valid CRC with a wrong tag, captured frames with a tampered payload
or counter and a recomputed CRC, untagged and wrong-session commands), all built with the
project's own framing. It then reads the state back and compares it with what it commanded, and
at the end reads the device's event log through: the therapy changes must be exactly its own,
no other programming event may appear, and AUTH_FAILURE entries must account for every frame
forged under the session.

Every ``--sample-every`` seconds the emulator's RSS, open descriptors and threads (``/proc``) and
the clients' counters are sampled. At the end the script prints the samples, the figures and a
verdict per R24 criterion, and exits 0 only when all pass. Run: ``python bench/soak.py --minutes
60`` (nightly; releases run ``--minutes 480``).

The run is split by job: ``soak.py`` (this file: the options, the run, the sampling loop),
``soak_emulator.py`` (the ``implant-mock`` subprocess, ``/proc`` samples, the scenario file),
``soak_relay.py`` (the host-side manipulator relay), ``soak_gateway.py`` (the gateway thread per
device), ``soak_bursts.py`` (the replayed and forged frames) and ``soak_report.py`` (the table,
the figures and the verdicts).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from children import read_proc
from soak_emulator import START_ISO, DeviceNoise, Emulator, disconnect_starts, write_scenario
from soak_gateway import Gateway
from soak_relay import HostNoise, Relay
from soak_report import Sample, report, write_csv


# --- main ----------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """The command-line options, each with its unit and default."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--minutes",
        type=float,
        default=60.0,
        help="length of the run, min (default 60; R24: nightly >= 60, release >= 480)",
    )
    p.add_argument(
        "--warmup", type=float, help="warm-up before the RSS baseline, s (default: 10 %% of the run, at least 30)"
    )
    p.add_argument("--sample-every", type=float, help="sampling interval, s (default: run / 60, 1 to 30)")
    p.add_argument(
        "--disconnect-every",
        type=float,
        default=600.0,
        help="a disconnect every this many s, the first at half (default 600)",
    )
    p.add_argument(
        "--disconnect-for",
        type=float,
        help="length of each disconnect, s (default: a quarter of the interval, at most 20)",
    )
    p.add_argument(
        "--burst-every",
        type=float,
        default=60.0,
        help="a replay or forgery burst per device every this many s, alternating (default 60)",
    )
    p.add_argument("--burst-frames", type=int, default=10, help="frames per burst, at most, count (default 10)")
    p.add_argument(
        "--toggle-every", type=float, default=30.0, help="therapy on/off per device every this many s (default 30)"
    )
    p.add_argument(
        "--ack-every", type=float, default=60.0, help="an alarm acknowledge per device every this many s (default 60)"
    )
    p.add_argument("--poll-gap", type=float, default=0.02, help="pause between a gateway's requests, s (default 0.02)")
    p.add_argument("--timeout", type=float, default=0.3, help="client reply timeout, s (default 0.3)")
    p.add_argument("--retries", type=int, default=3, help="client re-sends after a timeout, count (default 3)")
    p.add_argument(
        "--reconnect-after",
        type=int,
        default=3,
        help="consecutive timeouts before a gateway reconnects, count (default 3)",
    )
    p.add_argument("--ber", type=float, default=1e-4, help="host->device bit error rate, per bit (default 1e-4)")
    p.add_argument("--drop", type=float, default=0.005, help="host->device byte drop rate, per byte (default 0.005)")
    p.add_argument(
        "--insert", type=float, default=0.005, help="host->device byte insert rate, per byte (default 0.005)"
    )
    p.add_argument(
        "--dup", type=float, default=0.005, help="host->device chunk duplicate rate, per chunk (default 0.005)"
    )
    p.add_argument(
        "--reorder-every", type=float, default=5.0, help="hold a host->device chunk back every this many s (default 5)"
    )
    p.add_argument(
        "--device-noise",
        type=DeviceNoise.parse,
        default=DeviceNoise.parse("flip=0.0008,drop=0.001,dup=0.001,delay=0.01,delay_ms=50"),
        help="device->host noise of implant-mock, rates per byte "
        "(default flip=0.0008,drop=0.001,dup=0.001,delay=0.01,delay_ms=50)",
    )
    p.add_argument("--seed", type=int, default=1, help="seed of the emulator and of every random draw here (default 1)")
    p.add_argument("--csv", type=Path, help="write every sample to this CSV file (default: none)")
    p.add_argument("--max-rows", type=int, default=40, help="rows of the printed sample table, at most (default 40)")
    return p


def _fix_defaults(args: argparse.Namespace) -> None:
    args.run_s = args.minutes * 60.0
    if args.warmup is None:
        args.warmup = max(0.1 * args.run_s, 30.0)
    if args.sample_every is None:
        args.sample_every = min(max(args.run_s / 60.0, 1.0), 30.0)
    if args.disconnect_for is None:
        args.disconnect_for = min(args.disconnect_every / 4.0, 20.0)
    if args.run_s <= 0 or args.warmup >= args.run_s or args.sample_every <= 0 or args.disconnect_for <= 0:
        raise SystemExit("soak: --minutes > 0, --warmup shorter than the run, positive intervals")
    args.disconnects = disconnect_starts(args.run_s, args.disconnect_every, args.disconnect_for)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _fix_defaults(args)
    print(
        f"soak: {args.run_s:g} s, warm-up {args.warmup:g} s, a sample every {args.sample_every:g} s; "
        f"implant-mock (scs + pump) at speed 1, seed {args.seed}; {os.cpu_count()} CPUs"
    )
    print(f"  device->host noise (implant-mock): {args.device_noise.describe()}")
    rng = random.Random(args.seed)
    host_noise = HostNoise(args.ber, args.drop, args.insert, args.dup, args.reorder_every, rng)
    print(f"  host->device manipulator (relay): {host_noise.describe()}")
    print(
        f"  disconnects: {len(args.disconnects)} of {args.disconnect_for:g} s every {args.disconnect_every:g} s; "
        f"bursts every {args.burst_every:g} s per device (replay and forgery alternating, "
        f"<= {args.burst_frames} frames); "
        f"client timeout {args.timeout:g} s x {args.retries + 1} tries"
    )
    try:
        with tempfile.TemporaryDirectory(prefix="soak-") as tmp, contextlib.ExitStack() as stack:
            return run(args, Path(tmp), stack, rng)
    except KeyboardInterrupt:  # everything was stopped on the way out of the with-block
        print("soak: interrupted", file=sys.stderr)
        return 130


def run(args: argparse.Namespace, tmp: Path, stack: contextlib.ExitStack, rng: random.Random) -> int:
    """Start everything, sample, finish, judge. Every process and thread is stopped on the way out."""
    scenario = tmp / "soak.toml"
    write_scenario(scenario, args.run_s, args.device_noise, args.disconnects, args.disconnect_for)
    command = [sys.executable, "-m", "device_mock.cli", "--state", str(tmp / "state"), "--speed", "1"]
    command += ["--device", "scs", "--device", "pump", "--seed", str(args.seed), "--start", START_ISO]
    command += ["--scenario", str(scenario)]
    emulator = Emulator(command)
    args.emulator_t0 = time.monotonic()  # the device clock started a moment before: within the 30 s check
    args.t0 = args.emulator_t0
    stopped: dict[str, int] = {}

    def stop_emulator() -> None:
        if "code" not in stopped:
            stopped["code"] = emulator.stop()

    stack.callback(stop_emulator)
    relays: list[Relay] = []
    gateways: list[Gateway] = []

    def stop_threads() -> None:
        for gateway in gateways:
            gateway.stop_event.set()
        for gateway in gateways:
            gateway.join(timeout=30)
            gateway.close()
        for relay in relays:
            relay.stop()
        for relay in relays:
            relay.join(timeout=5)
            relay.close()

    stack.callback(stop_threads)
    for index, device in enumerate(emulator.devices):
        noise = HostNoise(args.ber, args.drop, args.insert, args.dup, args.reorder_every, random.Random(rng.random()))
        relay = Relay(device["name"], device["port"], noise, hold_max_s=1.5 * args.timeout)
        relays.append(relay)
        relay.start()
        gateways.append(Gateway(index, device, relay, args))
    for gateway in gateways:
        gateway.start()
    for gateway in gateways:
        gateway.ready.wait(60)
    names = ", ".join(f"{d['name']} ({d['kind']})" for d in emulator.devices)
    print(f"  devices: {names}; set up in {time.monotonic() - args.t0:.1f} s")

    samples: list[Sample] = []
    hang: list[str] = []
    died_at: float | None = None
    bound = max(g.call_bound_s() for g in gateways)
    own_start = read_proc(os.getpid())

    def take_sample() -> None:
        proc = read_proc(emulator.pid)
        if proc is None:
            return
        counters: Counter[str] = Counter()
        for gateway in gateways:
            counters.update(gateway.counters())
        counters["injected"] = sum(r.stats["injected_frames"] for r in relays)
        samples.append(Sample(time.monotonic() - args.t0, proc, counters))

    end = args.t0 + args.run_s
    next_sample = time.monotonic()
    next_progress = time.monotonic() + 60.0
    while (now := time.monotonic()) < end:
        if now >= next_sample:
            take_sample()
            next_sample += args.sample_every
        if not emulator.alive():
            died_at = now - args.t0
            break
        for gateway in gateways:
            busy = gateway.busy_since
            if busy is not None and now - busy > 3 * bound:
                hang.append(f"{gateway.name_}: a client call busy for {now - busy:.1f} s (bound {bound:.1f} s)")
        if hang or any(g.error for g in gateways) or any(r.error for r in relays):
            break
        if now >= next_progress:
            last = samples[-1] if samples else None
            if last is not None:
                print(
                    f"soak: {now - args.t0:.0f}/{args.run_s:.0f} s, RSS {last.proc.rss_kib:,} KiB, polls "
                    f"{last.counters['polls_ok']:,}, violations {last.counters['violations']}",
                    file=sys.stderr,
                    flush=True,
                )
            next_progress = now + 60.0
        time.sleep(min(0.2, max(0.0, min(next_sample, end) - time.monotonic())))
    run_s = time.monotonic() - args.t0

    # The end: the device's noise ended with the run; switch the manipulator off too and check it answers.
    for gateway in gateways:
        gateway.stop_event.set()
    for gateway in gateways:
        gateway.join(timeout=3 * bound + 10)
        if gateway.is_alive():
            hang.append(f"{gateway.name_}: gateway thread did not stop")
    for relay in relays:
        relay.noise.enabled = False
    finish_deadline = time.monotonic() + 90.0
    for gateway in gateways:
        if not gateway.is_alive() and emulator.alive():
            gateway.stop_event.clear()
            gateway.finish(finish_deadline)
            gateway.stop_event.set()
    take_sample()
    alive_at_end = emulator.alive()
    stop_threads()
    gateways_done = list(gateways)
    gateways.clear()  # stopped: the exit stack must not stop them twice
    relays_done = list(relays)
    relays.clear()
    stop_emulator()
    own_end = read_proc(os.getpid())
    if args.csv:
        write_csv(args.csv, samples)

    return report(
        args,
        run_s,
        samples,
        gateways_done,
        relays_done,
        emulator,
        stopped["code"],
        alive_at_end,
        died_at,
        hang,
        bound,
        own_start,
        own_end,
    )


if __name__ == "__main__":
    raise SystemExit(main())
