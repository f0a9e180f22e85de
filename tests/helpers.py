"""Shared test constants and helpers (import as `tests.helpers`)."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"
DGX_FIXTURE = FIXTURES / "ibnetdiscover" / "dgx-superpod-ndr.out"
TRUNCATED_FIXTURE = FIXTURES / "ibnetdiscover" / "dgx-gb200-truncated.out"
GOLDEN = Path(__file__).resolve().parent / "golden"


def assert_golden(name: str, text: str) -> None:
    """Compare with tests/golden/NAME; GPUPOOL_UPDATE_GOLDEN=1 rewrites it."""
    path = GOLDEN / name
    if os.environ.get("GPUPOOL_UPDATE_GOLDEN") == "1" or not path.exists():
        if os.environ.get("CI") and not path.exists():
            raise AssertionError(f"golden file {path} is missing")
        path.write_text(text)
    assert text == path.read_text(), f"{name} differs from its golden file (GPUPOOL_UPDATE_GOLDEN=1 to accept)"
