"""Issue 27: what a new admin and a new user hit in their first hour (one error path, --debug,
sbatch's spellings, uneven shapes, offline dry runs)."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest

from gpupool.cli.context import AppContext
from gpupool.cli.main import main, usage_line
from gpupool.fabric.generate import dragonfly, fat_tree
from gpupool.fabric.model import save_fabric
from gpupool.slurm.fake import FakeSlurm


@pytest.fixture()
def tree_fabric(tmp_path: Path) -> str:
    path = tmp_path / "tree.json"
    save_fabric(fat_tree(4, 4, 2), str(path))  # leaf k holds gpu(4k-3)..gpu(4k); 2 hops in a leaf, 4 across
    return str(path)


def _free(tmp_path: Path, free: dict[str, int], name: str = "free.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(free))
    return str(path)


def _run(capsys: pytest.CaptureFixture[str], *args: str, obj: AppContext | None = None) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args), obj=obj)
    out, err = capsys.readouterr()
    return code, out, err


# --- 1. one error path: --debug adds a traceback and changes nothing else ---------------------------------

@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_keeps_audit_unknown_with_its_json(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 where: str) -> None:
    missing = str(tmp_path / "missing.json")
    args = ["fabric", "audit", "--fabric", missing, "--json"]
    args = ["--debug", *args] if where == "before" else [*args, "--debug"]
    code, out, err = _run(capsys, *args)
    assert code == 3  # UNKNOWN, as without --debug (a monitor must not read WARNING)
    doc = json.loads(out)
    assert doc["status"] == "UNKNOWN" and missing in doc["error"]
    assert "Traceback" in err and err.rstrip().splitlines()[-1] == f"gpupool: error: {missing}: fabric file not found"


def test_debug_keeps_node_check_unknown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "c.toml").write_text("")
    monkeypatch.setenv("GPUPOOL_CONFIG", str(tmp_path / "c.toml"))

    def broken_settings(*_args: object) -> None:
        raise ZeroDivisionError("boom")

    monkeypatch.setattr("gpupool.cli.node._settings", broken_settings)
    for args in (["node", "check"], ["--debug", "node", "check"], ["node", "check", "--debug"],
                 ["node", "--debug", "check"]):
        code, _out, err = _run(capsys, *args)
        assert code == 3, args
        assert ("Traceback" in err) == ("--debug" in args)
        assert err.rstrip().splitlines()[-1] == "gpupool: error: UNKNOWN: node check could not run: " \
                                                "ZeroDivisionError: boom"


def test_debug_keeps_input_error_exit_4(tree_fabric: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    for args in (["plan", "--gpus", "8", "--free", str(bad), "--fabric", tree_fabric],
                 ["--debug", "plan", "--gpus", "8", "--free", str(bad), "--fabric", tree_fabric],
                 ["plan", "--gpus", "8", "--free", str(bad), "--fabric", tree_fabric, "--debug"]):
        code, _out, err = _run(capsys, *args)
        assert code == 4, args
        assert ("Traceback" in err) == ("--debug" in args)
        last = err.rstrip().splitlines()[-1]
        assert last.startswith("gpupool: error: ") and str(bad) in last


def test_debug_keeps_internal_error_exit_70(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise KeyError("oops")

    monkeypatch.setattr("gpupool.cli.plan.load_compiled", broken)
    code, _out, err = _run(capsys, "plan", "--gpus", "1", "--fabric", str(tmp_path / "f.json"))
    assert code == 70 and err == "gpupool: error: internal error: KeyError: 'oops' (rerun with --debug)\n"
    code, _out, err = _run(capsys, "plan", "--gpus", "1", "--fabric", str(tmp_path / "f.json"), "--debug")
    assert code == 70 and "Traceback" in err
    assert err.rstrip().splitlines()[-1] == "gpupool: error: internal error: KeyError: 'oops'"


def test_click_usage_error_is_one_line_with_a_hint(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "plan", "--nodez", "4")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("gpupool: error: plan: ")
    assert "--nodez" in err and "-N/--nodes" in err and "see 'gpupool plan --help'" in err
    code, _out, err = _run(capsys, "status", "--bogus")
    assert code == 2 and err.count("\n") == 1 and err.startswith("gpupool: error: status: ")


def test_unknown_sbatch_short_option_suggests_the_long_one() -> None:
    @click.command("demo")
    @click.option("--nodes", type=int)
    def demo(nodes: int | None) -> None:
        """A command with --nodes but no -N."""

    with pytest.raises(click.NoSuchOption) as caught:
        demo.main(["-N", "4"], prog_name="gpupool demo", standalone_mode=False)
    line = usage_line(caught.value)
    assert line.startswith("demo: No such option") and "did you mean --nodes?" in line


def test_monitoring_usage_error_stays_unknown_with_debug(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _err = _run(capsys, "--debug", "fabric", "audit", "--bogus", "--json")
    assert code == 3 and json.loads(out)["status"] == "UNKNOWN"


# --- 2. sbatch's spellings for plan and submit --------------------------------------------------------------

def test_plan_takes_sbatch_spellings(tree_fabric: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    free = _free(tmp_path, {"gpu001": 8, "gpu002": 8, "gpu003": 8, "gpu005": 8})
    code, out, err = _run(capsys, "plan", "-N", "2", "--gres=gpu:8", "-x", "gpu001", "--ntasks-per-node", "8",
                          "--free", free, "--fabric", tree_fabric, "--json")
    assert code == 0, err
    doc = json.loads(out)
    # gpu001 excluded: the two 8-GPU hosts left on leaf 1 are gpu002 and gpu003 (2 hops, 64 GPU pairs).
    assert doc["allocation"] == {"gpu002": 8, "gpu003": 8}
    assert doc["cost"]["pair_hops_sum"] == 8 * 8 * 2
    assert doc["request"]["gpus_per_node"] == 8 and doc["request"]["nodes"] == 2
    code, out, _err = _run(capsys, "plan", "-G", "16", "--gpus-per-node", "8", "--free", free, "--fabric",
                           tree_fabric, "--json")
    assert code == 0 and sorted(json.loads(out)["allocation"].values()) == [8, 8]


def test_plan_partition_short_option(tree_fabric: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    slurm = FakeSlurm.uniform([f"gpu{i:03d}" for i in range(1, 17)], partition="gpu")
    code, out, err = _run(capsys, "plan", "-G", "8", "-p", "gpu", "--fabric", tree_fabric, "--json",
                          obj=AppContext(slurm=slurm))  # type: ignore[arg-type]
    assert code == 0, err
    assert json.loads(out)["request"]["partition"] == "gpu"


@pytest.mark.parametrize(("args", "needle"), [
    (["-N", "2-4", "--gres", "gpu:8"], "exact node count"),
    (["--gres", "nvme:1", "-N", "2"], "gpu[:TYPE]:K"),
    (["--gres", "gpu:8", "--gpus-per-node", "4", "-N", "2"], "different GPUs per node"),
    (["-G", "0"], "--gpus must be a positive number, got 0"),
])
def test_plan_sbatch_spelling_errors(tree_fabric: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                     args: list[str], needle: str) -> None:
    free = _free(tmp_path, {"gpu001": 8})
    code, _out, err = _run(capsys, "plan", *args, "--free", free, "--fabric", tree_fabric)
    assert code == 2 and needle in err and err.count("\n") == 1


def test_uneven_gpus_placement_is_named_with_the_even_split(tree_fabric: str, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    # Leaf 1 has 8+8+7+1 = 24 free GPUs; gpu005 (leaf 2) has 8 more.
    free = _free(tmp_path, {"gpu001": 8, "gpu002": 8, "gpu003": 7, "gpu004": 1, "gpu005": 8})
    code, out, _err = _run(capsys, "plan", "--gpus", "24", "--free", free, "--fabric", tree_fabric, "--json")
    assert code == 0
    doc = json.loads(out)
    assert sorted(doc["allocation"].values(), reverse=True) == [8, 8, 7, 1]
    # All on leaf 1: (24^2 - (64+64+49+1)) / 2 = 199 GPU pairs on different hosts, 2 hops each.
    assert doc["cost"]["pair_hops_sum"] == 398
    # Even: 3 x 8 = gpu001, gpu002 (leaf 1) and gpu005 (leaf 2): 64 pairs x 2 + 128 pairs x 4 = 640.
    assert doc["shape_note"] == ("8,8,7,1 GPUs per host; add --gpus-per-node 8 for an even split "
                                 "(3 x 8, pair_hops_sum 640 instead of 398)")
    code, out, _err = _run(capsys, "plan", "--gpus", "24", "--free", free, "--fabric", tree_fabric)
    assert code == 0 and "note: 8,8,7,1 GPUs per host; add --gpus-per-node 8" in out
    code, out, _err = _run(capsys, "plan", "--gpus", "16", "--free", free, "--fabric", tree_fabric, "--json")
    assert "shape_note" not in json.loads(out)  # 8+8 is even: nothing to say


def test_equal_hops_prefer_the_even_split(tree_fabric: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    # 6 GPUs: leaf 1 as 4+1+1 or leaf 2 as 3+3 (gpu007's 1 GPU left over). Both have 36 - 18 = 18 ordered,
    # so 9 GPU pairs on different hosts, 2 hops each: pair_hops_sum 18. Across leaves costs more (gpu001's 4
    # and 2 of gpu005: 8 pairs x 4 hops = 32). Best fit alone took leaf 1 (0 GPUs left there, 1 on leaf 2);
    # the even split 3+3 on 2 hosts is preferred, at the same cost.
    free = _free(tmp_path, {"gpu001": 4, "gpu002": 1, "gpu003": 1, "gpu005": 3, "gpu006": 3, "gpu007": 1})
    code, out, err = _run(capsys, "plan", "--gpus", "6", "--free", free, "--fabric", tree_fabric, "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["allocation"] == {"gpu005": 3, "gpu006": 3}
    assert doc["cost"]["pair_hops_sum"] == 18 and "shape_note" not in doc


def test_even_split_never_costs_a_hop(tree_fabric: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # 4+2 on leaf 1: 8 pairs x 2 hops = 16; 3+3 on leaf 2: 9 pairs x 2 = 18. Fewer hops win over evenness.
    free = _free(tmp_path, {"gpu001": 4, "gpu002": 2, "gpu005": 3, "gpu006": 3})
    code, out, err = _run(capsys, "plan", "--gpus", "6", "--free", free, "--fabric", tree_fabric, "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["allocation"] == {"gpu001": 4, "gpu002": 2} and doc["cost"]["pair_hops_sum"] == 16


def test_tie_breaks_equal_a_brute_force_over_every_allocation() -> None:
    """On random states of a 3-leaf tree, plan's (pair_hops_sum, leaf switches, hosts) is the least such triple
    over every allocation, costed by the independent oracle (its own graph and distances): the hosts
    tie-break never costs a hop or a leaf switch, and takes the fewest hosts among what is left."""
    import itertools

    import numpy as np

    from gpupool.fabric.compiled import compile_fabric
    from gpupool.placement.engine import place
    from gpupool.placement.model import FreeState, Request
    from tests.support.oracles import graph_of

    fab = fat_tree(3, 3, 1)  # leaves of 3 hosts: 2 hops inside a leaf, 4 across
    compiled, oracle = compile_fabric(fab), graph_of(fab)
    names = list(compiled.host_names)
    rng = np.random.default_rng(27)
    checked = 0
    for _ in range(120):
        free = rng.integers(0, 3, size=len(names))
        need = int(rng.integers(1, max(2, int(free.sum()) + 1)))
        if free.sum() < need:
            continue
        best = None
        for split in itertools.product(*(range(int(g) + 1) for g in free)):
            if sum(split) != need:
                continue
            used = [(names[i], g) for i, g in enumerate(split) if g]
            cost = sum(ga * gb * oracle.distance(a, b) for (a, ga), (b, gb) in itertools.combinations(used, 2))
            triple = (cost, oracle.leaf_count(h for h, _g in used), len(used))
            best = triple if best is None or triple < best else best
        placement = place(compiled, FreeState.from_arrays(free), Request(gpus=need))
        assert (placement.cost.pair_hops_sum, placement.cost.leaf_switches, len(placement.allocation)) == best
        checked += 1
    assert checked >= 100


def test_fewest_hosts_is_the_even_split_among_equal_hop_shapes() -> None:
    """The tie-break's reason, checked by enumeration: among per-host count vectors of one sum and one sum
    of squares (what equal pair hops in one leaf means), an even vector, when there is one, has the fewest hosts."""
    from itertools import combinations_with_replacement

    for total in range(1, 13):
        shapes = [c for k in range(1, total + 1) for c in combinations_with_replacement(range(1, 9), k)
                  if sum(c) == total]
        by_q: dict[int, list[tuple[int, ...]]] = {}
        for c in shapes:
            by_q.setdefault(sum(x * x for x in c), []).append(c)
        for group in by_q.values():
            even = [c for c in group if len(set(c)) == 1]
            if even:
                assert min(len(c) for c in group) == len(even[0])
                assert [c for c in group if len(c) == len(even[0])] == even


def _script(tmp_path: Path) -> str:
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/bash\n#SBATCH -t 10\nsrun hostname\n")
    return str(script)


def test_submit_dry_run_with_free_file_needs_no_slurm(tree_fabric: str, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    free = _free(tmp_path, {"gpu001": 8, "gpu002": 8, "gpu003": 8, "gpu005": 8})
    script = _script(tmp_path)

    class NoSlurm(AppContext):
        def slurm_client(self):  # type: ignore[no-untyped-def]
            raise AssertionError("Slurm must not be read for --dry-run --free")

    code, out, err = _run(capsys, "submit", "-N", "2", "--gres", "gpu:8", "--dry-run", "--free", free,
                          "--fabric", tree_fabric, script, obj=NoSlurm())
    assert code == 0, err
    line = out.strip()
    assert line.startswith("sbatch ") and line.endswith(" " + script)
    assert "--nodes=2" in line and "--gres=gpu:8" in line
    assert "'--nodelist=gpu[001-002]'" in line or "--nodelist=gpu[001-002]" in line
    assert "without Slurm" in err
    # --free is never taken as the batch script, and never used for a real submission.
    code, _out, err = _run(capsys, "submit", "-G", "8", "--free", free, "--fabric", tree_fabric, script,
                           obj=NoSlurm())
    assert code == 2 and "--dry-run" in err


def test_submit_refuses_gpupool_options_after_sbatch_ones(tree_fabric: str, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    script = _script(tmp_path)
    # Before: `-t 10 --dry-run job.sh` passed --dry-run to sbatch, and nothing stopped the submission.
    code, _out, err = _run(capsys, "submit", "-G", "8", "-t", "10", "--dry-run", "--fabric", tree_fabric, script,
                           obj=AppContext(slurm=FakeSlurm.uniform(["gpu001"])))  # type: ignore[arg-type]
    assert code == 2 and "--dry-run is gpupool's" in err
    for late in ("--debug", "--json"):  # sbatch would get them (and --json changes sbatch's answer)
        code, _out, err = _run(capsys, "submit", "-G", "8", "-t", "10", late, "--fabric", tree_fabric, script,
                               obj=AppContext(slurm=FakeSlurm.uniform(["gpu001"])))  # type: ignore[arg-type]
        assert code == 2 and f"{late} is gpupool's" in err


# --- 3. files: no silent mkdir, every write says where, --json where data is printed ------------------------

def test_outputs_into_a_missing_directory_are_exit_4(tree_fabric: str, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "slrum"
    free = _free(tmp_path, {"gpu001": 8})

    class NoSlurm(AppContext):
        def slurm_client(self):  # type: ignore[no-untyped-def]
            raise AssertionError("a missing output directory fails before Slurm is read")

    for args in (["fabric", "export", "--fabric", tree_fabric, "--format", "slurm-tree", "-o", f"{missing}/t.conf"],
                 ["fabric", "generate", "fat-tree", "--leaves", "2", "--hosts-per-leaf", "2", "--spines", "1",
                  "-o", f"{missing}/f.json"],
                 ["report", "--html", f"{missing}/r.html", "--fabric", tree_fabric, "--free", free, "--no-pools"],
                 ["simulate", "--fabric", tree_fabric, "--workload", "synthetic", "--report", f"{missing}/s.html"],
                 ["metrics", "--fabric", tree_fabric, "--free", free, "--no-pools", "--textfile",
                  f"{missing}/m.prom"]):
        code, _out, err = _run(capsys, *args, obj=NoSlurm())
        assert code == 4, (args, err)
        assert f"directory {missing} does not exist" in err and err.count("\n") == 1
        assert not missing.exists()


def test_fabric_export_says_where_it_wrote_and_takes_json(tree_fabric: str, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "topology.conf"
    code, out, _err = _run(capsys, "fabric", "export", "--fabric", tree_fabric, "--format", "slurm-tree",
                           "-o", str(target))
    assert code == 0 and out == f"wrote {target}\n" and target.read_text().startswith("# topology.conf")
    # The group's --json (before the subcommand) and the command's own both give one document.
    for args in (["--json", "fabric", "export"], ["fabric", "export", "--json"]):
        code, out, _err = _run(capsys, *args, "--fabric", tree_fabric, "--format", "slurm-tree")
        doc = json.loads(out)
        assert code == 0 and doc["format"] == "slurm-tree" and doc["output"] is None
        assert doc["text"] == target.read_text()
    code, out, _err = _run(capsys, "fabric", "export", "--fabric", tree_fabric, "--format", "slurm-tree",
                           "--diff", str(target), "--json")
    assert code == 0 and json.loads(out) == {"format": "slurm-tree", "fabric": tree_fabric,
                                             "compared_with": str(target), "changed": False, "diff": ""}


def test_report_says_where_it_wrote(tree_fabric: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    free = _free(tmp_path, {"gpu001": 8})
    page = tmp_path / "r.html"
    args = ["report", "--html", str(page), "--fabric", tree_fabric, "--free", free, "--no-pools", "--no-audit"]
    code, out, _err = _run(capsys, *args)
    assert code == 0 and out == f"wrote {page}\n" and page.read_text().lstrip().lower().startswith("<!doctype html")
    code, out, _err = _run(capsys, *args, "--json")
    assert code == 0 and json.loads(out) == {"output": str(page), "bytes": len(page.read_bytes())}


def test_metrics_refuses_json_plainly(tree_fabric: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    free = _free(tmp_path, {"gpu001": 8})
    code, out, err = _run(capsys, "--json", "metrics", "--fabric", tree_fabric, "--free", free, "--no-pools")
    assert code == 2 and out == "" and "Prometheus text" in err


# --- 4. offline previews of a pools file ------------------------------------------------------------------

POOLS = """\
pools:
  vision:
    nodes: gpu[001-004]
    owners: [vision]
    lend_limit: {lend}
  llm:
    nodes: {llm_nodes}
    owners: [llm]
accounts:
  vision: {{shares: 1, users: [vis01]}}
  llm: {{shares: 1, users: [llm01], parent: ai}}
borrowing:
  enabled: true
"""
SLURM_CONF = """\
ClusterName=demo   # comments are ignored
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
PriorityType=priority/multifactor
PriorityWeightFairShare=100
AccountingStorageEnforce=associations,limits,qos
AccountingStorageTRES=gres/gpu
NodeName=DEFAULT Gres=gpu:8
NodeName=gpu[001-008]
PartitionName=batch Nodes=gpu[001-008]
"""


def _pools(tmp_path: Path, lend: str = "16", llm_nodes: str = "gpu[005-008]") -> str:
    path = tmp_path / "pools.yaml"
    path.write_text(POOLS.format(lend=lend, llm_nodes=llm_nodes))
    return str(path)


def _offline(capsys: pytest.CaptureFixture[str], tmp_path: Path, pools: str, *extra: str) -> tuple[int, str, str]:
    conf = tmp_path / "slurm.conf"
    conf.write_text(SLURM_CONF)

    class NoSlurm(AppContext):
        def command_runner(self):  # type: ignore[no-untyped-def]
            raise AssertionError("--offline must not run a Slurm command")

    context = NoSlurm(user_exists=lambda _user: True)
    return _run(capsys, "pool", "apply", pools, "--dry-run", "--offline", "--slurm-conf", str(conf),
                "--fragment", str(tmp_path / "gpupool-partitions.conf"), *extra, obj=context)


def test_offline_preview_lists_the_objects_and_what_it_could_not_check(tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _offline(capsys, tmp_path, _pools(tmp_path), "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["offline"] is True and doc["dry_run"] is True and doc["applied"] is False
    created = {(c["kind"], c["name"]) for c in doc["changes"] if c["action"] == "create"}
    assert {("partition", "vision"), ("partition", "llm"), ("account", "vision"), ("account", "llm"),
            ("user", "vis01"), ("user", "llm01")} <= created
    assert any("slurmdbd" in note for note in doc["unchecked"])
    # batch (slurm.conf, not gpupool's) covers both owned pools: the live overlap warning, from the file.
    assert any("partition 'batch'" in w for w in doc["warnings"])
    assert not (tmp_path / "gpupool-partitions.conf").exists()  # a preview writes nothing


@pytest.mark.parametrize(("lend", "llm_nodes", "needle"), [
    # 4 hosts x 8 GPUs (Gres=gpu:8 in slurm.conf) = 32 GPUs: 500 is a typo Slurm would accept.
    ("500", "gpu[005-008]", "lend_limit 500 GPUs is more than the pool's 32 GPUs"),
    ("16", "gpu[004-008]", "node gpu004 is also in owned pool 'vision'"),
    ("16", "gpu[005-009]", "unknown node(s) not in Slurm's node list: gpu009"),
])
def test_offline_preview_runs_the_cross_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str], lend: str,
                                               llm_nodes: str, needle: str) -> None:
    code, _out, err = _offline(capsys, tmp_path, _pools(tmp_path, lend, llm_nodes))
    assert code == 4 and needle in err and err.count("\n") == 1
    assert err.startswith(f"gpupool: error: {tmp_path / 'pools.yaml'}:")


def test_offline_without_slurm_conf_says_limits_were_not_checked(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _err = _run(capsys, "pool", "apply", _pools(tmp_path, "500"), "--dry-run", "--offline",
                           "--fragment", str(tmp_path / "frag.conf"), "--allow-unknown-users", "--json")
    assert code == 0
    assert any("GPU count unknown" in note and "vision" in note for note in json.loads(out)["unchecked"])


def test_offline_needs_dry_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _out, err = _run(capsys, "pool", "apply", _pools(tmp_path), "--offline")
    assert code == 2 and "--dry-run" in err


def test_simulate_pools_uses_the_same_checks(tmp_path: Path) -> None:
    from gpupool.app.simulate import load_pool_layout
    from gpupool.errors import InputError
    from gpupool.fabric.compiled import compile_fabric

    compiled = compile_fabric(fat_tree(4, 4, 2))
    with pytest.raises(InputError, match="lend_limit 500 GPUs is more than the pool's 32 GPUs"):
        load_pool_layout(_pools(tmp_path, "500"), compiled, 8)
    quota = tmp_path / "quota.yaml"
    quota.write_text("pools:\n  shared:\n    nodes: gpu[001-004]\n    quota: {a: 8}\n"
                     "accounts:\n  a: {shares: 1}\n")
    with pytest.raises(InputError, match="does not model quota pools"):
        load_pool_layout(str(quota), compiled, 8)


# --- 5. bounds and polish ---------------------------------------------------------------------------------

def test_generate_refuses_a_design_past_the_maximum_before_building(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "huge.json"
    # 100,000 leaves x 1,000 hosts: 100 million hosts (the 2.8 GB that grew without a word).
    code, _out, err = _run(capsys, "fabric", "generate", "fat-tree", "--leaves", "100000", "--hosts-per-leaf",
                           "1000", "--spines", "2", "-o", str(target))
    assert code == 4 and "100,000,000 hosts" in err and "at most 100,000 hosts" in err and err.count("\n") == 1
    assert not target.exists()
    code, _out, err = _run(capsys, "fabric", "generate", "dragonfly", "--groups", "1000", "--routers-per-group",
                           "30", "--hosts-per-router", "4", "--global-links-per-router", "1", "-o", str(target))
    assert code == 4 and "30,000 switches" in err


def test_generate_reports_progress_for_large_designs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("gpupool.app.fabric.PROGRESS_HOSTS", 8)  # "large" made small, so the test is quick
    target = tmp_path / "f.json"
    code, _out, err = _run(capsys, "fabric", "generate", "fat-tree", "--leaves", "2", "--hosts-per-leaf", "4",
                           "--spines", "1", "-o", str(target))
    assert code == 0
    assert err.splitlines() == ["gpupool: generating 8 hosts ...", "gpupool: compiling 11 nodes and 10 links ...",
                                f"gpupool: writing {target} ..."]


def test_free_file_above_a_hosts_gpus_is_refused(tree_fabric: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    free = _free(tmp_path, {"gpu001": 9, "gpu002": 8})
    slurm = FakeSlurm.uniform([f"gpu{i:03d}" for i in range(1, 17)], gpus=8, partition="gpu")
    code, _out, err = _run(capsys, "plan", "-G", "8", "--free", free, "-p", "gpu", "--fabric", tree_fabric,
                           obj=AppContext(slurm=slurm))  # type: ignore[arg-type]
    assert code == 4
    assert err == f"gpupool: error: {free}: host gpu001: 9 free GPUs, but Slurm configures 8 on it\n"


class _NoSlurm:
    """An AppContext whose Slurm must never be asked (the offline checks)."""

    def __call__(self) -> None:
        raise AssertionError("Slurm was asked")


@pytest.mark.parametrize("command", [["plan", "-G", "8"], ["submit", "--dry-run", "-G", "8"]])
def test_free_file_above_a_hosts_gpus_is_refused_without_slurm(tree_fabric: str, tmp_path: Path, command: list[str],
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    free = _free(tmp_path, {"gpu001": 8, "gpu002": 8, "gpu003": 9, "gpu004": 12})
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/sh\nhostname\n")
    tail = [str(script)] if command[0] == "submit" else []
    ctx = AppContext(slurm=_NoSlurm())  # type: ignore[arg-type]
    code, out, err = _run(capsys, *command, "--free", free, "--gpus-per-host", "8", "--fabric", tree_fabric, *tail,
                          obj=ctx)
    # gpu003 is the first host (fabric order) above 8; gpu004 is the one more.
    assert (code, out) == (4, "")
    assert err == (f"gpupool: error: {free}: host gpu003: 9 free GPUs, but --gpus-per-host 8 says a host has 8 "
                   "(and 1 more host)\n")
    # At the size, nothing is refused: 8 GPUs on one host.
    code, out, err = _run(capsys, *command, "--free", free, "--gpus-per-host", "12", "--fabric", tree_fabric,
                          "--json", *tail, obj=ctx)
    assert code == 0, err
    doc = json.loads(out)
    allocation = doc["allocation"] if "allocation" in doc else doc["plan"]["allocation"]
    assert sorted(allocation.values()) == [8]


def test_free_file_above_k_is_refused_by_status(tree_fabric: str, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    free = _free(tmp_path, {"gpu005": 4, "gpu006": 5})
    ctx = AppContext(slurm=_NoSlurm())  # type: ignore[arg-type]
    code, out, err = _run(capsys, "status", "--free", free, "--gpus-per-node", "4", "--fabric", tree_fabric, obj=ctx)
    assert (code, out) == (4, "")
    assert err == f"gpupool: error: {free}: host gpu006: 5 free GPUs, but --gpus-per-node 4 says a host has 4\n"
    code, _out, err = _run(capsys, "status", "--free", free, "--gpus-per-node", "8", "--fabric", tree_fabric,
                           obj=ctx)
    assert code == 0, err


def test_counts_are_singular_when_one(tree_fabric: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    free = _free(tmp_path, {"gpu002": 1})
    code, out, _err = _run(capsys, "plan", "-G", "1", "--free", free, "--fabric", tree_fabric)
    assert code == 0
    assert "fabric: 1 GPU on 1 host (gpu002)" in out and "gpu002: 1 GPU (of 1 free)" in out
    assert "1 GPUs" not in out and "1 hosts" not in out
    from gpupool.cli.render import counted

    assert [counted(1, "switch"), counted(2, "switch"), counted(0, "GPU"), counted(3, "leaf", "leaves")] == \
        ["1 switch", "2 switches", "0 GPUs", "3 leaves"]


def test_man_pages_have_no_ragged_description_lines() -> None:
    from gpupool.cli.manpages import all_pages

    for name, text in all_pages().items():
        body = text.split(".SH DESCRIPTION\n", 1)[1].split("\n.SH ", 1)[0]
        ragged = [line for line in body.splitlines() if line[:1].isspace()]
        assert not ragged, (name, ragged[:2])


def test_block_export_explains_block_sizes(tree_fabric: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _err = _run(capsys, "fabric", "export", "--fabric", tree_fabric, "--format", "slurm-block")
    # 4 leaves of 4 hosts under one spine: base blocks of 4 nodes, aggregated by 2 and by 4.
    assert code == 0 and "BlockSizes=4,8,16\n" in out
    assert ("# BlockSizes=4,8,16: nodes per block Slurm may give one job: 4 = one base block (a BlockName line), "
            "8 = 2 base blocks, 16 = 4 base blocks\n") in out


def test_shell_completion_as_the_readme_documents_it() -> None:
    import os
    import subprocess
    import sys

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for shell in ("bash", "zsh", "fish"):
        assert f"_GPUPOOL_COMPLETE={shell}_source gpupool" in readme
        script = subprocess.run([sys.executable, "-m", "gpupool"], capture_output=True, text=True, timeout=60,
                                env={**os.environ, "_GPUPOOL_COMPLETE": f"{shell}_source"})
        assert script.returncode == 0 and "_GPUPOOL_COMPLETE" in script.stdout
    done = subprocess.run([sys.executable, "-m", "gpupool"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "_GPUPOOL_COMPLETE": "bash_complete", "COMP_WORDS": "gpupool pl",
                               "COMP_CWORD": "1"})
    assert "plan" in done.stdout.split("\n")[0].split(",")  # click's bash protocol: type,value


# --- 6. headlines that mean something ------------------------------------------------------------------------

def test_stranded_headline_for_whole_node_jobs_and_named_heat_map(tree_fabric: str, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    # leaf01: gpu001 8 free (whole), gpu002 3; leaf02: gpu005, gpu006 whole; leaf03: gpu010 1.
    free = _free(tmp_path, {"gpu001": 8, "gpu002": 3, "gpu005": 8, "gpu006": 8, "gpu010": 1})
    code, out, _err = _run(capsys, "status", "--fabric", tree_fabric, "--free", free, "--json")
    doc = json.loads(out)
    assert code == 0
    assert doc["stranded_gpus"] == 0  # 1-GPU jobs can use every free GPU: 0 by definition
    # No whole-node shape can use gpu002's 3 or gpu010's 1 (not whole-free hosts): 4.
    assert doc["stranded_gpus_whole_node"] == 4
    code, out, _err = _run(capsys, "status", "--fabric", tree_fabric, "--free", free)
    assert "Stranded for whole-node jobs (8 GPUs and up" in out and "): 4" in out
    assert "leaf03  1/32" in out and "leaf04  0/32" in out  # every cell names its leaf
    code, out, _err = _run(capsys, "status", "--fabric", tree_fabric, "--free", free, "--shapes", "1,2", "--json")
    assert json.loads(out)["stranded_gpus_whole_node"] is None  # no whole-node shape listed


# --- 6. what was set apart is visible ------------------------------------------------------------------------

def test_set_apart_things_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.support.helpers import REPO

    capture = REPO / "tests/fixtures/ibnetdiscover/selene-compute-hdr.out"
    fabric = tmp_path / "selene.json"
    code, out, _err = _run(capsys, "fabric", "discover", "--ibnetdiscover", str(capture), "-o", str(fabric))
    assert code == 0
    # Read the capture independently: SHARP aggregation nodes are CAs described as "Aggregation Node".
    text = capture.read_text()
    aggregation = sum(1 for line in text.splitlines()
                      if line.startswith("Ca\t") and "Aggregation Node" in line)
    assert aggregation > 0
    assert f"{aggregation} SHARP aggregation nodes" in out and "aggregation, " not in out
    code, out, _err = _run(capsys, "fabric", "show", "--fabric", str(fabric), "--set-apart", "--json")
    doc = json.loads(out)["set_apart"]
    assert doc["aggregation_nodes"]["count"] == aggregation
    assert "selene-login-01" in doc["service_hosts"]["names"]  # a login host is a service host
    assert doc["service_hosts"]["count"] == len(doc["service_hosts"]["names"])
    assert all(entry["why"] for entry in doc.values())
    code, out, _err = _run(capsys, "fabric", "show", "--fabric", str(fabric))
    if "switches_outside_tree" in doc:
        count = doc["switches_outside_tree"]["count"]
        assert f"{count} switch{'es' if count != 1 else ''} with no compute host below" in out


# --- 7. audit findings an admin can act on -------------------------------------------------------------------

def test_spine_finding_names_the_core_its_port_and_totals_count_every_cable() -> None:
    from gpupool.audit.run import audit_fabric

    # 2 pods x 2 spines, 4 cores: spine j of each pod cables to the cores c with c % 2 == j, so
    # spine01 -> core01, core03 and spine02 -> core02, core04 (one cable each).
    fab = fat_tree(2, 2, 2, pods=2, cores=4)
    names = [n.name for n in fab.nodes]
    spine, core = names.index("pod2-spine01"), names.index("core03")
    link = next(li for li, lk in enumerate(fab.links) if {lk.a, lk.b} == {spine, core})
    port = fab.links[link].a_port if fab.links[link].a == spine else fab.links[link].b_port
    core_port = fab.links[link].b_port if fab.links[link].a == spine else fab.links[link].a_port
    del fab.links[link]
    result = audit_fabric(fab)
    finding = next(f for f in result.findings if f.check == "switch-uplinks-missing")
    assert finding.subject == "pod2-spine01"
    # Both ends of the cable that was taken out: the spine's port and the core's.
    assert f"(core03: 0 of 1, port {port} empty on pod2-spine01, port {core_port} empty on core03)" in \
        finding.message
    assert result.totals["missing_switch_uplinks"] == 1 and result.totals["switches_missing_uplinks"] == 1
    assert result.totals["missing_uplinks"] == 0  # no leaf lost a cable: counted once, where it is


def test_leaf_finding_says_whose_port_is_empty() -> None:
    from gpupool.audit import checks
    from gpupool.audit.topology import Topo

    fab = fat_tree(6, 4, 3)
    names = [n.name for n in fab.nodes]
    leaf, spine = names.index("leaf04"), names.index("spine02")
    link = next(li for li, lk in enumerate(fab.links) if {lk.a, lk.b} == {leaf, spine})
    port = fab.links[link].a_port if fab.links[link].a == leaf else fab.links[link].b_port
    del fab.links[link]
    message = checks.check_leaf_uplinks(Topo.of(fab)).findings[0].message
    assert f"spine02: 0 of 1, port {port} empty on leaf04" in message


def test_leaf_finding_names_the_far_switchs_empty_port() -> None:
    from gpupool.audit import checks
    from gpupool.audit.topology import Topo

    # 2 parallel cables from every leaf to every spine; one of leaf04's two to spine02 is taken out.
    fab = fat_tree(6, 4, 3, uplinks=2)
    names = [n.name for n in fab.nodes]
    leaf, spine = names.index("leaf04"), names.index("spine02")
    link = [li for li, lk in enumerate(fab.links) if {lk.a, lk.b} == {leaf, spine}][1]
    near, far = ((fab.links[link].a_port, fab.links[link].b_port) if fab.links[link].a == leaf
                 else (fab.links[link].b_port, fab.links[link].a_port))
    del fab.links[link]
    message = checks.check_leaf_uplinks(Topo.of(fab)).findings[0].message
    assert f"(spine02: 1 of 2, port {near} empty on leaf04, port {far} empty on spine02)" in message


def test_selene_with_a_cable_taken_out_names_both_of_its_ports() -> None:
    """The issue's case on the real capture: a leaf with 1 of its 2 cables to a spine. The cable is cut
    from the text itself (both port lines), so its two ports are known without gpupool."""
    import re

    from gpupool.audit.run import audit_fabric
    from gpupool.fabric.ibnetdiscover import parse_ibnetdiscover
    from tests.support.helpers import REPO

    capture = (REPO / "tests/fixtures/ibnetdiscover/selene-compute-hdr.out").read_text()
    header = re.compile(r'^Switch\s+\d+\s+"([^"]+)"\s+#\s+"MF0;([^:"]+)')
    port_line = re.compile(r'^\[(\d+)\]\s+"([^"]+)"\[(\d+)\]\s+#\s+"MF0;([^:"]+)')
    lines = capture.splitlines(keepends=True)
    guid = {}
    for line in lines:
        if m := header.match(line):
            guid[m.group(2)] = m.group(1)
    # LG02-01's port 33 goes to CSPINE1-03 (its second cable there; port 23 is the first).
    current, cut = None, []
    for i, line in enumerate(lines):
        if m := header.match(line):
            current = m.group(2)
        elif (m := port_line.match(line)) and current == "LG02-01" and m.group(1) == "33":
            assert (m.group(2), m.group(4)) == (guid["CSPINE1-03"], "CSPINE1-03")
            spine_port = m.group(3)
            cut.append(i)
        elif (m := port_line.match(line)) and current == "CSPINE1-03" and m.group(2) == guid["LG02-01"] \
                and m.group(3) == "33":
            cut.append(i)
    assert len(cut) == 2
    text = "".join(line for i, line in enumerate(lines) if i not in cut)
    result = audit_fabric(parse_ibnetdiscover(text, "selene-cut.out"))
    finding = next(f for f in result.findings if f.subject == "LG02-01")
    assert f"(CSPINE1-03: 1 of 2, port 33 empty on LG02-01, port {spine_port} empty on CSPINE1-03)" in \
        finding.message


# --- 8. the model of Slurm's choice says where it is a guess ---------------------------------------------------

def test_slurm_model_is_labelled_a_guess_for_gpus_n_on_dragonfly_only(tree_fabric: str, tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    free = _free(tmp_path, {"gpu001": 8, "gpu002": 8, "gpu005": 4, "gpu006": 8})
    # The tree model is calibrated for --gpus N too (tests/integration/test_slurm_gpus_form.py): no label,
    # and the calibrated rule: the nodes giving 8 first (gpu001, gpu002, gpu006), the tightest leaf
    # (leaf 2: gpu006 alone in the 8-tier) first, then the closest (leaf 1, gpu001).
    code, out, _err = _run(capsys, "plan", "-G", "16", "--free", free, "--fabric", tree_fabric, "--json")
    reference = json.loads(out)["slurm_reference"]
    assert code == 0 and reference["mode"] == "slurm-tree" and "guess" not in reference
    assert reference["allocation"] == {"gpu001": 8, "gpu006": 8}
    code, out, _err = _run(capsys, "plan", "-G", "16", "--free", free, "--fabric", tree_fabric)
    assert "a guess" not in out
    dragonfly_path = tmp_path / "dragonfly.json"
    save_fabric(dragonfly(2, 2, 2, 1), str(dragonfly_path))  # routers: gpu001-002, 003-004, 005-006, 007-008
    code, out, _err = _run(capsys, "plan", "-G", "16", "--free", free, "--fabric", str(dragonfly_path), "--json")
    reference = json.loads(out)["slurm_reference"]
    assert code == 0 and reference["mode"] == "slurm-dragonfly" and reference["guess"] is True
    assert "--gpus N" in reference["note"]
    code, out, _err = _run(capsys, "plan", "-G", "16", "--free", free, "--fabric", str(dragonfly_path))
    assert "(a guess: the dragonfly model is not checked for --gpus N)" in out
    code, out, _err = _run(capsys, "plan", "-N", "2", "--gres=gpu:8", "--free", free, "--fabric",
                           str(dragonfly_path), "--json")
    assert code == 0 and "guess" not in json.loads(out)["slurm_reference"]


# --- the first hour, replayed from the README's own commands ---------------------------------------------------

README_TABLE_CODES = {0, 1, 2, 3, 4}


def _readme_console_blocks() -> list[list[str]]:
    from tests.support.helpers import REPO

    blocks, current, inside = [], [], False
    for line in (REPO / "README.md").read_text().splitlines():
        if line.startswith("```console"):
            inside, current = True, []
        elif line.startswith("```") and inside:
            inside = False
            blocks.append(current)
        elif inside:
            current.append(line)
    return blocks


def _readme_commands(prefix: str) -> list[tuple[list[str], list[str]]]:
    """(argv after `gpupool`, the output lines the README shows) for README commands starting with prefix."""
    import shlex

    found = []
    for block in _readme_console_blocks():
        for index, line in enumerate(block):
            if not line.startswith(f"$ gpupool {prefix}"):
                continue
            shown = []
            for after in block[index + 1:]:
                if after.startswith("$ "):
                    break
                shown.append(after)
            found.append((shlex.split(line[2:])[1:], shown))
    return found


def test_readme_first_hour_walk_through(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    from collections import Counter

    from tests.support.helpers import REPO

    # Every capture the README names by file name, from the repository's fixtures.
    for fixture in (REPO / "tests/fixtures").glob("*/*"):
        if fixture.is_file() and not (tmp_path / fixture.name).exists():
            (tmp_path / fixture.name).symlink_to(fixture)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")

    def run(argv: list[str]) -> tuple[int, str, str]:
        code, out, err = _run(capsys, *argv)
        assert code in README_TABLE_CODES, (argv, code, err)
        assert ("Traceback" in err) == ("--debug" in argv) and "internal error" not in err, (argv, err)
        return code, out, err

    # The README's fabric tour, command by command, with exactly the output it shows.
    tour = _readme_commands("fabric generate") + _readme_commands("fabric show") + \
        _readme_commands("fabric export") + _readme_commands("fabric discover")
    assert len(tour) >= 5
    for argv, shown in tour:
        code, out, _err = run(argv)
        assert code == 0 and out.splitlines() == shown, argv
    # The audit line: the README's counts per (severity, check), from the JSON itself.
    [(argv, shown)] = _readme_commands("fabric audit")
    code, out, _err = run(argv[:argv.index("--json") + 1])
    counts = Counter((f["severity"], f["check"]) for f in json.loads(out)["findings"])
    expected = {(words[1], words[2]): int(words[0]) for words in (line.split() for line in shown)}
    assert code in (0, 1, 2, 3) and dict(counts) == expected
    # A pools file preview without Slurm (examples/pools.yaml is written for 64 hosts on leaf01..leaf08).
    run(["fabric", "generate", "fat-tree", "--leaves", "8", "--hosts-per-leaf", "8", "--spines", "2", "-o",
         "fleet.json"])
    code, out, _err = run(["pool", "apply", str(REPO / "examples/pools.yaml"), "--dry-run", "--offline",
                           "--fabric", "fleet.json", "--allow-unknown-users", "--fragment", "frag.conf"])
    assert code == 0 and "offline dry run:" in out and "not checked offline:" in out
    # A plan with sbatch's options on the Selene capture, every compute host free.
    from gpupool.fabric.compiled import load_compiled

    hosts = load_compiled("selene.json").host_names
    Path("free.json").write_text(json.dumps(dict.fromkeys(hosts, 8)))
    code, out, _err = run(["plan", "-N", "4", "--gres=gpu:8", "--free", "free.json", "--fabric", "selene.json",
                           "--json"])
    doc = json.loads(out)
    assert code == 0 and len(doc["allocation"]) == 4 and set(doc["allocation"].values()) == {8}
    # --gpus N with the host size given: 32 GPUs is 4 whole hosts (the even split), no note.
    code, out, _err = run(["plan", "-G", "32", "--free", "free.json", "--gpus-per-host", "8", "--fabric",
                           "selene.json", "--json"])
    doc = json.loads(out)
    assert code == 0 and sorted(doc["allocation"].values()) == [8, 8, 8, 8] and "shape_note" not in doc
    Path("over.json").write_text(json.dumps({hosts[0]: 9}))
    # The mistakes a new user makes on the way: one line each, a code from the README's table.
    for argv in (["plan", "-G", "8", "--free", "over.json", "--gpus-per-host", "8", "--fabric", "selene.json"],
                 ["plan", "-N", "4", "--gres", "gpu:8", "--bogus"], ["--debug", "plan", "--free", "nope.json",
                 "-G", "8", "--fabric", "selene.json"], ["fabric", "export", "--fabric", "selene.json", "--format",
                 "slurm-tree", "-o", "slrum/topology.conf"], ["submit", "--free", "free.json", "-G", "8", "x.sh"]):
        code, _out, err = run(argv)
        assert code in (2, 4) and err.rstrip().splitlines()[-1].startswith("gpupool: error: ")


# --- 5. the HTML page: a wide fabric fits, a failed section is a short notice -----------------------------------

def test_html_report_fits_the_fabric_and_shortens_slurm_errors(tree_fabric: str, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    from gpupool.errors import EnvError

    raw = ("sacct: error: resolve_ctls_from_dns_srv: res_nsearch error: Unknown host\n"
           "sacct: error: fetch_config: DNS SRV lookup failed\n" + "x" * 400)

    class Unreachable(AppContext):
        def command_runner(self):  # type: ignore[no-untyped-def]
            def run(_argv: list[str]) -> str:
                raise EnvError(raw)
            return run

    free = _free(tmp_path, {"gpu001": 8})
    page = tmp_path / "r.html"
    code, _out, err = _run(capsys, "report", "--html", str(page), "--fabric", tree_fabric, "--free", free,
                           "--pools", str(tmp_path / "pools.yaml"), "--no-audit", obj=Unreachable())
    html = page.read_text()
    # Drawn at its own size (wide fabrics wrap into blocks rather than scale down: test_observe_report).
    assert code == 0 and '<svg xmlns="http://www.w3.org/2000/svg" id="fabric"' in html and "max-width:100%" not in html
    note = html.split("<h2>Pools: lending over the period</h2>", 1)[1].split("</p>", 1)[0]
    assert "Slurm could not be reached when the page was made" in note
    assert "DNS SRV lookup failed" not in note and len(note) < 300  # the first line, shortened
    assert "DNS SRV lookup failed" in err  # the admin still gets the whole text on stderr


def test_leaf_positions_name_the_unit_on_rail_optimised_fabrics(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    fabric = tmp_path / "rails.json"
    save_fabric(fat_tree(4, 4, 2, rails=4), str(fabric))  # 4 leaf positions x 4 rail leaves, 4 hosts each
    free = _free(tmp_path, {f"gpu{i:03d}": 8 for i in range(1, 17)})
    code, out, _err = _run(capsys, "plan", "-N", "6", "--gres=gpu:8", "--free", free, "--fabric", str(fabric), "--json")
    doc = json.loads(out)
    # 6 hosts need 2 leaf positions (4 hosts each), and each position is 4 rail leaf switches: 8 switches.
    assert code == 0 and doc["leaf_positions"] == 2 and doc["cost"]["leaf_switches"] == 8
    code, out, _err = _run(capsys, "plan", "-N", "6", "--gres=gpu:8", "--free", free, "--fabric", str(fabric))
    assert "the job spans 2 leaf positions (8 leaf switches)" in out


def test_dry_run_without_slurm_points_to_the_offline_preview(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    from gpupool.errors import EnvError

    class Unreachable(AppContext):
        def command_runner(self):  # type: ignore[no-untyped-def]
            def run(_argv: list[str]) -> str:
                raise EnvError("scontrol: error: resolve_ctls_from_dns_srv: res_nsearch error: Unknown host")
            return run

    pools = _pools(tmp_path)
    code, _out, err = _run(capsys, "pool", "apply", pools, "--dry-run", obj=Unreachable(user_exists=lambda _u: True))
    assert code == 3 and err.count("\n") == 1
    assert f"(to check the file without Slurm: gpupool pool apply {pools} --dry-run --offline" in err
