"""The I/O loop's spin rule and its command-line setting."""

from __future__ import annotations

import pytest

from device_mock.cli import build_parser
from device_mock.server import DEFAULT_SPIN_S, spin_deadline


def test_a_host_back_within_the_window_gets_a_window_after_this_answer():
    assert spin_deadline(arrived=10.0003, last_done=10.0, done=10.0004, spin_s=0.0005) == pytest.approx(10.0009)


def test_a_host_that_paused_longer_than_the_window_gets_none():
    assert spin_deadline(arrived=11.0, last_done=10.0, done=11.0001, spin_s=0.0005) == 0.0


def test_the_first_request_after_start_gets_none():
    assert spin_deadline(arrived=1234.5, last_done=0.0, done=1234.5001, spin_s=DEFAULT_SPIN_S) == 0.0


def test_a_zero_window_never_spins():
    assert spin_deadline(arrived=10.0, last_done=10.0, done=10.0001, spin_s=0.0) == 0.0


def test_spin_us_defaults_to_the_loop_default_and_takes_zero():
    assert build_parser().parse_args([]).spin_us == round(DEFAULT_SPIN_S * 1e6)
    assert build_parser().parse_args(["--spin-us", "0"]).spin_us == 0


@pytest.mark.parametrize(("value", "message"), [("-1", "outside 0..100000"), ("2.5", "not a whole number")])
def test_bad_spin_us_is_refused_with_the_reason(value, message, capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["--spin-us", value])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
