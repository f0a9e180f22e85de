"""The generated job_submit.lua, run by a real Lua interpreter against a stub `slurm` table."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from gpupool.cli.main import main as cli_main
from gpupool.errors import InputError
from gpupool.pools.lua import lua_pools, render_job_submit_lua
from gpupool.pools.schema import parse_pools_text
from tests.support.helpers import require_tool

# A pools file as `pool apply` reads it (the generator reads it through the same schema).
POOLS = """\
pools:
  vision: {nodes: "gpu[001-004]", owners: [vision]}
  llm: {nodes: ["gpu[005-012]", gpu020], owners: [llm], gpus_per_node: 8}
  small: {nodes: "gpu[013-014]", gpus_per_node: 4}
  shared: {nodes: "gpu[015-016]", quota: {physics: 8, llm: 4}}
accounts:
  vision: {shares: 30}
  llm: {shares: 70}
  physics: {shares: 10}
"""


STUB = r"""
NO_VAL = 4294967294
slurm = { SUCCESS = 0, ERROR = -1, NO_VAL = NO_VAL, NO_VAL16 = 65534 }
function slurm.log_user(fmt, ...) io.write("USER:" .. string.format(fmt, ...) .. "\n") end
function slurm.log_info(fmt, ...) end
assert(dofile(arg[1]) == slurm.SUCCESS)
local job = { min_nodes = NO_VAL, req_switch = NO_VAL, wait4switch = NO_VAL, num_tasks = NO_VAL }
for i = 2, #arg do
  local key, value = string.match(arg[i], "^([%w_]+)=(.*)$")
  job[key] = tonumber(value) or value
end
local rc = slurm_job_submit(job, {}, 1000)
io.write("rc=" .. rc .. "\n")
io.write("partition=" .. tostring(job.partition) .. "\n")
io.write("req_switch=" .. tostring(job.req_switch) .. "\n")
io.write("wait4switch=" .. tostring(job.wait4switch) .. "\n")
io.write("qos=" .. tostring(job.qos) .. "\n")
"""


@pytest.fixture(scope="module")
def lua_script(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    lua = require_tool("lua5.1", "lua5.3", "lua", why="runs the generated job_submit.lua")
    directory = tmp_path_factory.mktemp("lua")
    policy = directory / "job_submit.lua"
    policy.write_text(render_job_submit_lua(parse_pools_text(POOLS), hosts_per_leaf=2, switch_wait_seconds=120))
    stub = directory / "stub.lua"
    stub.write_text(STUB)
    return Path(lua), stub, policy


def submit(lua_script: tuple[Path, Path, Path], **fields: object) -> dict[str, str]:
    lua, stub, policy = lua_script
    done = subprocess.run([str(lua), str(stub), str(policy), *(f"{k}={v}" for k, v in fields.items())],
                          capture_output=True, text=True, timeout=30, check=True)
    result: dict[str, str] = {}
    for line in done.stdout.splitlines():
        key, _, value = line.partition("=") if not line.startswith("USER:") else ("user", "", line[5:])
        result[key] = value
    return result


def test_pool_sizes_from_hostlists() -> None:
    pools = {p.name: (p.nodes, p.gpus_per_node, p.owners) for p in lua_pools(parse_pools_text(POOLS))}
    assert pools == {"vision": (4, 8, ("vision",)), "llm": (9, 8, ("llm",)), "small": (2, 4, ()),
                     "shared": (2, 8, ("physics", "llm"))}


def test_non_gpu_jobs_are_left_alone(lua_script: tuple[Path, Path, Path]) -> None:
    assert submit(lua_script, account="vision")["partition"] == "nil"


def test_gpu_job_goes_to_its_accounts_pool(lua_script: tuple[Path, Path, Path]) -> None:
    result = submit(lua_script, account="vision", tres_per_node="gres:gpu:4", min_nodes=1)
    assert (result["rc"], result["partition"]) == ("0", "vision")
    result = submit(lua_script, default_account="llm", tres_per_node="gres:gpu:8")
    assert result["partition"] == "llm"


def test_account_without_a_pool_borrows_any_that_fits(lua_script: tuple[Path, Path, Path]) -> None:
    assert submit(lua_script, account="bio", tres_per_node="gres:gpu:2")["partition"] == "vision,llm,small,shared"
    # 8 GPUs per node do not fit the 4-GPU nodes of `small`.
    assert submit(lua_script, account="bio", tres_per_node="gres:gpu:a100:8")["partition"] == "vision,llm,shared"


def test_quota_pool_jobs_get_their_quota_qos(lua_script: tuple[Path, Path, Path]) -> None:
    # physics owns no pool but has a quota in `shared`: routed there, under QOS shared-physics.
    routed = submit(lua_script, account="physics", tres_per_node="gres:gpu:2")
    assert (routed["partition"], routed["qos"]) == ("shared", "shared-physics")
    # llm owns a pool: routed there as before, no QOS set.
    assert submit(lua_script, account="llm", tres_per_node="gres:gpu:2")["qos"] == "nil"
    # Asking for the quota pool by name gets the QOS too; a QOS the user chose is kept.
    named = submit(lua_script, account="llm", partition="shared", tres_per_node="gres:gpu:2")
    assert named["qos"] == "shared-llm"
    assert submit(lua_script, account="llm", partition="shared", qos="urgent",
                  tres_per_node="gres:gpu:2")["qos"] == "urgent"
    # Several partitions, or an account without a quota there: not ours to choose.
    assert submit(lua_script, account="llm", partition="shared,llm", tres_per_node="gres:gpu:2")["qos"] == "nil"
    assert submit(lua_script, account="vision", partition="shared", tres_per_node="gres:gpu:2")["qos"] == "nil"


def test_owner_pool_too_small_falls_back_to_others(lua_script: tuple[Path, Path, Path]) -> None:
    result = submit(lua_script, account="vision", tres_per_node="gres:gpu:8", min_nodes=6)
    assert result["partition"] == "llm"


@pytest.fixture(scope="module")
def share_script(lua_script: tuple[Path, Path, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    lua, stub, _policy = lua_script
    policy = tmp_path_factory.mktemp("lua-share") / "job_submit.lua"
    policy.write_text(render_job_submit_lua(parse_pools_text(POOLS), hosts_per_leaf=2, switch_wait_seconds=3600,
                                            switch_wait_share=0.25))
    return lua, stub, policy


@pytest.mark.parametrize(("fields", "wait"), [
    ({"time_limit": 120}, "1800"),  # 25% of 120 minutes
    ({"time_limit": 7}, "105"),  # 25% of 420 s
    ({}, "3600"),  # no limit given (NO_VAL): the fixed wait
    ({"time_limit": 4294967295}, "3600"),  # INFINITE: the fixed wait
    ({"time_limit": 120, "wait4switch": 60}, "60"),  # the user's own wait is kept
])
def test_the_switch_wait_is_a_share_of_the_time_limit(share_script: tuple[Path, Path, Path],
                                                      fields: dict[str, int], wait: str) -> None:
    result = submit(share_script, account="llm", tres_per_node="gres:gpu:8", min_nodes=3, **fields)
    assert result["req_switch"] in {"2", "2.0"} and result["wait4switch"] in {wait, wait + ".0"}


def test_multi_node_job_gets_switches(lua_script: tuple[Path, Path, Path]) -> None:
    result = submit(lua_script, account="llm", tres_per_node="gres:gpu:8", min_nodes=5)
    assert (result["req_switch"], result["wait4switch"]) in {("3", "120"), ("3.0", "120")}
    explicit = submit(lua_script, account="llm", tres_per_node="gres:gpu:8", min_nodes=5, req_switch=1)
    assert explicit["req_switch"] == "1" and explicit["wait4switch"] == str(4294967294)
    single = submit(lua_script, account="llm", tres_per_node="gres:gpu:8", min_nodes=1)
    assert single["req_switch"] == str(4294967294)


def test_impossible_requests_are_rejected_with_a_message(lua_script: tuple[Path, Path, Path]) -> None:
    result = submit(lua_script, account="llm", tres_per_node="gres:gpu:16")
    assert result["rc"] == "-1"
    assert result["user"].startswith("gpupool: no GPU pool can ever hold this request (16 GPUs per node);")
    assert "the largest pools have 8 GPUs per node, 9 nodes, 72 GPUs" in result["user"]
    too_many = submit(lua_script, account="llm", tres_per_job="gres:gpu:80")
    assert too_many["rc"] == "-1" and "(80 GPUs in total)" in too_many["user"]
    assert submit(lua_script, account="llm", tres_per_job="gres:gpu:72")["partition"] == "llm"
    explicit = submit(lua_script, partition="small", tres_per_node="gres:gpu:8")
    assert explicit["rc"] == "-1" and "partition small: 8 GPUs per node, small nodes have 4" in explicit["user"]
    # A partition that is not a pool is not ours to judge.
    assert submit(lua_script, partition="debug", tres_per_node="gres:gpu:64")["rc"] == "0"


def test_bad_pools_files_are_refused_by_the_pools_schema() -> None:
    with pytest.raises(InputError, match="pools"):
        render_job_submit_lua(parse_pools_text("pools: {}\n"))
    selector = parse_pools_text("pools:\n  a: {nodes: 'leaf:L1'}\n")
    with pytest.raises(InputError, match="fabric selectors need a fabric file"):
        render_job_submit_lua(selector)
    # Hosts resolved by the caller (on the fabric, as `pool apply` resolves them) give the count.
    assert "nodes = 12" in render_job_submit_lua(selector, {"a": [f"gpu{i:03d}" for i in range(12)]})
    with pytest.raises(InputError, match="gpus_per_node"):
        parse_pools_text("pools:\n  a: {nodes: n1, gpus_per_node: 0}\n")


def test_pool_lua_command_writes_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pools = tmp_path / "pools.yaml"
    pools.write_text("pools:\n  p1: {nodes: 'gpu[001-002]', owners: [a]}\naccounts:\n  a: {shares: 1}\n")
    out = tmp_path / "job_submit.lua"
    assert cli_main(["pool", "lua", str(pools), "-o", str(out), "--hosts-per-leaf", "4"]) == 0
    text = out.read_text()
    assert 'name = "p1", nodes = 2, gpus_per_node = 8' in text and "HOSTS_PER_LEAF = 4" in text
    assert cli_main(["pool", "lua", str(pools), "--hosts-per-leaf", "4"]) == 0
    assert capsys.readouterr().out == text  # stdout without -o: the same text
    assert cli_main(["pool", "lua", str(pools), "--hosts-per-leaf", "4", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"pools_file": str(pools), "output": None, "text": text}
    assert cli_main(["--json", "pool", "lua", str(pools), "-o", str(out)]) == 0
    assert json.loads(capsys.readouterr().out) == {"pools_file": str(pools), "output": str(out)}
    pools.write_text("pools: [\n")
    assert cli_main(["pool", "lua", str(pools)]) == 4
    assert capsys.readouterr().err.startswith("gpupool: error:")


def test_pool_lua_resolves_fabric_selectors_on_the_fabric(tmp_path: Path) -> None:
    from gpupool.fabric.generate import fat_tree
    from gpupool.fabric.model import save_fabric

    fabric = fat_tree(2, 3, 1)  # two leaves of three hosts
    save_fabric(fabric, str(tmp_path / "fabric.json"))
    pools = tmp_path / "pools.yaml"
    pools.write_text("pools:\n  p1: {nodes: 'leaf:leaf02', owners: [a]}\naccounts:\n  a: {shares: 1}\n")
    out = tmp_path / "job_submit.lua"
    assert cli_main(["pool", "lua", str(pools), "--fabric", str(tmp_path / "fabric.json"), "-o", str(out)]) == 0
    assert 'name = "p1", nodes = 3,' in out.read_text()  # a leaf of this fat-tree has three hosts
