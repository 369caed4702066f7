"""Checks the clean-room client (tests/cleanroom_client.py) against protocols/vectors.json only.

Nothing here imports ``protocols``, ``device_mock`` or ``dashboard``; vectors.json is read as data.
"""

from __future__ import annotations

import ast
import json
import random
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tests import cleanroom_client as cc

ROOT = Path(__file__).resolve().parent.parent
VECTORS = json.loads((ROOT / "protocols" / "vectors.json").read_text(encoding="utf-8"))
MESSAGES = VECTORS["messages"]
BAD_FRAMES = VECTORS["bad_frames"]
PAIRING_KEY = bytes.fromhex(VECTORS["pairing_key_hex"])
HOST_NONCE = bytes.fromhex(VECTORS["host_nonce_hex"])
DEVICE_NONCE = bytes.fromhex(VECTORS["device_nonce_hex"])
SESSION_ID = VECTORS["session_id"]
K_H2D = bytes.fromhex(VECTORS["session_key_host_to_device_hex"])
K_D2H = bytes.fromhex(VECTORS["session_key_device_to_host_hex"])
# SPEC 8: the pump exchange at the top level, then a stimulator's clinician and patient sessions.
SESSIONS = [VECTORS, *VECTORS["exchanges"]]


def _inputs(session: dict) -> tuple[bytes, bytes, bytes, int]:
    """(pairing key, host nonce, device nonce, session id) of one exchange."""
    return (
        bytes.fromhex(session["pairing_key_hex"]),
        bytes.fromhex(session["host_nonce_hex"]),
        bytes.fromhex(session["device_nonce_hex"]),
        session["session_id"],
    )


ALL = [(session, vec) for session in SESSIONS for vec in session["messages"]]
ALL_IDS = [f"{s.get('name', 'pump')}-{i}-{v['name']}" for i, (s, v) in enumerate(ALL)]

FRAMING_ERRORS = {
    "CrcError": cc.CrcError,
    "MalformedFrame": cc.MalformedFrame,
    "UnsupportedVersion": cc.UnsupportedVersion,
}
STAT_OF_ERROR = {"CrcError": "crc_errors", "MalformedFrame": "malformed", "UnsupportedVersion": "bad_version"}


def _wire(vec: dict) -> bytes:
    return bytes.fromhex(vec["frame_hex"])


def _ids(vectors: list[dict]) -> list[str]:
    return [f"{i}-{v.get('name') or v['error']}" for i, v in enumerate(vectors)]


def _key_for(vec: dict) -> bytes:
    return K_D2H if vec["flags"] & cc.FLAG_FROM_DEVICE else K_H2D


# ---------------------------------------------------------------------------------------------
# primitives


def test_crc32c_check_value():
    assert cc.crc32c(b"123456789") == 0xE3069283 == int(VECTORS["crc32c_check"], 16)


@pytest.mark.parametrize("session", SESSIONS, ids=lambda s: s.get("name", "pump"))
def test_session_keys_match_vectors(session):
    keys = (
        bytes.fromhex(session["session_key_host_to_device_hex"]),
        bytes.fromhex(session["session_key_device_to_host_hex"]),
    )
    assert cc.derive_session_keys(*_inputs(session)) == keys


def test_protocol_constants_match_vectors():
    assert VECTORS["protocol_version"] == cc.PROTOCOL_VERSION
    assert int(VECTORS["schema_fingerprint"], 16) == cc.SCHEMA_FINGERPRINT


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00",
        b"\x00\x00",
        b"\x11\x22\x00\x33",
        bytes(range(1, 255)),  # exactly 254 non-zero bytes, at the end
        bytes(range(1, 255)) + b"\x00",  # 254 non-zero bytes followed by a zero
        bytes(range(1, 255)) + b"\x00\x07",
        bytes([7] * 296),  # largest raw frame without zeros -> 298 encoded bytes
        bytes(range(256)) * 2,
    ],
)
def test_cobs_round_trip(data):
    enc = cc.cobs_encode(data)
    assert 0 not in enc
    assert cc.cobs_decode(enc) == data
    assert len(enc) <= len(data) + 1 + len(data) // 254


def test_largest_frame_is_298_encoded_bytes():
    raw = cc.build_raw(0x90, 3, 0x01020304, 5, 6, bytes([0x55] * 255), key=K_D2H)
    assert len(raw) == cc.MAX_RAW == 296
    assert len(cc.cobs_encode(raw)) <= cc.MAX_ENCODED


# ---------------------------------------------------------------------------------------------
# every message vector


@pytest.mark.parametrize("session,vec", ALL, ids=ALL_IDS)
def test_message_decodes_to_vector(session, vec):
    got = cc.decode_frame(_wire(vec))
    for key in ("name", "msg_type", "flags", "session_id", "counter", "command_id"):
        assert got[key] == vec[key], key
    assert got["version"] == VECTORS["protocol_version"]
    assert got["header_hex"] == vec["header_hex"]
    assert got["payload_hex"] == vec["payload_hex"]
    assert got["tag_hex"] == vec["tag_hex"]
    assert got["payload_len"] == len(vec["payload_hex"]) // 2
    assert got["fields"] == vec["fields"]
    assert cc.parse_header(bytes.fromhex(vec["header_hex"]))["command_id"] == vec["command_id"]


def test_signed_status_field_decodes_below_zero():
    """ScsStatus.shannon_k_x100 is an i16 (SPEC 1, 4.4): a small charge gives a negative k."""
    vec = next(v for s in SESSIONS for v in s["messages"] if v["name"] == "ScsStatus")
    fields = {**vec["fields"], "shannon_k_x100": -134}
    payload = cc.encode_payload(0x90, fields)
    # then disabled_contacts (u32), lifecycle (u8) and diary_seq (u32) end the payload
    assert payload[-11:-9] == struct.pack("<h", -134)
    assert cc.decode_payload(0x90, payload)["shannon_k_x100"] == -134


@pytest.mark.parametrize("session,vec", ALL, ids=ALL_IDS)
def test_message_tag_verifies_with_derived_keys(session, vec):
    k_h2d, k_d2h = cc.derive_session_keys(*_inputs(session))
    header, payload = bytes.fromhex(vec["header_hex"]), bytes.fromhex(vec["payload_hex"])
    if not vec["flags"] & cc.FLAG_AUTH:
        assert vec["tag_hex"] == ""
        assert vec["session_id"] == 0 and vec["counter"] == 0
        return
    key, other = (k_d2h, k_h2d) if vec["flags"] & cc.FLAG_FROM_DEVICE else (k_h2d, k_d2h)
    assert cc.compute_tag(key, header, payload).hex() == vec["tag_hex"]
    # one key per direction: the other key never verifies it (no reflection)
    assert cc.compute_tag(other, header, payload).hex() != vec["tag_hex"]


@pytest.mark.parametrize("session,vec", ALL, ids=ALL_IDS)
def test_message_reencodes_to_frame_hex(session, vec):
    payload = cc.encode_payload(vec["msg_type"], vec["fields"])
    assert payload.hex() == vec["payload_hex"]
    k_h2d, k_d2h = cc.derive_session_keys(*_inputs(session))
    key = (k_d2h if vec["flags"] & cc.FLAG_FROM_DEVICE else k_h2d) if vec["flags"] & cc.FLAG_AUTH else None
    wire = cc.encode_frame(
        vec["msg_type"], vec["flags"], vec["session_id"], vec["counter"], vec["command_id"], payload, key
    )
    assert wire.hex() == vec["frame_hex"]


def test_every_message_type_of_the_client_has_a_vector():
    """Between them the exchanges carry every message type the client knows (SPEC 8)."""
    assert {v["name"] for _, v in ALL} == {name for name, _ in cc.MESSAGES.values()}


def test_the_patient_exchange_opens_a_patient_session_and_is_refused_clinician_commands():
    patient = next(s for s in SESSIONS if "patient" in s.get("name", ""))
    by_name = {v["name"]: v for v in patient["messages"]}
    assert by_name["SessionChallenge"]["fields"]["role"] == "PATIENT"
    refusals = [v["fields"]["code"] for v in patient["messages"] if v["name"] == "ErrorReply"]
    assert "NOT_PERMITTED" in refusals


def test_required_reencodings_are_covered():
    names = {v["name"] for v in MESSAGES}
    assert {"IdentifyRequest", "SessionOpen", "SessionConfirm", "StatusRequest"} <= names


def test_required_decodings_are_covered():
    names = {v["name"] for _, v in ALL}
    assert {
        "IdentifyReply",
        "SessionChallenge",
        "CommandAck",
        "ScsStatus",
        "PumpStatus",
        "EventPush",
        "ErrorReply",
    } <= names


@pytest.mark.parametrize("session", SESSIONS, ids=lambda s: s.get("name", "pump"))
def test_sessions_accept_the_whole_exchange_in_order(session):
    host = cc.Session.derive(*_inputs(session), role="host")
    device = cc.Session.derive(*_inputs(session), role="device")
    for vec in session["messages"]:
        if not vec["flags"] & cc.FLAG_AUTH:
            continue
        frame = cc.decode_raw(_wire(vec).strip(b"\x00"))
        judge = host if frame.from_device else device
        judge.verify(frame)
        assert judge.last_rx == vec["counter"]
    assert host.stats.sequence_gaps == 0 and device.stats.sequence_gaps == 0


@pytest.mark.parametrize("session", SESSIONS, ids=lambda s: s.get("name", "pump"))
def test_session_seal_reproduces_host_frames(session):
    """A host Session, with counters from 1, produces the exchange's tagged host frames byte for byte."""
    host = cc.Session.derive(*_inputs(session), role="host")
    for vec in session["messages"]:
        if vec["direction"] != "host" or not vec["flags"] & cc.FLAG_AUTH:
            continue
        payload = cc.encode_payload(vec["msg_type"], vec["fields"])
        assert host.seal(vec["msg_type"], vec["command_id"], payload).hex() == vec["frame_hex"]


# ---------------------------------------------------------------------------------------------
# bad frames


@pytest.mark.parametrize("bad", BAD_FRAMES, ids=_ids(BAD_FRAMES))
def test_bad_frame(bad):
    wire = _wire(bad)
    err = bad["error"]
    if err in FRAMING_ERRORS:
        with pytest.raises(FRAMING_ERRORS[err]):
            cc.decode_frame(wire)
        dec = cc.FrameDecoder()
        assert dec.feed(wire) == []
        assert getattr(dec.stats, STAT_OF_ERROR[err]) == 1
        assert dec.stats.frames_ok == 0
        # the dropped run never takes the next good frame with it
        good = _wire(MESSAGES[0])
        frames = dec.feed(good)
        assert len(frames) == 1 and frames[0].command_id == MESSAGES[0]["command_id"]
        return
    frame = cc.decode_raw(wire.strip(b"\x00"))  # passes framing
    if err == "MacError":
        device = cc.Session(SESSION_ID, K_H2D, K_D2H, role="device")
        with pytest.raises(cc.MacError):
            device.verify(frame)
        assert device.last_rx == 0  # a forged frame never moves the counter
    elif err == "ReplayError":
        device = cc.Session(SESSION_ID, K_H2D, K_D2H, role="device")
        for vec in MESSAGES:  # a device that accepted every host frame of the exchange
            if vec["direction"] == "host" and vec["flags"] & cc.FLAG_AUTH:
                device.verify(cc.decode_raw(_wire(vec).strip(b"\x00")))
        with pytest.raises(cc.ReplayError):
            device.verify(frame)
    elif err == "UnknownMessageType":
        device = cc.Session(SESSION_ID, K_H2D, K_D2H, role="device")
        device.verify(frame)  # tag and counter are fine
        with pytest.raises(cc.UnknownMessageType):
            cc.decode_payload(frame.msg_type, frame.payload)
        with pytest.raises(cc.UnknownMessageType):
            cc.decode_frame(wire)
    elif err == "NoSession":
        assert not frame.auth and frame.session_id == 0
        assert frame.msg_type not in cc.UNAUTHENTICATED_REQUESTS
    else:
        pytest.fail(f"unknown error kind {err}")


def test_bad_frames_cover_framing_errors():
    assert {b["error"] for b in BAD_FRAMES} >= set(FRAMING_ERRORS)


# ---------------------------------------------------------------------------------------------
# receiver resynchronisation (SPEC 2.4)


def _stream_with_noise(rng: random.Random) -> tuple[bytes, int]:
    stream = bytearray(b"\x13\x37garbage without delimiter")  # noise before the first frame
    good = 0
    for i, vec in enumerate(MESSAGES):
        stream += _wire(vec)
        good += 1
        if i % 5 == 0:
            stream += _wire(BAD_FRAMES[i % 6])  # a framing-error run between good frames
        if i % 7 == 0:
            stream += bytes(rng.randrange(1, 256) for _ in range(rng.randrange(1, 40)))  # noise, no delimiter
    return bytes(stream), good


def test_decoder_result_independent_of_read_split():
    rng = random.Random(1234)
    stream, good = _stream_with_noise(rng)
    whole = cc.FrameDecoder()
    reference = whole.feed(stream)
    assert len(reference) == good
    assert [f.command_id for f in reference] == [v["command_id"] for v in MESSAGES]
    for trial in range(20):
        dec = cc.FrameDecoder()
        frames = []
        pos = 0
        while pos < len(stream):
            step = 1 if trial == 0 else rng.randrange(1, 64)
            frames += dec.feed(stream[pos : pos + step])
            pos += step
        assert frames == reference
        assert dec.stats == whole.stats


def test_oversize_run_is_dropped_without_losing_the_next_frame():
    dec = cc.FrameDecoder()
    junk = bytes([0x41]) * 1000
    frames = dec.feed(junk[:500]) + dec.feed(junk[500:] + _wire(MESSAGES[1]))
    assert [f.msg_type for f in frames] == [MESSAGES[1]["msg_type"]]
    assert dec.stats.oversize == 1
    assert dec.stats.malformed == 0


def test_exactly_298_encoded_bytes_are_not_oversize():
    raw = cc.build_raw(0x90, 3, 1, 1, 1, bytes([0x55] * 255), key=K_D2H)
    enc = cc.cobs_encode(raw)
    assert len(enc) == 298
    dec = cc.FrameDecoder()
    frames = dec.feed(b"\x00" + enc + b"\x00")
    assert len(frames) == 1 and dec.stats.oversize == 0  # well formed (payload decode is the codec's job)


def test_payload_len_above_255_is_malformed():
    header = struct.pack("<BBBIQIH", 1, 0x90, cc.FLAG_FROM_DEVICE, 0, 0, 1, 260)
    body = header + bytes([0x55] * 260)
    raw = body + struct.pack("<I", cc.crc32c(body))
    with pytest.raises(cc.MalformedFrame):
        cc.decode_frame(b"\x00" + cc.cobs_encode(raw) + b"\x00")


# ---------------------------------------------------------------------------------------------
# payload codec strictness (SPEC 1)


def _vector(name: str) -> dict:
    return next(v for v in MESSAGES if v["name"] == name)


def test_codec_rejects_malformed_payloads():
    ack = bytes.fromhex(_vector("CommandAck")["payload_hex"])
    with pytest.raises(cc.MalformedPayload):
        cc.decode_payload(0x83, ack[:-1])  # short
    with pytest.raises(cc.MalformedPayload):
        cc.decode_payload(0x83, ack + b"\x00")  # trailing byte
    pump = bytearray.fromhex(_vector("PumpStatus")["payload_hex"])
    bad_bool = bytearray(pump)
    bad_bool[9] = 2  # infusing
    with pytest.raises(cc.MalformedPayload):
        cc.decode_payload(0x91, bytes(bad_bool))
    bad_enum = bytearray(pump)
    bad_enum[8] = 9  # mode
    with pytest.raises(cc.MalformedPayload):
        cc.decode_payload(0x91, bytes(bad_enum))
    bad_count = bytearray(pump)
    bad_count[26] = 5  # drugs count above 4
    with pytest.raises(cc.MalformedPayload):
        cc.decode_payload(0x91, bytes(bad_count))
    ident = bytearray.fromhex(_vector("IdentifyReply")["payload_hex"])
    ident[1] = 25  # model text longer than 24
    with pytest.raises(cc.MalformedPayload):
        cc.decode_payload(0x81, bytes(ident))


# ---------------------------------------------------------------------------------------------
# the client, driven by a port that plays the device side of the vector exchange


class ScriptedPort:
    """pyserial-like port: each host write must equal the next expected frame; replies queue up."""

    def __init__(self, script: list[tuple[bytes | None, list[bytes]]], chunk: int = 7) -> None:
        self.script = list(script)
        self.rx = bytearray()
        self.writes: list[bytes] = []
        self.chunk = chunk

    @property
    def in_waiting(self) -> int:
        return min(len(self.rx), self.chunk)

    def write(self, data: bytes) -> int:
        self.writes.append(bytes(data))
        if self.script:
            expected, replies = self.script.pop(0)
            if expected is not None:
                assert data == expected, f"host wrote {data.hex()}, expected {expected.hex()}"
            for r in replies:
                self.rx += r
        return len(data)

    def read(self, n: int) -> bytes:
        out = bytes(self.rx[:n])
        del self.rx[:n]
        return out


def _vector_rng():
    """rng giving the vector's first command_id (0x1001) and host nonce."""
    values = [struct.pack("<I", MESSAGES[0]["command_id"]), HOST_NONCE]

    def rng(n: int) -> bytes:
        v = values.pop(0)
        assert len(v) == n
        return v

    return rng


def _exchange_script() -> list[tuple[bytes, list[bytes]]]:
    """Pairs (host frame, device frames that follow it) for the exchange in vectors.json.

    The last vector, an untagged NO_SESSION ErrorReply, answers a StatusRequest that is not among
    the vectors (it even carries SessionClose's command_id), so it is left out.
    """
    script: list[tuple[bytes, list[bytes]]] = []
    for vec in MESSAGES[:-2]:  # all but the final untagged StatusRequest and its refusal
        if vec["direction"] == "host":
            script.append((_wire(vec), []))
        elif script:
            script[-1][1].append(_wire(vec))
    return script


def _client(script, **kw) -> tuple[cc.CleanroomClient, ScriptedPort]:
    port = ScriptedPort(script)
    kw.setdefault("timeout", 0.2)
    kw.setdefault("retries", 0)
    return cc.CleanroomClient(port, PAIRING_KEY, rng=_vector_rng(), **kw), port


def test_client_replays_the_whole_exchange_byte_for_byte():
    client, port = _client(_exchange_script())
    assert client.identify() == _vector("IdentifyReply")["fields"]
    client.open_session()
    assert client.session is not None and client.session.session_id == SESSION_ID
    assert client.challenge == _vector("SessionChallenge")["fields"]
    assert client.status() == _vector("PumpStatus")["fields"]
    # Tagged host requests after the status; the final untagged StatusRequest is the no-session
    # case checked at the end.
    tagged_or_handshake = [
        v for v in MESSAGES if v["direction"] == "host" and (v["flags"] & 1 or v["name"] != "StatusRequest")
    ]
    host_requests = tagged_or_handshake[4:]
    for vec in host_requests:
        if vec["name"] == "SessionClose":
            client.close_session()
            continue
        if vec["name"] == "Bolus" and vec["fields"]["volume_ul"] == 90000:
            with pytest.raises(cc.DeviceError) as info:
                client.request(vec["name"], vec["fields"])
            assert info.value.code == "OUT_OF_RANGE"
            assert info.value.fields == MESSAGES[MESSAGES.index(vec) + 1]["fields"]
            assert info.value.tagged
            continue
        reply = client.request(vec["name"], vec["fields"])
        following = MESSAGES[MESSAGES.index(vec) + 1]
        assert reply.name == following["name"] and reply.fields == following["fields"]
    assert port.script == [] and port.rx == b""
    assert client.pushes == [_vector("EventPush")["fields"]["event"]]
    assert client.session is None
    assert client.stats.mac_errors == client.stats.replays == client.stats.sequence_gaps == 0
    with pytest.raises(cc.NoSessionError):
        client.status()


def test_client_replays_the_patient_controllers_session_byte_for_byte():
    """With the patient's key the client opens a PATIENT session and sends what a patient may (SPEC 3.8)."""
    patient = next(s for s in SESSIONS if "patient" in s.get("name", ""))
    messages = patient["messages"]
    script: list[tuple[bytes, list[bytes]]] = []
    for vec in messages:
        if vec["direction"] == "host":
            script.append((_wire(vec), []))
        else:
            script[-1][1].append(_wire(vec))
    key, host_nonce, _, session_id = _inputs(patient)
    values = [struct.pack("<I", messages[0]["command_id"]), host_nonce]
    client = cc.CleanroomClient(ScriptedPort(script), key, rng=lambda n: values.pop(0), timeout=0.2, retries=0)
    client.open_session()
    assert client.session.session_id == session_id and client.challenge["role"] == "PATIENT"
    for i, vec in enumerate(messages):
        if vec["direction"] != "host" or vec["name"] in ("SessionOpen", "SessionConfirm"):
            continue
        if vec["name"] == "SessionClose":
            client.close_session()
            continue
        answer = next(v for v in messages[i + 1 :] if v["name"] != "EventPush")
        if answer["name"] == "ErrorReply":
            with pytest.raises(cc.DeviceError) as info:
                client.request(vec["name"], vec["fields"])
            assert info.value.fields == answer["fields"]
            continue
        reply = client.request(vec["name"], vec["fields"])
        assert reply.name == answer["name"] and reply.fields == answer["fields"]
    assert [p["actor"] for p in client.pushes] == ["PATIENT"]


def _handshake_script() -> list[tuple[bytes, list[bytes]]]:
    return _exchange_script()[:3]  # identify, open, confirm


def _tamper_tag(wire: bytes) -> bytes:
    raw = bytearray(cc.cobs_decode(wire.strip(b"\x00")))
    raw[-5] ^= 0x01  # last tag byte
    raw[-4:] = struct.pack("<I", cc.crc32c(bytes(raw[:-4])))
    return b"\x00" + cc.cobs_encode(bytes(raw)) + b"\x00"


def test_client_rejects_bad_reply_tag():
    script = [*_handshake_script(), (_wire(MESSAGES[6]), [_tamper_tag(_wire(MESSAGES[7]))])]
    client, _ = _client(script)
    client.identify()
    client.open_session()
    with pytest.raises(cc.MacError):
        client.status()
    assert client.session.last_rx == 2  # the forged frame did not move the counter


def test_client_rejects_replayed_reply():
    script = [
        *_handshake_script(),
        (_wire(MESSAGES[6]), [_wire(MESSAGES[7])]),
        (None, [_wire(MESSAGES[7])]),  # the PumpStatus again, to the next request
    ]
    client, _ = _client(script)
    client.identify()
    client.open_session()
    client.status()
    with pytest.raises(cc.ReplayError):
        client.status()


def test_client_rejects_forged_challenge():
    script = _handshake_script()
    script[1] = (None, script[1][1])  # another key makes another open proof: any open gets the vector's challenge
    client = cc.CleanroomClient(ScriptedPort(script), bytes(32), rng=_vector_rng(), timeout=0.2, retries=0)
    client.identify()
    with pytest.raises(cc.MacError):
        client.open_session()
    assert client.session is None


def test_client_timeout_retries_with_same_command_id_and_next_counter():
    client, port = _client(_handshake_script(), timeout=0.05, retries=2)
    client.identify()
    client.open_session()
    with pytest.raises(cc.ClientTimeout):
        client.status()
    sent = [cc.decode_frame(w) for w in port.writes[3:]]
    assert [f["name"] for f in sent] == ["StatusRequest"] * 3
    assert {f["command_id"] for f in sent} == {MESSAGES[6]["command_id"]}
    assert [f["counter"] for f in sent] == [2, 3, 4]
    assert len({f["tag_hex"] for f in sent}) == 3
    assert sent[0]["tag_hex"] == MESSAGES[6]["tag_hex"]


def test_client_raises_on_untagged_error_reply_and_forgets_session():
    no_session = cc.encode_frame(
        0xFF,
        cc.FLAG_FROM_DEVICE,
        0,
        0,
        MESSAGES[6]["command_id"],
        bytes.fromhex(MESSAGES[-1]["payload_hex"]),
    )
    client, _ = _client([*_handshake_script(), (_wire(MESSAGES[6]), [no_session])])
    client.identify()
    client.open_session()
    with pytest.raises(cc.DeviceError) as info:
        client.status()
    assert info.value.code == "NO_SESSION" and not info.value.tagged
    assert client.session is None


def test_client_ignores_noise_and_stale_frames():
    stale = _wire(MESSAGES[1])  # an untagged IdentifyReply with an old command_id
    noisy = b"\x01\x02\x03" + _wire(BAD_FRAMES[0]) + stale + _wire(MESSAGES[7])
    script = [*_handshake_script(), (_wire(MESSAGES[6]), [noisy])]
    client, _ = _client(script)
    client.identify()
    client.open_session()
    assert client.status() == MESSAGES[7]["fields"]
    assert client.stats.crc_errors == 1 and client.stats.stale == 1


def test_client_refuses_other_schema():
    fields = dict(MESSAGES[1]["fields"], schema_fingerprint=0x12345678)
    reply = cc.encode_frame(0x81, 2, 0, 0, MESSAGES[0]["command_id"], cc.encode_payload(0x81, fields))
    client, _ = _client([(_wire(MESSAGES[0]), [reply])])
    with pytest.raises(cc.SchemaMismatch):
        client.identify()


# ---------------------------------------------------------------------------------------------
# clean-room property: the module depends on nothing from the project


FORBIDDEN = {"protocols", "device_mock", "dashboard"}


def test_module_imports_only_stdlib():
    source = Path(cc.__file__).read_text(encoding="utf-8")
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "no relative imports"
            imported.add((node.module or "").split(".")[0])
    assert not imported & FORBIDDEN
    assert imported <= set(sys.stdlib_module_names) | {"__future__", "cobs", "crc32c"}


def test_module_loads_without_project_packages():
    code = (
        "import sys, runpy; runpy.run_path(sys.argv[1]); "
        f"bad = [m for m in sys.modules if m.split('.')[0] in {sorted(FORBIDDEN)!r}]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-I", "-c", code, cc.__file__], check=True, cwd="/")
