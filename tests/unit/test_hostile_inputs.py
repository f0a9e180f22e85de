"""Issue 19 items 4, 8 and 10: files and options with hostile values end in exit 2/4, never 70,
never unbounded work. Each case is an input from the hostile-input probe (see
tests/fixtures/hostile/README.md); expected outcomes are by hand from the contract."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from gpupool.cli.errors import exit_code_for
from gpupool.cli.main import main
from gpupool.errors import InputError
from gpupool.fabric.generate import fat_tree
from gpupool.fabric.model import save_fabric
from gpupool.hostlist import DEFAULT_LIMIT as MAX_HOSTLIST_NAMES
from gpupool.hostlist import size_bound as hostlist_size
from gpupool.pools.schema import parse_pools_text
from gpupool.validate import load_json_text

HOSTILE = Path(__file__).resolve().parents[1] / "fixtures" / "hostile"


@pytest.fixture
def fabric(tmp_path: Path) -> str:
    path = tmp_path / "tree.json"
    save_fabric(fat_tree(4, 4, 2), str(path))
    return str(path)


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(args)
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err, err
    return code, err


# -- item 4: names ending in a newline -------------------------------------------------------

@pytest.mark.parametrize("text", [
    'pools:\n  "vision\\n": {nodes: "gpu[001-004]"}\naccounts:\n  vision: {shares: 1}\n',
    'pools:\n  vision: {nodes: "gpu[001-004]"}\naccounts:\n  "vision\\n": {shares: 1}\n',
    'pools:\n  vision: {nodes: "gpu[001-004]"}\naccounts:\n  vision: {shares: 1, users: ["bob\\n"]}\n',
    'pools:\n  vision: {nodes: "gpu[001-004]"}\naccounts:\n  vision: {shares: 1}\nqueues:\n  "hi\\n": {priority: 1}\n',
    'pools:\n  vision: {nodes: "gpu[001-004]", owners: ["vision\\n"]}\naccounts:\n  vision: {shares: 1}\n',
])
def test_names_ending_in_newline_are_rejected(text: str) -> None:
    with pytest.raises(InputError) as info:
        parse_pools_text(text, "p.yaml")
    assert exit_code_for(info.value) == 4


# -- item 8: bounded work ----------------------------------------------------------------------

def test_yaml_alias_bomb_is_refused_at_once() -> None:
    text = (HOSTILE / "alias-bomb.yaml").read_text()
    start = time.monotonic()
    with pytest.raises(InputError, match="aliases"):
        parse_pools_text(text, "bomb.yaml")
    assert time.monotonic() - start < 5  # generous: the check is before any expansion


@pytest.mark.parametrize("text, size", [("x[1-100000000]", 100_000_000), ("a[1-3]b[1-4]", 12),
                                        ("a,b[1-2],c[1-10/3]", 7), ("gpu[001-016]", 16)])
def test_hostlist_size_is_counted_without_expanding(text: str, size: int) -> None:
    assert hostlist_size(text) == size


def test_exclude_hostlist_above_the_cap_is_exit_4(fabric: str, capsys: pytest.CaptureFixture[str]) -> None:
    free = Path(fabric).with_name("free.json")
    free.write_text('{"gpu001": 8}')
    code, err = _run(["plan", "--fabric", fabric, "--free", str(free), "--gpus", "1",
                      "--exclude", "x[1-100000000]"], capsys)
    assert code == 4 and str(MAX_HOSTLIST_NAMES) in err


def test_pools_hostlist_above_the_cap_is_refused() -> None:
    from gpupool.pools.nodes import resolve_nodes

    start = time.monotonic()
    with pytest.raises(ValueError, match="limit"):
        resolve_nodes(("gpu[1-100000000]",), None)
    assert time.monotonic() - start < 5


def test_huge_free_counts_are_exit_4(fabric: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    free = tmp_path / "free.json"
    free.write_text('{"gpu001": 1000000000}')
    code, err = _run(["plan", "--fabric", fabric, "--free", str(free), "--gpus", "1000000000"], capsys)
    assert code in (2, 4)


# -- item 10: exit 70 where 1-4 is due ---------------------------------------------------------

@pytest.mark.parametrize("name", sorted(p.name for p in HOSTILE.glob("free-*.json")))
def test_hostile_free_files_exit_4(name: str, fabric: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = _run(["plan", "--fabric", fabric, "--free", str(HOSTILE / name), "--gpus", "1"], capsys)
    assert code == 4


@pytest.mark.parametrize("name", sorted(p.name for p in HOSTILE.glob("fabric-*.json")))
def test_hostile_fabric_files_exit_4(name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    copy = tmp_path / name  # the cache is written next to the fabric file: keep the fixtures clean
    copy.write_bytes((HOSTILE / name).read_bytes())
    code, _ = _run(["fabric", "show", "--fabric", str(copy), "--json"], capsys)
    assert code == 4


@pytest.mark.parametrize("text", ['{"a": NaN}', '{"a": Infinity}', '{"a": 1e400}', "[" * 5000 + "]" * 5000,
                                  '{"a": ' + "9" * 5000 + "}", '{"a": "\\ud800"}'])
def test_strict_json(text: str) -> None:
    with pytest.raises(InputError):
        load_json_text(text, "x.json")


def test_plan_fabric_directory_is_exit_4(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(["plan", "--fabric", str(tmp_path), "--gpus", "1"], capsys)
    assert code == 4 and "directory" in err


@pytest.mark.parametrize("value", ["\u00b2", "1\u00b2", "9" * 5000])
def test_superscript_gpus_in_sbatch_lines(value: str, fabric: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "job.sh"
    script.write_text(f"#!/bin/bash\n#SBATCH --gpus={value}\nsrun true\n")
    code, _ = _run(["submit", "--fabric", fabric, "--dry-run", str(script)], capsys)
    assert code in (2, 4)
    code, _ = _run(["submit", "--fabric", fabric, "--dry-run", "--", f"--gpus-per-node={value}", "--wrap=true"],
                   capsys)
    assert code in (2, 4)
    code, _ = _run(["plan", "--fabric", fabric, "--gpus", value], capsys)
    assert code in (2, 4)


def test_host_names_with_brackets_in_a_fabric_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = {"version": 1, "meta": {}, "warnings": [], "links": [[0, 1, 1, 1, "4x", "HDR"]],
           "nodes": [{"id": "S-1", "type": "switch", "ports": 36},
                     {"id": "H-1", "type": "ca", "ports": 1, "role": "hca", "host": "gpu[1"}]}
    path = tmp_path / "f.json"
    path.write_text(json.dumps(doc))
    code, err = _run(["plan", "--fabric", str(path), "--gpus", "1"], capsys)
    assert code == 4 and "host name" in err
