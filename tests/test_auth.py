"""Authentication: HKDF, pairing key files, frame tags and replay protection, session lifetimes, lockout.

SPEC.md section 3. Time is injected as ``now``; randomness through seeded generators, so every
expiry and lockout boundary is checked exactly.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import random
import stat

import pytest

from protocols.auth import (
    HKDF_INFO,
    KEY_SIZE,
    AuthPolicy,
    DeviceSessions,
    Session,
    SessionKeys,
    compute_tag,
    derive_session_keys,
    generate_pairing_key,
    hkdf_sha256,
    host_session_from_challenge,
    load_pairing_key,
    open_proof,
    write_pairing_key,
)
from protocols.errors import (
    AuthError,
    ErrorCode,
    LockedOut,
    MacError,
    MalformedFrame,
    NoSession,
    OversizeFrame,
    PairingKeyError,
    ReplayError,
    SessionExpired,
)
from protocols.framing import MAX_PAYLOAD, TAG_SIZE, Frame, FrameDecoder, FrameFlags, LinkStats, encode_frame

KEY = bytes(range(32))


# --- HKDF and key derivation ---------------------------------------------------------------------


def test_hkdf_rfc5869_test_case_1():
    """RFC 5869 A.1: basic test case with SHA-256."""
    okm = hkdf_sha256(
        ikm=b"\x0b" * 22,
        salt=bytes.fromhex("000102030405060708090a0b0c"),
        info=bytes.fromhex("f0f1f2f3f4f5f6f7f8f9"),
        length=42,
    )
    assert okm == bytes.fromhex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865")


def test_hkdf_rfc5869_test_case_3_empty_salt_and_info():
    """RFC 5869 A.3: zero-length salt (HashLen zero bytes) and info."""
    okm = hkdf_sha256(b"\x0b" * 22, b"", b"", 42)
    assert okm == bytes.fromhex("8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8")


@pytest.mark.parametrize("length", [1, 31, 32, 33, 64, 100])
def test_hkdf_output_lengths_are_prefixes(length):
    """Expanding further never changes the earlier bytes."""
    long = hkdf_sha256(KEY, b"salt", b"info", 100)
    assert hkdf_sha256(KEY, b"salt", b"info", length) == long[:length]


def test_session_keys_follow_spec_3_2():
    """SPEC 3.2 written out with hmac: salt = Nh||Nd, info = label||session_id LE, K_h2d = T1, K_d2h = T2."""
    host_nonce, device_nonce, session_id = bytes(range(16)), bytes(range(16, 32)), 0x5EC00001
    prk = hmac.new(host_nonce + device_nonce, KEY, hashlib.sha256).digest()
    info = b"implant-telemetry/1 session" + session_id.to_bytes(4, "little")
    t1 = hmac.new(prk, info + b"\x01", hashlib.sha256).digest()
    t2 = hmac.new(prk, t1 + info + b"\x02", hashlib.sha256).digest()
    assert HKDF_INFO == b"implant-telemetry/1 session"
    keys = derive_session_keys(KEY, host_nonce, device_nonce, session_id)
    assert keys == SessionKeys(t1, t2)
    assert keys.host_to_device != keys.device_to_host
    assert derive_session_keys(KEY, host_nonce, device_nonce, session_id + 1) != keys
    assert "host_to_device=" not in repr(keys)  # keys never end up in logs


def test_tag_is_truncated_hmac_sha256():
    """SPEC 3.3: first 16 bytes of HMAC-SHA256(K, header || payload)."""
    assert compute_tag(KEY, b"abc") == hmac.new(KEY, b"abc", hashlib.sha256).digest()[:TAG_SIZE]


# --- pairing key files ---------------------------------------------------------------------------


def test_pairing_key_file_round_trip_with_owner_only_mode(tmp_path):
    """write_pairing_key -> load_pairing_key returns the key; the file is mode 0600, with a comment."""
    key = generate_pairing_key(random.Random(1).randbytes)
    path = write_pairing_key(tmp_path / "sub" / "dev.key", key, label="SN-1")
    assert path == tmp_path / "sub" / "dev.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text(encoding="ascii")
    assert text.startswith("#") and "SN-1" in text and key.hex() in text
    assert load_pairing_key(path) == key
    assert load_pairing_key(str(path)) == key
    assert [p.name for p in path.parent.iterdir()] == ["dev.key"]  # no temporary file left behind


def test_pairing_key_overwrite_tightens_mode(tmp_path):
    """Replacing an existing world-readable file still leaves a 0600 file with the new key."""
    path = tmp_path / "dev.key"
    path.write_text("old\n", encoding="ascii")
    os.chmod(path, 0o644)
    key = bytes(range(100, 132))
    write_pairing_key(path, key)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_pairing_key(path) == key


def test_pairing_key_load_allows_comments_blank_lines_and_split_digits(tmp_path):
    path = tmp_path / "k"
    hexkey = KEY.hex()
    path.write_text(f"# comment\n\n  {hexkey[:32]}  \n# more\n{hexkey[32:].upper()}\n", encoding="ascii")
    assert load_pairing_key(path) == KEY


def test_generate_pairing_key_has_key_size():
    assert len(generate_pairing_key()) == KEY_SIZE == 32
    assert generate_pairing_key() != generate_pairing_key()


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(None, id="missing"),
        pytest.param("00" * 31 + "\n", id="too-short"),
        pytest.param("00" * 33 + "\n", id="too-long"),
        pytest.param("", id="empty"),
        pytest.param("zz" * 32 + "\n", id="non-hex"),
        pytest.param("00" * 16 + "  " + "00" * 15 + "\n", id="31-bytes-padded-with-inner-spaces"),
        pytest.param("00" * 16 + " \t" + "00" * 15 + "\n", id="31-bytes-padded-with-inner-tab"),
        pytest.param("# only a comment\n", id="comment-only"),
        pytest.param(b"\xff\xfe" * 32, id="not-ascii"),
    ],
)
def test_pairing_key_errors_name_the_path(tmp_path, content):
    """Missing, wrong length, non-hex or unreadable key files raise PairingKeyError naming the file."""
    path = tmp_path / "bad-key-file.key"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content, encoding="ascii")
    with pytest.raises(PairingKeyError) as info:
        load_pairing_key(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_pairing_key_directory_is_an_error(tmp_path):
    with pytest.raises(PairingKeyError) as info:
        load_pairing_key(tmp_path)
    assert str(tmp_path) in str(info.value)


@pytest.mark.parametrize("size", [0, 16, 31, 33])
def test_wrong_size_keys_are_refused(tmp_path, size):
    with pytest.raises(PairingKeyError):
        write_pairing_key(tmp_path / "k", bytes(size))
    assert not (tmp_path / "k").exists()
    with pytest.raises(PairingKeyError):
        DeviceSessions(bytes(size))


# --- Session: seal, verify, replay ---------------------------------------------------------------


def session_pair(session_id: int = 0x1234) -> tuple[Session, Session]:
    """A host and a device view of the same session."""
    keys = derive_session_keys(KEY, b"h" * 16, b"d" * 16, session_id)
    host = Session(session_id, keys, is_device=False, opened_at=0.0, last_rx_at=0.0)
    device = Session(session_id, keys, is_device=True, opened_at=0.0, last_rx_at=0.0)
    return host, device


def _with(frame: Frame, **changes) -> Frame:
    values = {
        "msg_type": frame.msg_type,
        "flags": frame.flags,
        "session_id": frame.session_id,
        "counter": frame.counter,
        "command_id": frame.command_id,
        "payload": frame.payload,
        "tag": frame.tag,
    } | changes
    return Frame(**values)


def _flip_bit(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit >> 3] ^= 1 << (bit & 7)
    return bytes(out)


def test_seal_then_verify_accepts_and_advances_counters():
    host, device = session_pair()
    stats = LinkStats()
    for expected in (1, 2, 3):
        frame = host.seal(0x10, 100 + expected, b"payload")
        assert frame.counter == expected == host.tx_counter
        assert frame.flags == FrameFlags.AUTH
        device.verify(frame, now=float(expected), stats=stats)
        assert device.rx_counter == expected
        assert device.last_rx_at == float(expected)
    reply = device.seal(0x83, 103, b"\0\0\0\0")
    assert reply.flags == FrameFlags.AUTH | FrameFlags.FROM_DEVICE
    host.verify(reply, 4.0)
    push = device.seal(0xE0, 0, b"", push=True)
    assert push.flags & FrameFlags.PUSH
    host.verify(push, 4.0)
    assert stats.mac_errors == stats.replays == stats.seq_gaps == 0


def test_seal_wire_is_the_encoded_sealed_frame_and_verifies():
    host_a, _ = session_pair()
    host_b, device = session_pair()
    decoder = FrameDecoder()
    for push, command_id in ((False, 7), (True, 0), (False, 0xFFFF_FFFF)):
        wire = host_b.seal_wire(0x10, command_id, b"payload", push=push)
        assert wire == encode_frame(host_a.seal(0x10, command_id, b"payload", push=push))
        (frame,) = decoder.feed(wire)
        device.verify(frame, 1.0)
    assert host_b.tx_counter == device.rx_counter == 3


@pytest.mark.parametrize(
    ("msg_type", "command_id", "payload", "error"),
    [
        (0x10, 1, bytes(MAX_PAYLOAD + 1), OversizeFrame),
        (0x100, 1, b"", MalformedFrame),
        (0x10, -1, b"", MalformedFrame),
    ],
)
def test_seal_refuses_what_cannot_be_framed_and_keeps_its_counter(msg_type, command_id, payload, error):
    host, device = session_pair()
    for seal in (host.seal, host.seal_wire):
        with pytest.raises(error):
            seal(msg_type, command_id, payload)
    assert host.tx_counter == 0
    device.verify(host.seal(0x10, 1, b""), 1.0)  # the next frame still carries counter 1
    assert device.rx_counter == 1


def test_every_tag_bit_flip_is_a_mac_error_and_changes_nothing():
    """Flipping any of the 128 tag bits -> MacError; the receive counter does not move."""
    host, device = session_pair()
    frame = host.seal(0x31, 7, b"\x01\x64\x00\x00\x00\x05\x00")
    stats = LinkStats()
    for bit in range(TAG_SIZE * 8):
        with pytest.raises(MacError):
            device.verify(_with(frame, tag=_flip_bit(frame.tag, bit)), 1.0, stats)
    assert stats.mac_errors == TAG_SIZE * 8
    assert device.rx_counter == 0 and device.last_rx_at == 0.0
    device.verify(frame, 1.0)


def test_every_payload_bit_flip_is_a_mac_error():
    host, device = session_pair()
    payload = bytes(range(40))
    frame = host.seal(0x20, 7, payload)
    for bit in range(len(payload) * 8):
        with pytest.raises(MacError):
            device.verify(_with(frame, payload=_flip_bit(payload, bit)), 1.0)
    with pytest.raises(MacError):
        device.verify(_with(frame, payload=payload + b"\x00"), 1.0)
    with pytest.raises(MacError):
        device.verify(_with(frame, payload=payload[:-1]), 1.0)
    assert device.rx_counter == 0


@pytest.mark.parametrize(
    "change",
    [
        {"msg_type": 0x11},
        {"command_id": 8},
        {"counter": 2},
        {"flags": FrameFlags.AUTH | FrameFlags.PUSH},
    ],
    ids=["type", "command_id", "counter", "flags"],
)
def test_header_fields_are_covered_by_the_tag(change):
    """The tag covers the header: changing type, command id, counter or flags is a MacError."""
    host, device = session_pair()
    frame = host.seal(0x10, 7, b"")
    with pytest.raises(MacError):
        device.verify(_with(frame, **change), 1.0)


def test_frame_tagged_with_a_wrong_key_is_a_mac_error():
    host, device = session_pair()
    other_keys = derive_session_keys(bytes(32), b"h" * 16, b"d" * 16, host.session_id)
    stranger = Session(host.session_id, other_keys, is_device=False, opened_at=0.0, last_rx_at=0.0)
    with pytest.raises(MacError):
        device.verify(stranger.seal(0x10, 1, b""), 1.0)
    # Keys of another session of the same pairing key do not work either.
    other_session = derive_session_keys(KEY, b"h" * 16, b"e" * 16, host.session_id)
    with pytest.raises(MacError):
        device.verify(Session(host.session_id, other_session, False, 0.0, 0.0).seal(0x10, 1, b""), 1.0)
    assert device.rx_counter == 0


def test_reflected_untagged_and_foreign_session_frames_are_mac_errors():
    """A frame sent back to its sender, an untagged frame, or another session's frame: MacError."""
    host, device = session_pair()
    frame = host.seal(0x10, 1, b"")
    with pytest.raises(MacError):
        host.verify(frame, 1.0)  # reflected: wrong direction
    with pytest.raises(MacError):
        device.verify(_with(frame, flags=FrameFlags(0), tag=b""), 1.0)
    with pytest.raises(MacError):
        device.verify(_with(frame, session_id=frame.session_id + 1), 1.0)
    device.verify(frame, 1.0)


def test_replay_of_an_accepted_frame_is_a_replay_error():
    host, device = session_pair()
    stats = LinkStats()
    first, second = host.seal(0x31, 1, b"a"), host.seal(0x31, 2, b"b")
    device.verify(first, 1.0, stats)
    device.verify(second, 2.0, stats)
    for old in (first, second):
        with pytest.raises(ReplayError) as info:
            device.verify(old, 3.0, stats)
        assert info.value.code == ErrorCode.REPLAY
    assert stats.replays == 2
    assert device.rx_counter == 2 and device.last_rx_at == 2.0


def test_r5_forged_frame_with_huge_counter_does_not_advance_the_counter():
    """R5: a bad-tag frame claiming counter 2**63 is refused and leaves rx_counter alone."""
    host, device = session_pair()
    device.verify(host.seal(0x10, 1, b""), 1.0)
    legit = host.seal(0x10, 2, b"")
    forged = _with(legit, counter=2**63)
    with pytest.raises(MacError):
        device.verify(forged, 2.0)
    forged_max = _with(legit, counter=2**64 - 1, tag=bytes(TAG_SIZE))
    with pytest.raises(MacError):
        device.verify(forged_max, 2.0)
    assert device.rx_counter == 1
    device.verify(legit, 3.0)
    assert device.rx_counter == 2


def test_counter_jumps_are_accepted_and_counted_as_sequence_gaps():
    host, device = session_pair()
    stats = LinkStats()
    frames = [host.seal(0x10, i, b"") for i in range(1, 7)]  # counters 1..6
    for index in (0, 2, 3, 5):  # receive 1, 3, 4, 6: two gaps
        device.verify(frames[index], 1.0, stats)
    assert stats.seq_gaps == 2
    assert device.rx_counter == 6
    with pytest.raises(ReplayError):  # a lost frame arriving late is older than the last accepted
        device.verify(frames[1], 1.0, stats)


def opened(sessions: DeviceSessions, host_nonce: bytes, now: float) -> tuple[Session, bytes]:
    """A key holder's SessionOpen, as the device sees it."""
    return sessions.open(host_nonce, open_proof(KEY, host_nonce), now)


def test_host_session_from_challenge_authenticates_the_device():
    """The host derives keys from the challenge and verifies its tag; a wrong key is a MacError."""
    sessions = DeviceSessions(KEY, rng=random.Random(3).randbytes)
    host_nonce = b"\x42" * 16
    pending, device_nonce = opened(sessions, host_nonce, 10.0)
    challenge = pending.seal(0x82, 5, b"challenge")
    host = host_session_from_challenge(KEY, host_nonce, device_nonce, challenge, 10.0)
    assert host.session_id == pending.session_id and host.rx_counter == 1
    pending.verify(host.seal(0x03, 6, b""), 10.5)
    with pytest.raises(MacError):
        host_session_from_challenge(bytes(32), host_nonce, device_nonce, challenge, 10.0)


# --- DeviceSessions: expiry ----------------------------------------------------------------------


def open_confirmed(sessions: DeviceSessions, now: float) -> tuple[Session, Session]:
    """Run the handshake against ``sessions`` at ``now``; return (device session, host session)."""
    host_nonce = os.urandom(16)
    pending, device_nonce = opened(sessions, host_nonce, now)
    host = host_session_from_challenge(KEY, host_nonce, device_nonce, pending.seal(0x82, 1, b""), now)
    device = sessions.authenticate(host.seal(0x03, 2, b""), now)
    assert device is pending
    sessions.confirm(device)
    assert sessions.active is device and sessions.pending is None
    return device, host


def test_idle_expiry_with_injected_time():
    """A session unused for more than idle_timeout_s expires: SessionExpired, then it is gone."""
    sessions = DeviceSessions(KEY, AuthPolicy(idle_timeout_s=300, absolute_timeout_s=3600))
    _device, host = open_confirmed(sessions, 1000.0)
    sessions.authenticate(host.seal(0x10, 3, b""), 1300.0)  # exactly at the limit: still alive
    with pytest.raises(SessionExpired) as info:
        sessions.authenticate(host.seal(0x10, 4, b""), 1600.001)
    assert isinstance(info.value, NoSession) and info.value.code == ErrorCode.NO_SESSION
    assert sessions.active is None
    with pytest.raises(NoSession) as again:
        sessions.authenticate(host.seal(0x10, 5, b""), 1600.002)
    assert not isinstance(again.value, SessionExpired)


def test_activity_keeps_a_session_alive_until_the_absolute_limit():
    """Valid frames every 200 s keep it alive, but never past absolute_timeout_s after opening."""
    sessions = DeviceSessions(KEY, AuthPolicy(idle_timeout_s=300, absolute_timeout_s=1000))
    _, host = open_confirmed(sessions, 0.0)
    for now in (200.0, 400.0, 600.0, 800.0, 1000.0):
        sessions.authenticate(host.seal(0x10, 0, b""), now)
    with pytest.raises(SessionExpired):
        sessions.authenticate(host.seal(0x10, 0, b""), 1000.5)


def test_expire_due_drops_active_and_pending_sessions():
    sessions = DeviceSessions(KEY, AuthPolicy(idle_timeout_s=10, absolute_timeout_s=100))
    active, _ = open_confirmed(sessions, 0.0)
    pending, _ = opened(sessions, b"p" * 16, 5.0)
    assert sessions.expire_due(10.0) == []
    assert sessions.expire_due(10.5) == [active]
    assert sessions.active is None and sessions.pending is pending
    assert sessions.expire_due(15.5) == [pending]
    assert sessions.pending is None


def test_failed_tags_do_not_refresh_idle_time():
    """Only verified frames count as activity: forged frames cannot keep a session alive."""
    sessions = DeviceSessions(KEY, AuthPolicy(idle_timeout_s=300))
    _, host = open_confirmed(sessions, 0.0)
    for now in (100.0, 200.0, 299.0):
        with pytest.raises(MacError):
            sessions.authenticate(_with(host.seal(0x10, 0, b""), tag=bytes(TAG_SIZE)), now)
    with pytest.raises(SessionExpired):
        sessions.authenticate(host.seal(0x10, 0, b""), 301.0)


def test_new_open_replaces_pending_but_not_active():
    """SPEC 3.5: a stranger's SessionOpen cannot end a working session."""
    sessions = DeviceSessions(KEY, rng=random.Random(9).randbytes)
    active, host = open_confirmed(sessions, 0.0)
    first, _ = opened(sessions, b"1" * 16, 1.0)
    second, _ = opened(sessions, b"2" * 16, 2.0)
    assert sessions.active is active and sessions.pending is second
    assert second.session_id not in (0, active.session_id)
    with pytest.raises(NoSession):
        sessions.authenticate(first.seal(0x03, 0, b""), 3.0)  # the replaced pending session is gone
    sessions.authenticate(host.seal(0x10, 9, b""), 3.0)


def test_resent_open_with_the_same_nonce_returns_the_same_pending_session():
    """SPEC 3.5 retries: a repeated host nonce gets the same pending session (id and device nonce)."""
    sessions = DeviceSessions(KEY, rng=random.Random(4).randbytes)
    first, nonce_1 = opened(sessions, b"n" * 16, 0.0)
    again, nonce_2 = opened(sessions, b"n" * 16, 1.0)
    assert again is first and nonce_2 == nonce_1
    other, nonce_3 = opened(sessions, b"m" * 16, 2.0)
    assert other is not first and other.session_id != first.session_id and nonce_3 != nonce_1
    assert sessions.pending is other


def test_an_open_re_sent_after_its_pending_session_expired_is_a_replay():
    """A host nonce is single-use: once its pending session expired, the host opens with a new one."""
    sessions = DeviceSessions(KEY, AuthPolicy(idle_timeout_s=10), rng=random.Random(4).randbytes)
    first, _ = opened(sessions, b"n" * 16, 0.0)
    with pytest.raises(ReplayError):
        opened(sessions, b"n" * 16, 11.0)
    later, _ = opened(sessions, b"o" * 16, 11.0)
    assert later is not first


def test_session_id_is_never_zero():
    """The device redraws a zero session id (0 means 'no session' on the wire)."""
    draws = iter([bytes(16), bytes(4), bytes(4), b"\x07\x00\x00\x00"])
    sessions = DeviceSessions(KEY, rng=lambda n: next(draws))
    session, _ = opened(sessions, b"h" * 16, 0.0)
    assert session.session_id == 7


# --- DeviceSessions: lockout ---------------------------------------------------------------------


def test_five_failures_within_window_lock_out_opens_that_do_not_prove_the_key():
    """R13: 5 failures within 60 s lock out session opening for 1 s, but not for a key holder."""
    sessions = DeviceSessions(KEY)
    pending, _ = opened(sessions, b"h" * 16, 0.0)
    assert [sessions.record_failure(t) for t in (10.0, 20.0, 30.0, 40.0)] == [False] * 4
    with pytest.raises(MacError):  # four failures: a wrong proof is still judged, not locked out
        sessions.open(b"g" * 16, bytes(16), 41.0)
    assert sessions.record_failure(50.0) is True
    assert sessions.pending is pending  # only a key holder could have opened it: it stays
    with pytest.raises(LockedOut) as info:
        sessions.open(b"x" * 16, bytes(16), 50.25)
    assert info.value.retry_after_s == pytest.approx(0.75)
    assert info.value.code == ErrorCode.LOCKED_OUT
    assert isinstance(info.value, AuthError)
    served, _ = opened(sessions, b"k" * 16, 50.5)  # a key holder is served during the lockout
    assert sessions.pending is served and served is not pending
    with pytest.raises(MacError):
        sessions.open(b"y" * 16, bytes(16), 51.0)  # the lock is over after 1 s


def test_a_wrong_proof_never_creates_a_session():
    sessions = DeviceSessions(KEY)
    with pytest.raises(MacError, match="proof of the pairing key"):
        sessions.open(b"a" * 16, open_proof(bytes(32), b"a" * 16), 0.0)
    assert sessions.pending is None


def test_a_used_host_nonce_is_a_replay_except_the_retry_of_the_pending_open():
    sessions = DeviceSessions(KEY, rng=random.Random(5).randbytes)
    first, _ = opened(sessions, b"1" * 16, 0.0)
    assert opened(sessions, b"1" * 16, 0.5)[0] is first  # the re-sent open of the pending session
    opened(sessions, b"2" * 16, 1.0)  # another open replaces the pending one
    with pytest.raises(ReplayError, match="used before"):
        opened(sessions, b"1" * 16, 2.0)  # a recorded open sent again
    assert sessions.record_failure(3.0) is False  # (the endpoint does not count replays)


def test_failures_spread_beyond_the_window_never_lock():
    sessions = DeviceSessions(KEY)
    for index in range(20):
        assert sessions.record_failure(index * 15.1) is False  # at most 4 within any 60 s
    opened(sessions, b"h" * 16, 400.0)


def test_lockout_doubles_up_to_60_seconds_and_resets_after_confirm():
    """Each new lockout lasts twice the previous one, capped at 60 s; a successful confirm resets it."""
    sessions = DeviceSessions(KEY)
    now = 0.0
    lengths = []
    for _ in range(9):
        for _ in range(5):
            now += 0.01
            sessions.record_failure(now)
        lengths.append(round(sessions.locked_until - now, 6))
        with pytest.raises(LockedOut) as info:
            sessions.open(b"h" * 16, bytes(16), now)
        assert info.value.retry_after_s == pytest.approx(lengths[-1])
        now = sessions.locked_until + 61.0  # past the lock and the failure window
    assert lengths == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]
    open_confirmed(sessions, now)
    for _ in range(5):
        now += 0.01
        sessions.record_failure(now)
    assert sessions.locked_until - now == pytest.approx(1.0)


def test_confirm_clears_counted_failures():
    """Four failures, a successful confirm, four more failures: no lockout."""
    sessions = DeviceSessions(KEY)
    for t in (1.0, 2.0, 3.0, 4.0):
        sessions.record_failure(t)
    open_confirmed(sessions, 5.0)
    for t in (6.0, 7.0, 8.0, 9.0):
        assert sessions.record_failure(t) is False
    opened(sessions, b"h" * 16, 10.0)
