"""Shared test constants and helpers (import as `tests.support.helpers`)."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"
DGX_FIXTURE = FIXTURES / "ibnetdiscover" / "dgx-superpod-ndr.out"
TRUNCATED_FIXTURE = FIXTURES / "ibnetdiscover" / "dgx-gb200-truncated.out"
GOLDEN = REPO / "tests" / "golden"


def assert_golden(name: str, text: str, *, golden_dir: Path | None = None) -> None:
    """Compare TEXT with tests/golden/NAME. A missing golden file fails the test; only an explicit
    GPUPOOL_UPDATE_GOLDEN=1 writes it (a golden file must never bless the code that produced it)."""
    path = (golden_dir or GOLDEN) / name
    if os.environ.get("GPUPOOL_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    if not path.exists():
        raise AssertionError(f"golden file {path} is missing (GPUPOOL_UPDATE_GOLDEN=1 writes it; "
                             "review the diff before committing)")
    assert text == path.read_text(), f"{name} differs from its golden file (GPUPOOL_UPDATE_GOLDEN=1 to accept)"


def require_tool(*names: str, why: str) -> str:
    """Path of the first of NAMES on PATH. Absent: a skip on a developer's machine (unit tests need
    no Debian packages), a failure in CI (`CI` set), where scripts/bootstrap installs them all."""
    import shutil

    import pytest

    for name in names:
        found = shutil.which(name)
        if found:
            return found
    message = f"{' or '.join(names)} not installed: {why} (scripts/bootstrap installs it)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)
