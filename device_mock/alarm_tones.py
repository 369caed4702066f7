"""What a patient hears: the tone pattern of each sounding alarm, its repeats, and the alarm test.

An implanted pump tells its patient about an alarm with a piezo sounder, not a screen. Each alarm
priority that sounds has a pattern (which tone, how long) and a repeat interval, counted from the
moment the alarm was raised; an acknowledged alarm is silent (the clinician has attended to it)
and a cleared one is gone. When several alarms are due at once the patient hears the one of
highest priority. The clinician's alarm test plays every pattern once, highest priority first.

Pure functions of device time and the alarm list: nothing here is stored apart from the test's
start, which ``AlarmManager`` keeps with its state. Must not import ``alarms`` (which imports it),
``device``, ``server`` or ``dashboard``.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocols.messages import EventCode, Priority, ToneKind


@dataclass(frozen=True)
class TonePattern:
    """One alarm sound: which tone, how long it lasts, how often it repeats while the alarm stands."""

    tone: ToneKind
    duration_ms: int
    repeat_ms: int

    def __post_init__(self) -> None:
        if not 0 < self.duration_ms < self.repeat_ms:
            raise ValueError(
                f"a {self.tone.name.lower()} tone of {self.duration_ms} ms must be shorter than its "
                f"repeat interval of {self.repeat_ms} ms and longer than 0"
            )


@dataclass(frozen=True)
class Sounding:
    """A tone that started at ``start_ms`` for alarm ``code`` (ALARM_TEST for the test)."""

    code: EventCode
    priority: Priority
    pattern: TonePattern
    start_ms: int

    @property
    def end_ms(self) -> int:
        """When this sounding falls silent."""
        return self.start_ms + self.pattern.duration_ms


@dataclass(frozen=True)
class ToneState:
    """What the sounder does at one device time, as status reports it."""

    tone: ToneKind = ToneKind.NONE  # sounding now
    code: int = 0  # event code of the alarm sounding now, 0 when silent
    next_tone: ToneKind = ToneKind.NONE  # pattern of the next tone to start
    next_ms: int = 0  # device time it starts, 0 when nothing will sound


SILENT = ToneState()


class Sounder:
    """The tone patterns of a device, by alarm priority (a priority without a pattern is silent)."""

    def __init__(self, patterns: dict[Priority, TonePattern]) -> None:
        self.patterns = dict(patterns)

    def test_soundings(self, start_ms: int) -> list[Sounding]:
        """The alarm test: every pattern once, back to back, highest priority first."""
        soundings, t = [], start_ms
        for priority in sorted(self.patterns, reverse=True):
            pattern = self.patterns[priority]
            soundings.append(Sounding(EventCode.ALARM_TEST, priority, pattern, t))
            t += pattern.duration_ms
        return soundings

    def test_duration_ms(self) -> int:
        """How long the alarm test sounds."""
        return sum(p.duration_ms for p in self.patterns.values())

    def state(self, now_ms: int, sounding_alarms: list[tuple[EventCode, Priority, int]], test_ms: int) -> ToneState:
        """The sounder at ``now_ms``: ``sounding_alarms`` are (code, priority, raised at) of unacknowledged
        alarms; ``test_ms`` is the start of the last alarm test (0 if none)."""
        current: list[Sounding] = []  # soundings in progress at now_ms
        upcoming: list[Sounding] = []  # the next start of each source after now_ms
        if test_ms:
            for sounding in self.test_soundings(test_ms):
                if sounding.start_ms <= now_ms < sounding.end_ms:
                    current.append(sounding)
                elif sounding.start_ms > now_ms:
                    upcoming.append(sounding)
        for code, priority, raised_ms in sounding_alarms:
            pattern = self.patterns.get(priority)
            if pattern is None or raised_ms > now_ms:
                continue
            repeats = (now_ms - raised_ms) // pattern.repeat_ms
            latest = Sounding(code, priority, pattern, raised_ms + repeats * pattern.repeat_ms)
            if now_ms < latest.end_ms:
                current.append(latest)
            upcoming.append(Sounding(code, priority, pattern, latest.start_ms + pattern.repeat_ms))
        if not current and not upcoming:
            return SILENT
        # The patient hears the highest priority; among equals the one that started first.
        heard = min(current, key=lambda s: (-s.priority, s.start_ms, s.code), default=None)
        following = min(upcoming, key=lambda s: (s.start_ms, -s.priority, s.code), default=None)
        return ToneState(
            tone=heard.pattern.tone if heard else ToneKind.NONE,
            code=int(heard.code) if heard else 0,
            next_tone=following.pattern.tone if following else ToneKind.NONE,
            next_ms=following.start_ms if following else 0,
        )
