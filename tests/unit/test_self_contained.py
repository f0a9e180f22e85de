"""The repo stands alone: no file names a path outside it (a sibling checkout, a build machine's dirs).

Every absolute path written in a text file must start with a system directory or a documented
placeholder; captured tool output under tests/fixtures/ may hold other machines' paths (a job's
working directory in squeue JSON) but never one of this project's build machines.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

from tests.support.helpers import REPO

SKIP_DIRS = {"__pycache__", "build", "dist", "node_modules"}
# Forbidden in every file, captures included: the sibling checkout and build-machine directories.
# (Spelled in pieces so that this file passes its own scan.)
_SIBLING, _BUILD_DIRS = r"\.\./" + "shared", "|".join(["wo" + "rk", "ro" + "ot", "sha" + "red"])
FORBIDDEN = re.compile(_SIBLING + r"|(?<![\w.~-])/(?:" + _BUILD_DIRS + r")(?![\w.-])")
# An absolute path: a slash right after a delimiter, then a name.
ABSOLUTE = re.compile(r"""(?:^|(?<=[\s"'=(\[,:`<]))/([A-Za-z_][\w.+-]*)(/[\w.@+-]*)*""")
SYSTEM_DIRS = {"usr", "etc", "sys", "proc", "dev", "var", "tmp", "run", "bin", "sbin", "lib", "lib64", "opt"}
# Placeholders in docs and tests: /path/to/..., /nonexistent, /sw/... (an install prefix in an
# example), one-letter dummies (/p, /x/slurm.conf) that name no directory of any machine.
PLACEHOLDERS = {"path", "nonexistent", "sw"}


def _text_files() -> Iterator[Path]:
    for root, dirs, files in os.walk(REPO):
        dirs[:] = sorted(d for d in dirs if (d == ".ci" or not d.startswith(".")) and d not in SKIP_DIRS
                         and not d.endswith(".egg-info"))
        for name in sorted(files):
            if name.startswith(".") and name != ".gitignore":
                continue  # .git (a worktree's pointer), caches
            path = Path(root) / name
            if path.suffix in {".pyc", ".npz", ".so", ".o", ".gz"}:
                continue
            yield path


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError):
        return None


def _foreign_paths(text: str) -> list[str]:
    found = []
    for match in ABSOLUTE.finditer(text):
        top = match.group(1).rstrip(".")
        end = match.end()
        if match.group(2) is None and text[end:end + 1] == ":":
            continue  # a selector like leaf:/switch:, not a path
        if match.group(2) is None and text[match.start() - 1:match.start()] == "<" and text[end:end + 1] == ">":
            continue  # a closing tag like </text> in generated HTML/SVG, not a path
        if top in SYSTEM_DIRS or top in PLACEHOLDERS or len(top.split(".")[0]) == 1:
            continue
        found.append(match.group(0))
    return found


def test_the_scan_sees_the_whole_repo() -> None:
    rel = {p.relative_to(REPO).as_posix() for p in _text_files()}
    for must in ("README.md", "docs/contract.md", "gpupool/cli/main.py", "scripts/bootstrap", "scripts/test",
                 "tests/support/helpers.py", "tests/fixtures/ibnetdiscover/dgx-superpod-ndr.out", ".ci/run"):
        assert must in rel


def test_the_patterns_catch_what_they_are_for() -> None:
    home, scratch = "/" + "home/alice/fabric.json", "/" + "scratch/x.out"
    assert FORBIDDEN.search('FIX = Path("../' + 'shared/fixtures/x.out")')
    assert FORBIDDEN.search("see /" + "work/main/README.md")
    assert FORBIDDEN.search("HOME=/" + "root/")
    assert not FORBIDDEN.search("the network/work split, ~/work, framework/")
    assert _foreign_paths(f'open("{home}")') == [home]
    assert _foreign_paths(f"cp {scratch} .") == [scratch]
    assert _foreign_paths("a lock in /tmp. Then") == []
    assert _foreign_paths('<td>1</td></svg>') == [] and _foreign_paths(f"<{home}>") == [home]
    assert _foreign_paths('PATH="/usr/bin:/bin" leaf:/switch:/group: /etc/gpupool/config.toml') == []


def test_no_file_names_a_path_outside_the_repo() -> None:
    bad: list[str] = []
    for path in _text_files():
        text = _read(path)
        if text is None:
            continue
        rel = path.relative_to(REPO).as_posix()
        capture = rel.startswith("tests/fixtures/")
        for n, line in enumerate(text.splitlines(), 1):
            hits = [m.group(0) for m in FORBIDDEN.finditer(line)]
            if not capture:
                hits += _foreign_paths(line)
            bad += [f"{rel}:{n}: {hit}" for hit in hits]
    assert bad == [], "paths outside the repo:\n" + "\n".join(bad)
