"""Boluses through a noisy line with kill -9 restarts between replies and their retries (issue 8).

``implant-mock`` serves one pump on TCP with line noise on what it sends; a relay between it and
the client can lose the device's bytes. Each bolus has a volume of its own (``BASE_UL + i`` µL), so
the event log tells which request every delivery belongs to. For some boluses (``--kill-every``)
the relay loses the reply, the pump is killed with SIGKILL and restarted on the same state, and
the client's retry (same command id, a new session) reaches the restarted pump. The others go
through the noise with no retry at all, and a lost reply is resolved (SPEC 4.2).

Two reporting policies are measured on the same calls: ours (a lost reply is resolved before
anything is reported) and the peer, a client that takes "no reply" for "failed", as every client
did before the device could be asked. At the end the pump is stopped and its saved event log is
read: every BOLUS_STARTED is matched to its request. Printed: requested, applied, applied twice
(must be 0), reported failed but applied, for each policy; exit 1 if ours is not 0 / 0.

Run: ``python bench/bolus_restarts.py`` (50 boluses, part of ``make soak``).
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, for the test relay

from protocols.client import DeviceClient
from protocols.errors import CommandNotHandled, CommandUnresolved, DeviceRejected, ProtocolError
from protocols.messages import BolusKind, EventCode
from tests.integration.relay import Relay

BASE_UL = 60
DURATION_MIN = 10  # the shortest the pump allows for ~110 µL at its maximum bolus rate, rounded up
NOISE = "flip=0.003,drop=0.003,dup=0.003"
SPEED = 1000  # a 10-minute bolus lasts 0.6 s
DUE_S = 60.0
_PORT = re.compile(r"^pump-1: .* port=socket://127\.0\.0\.1:(\d+).* key=(\S+)")
AUTH_CODES = ("NO_SESSION", "BAD_MAC", "REPLAY", "LOCKED_OUT")


class Pump:
    """``implant-mock`` serving one pump on TCP, on a state directory that outlives each process."""

    def __init__(self, state: Path, seed: int) -> None:
        self.state, self.seed = state, seed
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0
        self.key = Path()
        self.start()

    def start(self) -> None:
        command = [sys.executable, "-m", "device_mock.cli", "--state", str(self.state), "--device", "pump"]
        command += ["--tcp", "127.0.0.1:0", "--speed", str(SPEED), "--noise", NOISE, "--seed", str(self.seed)]
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            match = _PORT.match(line)
            if match:
                self.port, self.key = int(match.group(1)), Path(match.group(2))
            if line.startswith("implant-mock:") and "device(s)" in line:
                threading.Thread(target=self.proc.stdout.read, daemon=True).start()  # keep the pipe drained
                return
        raise RuntimeError("implant-mock did not start")

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)

    def delivered(self) -> list[int]:
        """The volume of every bolus the saved event log says was started."""
        data = json.loads((self.state / "pump-1" / "state.json").read_text())
        entries = data["model"]["events"]["entries"]
        return [arg0 for _, _, code, _, _, arg0, *_ in entries if code == EventCode.BOLUS_STARTED]


@dataclass
class Call:
    """One bolus request and what each policy reported for it."""

    volume_ul: int
    killed: bool
    ours: str = ""  # applied | refused | not applied | unknown
    peer: str = ""  # applied | failed
    delivered: int = 0  # BOLUS_STARTED entries of this volume in the pump's log


def _patiently(action, tries: int = 200):
    for _ in range(tries):
        try:
            return action()
        except DeviceRejected as exc:
            if exc.code.name not in AUTH_CODES:
                raise
        except ProtocolError:
            pass
    raise RuntimeError("the pump stopped answering")


def _resolve(client: DeviceClient, lost: CommandUnresolved) -> str:
    for _ in range(200):
        try:
            client.resolve(lost.command_id, lost.request)
            return "applied"
        except CommandNotHandled:
            return "not applied"
        except DeviceRejected as exc:
            if exc.code.name not in AUTH_CODES:
                return "refused"
        except ProtocolError:
            pass
    return "unknown"


def _send(client: DeviceClient, call: Call) -> None:
    try:
        client.bolus(BolusKind.CLINICIAN, call.volume_ul, DURATION_MIN)
        call.ours = call.peer = "applied"
    except CommandUnresolved as lost:
        call.peer = "failed"
        call.ours = _resolve(client, lost)
    except DeviceRejected as exc:
        call.peer, call.ours = "failed", ("refused" if exc.code.name not in AUTH_CODES else "not applied")
    except ProtocolError:
        call.peer, call.ours = "failed", "not applied"  # never sent: the session could not be opened


def _killed_send(client: DeviceClient, pump: Pump, relay: Relay, call: Call) -> None:
    """Lose the reply, kill -9 the pump, restart it; the client's retry meets the restarted pump."""
    client.retries, client.timeout = int(DUE_S / 0.5), 0.5
    relay.drop_replies = True
    sender = threading.Thread(target=_send, args=(client, call))
    sender.start()
    with relay.device_bytes:
        relay.device_bytes.wait_for(lambda: relay.dropped > 0, timeout=DUE_S)
    pump.kill9()
    pump.start()
    relay.retarget(pump.port)
    relay.drop_replies = False
    sender.join()
    relay.dropped = 0


def run(boluses: int, kill_every: int, seed: int) -> list[Call]:
    with tempfile.TemporaryDirectory(prefix="bolus-restarts-") as tmp:
        pump = Pump(Path(tmp), seed)
        relay = Relay(pump.port)
        client = DeviceClient.connect(relay.url, pump.key, timeout=0.3, retries=8)
        calls = []
        try:
            _patiently(client.identify)
            _patiently(client.open_session)
            for i in range(boluses):
                client.retries, client.timeout = 8, 0.3
                while _patiently(client.status).bolus_active:
                    time.sleep(0.05)
                call = Call(BASE_UL + i, killed=kill_every > 0 and i % kill_every == kill_every - 1)
                if call.killed:
                    _killed_send(client, pump, relay, call)
                else:
                    client.retries = 0  # a lost reply is not retried away: it must be resolved
                    _send(client, call)
                calls.append(call)
        finally:
            client.close()
            relay.close()
            pump.stop()
        delivered = Counter(pump.delivered())
    for call in calls:
        call.delivered = delivered[call.volume_ul]
    return calls


def report(calls: list[Call]) -> bool:
    applied = sum(1 for c in calls if c.delivered)
    twice = sum(1 for c in calls if c.delivered > 1)
    kills = sum(1 for c in calls if c.killed)
    print(f"boluses requested: {len(calls)} ({kills} with the reply lost and a kill -9 before the retry)")
    print(f"applied: {applied}, applied twice: {twice}")
    ok = twice == 0
    for policy in ("ours", "peer"):
        said = Counter(getattr(c, policy) for c in calls)
        wrong = sum(1 for c in calls if c.delivered and getattr(c, policy) != "applied")
        false_applied = sum(1 for c in calls if not c.delivered and getattr(c, policy) == "applied")
        name = "ours (resolve a lost reply)" if policy == "ours" else "peer (no reply = failed)"
        print(f"{name}: reported {dict(said)}")
        print(f"  reported failed but applied: {wrong}; reported applied but not applied: {false_applied}")
        if policy == "ours":
            ok = ok and wrong == 0 and false_applied == 0 and said["unknown"] == 0
    print("verdict:", "PASS" if ok else "FAIL")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--boluses", type=int, default=50, help="bolus requests (default 50)")
    parser.add_argument(
        "--kill-every", type=int, default=4, help="every Nth bolus loses its reply to a kill -9 (default 4)"
    )
    parser.add_argument("--seed", type=int, default=7, help="the emulator's noise seed (default 7)")
    args = parser.parse_args()
    return 0 if report(run(args.boluses, args.kill_every, args.seed)) else 1


if __name__ == "__main__":
    sys.exit(main())
