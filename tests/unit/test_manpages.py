"""Man pages in man/ are generated from the click definitions and must not drift."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from gpupool.cli.manpages import all_pages
from tests.support.helpers import REPO, require_tool


def test_man_pages_match_code(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    pages = all_pages()
    on_disk = {p.name: p.read_text() for p in (REPO / "man").glob("*.1")}
    assert set(on_disk) == set(pages), "man/ pages differ from the command set: run scripts/gen-man"
    for name, text in pages.items():
        assert on_disk[name] == text, f"man/{name} drifted from the code: run scripts/gen-man"



def test_main_page_renders() -> None:
    renderer = require_tool("man", "groff", why="renders the man page")
    page = str(REPO / "man" / "gpupool.1")
    tool = [renderer, "-l", page] if Path(renderer).name == "man" else [renderer, "-man", "-Tascii", page]
    proc = subprocess.run(tool, capture_output=True, text=True, timeout=60, env={"MANPAGER": "cat", "PAGER": "cat", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0 and "gpupool" in proc.stdout
