"""CLI contract: exit codes, one-line errors without tracebacks, lazy imports, JSON purity."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.support.helpers import DGX_FIXTURE, TRUNCATED_FIXTURE

PY = sys.executable


def _gpupool(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([PY, "-m", "gpupool", *args], capture_output=True, text=True, timeout=120, env=full_env)


def test_help_does_not_import_numba_numpy_or_slurm() -> None:
    code = (
        "import sys\n"
        "from gpupool.cli.main import main\n"
        "rc = main(['--help'])\n"
        "heavy = [m for m in ('numba', 'numpy', 'gpupool.slurm', 'pynvml', 'gpupool.placement') if m in sys.modules]\n"
        "print('HEAVY', heavy, rc)\n"
    )
    out = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=60).stdout
    assert "HEAVY [] 0" in out


def test_group_help_lists_every_command_group() -> None:
    proc = _gpupool("--help")
    assert proc.returncode == 0
    for name in ("fabric", "plan", "submit", "jobs", "pool", "node"):
        assert name in proc.stdout


def test_truncated_fixture_one_line_error_exit_4(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "f.json"
    proc = _gpupool("fabric", "discover", "--ibnetdiscover", str(TRUNCATED_FIXTURE), "-o", str(out))
    assert proc.returncode == 4
    assert proc.stderr.startswith("gpupool: error: ") and proc.stderr.count("\n") == 1
    assert "Traceback" not in proc.stderr and str(TRUNCATED_FIXTURE) in proc.stderr
    assert not out.exists()  # nothing half-written


def test_debug_shows_traceback(tmp_path) -> None:  # type: ignore[no-untyped-def]
    proc = _gpupool("--debug", "fabric", "discover", "--ibnetdiscover", str(TRUNCATED_FIXTURE), "-o", str(tmp_path / "f"))
    assert proc.returncode != 0 and "Traceback" in proc.stderr


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["fabric", "show", "--fabric", "/nonexistent/f.json"], 4, "fabric file not found"),
        (["fabric", "discover", "--ibnetdiscover", "/nonexistent", "-o", "/tmp/x"], 4, "not found"),
        (["fabric", "discover", "--live", "--ibnetdiscover", "x", "-o", "/tmp/x"], 2, "exactly one of"),
        (["fabric", "generate", "fat-tree", "--leaves", "0", "--hosts-per-leaf", "2", "--spines", "1", "-o", "/tmp/x"], 2, "--leaves"),
        (["fabric", "export", "--fabric", "/nonexistent", "--format", "nope"], 2, "nope"),
    ],
)
def test_expected_errors(run_cli, args: list[str], code: int, needle: str) -> None:  # type: ignore[no-untyped-def]
    rc, out, err = run_cli(*args)
    assert rc == code
    assert needle in err
    assert "Traceback" not in err


def test_no_fabric_configured_is_usage_error(run_cli, monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("GPUPOOL_FABRIC", raising=False)
    monkeypatch.setenv("GPUPOOL_CONFIG", str(tmp_path / "missing.toml"))
    rc, _out, err = run_cli("fabric", "show")
    assert rc == 4 and "config file not found" in err
    cfg = tmp_path / "c.toml"
    cfg.write_text('fabric = "fab.json"\n')
    monkeypatch.setenv("GPUPOOL_CONFIG", str(cfg))
    rc, _out, err = run_cli("fabric", "show")
    assert rc == 4 and str(tmp_path / "fab.json") in err  # config-relative path is resolved


def test_generate_show_export_roundtrip_json_only_on_stdout(run_cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    fab = str(tmp_path / "ft.json")
    rc, out, _ = run_cli("fabric", "generate", "fat-tree", "--leaves", "4", "--hosts-per-leaf", "2", "--spines", "2", "-o", fab, "--json")
    assert rc == 0 and json.loads(out)["hosts"] == 8
    rc, out, _ = run_cli("fabric", "show", "--fabric", fab, "--json")
    doc = json.loads(out)
    assert doc["kind"] == "fat-tree" and doc["levels"] == {"1": 4, "2": 2} and doc["switches"] == 6 and doc["links"] == 16
    conf = tmp_path / "topology.conf"
    rc, _out, _ = run_cli("fabric", "export", "--fabric", fab, "--format", "slurm-tree", "-o", str(conf))
    assert rc == 0 and "SwitchName=leaf01 Nodes=gpu[001-002]" in conf.read_text()
    rc, out, _ = run_cli("fabric", "export", "--fabric", fab, "--format", "slurm-tree", "--diff", str(conf))
    assert rc == 0 and out == ""
    conf.write_text(conf.read_text().replace("gpu[001-002]", "gpu[001-003]"))
    rc, out, _ = run_cli("fabric", "export", "--fabric", fab, "--format", "slurm-tree", "--diff", str(conf))
    assert rc == 1 and "-SwitchName=leaf01 Nodes=gpu[001-003]" in out and "+SwitchName=leaf01 Nodes=gpu[001-002]" in out


def test_discover_dgx_with_hosts_filter(run_cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    fab = str(tmp_path / "dgx.json")
    rc, out, err = run_cli("fabric", "discover", "--ibnetdiscover", str(DGX_FIXTURE), "--hosts", "a07-p1-dgx-03-c[01-18]", "-o", fab, "--json")
    assert rc == 0, err
    assert json.loads(out)["hosts"] == 18
    rc, out, err = run_cli("fabric", "discover", "--ibnetdiscover", str(DGX_FIXTURE), "--hosts", "nosuchhost01", "-o", fab)
    assert rc == 4 and "nosuchhost01" in err


def test_plain_output_has_no_ansi(tmp_path) -> None:  # type: ignore[no-untyped-def]
    fab = str(tmp_path / "ft.json")
    assert _gpupool("fabric", "generate", "fat-tree", "--leaves", "2", "--hosts-per-leaf", "2", "--spines", "1", "-o", fab).returncode == 0
    proc = _gpupool("fabric", "show", "--fabric", fab)
    assert proc.returncode == 0 and "\x1b[" not in proc.stdout and "leaf01" in proc.stdout


def test_existing_file_survives_failed_write(run_cli, tmp_path) -> None:  # type: ignore[no-untyped-def]
    target = tmp_path / "f.json"
    target.write_text("precious")
    rc, _o, _e = run_cli("fabric", "discover", "--ibnetdiscover", str(TRUNCATED_FIXTURE), "-o", str(target))
    assert rc == 4 and target.read_text() == "precious"
    rc, _o, _e = run_cli("fabric", "generate", "fat-tree", "--leaves", "1", "--hosts-per-leaf", "1", "--spines", "1", "-o", str(target), "--backup")
    assert rc == 0 and (tmp_path / "f.json.bak").read_text() == "precious"
