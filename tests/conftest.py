"""Shared fixtures, and the hypothesis profiles (issue 29).

Profiles (`GPUPOOL_HYPOTHESIS_PROFILE`, else `ci` when `CI` is set, else `dev`):
- `dev`: hypothesis' defaults (random seeds, examples saved in no database).
- `ci`: derandomized (each test's seed is fixed, derived from its name, so a CI failure replays
  the same on any machine), `print_blob` (the failing example's reproduce blob is printed).
- `nightly`: random seeds printed with any failure, 10x the fuzz examples
  (`GPUPOOL_FUZZ_EXAMPLES` default 1500 instead of 150) and 5x the other tests' examples.
The profile in use is printed at the end of every pytest run (also under -q).
"""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

settings.register_profile("dev", database=None)
settings.register_profile("ci", database=None, derandomize=True, print_blob=True)
settings.register_profile("nightly", database=None, print_blob=True, max_examples=500)
HYPOTHESIS_PROFILE = os.environ.get("GPUPOOL_HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
settings.load_profile(HYPOTHESIS_PROFILE)


def hypothesis_line() -> str:
    current = settings.get_profile(HYPOTHESIS_PROFILE)
    seed = "fixed per test (derived from its name)" if current.derandomize else "random, printed on failure"
    return (f"gpupool hypothesis profile: {HYPOTHESIS_PROFILE} (derandomize={current.derandomize}, "
            f"print_blob={current.print_blob}, max_examples={current.max_examples}; seed {seed})")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    terminalreporter.write_line(hypothesis_line())


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """Run `gpupool` in-process; returns (exit code, stdout, stderr)."""
    from gpupool.cli.main import main

    def _run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    return _run


@pytest.fixture(autouse=True)
def _user_cache_in_tmp(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Caches that fall back to ${XDG_CACHE_HOME:-~/.cache} (an unwritable fabric directory) stay in tmp."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "xdg-cache"))
