"""pool apply against an in-memory Slurm that executes the scontrol/sacctmgr lines gpupool emits."""

from __future__ import annotations

import contextlib
import io
import json
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from gpupool.cli.context import AppContext
from gpupool.cli.main import main
from gpupool.errors import EnvError
from gpupool.pools.apply import ApplyOptions, apply_pools
from gpupool.pools.fragment import read_fragment
from gpupool.pools.schema import parse_pools_text
from tests.support.oracles import expand_names
from tests.support.pools_slurm import FakeSlurm, apply_text, change_summary

TWO_UNITS = """\
pools:
  vision:
    nodes: gpu[001-004]
    owners: [vision]
    max_time: 2-00:00:00
  llm:
    nodes: gpu[005-008]
    owners: [llm]
accounts:
  vision: {shares: 30, users: [alice]}
  llm:    {shares: 70, users: [bob, carol]}
queues:
  urgent: {priority: 1000, max_gpus: 16, max_gpus_per_user: 8}
"""


@pytest.fixture
def slurm(tmp_path: Path) -> FakeSlurm:
    return FakeSlurm(tmp_path)


def test_first_apply_creates_everything_and_second_changes_nothing(slurm: FakeSlurm) -> None:
    first = apply_text(slurm, TWO_UNITS)
    assert first.applied and first.error is None
    assert change_summary(first) == {
        ("qos", "scavenger", "create"), ("qos", "urgent", "create"),
        ("account", "vision", "create"), ("account", "llm", "create"),
        ("user", "alice", "create"), ("user", "bob", "create"), ("user", "carol", "create"),
        ("partition", "vision", "create"), ("partition", "llm", "create"), ("partition", "scavenger", "create")}
    assert slurm.assocs[("vision", "")]["Fairshare"] == "30"
    assert slurm.assocs[("llm", "")]["Fairshare"] == "70"
    assert slurm.partitions["vision"]["AllowAccounts"] == "vision"
    assert slurm.partitions["scavenger"]["Nodes"] == "gpu[001-008]"
    assert slurm.qos["urgent"]["GrpTRES"] == "gres/gpu=16"
    assert slurm.qos["urgent"]["Preempt"] == "scavenger"
    assert set(slurm.assocs[("llm", "")]["QOS"].split(",")) >= {"urgent", "scavenger"}
    fragment = read_fragment(str(slurm.conf_path.parent / "gpupool-partitions.conf"))
    assert fragment.owned == {"vision", "llm", "scavenger"}
    assert first.fragment_written

    before = len(slurm.mutations)
    second = apply_text(slurm, TWO_UNITS)
    assert second.changes == [] and second.applied
    assert len(slurm.mutations) == before
    assert not second.fragment_written
    assert second.warnings == ["partition 'batch' (not managed by gpupool) also covers owned pool(s) llm, vision: "
                               "its jobs use those GPUs outside the owners' rules (and are preempted like "
                               "borrowers if its PriorityTier is lower)"]


def test_dry_run_changes_nothing(slurm: FakeSlurm) -> None:
    report = apply_text(slurm, TWO_UNITS, dry_run=True)
    assert len(report.changes) == 10
    assert not report.applied
    assert slurm.mutations == []
    assert not (slurm.conf_path.parent / "gpupool-partitions.conf").exists()


def test_modified_file_produces_modifications_only(slurm: FakeSlurm) -> None:
    apply_text(slurm, TWO_UNITS)
    changed = (TWO_UNITS.replace("shares: 30", "shares: 40").replace("gpu[005-008]", "gpu[005-007]")
               .replace("max_gpus: 16", "max_gpus: 12"))
    report = apply_text(slurm, changed)
    assert change_summary(report) == {("account", "vision", "modify"), ("partition", "llm", "modify"),
                                ("partition", "scavenger", "modify"), ("qos", "urgent", "modify")}
    assert slurm.assocs[("vision", "")]["Fairshare"] == "40"
    assert slurm.partitions["llm"]["Nodes"] == "gpu[005-007]"
    assert slurm.qos["urgent"]["GrpTRES"] == "gres/gpu=12"
    assert apply_text(slurm, changed).changes == []


def test_removed_objects_are_deleted_only_when_gpupool_made_them(slurm: FakeSlurm) -> None:
    apply_text(slurm, TWO_UNITS)
    slurm.qos["handmade"] = slurm._qos_row("handmade", "made by an admin")
    without_llm = """\
pools:
  vision: {nodes: "gpu[001-004]", owners: [vision]}
accounts:
  vision: {shares: 30, users: [alice]}
"""
    report = apply_text(slurm, without_llm)
    deleted = {(c.kind, c.name) for c in report.changes if c.action == "delete"}
    assert deleted == {("partition", "llm"), ("account", "llm"), ("qos", "urgent")}
    assert "llm" not in slurm.partitions and "batch" in slurm.partitions
    assert "handmade" in slurm.qos and "physics" in slurm.accounts and ("physics", "") in slurm.assocs
    assert read_fragment(str(slurm.conf_path.parent / "gpupool-partitions.conf")).owned == {"vision", "scavenger"}


def test_user_dropped_from_managed_account_loses_its_association(slurm: FakeSlurm) -> None:
    apply_text(slurm, TWO_UNITS)
    report = apply_text(slurm, TWO_UNITS.replace("users: [bob, carol]", "users: [bob]"))
    assert change_summary(report) == {("user", "carol", "delete")}
    assert ("llm", "carol") not in slurm.assocs and ("llm", "bob") in slurm.assocs


def test_existing_partition_not_made_by_gpupool_is_refused_with_line(slurm: FakeSlurm) -> None:
    text = TWO_UNITS.replace("  llm:\n    nodes: gpu[005-008]", "  batch:\n    nodes: gpu[005-008]")
    text = text.replace("owners: [llm]", "owners: [llm]")
    with pytest.raises(Exception) as info:
        apply_text(slurm, text)
    assert "pools.yaml:6: pools.batch: partition 'batch' already exists and was not created by gpupool" in str(info.value)
    assert slurm.mutations == []


def test_failure_in_the_middle_reports_progress_and_rerun_completes(slurm: FakeSlurm) -> None:
    slurm.fail_on = "add user bob"
    report = apply_text(slurm, TWO_UNITS)
    assert report.error is not None and not report.applied
    statuses = {(c.kind, c.name): c.status for c in report.changes}
    assert statuses[("user", "bob")] == "failed"
    assert statuses[("account", "llm")] == "applied"
    assert statuses[("partition", "vision")] == "pending"
    assert "vision" not in slurm.partitions
    slurm.fail_on = None
    rerun = apply_text(slurm, TWO_UNITS)
    assert rerun.error is None
    assert ("account", "llm", "create") not in change_summary(rerun)
    assert ("user", "bob", "create") in change_summary(rerun)
    assert apply_text(slurm, TWO_UNITS).changes == []


def test_failed_partition_create_keeps_created_ones_in_fragment(slurm: FakeSlurm) -> None:
    slurm.fail_on = "PartitionName=scavenger"
    report = apply_text(slurm, TWO_UNITS)
    assert report.error is not None
    owned = read_fragment(str(slurm.conf_path.parent / "gpupool-partitions.conf")).owned
    assert owned == {"vision", "llm"}


def test_cli_json_and_exit_code_on_dbd_down(slurm: FakeSlurm, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    pools = tmp_path / "pools.yaml"
    pools.write_text(TWO_UNITS)
    fragment = tmp_path / "frag.conf"
    context = AppContext(slurm_runner=slurm, user_exists=lambda name: True)
    code = main(["pool", "apply", str(pools), "--fragment", str(fragment), "--json"], context)
    out, err = capsys.readouterr()
    assert code == 0, err
    doc = json.loads(out)
    assert doc["applied"] is True
    assert {"kind", "name", "action", "detail"} <= set(doc["changes"][0])
    assert len(doc["changes"]) == 10

    code = main(["pool", "apply", str(pools), "--fragment", str(fragment), "--json"],
                AppContext(slurm_runner=slurm, user_exists=lambda n: True))
    out, err = capsys.readouterr()
    assert code == 0 and json.loads(out) == {**json.loads(out), "changes": [], "applied": True}

    slurm.dbd_up = False
    code = main(["pool", "apply", str(pools), "--fragment", str(fragment)],
                AppContext(slurm_runner=slurm, user_exists=lambda n: True))
    out, err = capsys.readouterr()
    assert code == 3
    assert err.startswith("gpupool: error:") and "database" in err and "Traceback" not in err


def test_cli_unknown_user_is_input_error_unless_allowed(slurm: FakeSlurm, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    pools = tmp_path / "pools.yaml"
    pools.write_text(TWO_UNITS)
    known = {"alice", "bob"}
    factories = {"slurm_runner": slurm, "user_exists": known.__contains__}
    code = main(["pool", "apply", str(pools), "--dry-run"], AppContext(**factories))
    _, err = capsys.readouterr()
    assert code == 4
    assert f"{pools}:11: accounts.llm.users.1: unknown user 'carol'" in err
    code = main(["pool", "apply", str(pools), "--dry-run", "--allow-unknown-users", "--fragment",
                 str(tmp_path / "f.conf")], AppContext(**factories))
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "dry run: 10 change(s) would be made" in out


def test_missing_preemption_config_is_warned(slurm: FakeSlurm, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    slurm.config["PreemptType"] = "preempt/none"
    slurm.conf_path.write_text("ClusterName=test\n")
    pools = tmp_path / "pools.yaml"
    pools.write_text(TWO_UNITS)
    code = main(["pool", "apply", str(pools), "--dry-run", "--fragment", str(tmp_path / "f.conf")],
                AppContext(slurm_runner=slurm, user_exists=lambda n: True))
    _, err = capsys.readouterr()
    assert code == 0
    warnings = [line for line in err.splitlines() if line.startswith("gpupool: warning:")]
    assert any("PreemptType=preempt/none" in w for w in warnings)
    assert any("does not `include" in w for w in warnings)


def test_cli_json_reports_partial_apply_and_fails(slurm: FakeSlurm, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    pools = tmp_path / "pools.yaml"
    pools.write_text(TWO_UNITS)
    slurm.fail_on = "PartitionName=llm"
    code = main(["pool", "apply", str(pools), "--fragment", str(tmp_path / "f.conf"), "--json"],
                AppContext(slurm_runner=slurm, user_exists=lambda n: True))
    out, err = capsys.readouterr()
    assert code == 4
    doc = json.loads(out)
    assert doc["applied"] is False and "rejected" in doc["error"]
    statuses = [c["status"] for c in doc["changes"]]
    assert statuses.count("failed") == 1 and statuses.index("failed") == statuses.count("applied")
    last = err.strip().splitlines()[-1]
    assert last.startswith("gpupool: error:") and "applied 8 of 10 changes; re-run" in last


# -- convergence on random files: apply, then nothing left to do; admin objects survive ----------

_names = st.sampled_from(["alpha", "beta", "gamma", "delta"])


@st.composite
def pools_files(draw: st.DrawFn) -> str:
    units = draw(st.lists(_names, min_size=1, max_size=4, unique=True))
    cuts = sorted(draw(st.lists(st.integers(1, 7), min_size=len(units) - 1, max_size=len(units) - 1, unique=True)))
    bounds = [0, *cuts, 8]
    lines = ["pools:"]
    for index, unit in enumerate(units):
        first, last = bounds[index] + 1, bounds[index + 1]
        owned = draw(st.booleans())
        lines.append(f"  {unit}: {{nodes: 'gpu[{first:03d}-{last:03d}]'"
                     + (f", owners: [{unit}]" if owned else "")
                     + (f", max_time: {draw(st.integers(1, 5000))}" if draw(st.booleans()) else "")
                     + (", lend: false" if draw(st.booleans()) else "") + "}")
    queues = draw(st.lists(st.sampled_from(["urgent", "standard", "low"]), max_size=3, unique=True))
    lines.append("accounts:")
    for unit in units:
        users = draw(st.lists(st.sampled_from(["u1", "u2", "u3"]), max_size=3, unique=True))
        default = draw(st.one_of(st.none(), st.sampled_from(queues))) if queues else None
        lines.append(f"  {unit}: {{shares: {draw(st.integers(1, 100))}, users: [{', '.join(users)}]"
                     + (f", default_queue: {default}" if default else "") + "}")
    if queues:
        lines.append("queues:")
        for queue in queues:
            limit = draw(st.one_of(st.none(), st.integers(1, 32)))
            lines.append(f"  {queue}: {{priority: {draw(st.integers(0, 1000))}"
                         + (f", max_gpus: {limit}" if limit else "") + "}")
    return "\n".join(lines) + "\n"


@settings(max_examples=40, deadline=None)
@given(first=pools_files(), second=pools_files())
def test_any_file_converges_and_admin_objects_survive(first: str, second: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        slurm = FakeSlurm(Path(tmp))
        for text in (first, second, first):
            report = apply_text(slurm, text)
            assert report.error is None
            assert apply_text(slurm, text).changes == [], text
            spec = parse_pools_text(text)
            owned = {p for p in spec.pools} | ({"scavenger"} if spec.borrowing_active() else set())
            assert set(slurm.partitions) == owned | {"batch"}
            assert {a for a, u in slurm.assocs if not u} == set(spec.accounts) | {"root", "physics"}
            assert slurm.qos.keys() == set(spec.queues) | {"normal"} | (
                {"scavenger"} if spec.borrowing_active() else set())
            for user in {u for a in spec.accounts.values() for u in a.users}:
                assert (slurm.default_account[user], user) in slurm.assocs, "user left without a default account"
            for account in spec.accounts.values():
                assert slurm.assocs[(account.name, "")]["Fairshare"] == str(account.shares)
                if account.default_queue:
                    assert slurm.assocs[(account.name, "")]["DefaultQOS"] == account.default_queue
                assert {u for a, u in slurm.assocs if a == account.name and u} == set(account.users)


# -- issue 29: after `pool apply`, a second `pool apply --dry-run` reports no change ------------

GPUS_PER_NODE = 4  # FakeSlurm's nodes


@st.composite
def lending_pools_files(draw: st.DrawFn) -> str:
    """A pools file of `pools_files` whose owned pools may also carry the lending rules (lend_limit
    as GPUs or a percentage, min_runtime, grace_time): each such pool gets its own lending partition
    and partition QOS, which the plain convergence property never makes."""
    lines = draw(pools_files()).splitlines()
    out = []
    for line in lines:
        if line.startswith("  ") and "owners:" in line and "lend: false" not in line and "nodes: 'gpu[" in line:
            first, last = (int(n) for n in line.split("gpu[")[1].split("]")[0].split("-"))
            pool_gpus = (last - first + 1) * GPUS_PER_NODE
            extras = []
            limit = draw(st.one_of(st.none(), st.integers(0, pool_gpus).map(str),
                                   st.integers(0, 100).map(lambda n: f"'{n}%'")))
            if limit is not None:
                extras.append(f"lend_limit: {limit}")
            if draw(st.booleans()):
                extras.append(f"min_runtime: {draw(st.integers(0, 3600))}")
            if draw(st.booleans()):
                extras.append(f"grace_time: {draw(st.integers(0, 600))}")
            if extras:
                line = line[:-1] + ", " + ", ".join(extras) + "}"
        out.append(line)
    return "\n".join(out) + "\n"


def _cli_json(args: list[str], slurm: FakeSlurm) -> tuple[int, dict, str]:  # type: ignore[type-arg]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([*args, "--json"], AppContext(slurm_runner=slurm, user_exists=lambda name: True))
    return code, json.loads(out.getvalue()) if out.getvalue().strip() else {}, err.getvalue()


def _expected_lend_limits(text: str) -> dict[str, int]:
    """Lending partition QOS -> GrpTRES GPUs, read from the file by hand (yaml.safe_load): a GPU
    count as written, a percentage of the pool's nodes x 4 GPUs rounded down."""
    doc = yaml.safe_load(text)
    limits = {}
    for name, pool in doc["pools"].items():
        if "lend_limit" not in pool:
            continue
        first, last = (int(n) for n in pool["nodes"].split("gpu[")[1].rstrip("]").split("-"))
        limit = pool["lend_limit"]
        if isinstance(limit, str):
            limit = (last - first + 1) * GPUS_PER_NODE * int(limit.rstrip("%")) // 100
        limits[f"scavenger-{name}"] = limit
    return limits


@settings(max_examples=40, deadline=None)
@given(text=lending_pools_files())
def test_cli_second_dry_run_after_apply_reports_no_change(text: str) -> None:
    """Through the CLI, as an admin runs it: the dry run predicts what apply then does; apply
    reaches the file; a second dry run finds nothing to change, runs no mutating command and
    leaves the fragment as it was. Lend limits land as written (independent reading above)."""
    with tempfile.TemporaryDirectory() as tmp:
        slurm = FakeSlurm(Path(tmp))
        pools, fragment = Path(tmp) / "pools.yaml", Path(tmp) / "gpupool-partitions.conf"
        pools.write_text(text)
        args = ["pool", "apply", str(pools), "--fragment", str(fragment)]
        code, predicted, err = _cli_json([*args, "--dry-run"], slurm)
        assert code == 0, (err, text)
        assert slurm.mutations == [] and not fragment.exists()
        code, applied, err = _cli_json(args, slurm)
        assert code == 0 and applied["applied"] is True, (err, text)
        changes = {(c["kind"], c["name"], c["action"]) for c in applied["changes"]}
        assert changes == {(c["kind"], c["name"], c["action"]) for c in predicted["changes"]}, text
        assert all(c["status"] == "applied" for c in applied["changes"])
        mutations, written = list(slurm.mutations), fragment.read_text()
        code, second, err = _cli_json([*args, "--dry-run"], slurm)
        assert code == 0 and second["changes"] == [] and second["applied"] is False, (second, text)
        assert slurm.mutations == mutations and fragment.read_text() == written
        for qos, gpus in _expected_lend_limits(text).items():
            assert slurm.qos[qos]["GrpTRES"] == f"gres/gpu={gpus}", (qos, slurm.qos[qos], text)
        owned_nodes = [h for name, p in slurm.partitions.items() if name in yaml.safe_load(text)["pools"]
                       for h in expand_names(p["Nodes"])]
        assert len(owned_nodes) == len(set(owned_nodes)) == 8, "every node in exactly one pool partition"


def test_bad_file_is_input_error_even_when_slurm_is_down(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def unreachable(argv: list[str]) -> str:
        raise EnvError(f"{argv[0]}: Slurm unreachable: Unable to contact slurm controller")

    pools = tmp_path / "pools.yaml"
    factories = {"slurm_runner": unreachable, "user_exists": lambda n: True}
    pools.write_text(TWO_UNITS.replace("gpu[005-008]", "gpu[005-"))
    assert main(["pool", "apply", str(pools)], AppContext(**factories)) == 4
    assert f"{pools}:7: pools.llm.nodes: 'gpu[005-' is not a valid Slurm hostlist" in capsys.readouterr().err
    pools.write_text(TWO_UNITS)
    assert main(["pool", "apply", str(pools)], AppContext(**factories)) == 3
    assert "Unable to contact slurm controller" in capsys.readouterr().err


# -- issue 19 item 6: crash-consistent apply ----------------------------------------------------

class Killed(BaseException):
    """The process died (SIGKILL): nothing after this point runs, not even `finally` writes."""


def _mutations_of_a_clean_run(tmp: Path) -> int:
    clean = FakeSlurm(tmp)
    apply_text(clean, TWO_UNITS)
    return len(clean.mutations)


@pytest.mark.parametrize("fault", ["killed-before", "killed-after", "late-answer"])
def test_interrupted_apply_converges_on_rerun_at_every_step(fault: str, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import gpupool.pools.apply as apply_module
    import gpupool.pools.fragment as fragment_module

    (tmp_path / "clean").mkdir()
    steps = _mutations_of_a_clean_run(tmp_path / "clean")
    assert steps >= 10
    for step in range(steps):
        directory = tmp_path / f"{fault}-{step}"
        directory.mkdir()
        slurm = FakeSlurm(directory)
        dead = {"now": False}
        real_call = FakeSlurm.__call__

        def faulty(argv: list[str], slurm: FakeSlurm = slurm, step: int = step,
                   real_call=real_call, dead=dead) -> str:  # type: ignore[no-untyped-def]
            mutating = argv[0] in ("scontrol", "sacctmgr") and not (
                "show" in argv or argv[:2] == ["sacctmgr", "-P"])
            if mutating and len(slurm.mutations) == step:
                if fault == "killed-before":
                    dead["now"] = True
                    raise Killed()
                real_call(slurm, argv)  # Slurm acted ...
                if fault == "killed-after":
                    dead["now"] = True
                    raise Killed()
                raise EnvError(f"{argv[0]} did not answer within 30s")  # ... but answered too late
            return real_call(slurm, argv)

        real_write = apply_module.atomic_write_text

        def write_unless_dead(*args, dead=dead, real_write=real_write, **kwargs):  # type: ignore[no-untyped-def]
            if not dead["now"]:
                real_write(*args, **kwargs)

        monkeypatch.setattr(apply_module, "atomic_write_text", write_unless_dead)
        spec = parse_pools_text(TWO_UNITS, "pools.yaml")
        fragment = str(directory / "gpupool-partitions.conf")
        options = ApplyOptions(fragment_path=fragment, user_exists=lambda name: True)
        with contextlib.suppress(Killed):
            apply_pools(spec, faulty, options, lambda live: "unused")
        monkeypatch.setattr(apply_module, "atomic_write_text", real_write)
        rerun = apply_text(slurm, TWO_UNITS)
        assert rerun.error is None, (fault, step, rerun.error)
        assert read_fragment(fragment).owned == {"vision", "llm", "scavenger"}, (fault, step)
        assert not Path(fragment_module.journal_path(fragment)).exists()
        assert apply_text(slurm, TWO_UNITS).changes == [], (fault, step)


def test_unreadable_node_list_of_another_partition_is_an_error(slurm: FakeSlurm, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    pools = tmp_path / "pools.yaml"
    pools.write_text(TWO_UNITS)
    slurm.partitions["debug"] = {**slurm.partitions["batch"], "Nodes": "gpu[001-", "Default": "NO"}
    code = main(["pool", "apply", str(pools), "--dry-run"], AppContext(slurm_runner=slurm, user_exists=lambda n: True))
    assert code == 4
    assert "'gpu[001-' is not a valid Slurm hostlist" in capsys.readouterr().err
