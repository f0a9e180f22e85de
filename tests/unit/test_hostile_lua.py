"""Item 5 of issue 19: a hostile pools file name never becomes Lua code in job_submit.lua."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from gpupool.cli.main import main as cli_main

LUA = shutil.which("lua5.3") or shutil.which("lua")
POOLS_YAML = "pools:\n  vision:\n    nodes: gpu[001-004]\n    owners: [vision]\naccounts:\n  vision: {shares: 1}\n"
STUB = r"""
slurm = { SUCCESS = 0, ERROR = -1, NO_VAL = 4294967294, NO_VAL16 = 65534 }
function slurm.log_user(fmt, ...) end
function slurm.log_info(fmt, ...) end
assert(dofile(arg[1]) == slurm.SUCCESS)
io.write("loaded\n")
"""


@pytest.mark.parametrize("name", [
    'pools\nos.execute("touch PWNED")\n--.yaml',
    'pools\r]]os.execute("touch PWNED")--[[.yaml',
    'pools"\\\n os.execute("touch PWNED") --\u00e9.yaml',
])
def test_hostile_pools_file_name_runs_nothing(tmp_path: Path, name: str) -> None:
    if LUA is None:
        pytest.fail("no lua interpreter installed (scripts/bootstrap installs lua5.3)")
    pools = tmp_path / name
    pools.write_text(POOLS_YAML)
    output = tmp_path / "job_submit.lua"
    assert cli_main(["pool", "lua", str(pools), "-o", str(output)]) == 0
    text = output.read_bytes()
    # No line of the generated file may start with the injected code.
    assert not any(line.lstrip().startswith(b"os.execute") for line in text.splitlines())
    stub = tmp_path / "stub.lua"
    stub.write_text(STUB)
    done = subprocess.run([LUA, str(stub), str(output)], cwd=tmp_path, capture_output=True, text=True,
                          timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "loaded\n"
    assert not (tmp_path / "PWNED").exists()
    # The file name is kept, escaped, as data: Lua reads back exactly the bytes of the name.
    probe = tmp_path / "probe.lua"
    probe.write_text(STUB.replace('io.write("loaded\\n")', "io.write(GENERATED_FROM)").replace(
        "assert(dofile(arg[1]) == slurm.SUCCESS)",
        "local chunk = assert(loadfile(arg[1])); local src = io.open(arg[1]):read('a');"
        " GENERATED_FROM = load(string.match(src, 'local GENERATED_FROM = ([^\\n]*)') and"
        " ('return ' .. string.match(src, 'local GENERATED_FROM = ([^\\n]*)')))()"))
    read_back = subprocess.run([LUA, str(probe), str(output)], cwd=tmp_path, capture_output=True, timeout=30,
                               check=True)
    assert read_back.stdout == str(pools).encode()


def test_unwritable_output_is_exit_4(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pools = tmp_path / "pools.yaml"
    pools.write_text(POOLS_YAML)
    assert cli_main(["pool", "lua", str(pools), "-o", str(pools / "job_submit.lua")]) == 4  # a path under a regular file
    assert capsys.readouterr().err.startswith("gpupool: error:")


# Issue 29: the generator had its own YAML path (RecursionError / UnicodeDecodeError tracebacks)
# where `pool apply` said exit 4. `pool lua` now reads pools files through `pool apply`'s schema.
HOSTILE = Path(__file__).resolve().parents[1] / "fixtures" / "hostile"
LOADER_CASES = {
    "deep-brackets": ("pools: " + "[" * 1000 + "]" * 1000 + "\n").encode(),
    "328-brackets": ("pools: " + "[" * 328 + "]" * 328 + "\n").encode(),
    "utf16-bom": bytes([0xFF, 0xFE, 0x00]),
    "latin1": "pools:\n  vision:\n    owners: [caf\u00e9]\n".encode("latin-1"),
    "alias": b"pools:\n  a: &x {nodes: gpu1}\n  b: *x\n",
    "duplicate-key": b"pools:\n  vision: {}\n  vision: {}\n",
}


@pytest.mark.parametrize("case", sorted(LOADER_CASES))
def test_generator_refuses_like_pool_apply(tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str) -> None:
    from gpupool.errors import InputError
    from gpupool.pools.schema import load_pools_file

    pools = tmp_path / "pools.yaml"
    pools.write_bytes(LOADER_CASES[case])
    output = tmp_path / "job_submit.lua"
    assert cli_main(["pool", "lua", str(pools), "-o", str(output)]) == 4
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("gpupool: error: "), err
    assert "Traceback" not in err and "Error:" not in err.replace("gpupool: error:", "")
    assert not output.exists()
    # The very same loader: pool apply's reading of the file fails with the same message.
    with pytest.raises(InputError) as refused:
        load_pools_file(str(pools))
    assert err == f"gpupool: error: {refused.value}\n"


@pytest.mark.parametrize("name", ["lua-deep-brackets.yaml", "lua-utf16-bom.yaml"])
def test_generator_corpus_via_the_plugin_script(tmp_path: Path, name: str) -> None:
    import os
    import sys

    # The shipped plugin script, as an admin runs it (it calls `gpupool pool lua`).
    script = Path(__file__).resolve().parents[2] / "slurm-plugins" / "make-job-submit-lua"
    done = subprocess.run([str(script), str(HOSTILE / name), "-o", str(tmp_path / "out.lua")], capture_output=True,
                          text=True, timeout=120, check=False, env={**os.environ, "GPUPOOL_PYTHON": sys.executable},
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 4, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith(f"gpupool: error: {HOSTILE / name}"), done.stderr
    assert not (tmp_path / "out.lua").exists()
