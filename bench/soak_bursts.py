"""The soak run's burst construction (docs/security.md R24): replayed and forged frames, built with our framing.

``replay_frames`` picks captured authenticated frames to send again verbatim; ``forged_frames``
builds frames the key never signed (wrong tags, tampered payloads and counters with a recomputed
CRC, untagged and wrong-session commands). Each frame comes with its command id and category
(``replay``, ``mac``: under the session's id, ``nosession``) for the gateway's accounting.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable

from protocols.auth import Session
from protocols.codec import decode_payload, encode_payload
from protocols.errors import ProtocolError
from protocols.framing import FLAG_AUTH, TAG_SIZE, Frame, encode_frame
from protocols.messages import (
    Area,
    Bolus,
    BolusKind,
    ClockSet,
    DosingMode,
    DosingSet,
    Message,
    PumpStatus,
    StimProgramSet,
    TherapySet,
)

DAY_MS = 86_400_000


def replay_frames(
    session_id: int, captured: list[Frame], expected_on: bool | None, rng: random.Random, max_frames: int
) -> list[tuple[bytes, int, str]]:
    """Captured frames sent again as they were: the current session's and older sessions'."""
    current = [f for f in captured if f.session_id == session_id]
    older = [f for f in captured if f.session_id != session_id]
    picks: list[Frame] = []
    # Above all the therapy command that would undo the state in force, if it was captured.
    opposite = [f for f in current + older if _therapy_value(f) is (not expected_on)]
    picks += opposite[-2:]
    picks += rng.sample(current, min(4, len(current)))
    picks += rng.sample(older, min(2, len(older)))
    return [(encode_frame(f), f.command_id, "replay") for f in picks[:max_frames]]


def forged_frames(
    session: Session,
    captured: Callable[[], list[Frame]],
    *,
    expected_on: bool | None,
    device_time_ms: int,
    kind: str,
    legit_area: Area,
    baseline_pump: PumpStatus | None,
    rng: random.Random,
    max_frames: int,
) -> list[tuple[bytes, int, str]]:
    """Frames the key never signed: wrong tags, tampered payloads and counters re-CRC'd, no tag, no session.

    ``captured`` returns the relay's captured frames (read after the fresh forgeries are built);
    ``device_time_ms`` is the device clock of the last status; ``legit_area`` the SCS program's area.
    """
    counter = session.tx_counter + 1000  # fresh counters: only the tag stands in the way
    opposite = not expected_on
    out: list[tuple[bytes, int, str]] = []

    def tagged(message: Message, category: str = "mac", session_id: int = session.session_id) -> None:
        nonlocal counter
        counter += 1
        cid = _fresh_id(rng)
        tag = rng.randbytes(TAG_SIZE)
        frame = Frame(message.TYPE, FLAG_AUTH, session_id, counter, cid, encode_payload(message), tag)
        out.append((encode_frame(frame), cid, category))

    tagged(TherapySet(opposite))
    tagged(ClockSet(device_time_ms + 365 * DAY_MS))
    if kind == "scs":
        stronger = dataclasses.replace(legit_area, amplitude_ua=legit_area.amplitude_ua + 1500)
        tagged(StimProgramSet(1, True, (stronger,), 8000, 0))
    else:
        base = baseline_pump
        assert base is not None
        tagged(DosingSet(DosingMode.CONTINUOUS, base.rate_ul_per_day * 2, (), base.patient_bolus, 1000))
        tagged(Bolus(BolusKind.CLINICIAN, 200, 10))
    # Captured frames of this session, tampered and sent with their old tag and a new CRC.
    current = [f for f in captured() if f.session_id == session.session_id and f.payload]
    for frame in current[-2:]:
        counter += 1
        payload = bytearray(frame.payload)
        if _therapy_value(frame) is not None:
            payload[0] = int(opposite)  # the attack that matters: the therapy the patient is not on
        else:
            payload[rng.randrange(len(payload))] ^= 1 << rng.randrange(8)
        cid = _fresh_id(rng)
        tampered = dataclasses.replace(frame, payload=bytes(payload), command_id=cid, counter=counter, raw_signed=b"")
        out.append((encode_frame(tampered), cid, "mac"))
    if current:  # a captured frame under a fresh counter, its tag kept
        counter += 1
        cid = _fresh_id(rng)
        bumped = dataclasses.replace(current[-1], counter=counter, command_id=cid, raw_signed=b"")
        out.append((encode_frame(bumped), cid, "mac"))
    # Without a tag (a downgrade) and under a session that does not exist: refused before any MAC.
    cid = _fresh_id(rng)
    out.append(
        (encode_frame(Frame(TherapySet.TYPE, 0, 0, 0, cid, encode_payload(TherapySet(opposite)))), cid, "nosession")
    )
    tagged(TherapySet(opposite), "nosession", session_id=(session.session_id ^ 0x5A5A5A5A) or 1)
    return out[: max(max_frames, 1)]


def _fresh_id(rng: random.Random) -> int:
    return rng.randrange(1, 1 << 32)


def _therapy_value(frame: Frame) -> bool | None:
    """``on`` of a captured TherapySet frame, else None."""
    if frame.msg_type != TherapySet.TYPE:
        return None
    try:
        message = decode_payload(frame.msg_type, frame.payload)
    except ProtocolError:
        return None
    return bool(message.on) if isinstance(message, TherapySet) else None
