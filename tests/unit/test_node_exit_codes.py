"""Monitoring commands (`node check`, `fabric audit`) exit 0-3 only, whatever goes wrong."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gpupool.cli.context import AppContext
from gpupool.cli.main import main
from gpupool.node.deadline import Progress
from gpupool.node.facts import HcaPort

GPUPOOL = [sys.executable, "-m", "gpupool"]


def run(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "GPUPOOL_CONFIG": str(config), "GPUPOOL_NVML_LIBRARY": "/nonexistent/libnvidia-ml.so"}
    return subprocess.run([*GPUPOOL, *args], env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("argv", [
    ["node", "check", "--drian"],
    ["node", "check", "--prolog", "--drian"],
    ["node", "check", "--hca-source", "bogus"],
    ["node", "check", "extra-argument"],
    ["fabric", "audit", "--bogus"],
    ["fabric", "audit", "--route-samples", "-1"],
])
def test_usage_errors_are_unknown(tmp_path: Path, argv: list[str]) -> None:
    (tmp_path / "c.toml").write_text("")
    done = run(*argv, config=tmp_path / "c.toml")
    assert done.returncode == 3, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpupool: error: ") and "UNKNOWN" in lines[0]
    with_json = run(*argv, "--json", config=tmp_path / "c.toml")
    assert with_json.returncode == 3
    assert json.loads(with_json.stdout)["status"] == "UNKNOWN"


def test_help_still_exits_zero(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text("")
    assert run("node", "check", "--help", config=tmp_path / "c.toml").returncode == 0


def test_bad_config_is_unknown_by_hand_and_no_drain_as_prolog(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text("[node]\nexpected_gpus = 'eight'\n")
    done = run("node", "check", config=tmp_path / "c.toml")
    assert done.returncode == 3 and done.stderr.startswith("gpupool: error: UNKNOWN")
    assert "expected_gpus" in done.stderr and "Traceback" not in done.stderr
    assert run("node", "check", "--prolog", config=tmp_path / "c.toml").returncode == 0
    assert run("node", "check", "--prolog", "--strict", config=tmp_path / "c.toml").returncode == 3


class ExplodingSource:
    def inventory(self, wanted: set[int] | None, topology: bool, progress: Progress) -> None:
        raise RuntimeError("bug in gpupool")


class NoHcas:
    name = "none"

    def ports(self) -> list[HcaPort]:
        return []


def test_internal_error_by_hand_is_unknown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "c.toml").write_text("")
    monkeypatch.setenv("GPUPOOL_CONFIG", str(tmp_path / "c.toml"))

    def broken_settings(*_args: object) -> None:
        raise ZeroDivisionError("boom")

    monkeypatch.setattr("gpupool.cli.node._settings", broken_settings)
    context = AppContext(gpu_source=ExplodingSource(), hca_source=NoHcas())  # type: ignore[arg-type]
    assert main(["node", "check"], obj=context) == 3
    assert capsys.readouterr().err.strip() == \
        "gpupool: error: UNKNOWN: node check could not run: ZeroDivisionError: boom"


def test_internal_error_in_fabric_audit_is_unknown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "c.toml").write_text("")
    monkeypatch.setenv("GPUPOOL_CONFIG", str(tmp_path / "c.toml"))

    def broken_run(*_args: object, **_kwargs: object) -> None:
        raise KeyError("oops")

    monkeypatch.setattr("gpupool.cli.fabric_audit._run", broken_run)
    assert main(["fabric", "audit", "--fabric", str(tmp_path / "f.json")]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["gpupool: error: internal error: KeyError: 'oops' (rerun with --debug)"]
