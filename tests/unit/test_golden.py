"""assert_golden never blesses itself: a missing golden file fails, only GPUPOOL_UPDATE_GOLDEN=1 writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.helpers import GOLDEN, REPO, assert_golden


def test_missing_golden_file_fails_and_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GPUPOOL_UPDATE_GOLDEN", raising=False)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(AssertionError, match="missing"):
        assert_golden("nosuch.topology.conf", "SwitchName=s1 Nodes=n1\n", golden_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_differing_golden_file_fails_and_is_left_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GPUPOOL_UPDATE_GOLDEN", raising=False)
    (tmp_path / "g.conf").write_text("old\n")
    with pytest.raises(AssertionError, match="differs"):
        assert_golden("g.conf", "new\n", golden_dir=tmp_path)
    assert (tmp_path / "g.conf").read_text() == "old\n"


@pytest.mark.parametrize("value", ["", "0", "yes", "true"])
def test_only_the_exact_update_switch_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("GPUPOOL_UPDATE_GOLDEN", value)
    with pytest.raises(AssertionError):
        assert_golden("g.conf", "x\n", golden_dir=tmp_path)
    assert not (tmp_path / "g.conf").exists()


def test_update_switch_writes_the_golden_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPUPOOL_UPDATE_GOLDEN", "1")
    assert_golden("g.conf", "x\n", golden_dir=tmp_path)
    assert (tmp_path / "g.conf").read_text() == "x\n"


def test_every_golden_file_is_checked_by_some_test() -> None:
    # An orphan golden file is a check nobody runs; deleting a used one must fail its test (above).
    sources = "\n".join(p.read_text() for p in (REPO / "tests").rglob("*.py"))
    orphans = [p.name for p in sorted(GOLDEN.iterdir()) if p.is_file() and f'"{p.name}"' not in sources]
    assert orphans == []
