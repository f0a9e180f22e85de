"""app.node: the Prolog path's use case (exit policy and drain), with the check itself replaced by a
hand-made report so each case is known exactly."""

from __future__ import annotations

import pytest

from gpupool.app import node as node_app
from gpupool.node.check_run import CheckReport
from gpupool.node.settings import settings_from_table


class RecordingSlurm:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.drained: list[tuple[str, str]] = []

    def drain(self, node: str, reason: str) -> None:
        if self.fail:
            raise RuntimeError("slurmctld down")
        self.drained.append((node, reason))


def _run(monkeypatch: pytest.MonkeyPatch, status: str, mode: str, *, strict: bool = False, drain: bool = True,
         slurm: RecordingSlurm | None = None) -> node_app.NodeCheckOutcome:
    report = CheckReport(status=status, mode=mode, node="gpu007", unknown=["nvml: no answer"] if status == "UNKNOWN"
                         else [])
    monkeypatch.setattr(node_app, "check_node", lambda *args, **kwargs: report)
    return node_app.run_node_check(settings_from_table({}), mode, {}, strict=strict, drain=drain, deep=False,
                                   gpu_source=object(), hca_source=object(), slurm=slurm)  # type: ignore[arg-type]


# (status, mode, strict) -> (exit code, drained?): as Prolog/Epilog only CRITICAL (and UNKNOWN with
# --strict) fail and drain; by hand the monitoring code, and never a drain (docs/contract.md).
CASES = [
    ("OK", "prolog", False, 0, False), ("WARNING", "prolog", False, 0, False), ("CRITICAL", "prolog", False, 2, True),
    ("UNKNOWN", "prolog", False, 0, False), ("UNKNOWN", "prolog", True, 3, True), ("CRITICAL", "epilog", False, 2, True),
    ("WARNING", "manual", False, 1, False), ("CRITICAL", "manual", False, 2, False),
]


@pytest.mark.parametrize(("status", "mode", "strict", "code", "drains"), CASES)
def test_exit_policy_and_drain(monkeypatch: pytest.MonkeyPatch, status: str, mode: str, strict: bool, code: int,
                               drains: bool) -> None:
    slurm = RecordingSlurm()
    outcome = _run(monkeypatch, status, mode, strict=strict, slurm=slurm)
    assert outcome.exit_code == code
    assert outcome.drained is drains and [n for n, _ in slurm.drained] == (["gpu007"] if drains else [])
    assert outcome.drain_error is None


def test_no_drain_without_the_option(monkeypatch: pytest.MonkeyPatch) -> None:
    slurm = RecordingSlurm()
    outcome = _run(monkeypatch, "CRITICAL", "prolog", drain=False, slurm=slurm)
    assert (outcome.exit_code, outcome.drained, slurm.drained) == (2, False, [])


def test_a_failed_drain_is_reported_and_keeps_the_exit_code(monkeypatch: pytest.MonkeyPatch) -> None:
    outcome = _run(monkeypatch, "CRITICAL", "prolog", slurm=RecordingSlurm(fail=True))
    assert (outcome.exit_code, outcome.drained, outcome.drain_error) == (2, False, "slurmctld down")


def test_the_use_case_imports_no_slurm_client_when_healthy() -> None:
    import subprocess
    import sys

    code = ("import sys; import gpupool.app.node; "
            "print(sorted(m for m in sys.modules if m.startswith('gpupool.slurm') or m.split('.')[0] in "
            "('rich', 'numba', 'numpy', 'yaml')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[]"


def test_a_node_not_ok_is_logged_and_an_unwritable_log_is_a_warning(monkeypatch: pytest.MonkeyPatch,
                                                                     tmp_path: object) -> None:
    from pathlib import Path

    log = Path(str(tmp_path)) / "node.log"
    report = CheckReport(status="WARNING", mode="prolog", node="gpu007")
    monkeypatch.setattr(node_app, "check_node", lambda *args, **kwargs: report)
    settings = settings_from_table({"log_file": str(log)})
    outcome = node_app.run_node_check(settings, "prolog", {}, strict=False, drain=False, deep=False,
                                      gpu_source=object(), hca_source=object())  # type: ignore[arg-type]
    assert outcome.log_line is not None and " gpu007 prolog job=- status=WARNING " in outcome.log_line
    assert log.read_text() == outcome.log_line and outcome.log_error is None
    blocked = settings_from_table({"log_file": str(log / "under-a-file.log")})
    outcome = node_app.run_node_check(blocked, "prolog", {}, strict=False, drain=False, deep=False,
                                      gpu_source=object(), hca_source=object())  # type: ignore[arg-type]
    assert outcome.log_error is not None and outcome.log_error.startswith(f"cannot write log {log}/under-a-file.log:")
    report.status = "OK"
    assert node_app.run_node_check(settings, "prolog", {}, strict=False, drain=False, deep=False, gpu_source=object(),
                                   hca_source=object()).log_line is None  # type: ignore[arg-type]
    assert log.read_text().count("\n") == 1  # nothing more written for a healthy node
