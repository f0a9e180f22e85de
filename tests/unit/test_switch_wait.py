"""The wait for a compact placement (`gpupool.switch_wait`): parsing, the wait per time limit, Slurm's format."""

from __future__ import annotations

import pytest

from gpupool.app.simulate import parse_switches
from gpupool.errors import BadRequest
from gpupool.slurm.duration import format_seconds
from gpupool.switch_wait import DEFAULT, FALLBACK_SECONDS, SwitchWait


@pytest.mark.parametrize(("text", "share", "seconds"), [
    ("25%", 0.25, 0.0), ("100%", 1.0, 0.0), ("0%", 0.0, 0.0), ("12.5%", 0.125, 0.0), (" 50 % ", 0.5, 0.0),
    ("300", 0.0, 300.0), ("5:00", 0.0, 300.0), ("1:00:00", 0.0, 3600.0), ("0", 0.0, 0.0), ("1.5", 0.0, 1.5),
])
def test_parse(text: str, share: float, seconds: float) -> None:
    rule = SwitchWait.parse(text)
    assert (rule.share, rule.seconds) == (share, seconds)


@pytest.mark.parametrize("text", ["", "%", "101%", "-5%", "٣0%", "²", "1:2:3:4", "1::2", "abc", "nan%", "inf",
                                  "1e3", "9999999999999", "10%%"])
def test_parse_refuses(text: str) -> None:
    with pytest.raises(BadRequest, match="--switch-wait"):
        SwitchWait.parse(text)


@pytest.mark.parametrize(("rule", "limit", "wait"), [
    (SwitchWait(share=0.25), 7200.0, 1800.0), (SwitchWait(share=0.25), None, FALLBACK_SECONDS),
    (SwitchWait(share=0.25), 0.0, FALLBACK_SECONDS), (SwitchWait(share=0.1), float("inf"), FALLBACK_SECONDS),
    (SwitchWait(seconds=300.0), 7200.0, 300.0), (SwitchWait(seconds=300.0), None, 300.0),
])
def test_wait_for_a_limit(rule: SwitchWait, limit: float | None, wait: float) -> None:
    assert rule.for_limit(limit) == wait


def test_no_wait_is_false_and_the_default_is_a_quarter() -> None:
    assert not SwitchWait() and not SwitchWait.parse("0") and not SwitchWait.parse("0%")
    assert DEFAULT.share == 0.25 and DEFAULT.text() == "25%" and SwitchWait(seconds=90).text() == "90"


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "00:00:00"), (59.2, "00:01:00"), (1800, "00:30:00"), (3661, "01:01:01"), (86400, "1-00:00:00"),
    (2 * 86400 + 3 * 3600 + 4 * 60 + 5, "2-03:04:05"),
])
def test_format_seconds_is_slurm_time(seconds: float, text: str) -> None:
    assert format_seconds(seconds) == text


@pytest.mark.parametrize(("text", "leaves", "share", "seconds"), [
    ("0@300", 0, 0.0, 300.0), ("2@1:00:00", 2, 0.0, 3600.0), ("0@25%", 0, 0.25, 0.0), ("1", 1, 0.0, 300.0),
])
def test_simulate_switches_take_a_share(text: str, leaves: int, share: float, seconds: float) -> None:
    n, rule = parse_switches(text)
    assert (n, rule.share, rule.seconds) == (leaves, share, seconds)


@pytest.mark.parametrize("text", ["-1@300", "x@300", "٣@300", "0@soon", "0@200%"])
def test_simulate_switches_refused(text: str) -> None:
    with pytest.raises(BadRequest, match="--switches"):
        parse_switches(text)
