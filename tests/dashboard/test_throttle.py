"""The log-in throttle on an injected clock: free failures, doubling waits up to the cap, keys, forgetting."""

from __future__ import annotations

import threading

import pytest

from dashboard.throttle import LoginThrottle, retry_text


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def throttle(clock) -> LoginThrottle:
    return LoginThrottle(free_failures=5, first_delay_s=1.0, max_delay_s=300.0, clock=clock)


def fail(throttle: LoginThrottle, times: int, user: str = "viewer", address: str = "10.0.0.1") -> None:
    for _ in range(times):
        assert throttle.begin(user, address) is None


def test_five_failures_are_free_then_the_wait_doubles_per_failure_up_to_the_cap(throttle, clock):
    fail(throttle, 5)
    waits = []
    for _ in range(12):
        refusal = throttle.begin("viewer", "10.0.0.1")
        assert refusal is not None
        waits.append(refusal.wait_s)
        clock.now += refusal.wait_s  # wait exactly as long as told, then fail again
        fail(throttle, 1)
    assert waits == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]


def test_a_refused_attempt_does_not_count_or_move_the_wait(throttle, clock):
    fail(throttle, 5)
    clock.now += 0.5
    assert throttle.begin("viewer", "10.0.0.1").wait_s == 0.5
    assert throttle.begin("viewer", "10.0.0.1").wait_s == 0.5
    assert throttle.failures("user", "viewer") == 5
    clock.now += 0.5
    assert throttle.begin("viewer", "10.0.0.1") is None


def test_the_user_name_is_throttled_from_any_address(throttle):
    for i in range(5):
        fail(throttle, 1, address=f"10.0.0.{i}")
    refusal = throttle.begin("viewer", "10.9.9.9")
    assert (refusal.kind, refusal.failures) == ("user", 5)
    assert "this user name" in refusal.message()


def test_the_address_is_throttled_for_any_user_name(throttle):
    for i in range(5):
        fail(throttle, 1, user=f"guess{i}")
    refusal = throttle.begin("clinician", "10.0.0.1")
    assert (refusal.kind, refusal.failures) == ("address", 5)
    assert refusal.message() == "Too many failed log-ins for this address. Try again in 1 second."
    assert throttle.begin("clinician", "10.0.0.2") is None


def test_success_clears_the_user_but_not_the_address(throttle):
    fail(throttle, 4)
    assert throttle.begin("viewer", "10.0.0.1") is None
    throttle.succeeded("viewer", "10.0.0.1")
    assert throttle.failures("user", "viewer") == 0
    assert throttle.failures("address", "10.0.0.1") == 4  # a guesser's own account does not reset it


def test_counts_are_forgotten_after_a_quiet_period(throttle, clock):
    fail(throttle, 5)
    clock.now += throttle.forget_after_s
    assert throttle.failures("user", "viewer") == 0
    assert throttle.begin("viewer", "10.0.0.1") is None


def test_parallel_attempts_cannot_all_slip_in_before_the_first_failure(throttle):
    admitted: list[bool] = []
    barrier = threading.Barrier(20)

    def attempt() -> None:
        barrier.wait()
        admitted.append(throttle.begin("viewer", "10.0.0.1") is None)

    threads = [threading.Thread(target=attempt) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert admitted.count(True) == 5


def test_the_table_is_bounded(clock):
    throttle = LoginThrottle(max_keys=3, clock=clock)
    for i in range(10):
        assert throttle.begin(f"user{i}", f"10.0.0.{i}") is None
    assert [throttle.failures("user", f"user{i}") for i in range(10)] == [0] * 7 + [1] * 3


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"free_failures": 0}, "free_failures"),
        ({"first_delay_s": 0}, "first_delay_s"),
        ({"first_delay_s": 10, "max_delay_s": 5}, "max_delay_s"),
        ({"forget_after_s": 10}, "forget_after_s"),
        ({"max_keys": 0}, "max_keys"),
    ],
)
def test_unusable_thresholds_are_refused(kwargs, problem):
    with pytest.raises(ValueError, match=problem):
        LoginThrottle(**kwargs)


def test_waits_in_words():
    assert [retry_text(s) for s in (0.2, 1, 1.5, 16, 119, 120, 256, 300)] == [
        "1 second",
        "1 second",
        "2 seconds",
        "16 seconds",
        "119 seconds",
        "2 minutes",
        "4 min 16 s",
        "5 minutes",
    ]
