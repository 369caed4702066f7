"""The soak run's gateway (docs/security.md R24): a thread per device that polls it and attacks it between requests.

``Gateway`` drives a ``DeviceClient`` through its ``Relay`` the way a monitoring gateway does
(status polls, event-log reads, therapy toggles, alarm acknowledges, back-off and reconnects,
lockout waits), compares every read-back with what it commanded, fires replay and forgery
bursts (built by ``soak_bursts``) between two read-backs, and at the end audits the event log.
"""

from __future__ import annotations

import argparse
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from soak_bursts import forged_frames, replay_frames
from soak_emulator import START_MS
from soak_relay import Relay

from protocols.auth import load_pairing_key
from protocols.client import DeviceClient
from protocols.errors import DeviceRejected, ErrorCode, LinkError, LinkTimeout, ProtocolError
from protocols.messages import (
    AlarmState,
    Area,
    DosingMode,
    EventCode,
    PumpStatus,
    ScsStatus,
    StimProgramSet,
    Waveform,
)
from protocols.transport import open_port

PORT_READ_TIMEOUT_S = 0.05  # open_port's default: each wait of the client's read loop

# The one program the gateway stores on the SCS (program 1): 3.5 mA tonic, as the demo scenario.
LEGIT_AREAS = (Area(0x1, 0x6, 3500, 300, 50, Waveform.TONIC, 0, 0, 0, 0),)
LEGIT_PROGRAM = StimProgramSet(1, True, LEGIT_AREAS, 6000, 2)
THERAPY_CODES = {
    "scs": (EventCode.THERAPY_ON, EventCode.THERAPY_OFF),
    "pump": (EventCode.PUMP_STARTED, EventCode.PUMP_STOPPED),
}
# Entries only programming makes; after the baseline the gateway sends none of these commands,
# so any of them in the log is a forged or replayed command that was applied.
FORBIDDEN_CODES = frozenset(
    {
        EventCode.PROGRAM_CHANGED,
        EventCode.CLOCK_SET,
        EventCode.DOSING_CHANGED,
        EventCode.BOLUS_STARTED,
        EventCode.REFILL,
        EventCode.REFILL_DISCREPANCY,
    }
)
# Refusals after which a mutating command certainly was not applied (SPEC 4: an ErrorReply means
# nothing changed, DEVICE_FAULT excepted). After any other failure the outcome is unknown.
NOT_APPLIED = frozenset(
    {ErrorCode.STATE_CONFLICT, ErrorCode.OUT_OF_RANGE, ErrorCode.UNSUPPORTED, ErrorCode.MALFORMED, ErrorCode.BUSY}
)
_T = TypeVar("_T")


# --- the gateway ---------------------------------------------------------------------------------
@dataclass
class Outcome:
    """A client call's result or the protocol error it raised."""

    value: Any = None
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        """True when the call returned."""
        return self.error is None


class Gateway(threading.Thread):
    """Drives one device through its relay like a telemetry gateway, and attacks it between requests."""

    def __init__(self, index: int, device: dict[str, str], relay: Relay, args: argparse.Namespace) -> None:
        super().__init__(name=f"gateway-{device['name']}", daemon=True)
        self.name_ = device["name"]
        self.kind = device["kind"].lower()
        self.relay = relay
        self.key = load_pairing_key(device["key"])
        self.args = args
        self.rng = random.Random(args.seed * 1000 + index)
        self.client: DeviceClient | None = None
        self.stop_event = threading.Event()
        self.ready = threading.Event()
        self.busy_since: float | None = None
        self.error: str | None = None
        # Counters: the client's (summed over reconnects) and the gateway's own.
        self.base: Counter[str] = Counter()
        self.count: Counter[str] = Counter()
        self._counters_lock = threading.Lock()  # a sample must not see a closed client's counters twice or never
        self.max_call_s = 0.0
        self.violations: list[str] = []
        self.unexpected: list[str] = []
        self.notes: list[str] = []
        self.refusals: Counter[str] = Counter()
        self.events: Counter[EventCode] = Counter()
        self.lockouts_logged = 0
        # What the gateway knows of the device.
        self.baseline_seq = 0
        self.cursor = 1
        self.known_last_seq = 0
        self.expected_on: bool | None = None
        self.unresolved_from: bool | None = None  # the therapy state before a toggle whose outcome is unknown
        self.verified = False
        self.baseline_pump: PumpStatus | None = None
        self.last_status: ScsStatus | PumpStatus | None = None
        self.last_status_at = 0.0
        self.fail_streak = 0
        self.answered_at_end = False
        self._burst_kind = 1  # forgery first: even a short run sees every forgery kind

    # --- counters --------------------------------------------------------------------------------
    def counters(self) -> Counter[str]:
        """The client's link and request counters over every connection so far, plus the gateway's."""
        with self._counters_lock:
            total = Counter(self.base)
            client = self.client
            if client is not None:
                total.update(client.counters())
        # dict() copies in one C call: the gateway thread may add a key meanwhile, which would break
        # a Python-level loop over the live counter ("dictionary changed size during iteration").
        total.update(dict(self.count))
        return total

    def call_bound_s(self) -> float:
        """The longest a single client call may take: every attempt of the request and of a session re-open."""
        attempt = self.args.timeout + PORT_READ_TIMEOUT_S
        # request + SessionOpen + SessionConfirm + the repeated request, each with its retries.
        return 4 * (self.args.retries + 1) * attempt + 1.0

    # --- one call, with the gateway's error policy -----------------------------------------------
    def _call(self, what: str, fn: Callable[[DeviceClient], _T]) -> Outcome:
        client = self.client
        if client is None:
            return Outcome(error=LinkError("not connected"))  # the caller connects first; no policy to apply
        start = time.monotonic()
        self.busy_since = start
        try:
            value = fn(client)
        except DeviceRejected as exc:
            self.refusals[exc.code.name] += 1
            outcome = Outcome(error=exc)
        except (LinkTimeout, LinkError) as exc:
            outcome = Outcome(error=exc)
        except ProtocolError as exc:  # e.g. a reply of the wrong type: legal to meet, worth seeing
            self.count["protocol_errors"] += 1
            if len(self.notes) < 5:
                self.notes.append(f"{what}: {type(exc).__name__}: {exc}")
            outcome = Outcome(error=exc)
        except (OSError, ValueError, AssertionError) as exc:  # outside the protocol's error tree: a client bug
            self.unexpected.append(f"{what}: {type(exc).__name__}: {exc}")
            outcome = Outcome(error=exc)
        else:
            outcome = Outcome(value=value)
        finally:
            elapsed = time.monotonic() - start
            self.busy_since = None
            self.max_call_s = max(self.max_call_s, elapsed)
        self._after(outcome)
        return outcome

    def _after(self, outcome: Outcome) -> None:
        exc = outcome.error
        if exc is None:
            self.fail_streak = 0
            return
        if isinstance(exc, DeviceRejected):
            if exc.code == ErrorCode.LOCKED_OUT:
                # Session opening is locked out after forged frames: wait as the device says (R10).
                self.count["lockout_waits"] += 1
                self._sleep(min(max(exc.retry_after_ms / 1000.0, 0.5), 65.0))
            return
        if isinstance(exc, LinkTimeout):
            self.fail_streak += 1
            if self.fail_streak >= self.args.reconnect_after:
                self._reconnect()
            else:
                self._sleep(min(0.25 * 2 ** (self.fail_streak - 1), 4.0))
            return
        self.fail_streak += 1
        self._reconnect()

    def _sleep(self, seconds: float) -> None:
        self.stop_event.wait(seconds)

    # --- connection ------------------------------------------------------------------------------
    def _connect(self) -> bool:
        """Open the port, identify, open a session; False (after a back-off) when it did not work."""
        try:
            port = open_port(self.relay.path, baudrate=115200, timeout=PORT_READ_TIMEOUT_S)
        except LinkError as exc:
            self.unexpected.append(f"open port: {exc}")
            self._sleep(1.0)
            return False
        self.client = DeviceClient(port, self.key, timeout=self.args.timeout, retries=self.args.retries, owns_port=True)
        self.count["connects"] += 1
        if self._call("identify", lambda c: c.identify()).ok and self._call("open", lambda c: c.open_session()).ok:
            return True
        return False

    def _reconnect(self) -> None:
        """Close the client and the relay's side of the emulator's pty; connect again after a back-off."""
        self._close_client()
        self.count["reconnects"] += 1
        if not self.relay.reconnect_upstream():
            self.unexpected.append("relay did not reopen the emulator's pty")
        self._sleep(min(0.5 * 2 ** max(0, self.fail_streak - self.args.reconnect_after), 8.0))

    def _close_client(self) -> None:
        client = self.client
        if client is None:
            return
        try:
            client.close()  # a best-effort SessionClose, then the port
        except (ProtocolError, OSError) as exc:
            self.unexpected.append(f"close: {type(exc).__name__}: {exc}")
        with self._counters_lock:
            self.base.update(client.counters())
            self.client = None

    # --- state checks ----------------------------------------------------------------------------
    def _violation(self, text: str) -> None:
        self.count["violations"] += 1
        if len(self.violations) < 50:
            self.violations.append(f"t={time.monotonic() - self.args.t0:.1f}s {text}")

    def _status(self, what: str = "status") -> ScsStatus | PumpStatus | None:
        outcome = self._call(what, lambda c: c.status())
        if not outcome.ok:
            self.count["polls_failed"] += 1
            return None
        status = outcome.value
        self.count["polls_ok"] += 1
        self.last_status, self.last_status_at = status, time.monotonic()
        self.known_last_seq = max(self.known_last_seq, status.last_event_seq)
        if self.client is not None:  # pushes are a fast path only; the event log is read by number
            self.count["pushes"] += len(self.client.pushes)
            self.client.pushes.clear()
        self._check(status)
        return status

    def _therapy_of(self, status: ScsStatus | PumpStatus) -> bool:
        # A pump with therapy off reports mode STOPPED (its programmed mode, continuous here, otherwise).
        return status.therapy_on if isinstance(status, ScsStatus) else status.mode is not DosingMode.STOPPED

    def _check(self, status: ScsStatus | PumpStatus) -> None:
        """Compare a status with what the gateway commanded; resolve a toggle whose outcome was unknown."""
        on = self._therapy_of(status)
        if self.expected_on is None:
            # The first read, or a toggle whose outcome was unknown: this read-back settles it.
            if self.unresolved_from is not None and on != self.unresolved_from:
                self.count["transitions"] += 1
            self.unresolved_from = None
            self.expected_on = on
        elif on != self.expected_on:
            self._violation(f"therapy {'on' if on else 'off'}, commanded {'on' if self.expected_on else 'off'}")
            self.expected_on = on
        elapsed_ms = (time.monotonic() - self.args.emulator_t0) * 1000.0
        if abs(status.time_ms - START_MS - elapsed_ms) > 30_000:
            self._violation(
                f"device clock at +{(status.time_ms - START_MS) / 1000:.0f} s, wall +{elapsed_ms / 1000:.0f} s"
            )
        if isinstance(status, ScsStatus) and self.baseline_seq:
            if (status.active_program, status.areas, status.patient_amp_max_ua) != (1, LEGIT_AREAS, 6000):
                self._violation(f"stimulation program changed: {status.active_program} {status.areas}")
        if isinstance(status, PumpStatus) and self.baseline_pump is not None:
            self._check_pump(status, self.baseline_pump)
        self.verified = True

    def _check_pump(self, status: PumpStatus, base: PumpStatus) -> None:
        """The pump's programming as set up; a stopped pump reports mode STOPPED, rate and doses 0."""
        drugs = [(d.drug, d.conc_ng_per_ml) for d in status.drugs]
        kept = (status.patient_bolus, status.alarm_volume_ul, drugs)
        if kept != (base.patient_bolus, base.alarm_volume_ul, [(d.drug, d.conc_ng_per_ml) for d in base.drugs]):
            self._violation(f"pump settings changed: {kept}")
        running = (status.mode, status.rate_ul_per_day, status.drugs)
        if status.mode is not DosingMode.STOPPED and running != (base.mode, base.rate_ul_per_day, base.drugs):
            self._violation(f"pump dosing changed: {running}")
        if status.mode is DosingMode.STOPPED and status.rate_ul_per_day != 0:
            self._violation(f"stopped pump reports {status.rate_ul_per_day} µL/day")
        if status.bolus_active or status.patient_boluses_today:
            self._violation(f"a bolus the gateway never gave: active {status.bolus_active}")

    # --- set-up ----------------------------------------------------------------------------------
    def _prepare(self) -> bool:
        """Connect, store the SCS program, and take the event-log baseline the audit starts after."""
        if self.client is None and not self._connect():
            return False
        status = self._status("setup status")
        if status is None:
            return False
        if isinstance(status, ScsStatus) and (status.active_program, status.areas) != (1, LEGIT_AREAS):
            self._call("setup program", lambda c: c.request(LEGIT_PROGRAM))
            return False  # read back on the next pass: the outcome may be unknown
        if isinstance(status, PumpStatus):
            self.baseline_pump = status
        self.baseline_seq = status.last_event_seq
        self.cursor = self.baseline_seq + 1
        self.expected_on = self._therapy_of(status)
        return True

    # --- the loop --------------------------------------------------------------------------------
    def run(self) -> None:
        try:
            while not self.stop_event.is_set() and not self._prepare():
                self.stop_event.wait(0.2)
            self.ready.set()
            start = time.monotonic()
            next_toggle = start + self.args.toggle_every * (0.5 + 0.5 * self.rng.random())
            next_ack = start + self.args.ack_every * self.rng.random()
            next_burst = start + self.args.burst_every * (0.5 + 0.5 * self.rng.random())
            while not self.stop_event.is_set():
                now = time.monotonic()
                if self.client is None:
                    if not self._connect():
                        continue
                session = self.client.session if self.client is not None else None
                if session is not None and now - session.opened_at > self.client.session_limits[1] - 30.0:
                    # Re-open before the absolute limit (SPEC 3.6) rather than meet NO_SESSION.
                    self.count["session_renewals"] += 1
                    self._call("renew session", lambda c: c.open_session())
                elif now >= next_burst and self._burst_possible(now):
                    # One that could not start (no first-try read-back) is tried again shortly.
                    next_burst = time.monotonic() + (self.args.burst_every if self._burst() else 0.2)
                elif now >= next_toggle and self.expected_on is not None and self.verified:
                    self._toggle()
                    next_toggle = time.monotonic() + self.args.toggle_every
                elif now >= next_ack:
                    self._ack()
                    next_ack = time.monotonic() + self.args.ack_every
                elif self.cursor <= self.known_last_seq:
                    self._read_page()
                else:
                    self._status()
                self.stop_event.wait(self.args.poll_gap)
        except Exception as exc:  # the gateway must report, not vanish
            self.error = f"{type(exc).__name__}: {exc}"
            self.ready.set()

    def _read_page(self) -> bool:
        outcome = self._call("events", lambda c: c.read_events(self.cursor, 8))
        if not outcome.ok:
            self.count["pages_failed"] += 1
            return False
        page = outcome.value
        self.count["pages_ok"] += 1
        self.known_last_seq = max(self.known_last_seq, page.last_seq)
        if page.last_seq < self.cursor - 1:
            self._violation(f"event log restarted: newest #{page.last_seq}, read up to #{self.cursor - 1}")
            self.cursor = page.last_seq + 1
            return True
        if not page.entries:
            if page.last_seq >= self.cursor:
                self._violation(f"event log lost #{self.cursor}..#{page.last_seq}")
                self.cursor = page.last_seq + 1
            return True
        for event in page.entries:
            if event.seq != self.cursor:
                self._violation(f"event log gap: #{self.cursor} expected, #{event.seq} read")
            self.cursor = event.seq + 1
            self.events[event.code] += 1
            if event.code in FORBIDDEN_CODES:
                self._violation(f"event #{event.seq} {event.code.name}: programming the gateway never sent")
            if event.code == EventCode.LOCKOUT and event.state in (AlarmState.NONE, AlarmState.ACTIVE):
                self.lockouts_logged += 1
        return True

    def _toggle(self) -> None:
        """Therapy on/off: a harmless mutating command whose effect the read-back and the log must show."""
        target = not self.expected_on
        outcome = self._call("therapy", lambda c: c.set_therapy(target))
        self.count["toggles"] += 1
        if outcome.ok:
            if outcome.value.event_seq == 0:
                self._violation(f"therapy {'on' if target else 'off'} was already in force: something else set it")
            self.count["transitions"] += 1
            self.expected_on = target
            return
        exc = outcome.error
        if isinstance(exc, DeviceRejected) and exc.code in NOT_APPLIED:
            self.count["toggles_refused"] += 1
            return
        # Unknown: the reply was lost or an error answered a repeat. The next read-back settles it.
        self.count["toggles_unknown"] += 1
        self.unresolved_from, self.expected_on = self.expected_on, None
        status = None
        while status is None and not self.stop_event.is_set() and self.client is not None:
            status = self._status("therapy read-back")

    def _ack(self) -> None:
        """Acknowledge a listed alarm; with none listed, an acknowledge the device must refuse (harmless)."""
        status = self.last_status
        active = [a.code for a in status.alarms if a.state == AlarmState.ACTIVE] if status else []
        code = active[0] if active else EventCode.OCCLUSION if self.kind == "pump" else EventCode.LEAD_SHORT
        outcome = self._call("ack", lambda c: c.ack_alarm(code))
        self.count["acks_ok" if outcome.ok else "acks_refused"] += 1

    # --- bursts ----------------------------------------------------------------------------------
    def _device_elapsed_s(self, now: float) -> float:
        assert self.last_status is not None
        return (self.last_status.time_ms - START_MS) / 1000.0 + (now - self.last_status_at)

    def _burst_possible(self, now: float) -> bool:
        """A burst needs a session, a known therapy state and no disconnect close by (``_burst`` reads back first)."""
        client = self.client
        if client is None or client.session is None or self.expected_on is None or self.last_status is None:
            return False
        if now - client.session.opened_at > client.session_limits[1] - 30.0:
            return False  # the session is about to reach its absolute limit: the gateway re-opens it first
        elapsed = self._device_elapsed_s(now)
        margin = 1.0  # the device clock is read from the last status: good to milliseconds
        for start in self.args.disconnects:
            if start - margin <= elapsed <= start + self.args.disconnect_for + margin:
                self.count["bursts_postponed_disconnect"] += 1
                return False
        return True

    def _burst(self) -> bool:
        """A replay or forgery burst between two read-backs; checks that nothing was accepted. False: not fired."""
        client = self.client
        assert client is not None
        requests, retries = client.stats.requests, client.stats.retries
        if self._status("pre-burst read-back") is None or self.client is not client or client.session is None:
            return False
        if (client.stats.requests, client.stats.retries) != (requests + 1, retries):
            # Only a read-back answered at its first try proves the device took the newest frame the
            # gateway sent; otherwise a lost later try, replayed, would be new to it and rightly taken.
            self.count["bursts_postponed_retry"] += 1
            return False
        before_at = time.monotonic()
        kind = ("replay", "forgery")[self._burst_kind]
        self._burst_kind ^= 1
        self.relay.begin_burst()
        # Late replies of the gateway's own last request (the device's delay noise) must land first.
        self._sleep(0.1 + self.args.device_noise.delay_ms / 1000.0)
        frames = self._replays() if kind == "replay" else self._forgeries()
        if not frames:
            self.relay.end_burst()
            return True  # nothing captured to replay yet: the next burst forges
        ids = {cid for _, cid, _ in frames}
        written = self.relay.inject([data for data, _, _ in frames], ids)
        self._sleep(0.3)  # the device answers in milliseconds; then the window closes
        watch = self.relay.end_burst()
        if not written:
            self.unexpected.append(f"{kind} burst not written by the relay")
            return True
        categories = Counter(cat for _, _, cat in frames)
        self.count[f"{kind}_bursts"] += 1
        self.count.update({f"sent_{cat}": n for cat, n in categories.items()})
        self.count["accepted_injected"] += len(watch.accepted)
        for text in watch.accepted:
            self._violation(f"{kind} burst: {text}")
        self.refusals.update({f"burst_{code}": n for code, n in watch.refusals.items()})
        # A read-back soon after: the link was up during the burst unless a whole disconnect fits in between.
        self.verified = False
        after = None
        while after is None and not self.stop_event.is_set() and self.client is not None:
            after = self._status("post-burst read-back")
        confirmed = after is not None and time.monotonic() - before_at < self.args.disconnect_for
        if confirmed:
            self.count["mac_forged_confirmed"] += categories.get("mac", 0)
        return True

    def _replays(self) -> list[tuple[bytes, int, str]]:
        """Captured frames sent again as they were (``replay_frames``)."""
        client = self.client
        assert client is not None and client.session is not None
        session_id = client.session.session_id
        return replay_frames(session_id, self.relay.captured(), self.expected_on, self.rng, self.args.burst_frames)

    def _forgeries(self) -> list[tuple[bytes, int, str]]:
        """Frames the key never signed (``forged_frames``)."""
        client = self.client
        assert client is not None and client.session is not None and self.last_status is not None
        return forged_frames(
            client.session,
            self.relay.captured,
            expected_on=self.expected_on,
            device_time_ms=self.last_status.time_ms,
            kind=self.kind,
            legit_area=LEGIT_AREAS[0],
            baseline_pump=self.baseline_pump,
            rng=self.rng,
            max_frames=self.args.burst_frames,
        )

    # --- the end ---------------------------------------------------------------------------------
    def finish(self, deadline: float) -> None:
        """After the run (noise over): read the state back, read the log through, identify. Call after ``join``."""
        while time.monotonic() < deadline:
            if self.client is None and not self._connect():
                continue
            if self._status("final read-back") is None:
                continue
            while self.cursor <= self.known_last_seq and time.monotonic() < deadline:
                self._read_page()
            if self.cursor > self.known_last_seq:
                break
        if self.client is not None and self._call("final identify", lambda c: c.identify()).ok:
            self.answered_at_end = self.cursor > self.known_last_seq and self.verified

    def close(self) -> None:
        """Close the client (and its port)."""
        self._close_client()

    def audit(self) -> dict[str, Any]:
        """The event-log audit: therapy entries against the gateway's changes, AUTH_FAILURE against forgeries."""
        on, off = THERAPY_CODES[self.kind]
        return {
            "therapy_logged": self.events[on] + self.events[off],
            "transitions": self.count["transitions"],
            "auth_failures": self.events[EventCode.AUTH_FAILURE],
            "mac_sent": self.count["sent_mac"],
            "mac_confirmed": self.count["mac_forged_confirmed"],
            "lockouts": self.lockouts_logged,
            "entries": (self.baseline_seq, self.cursor - 1),
            "forbidden": sum(self.events[c] for c in FORBIDDEN_CODES),
        }
