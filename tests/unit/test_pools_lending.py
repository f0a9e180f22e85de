"""Lending rules (lend_limit, min_runtime, grace_time, borrow_limit, quota pools): parsing, the
validation errors that name a line, and the Slurm objects they compile to (docs/pools.md)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from gpupool.cli.errors import exit_code_for
from gpupool.errors import InputError
from gpupool.pools.schema import parse_pools_text
from gpupool.pools.slurm_state import LiveState, SlurmNode
from gpupool.pools.validate import resolve_and_validate
from gpupool.slurm.duration import parse_seconds as parse_time_seconds
from tests.support.pools_slurm import FakeSlurm, apply_text, change_summary

LENDING = """\
pools:
  vision:
    nodes: gpu[001-002]
    owners: [vision]
    lend_limit: 75%
    min_runtime: "10:00"
    grace_time: "0:30"
  llm:
    nodes: gpu[003-004]
    owners: [llm]
  shared:
    nodes: gpu[005-008]
    quota: {vision: 8, llm: 4}
accounts:
  vision:  {shares: 40, users: [alice]}
  llm:     {shares: 40, users: [bob], borrow_limit: 6}
  physics: {shares: 20, users: [carol]}
queues:
  urgent: {priority: 1000}
borrowing:
  max_time: "12:00:00"
"""


def _live(nodes: int = 8, gpus: int = 4) -> LiveState:
    return LiveState(cluster="c", config={}, partitions={}, qos={}, accounts={"root": {}}, associations=[],
                     nodes={f"gpu{i:03d}": SlurmNode(f"gpu{i:03d}", gpus, ("h100",), 0, frozenset({"IDLE"}))
                            for i in range(1, nodes + 1)}, users=set())


def _parse_error(text: str) -> str:
    with pytest.raises(InputError) as info:
        parse_pools_text(text, "p.yaml")
    assert exit_code_for(info.value) == 4
    return info.value.message


def _validate_error(text: str) -> str:
    spec = parse_pools_text(text, "p.yaml")
    with pytest.raises(InputError) as info:
        resolve_and_validate(spec, _live(), None, user_exists=lambda name: True)
    assert exit_code_for(info.value) == 4
    return info.value.message


def test_lending_keys_parse() -> None:
    spec = parse_pools_text(LENDING)
    vision, shared = spec.pools["vision"], spec.pools["shared"]
    assert (vision.lend_limit, vision.lend_limit_percent) == (75, True)
    assert (vision.min_runtime, vision.grace_time) == (600, 30)
    assert shared.quota == (("vision", 8), ("llm", 4)) and shared.owners == ("vision", "llm")
    assert spec.accounts["llm"].borrow_limit == 6
    assert spec.lending_partition("vision") == "scavenger-vision" and spec.lending_partition("llm") == "scavenger"


@pytest.mark.parametrize(("text", "seconds"), [("0:30", 30), ("10:00", 600), ("1:00:00", 3600), ("1-0", 86400),
                                               (5, 300), ("UNLIMITED", None)])
def test_runtime_is_read_in_seconds_like_slurm(text: str | int, seconds: int | None) -> None:
    assert parse_time_seconds(text) == seconds


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("    lend_limit: 75%\n", "    lend_limit: 120%\n",
     "p.yaml:5: pools.vision.lend_limit: expected a GPU count or a percentage from 0% to 100%, got '120%'"),
    # Only ASCII digits: "²%" was an internal error (int("²") raises), "٣%" (Arabic-Indic 3) read as 3%.
    ("    lend_limit: 75%\n", "    lend_limit: \u00b2%\n",
     "p.yaml:5: pools.vision.lend_limit: expected a GPU count or a percentage from 0% to 100%, got '\u00b2%'"),
    ("    lend_limit: 75%\n", "    lend_limit: \u0663%\n",
     "p.yaml:5: pools.vision.lend_limit: expected a GPU count or a percentage from 0% to 100%, got '\u0663%'"),
    ("    owners: [llm]\n", "    owners: [llm]\n    lend: false\n    min_runtime: 60\n",
     "p.yaml:12: pools.llm.min_runtime: min_runtime applies to a lending pool, but it does not lend (`lend: false`)"),
    ('    min_runtime: "10:00"\n', '    min_runtime: "13:00:00"\n',
     "p.yaml:6: pools.vision.min_runtime: min_runtime 13:00:00 is longer than borrowing.max_time 12:00:00: "
     "a borrower could never reach it"),
    ("    quota: {vision: 8, llm: 4}\n", "    quota: {vision: 8, nobody: 4}\n",
     "p.yaml:13: pools.shared.quota.nobody: quota account 'nobody' is not an account of this file "
     "(add it under `accounts`)"),
    ("    quota: {vision: 8, llm: 4}\n", "    quota: {vision: 8, llm: 4}\n    owners: [llm]\n",
     "p.yaml:14: pools.shared.owners: a quota pool's owners are its quota accounts: drop `owners`"),
    ("  urgent: {priority: 1000}\n", "  urgent: {priority: 1000}\n  borrow-llm: {priority: 1}\n",
     "p.yaml:16: accounts.llm.borrow_limit: gpupool names a Slurm QOS/partition 'borrow-llm' for this, but that "
     "name is already a pool, queue or another generated name; rename one of them"),
    ("borrowing:\n", "borrowing:\n  enabled: false\n",
     "p.yaml:5: pools.vision.lend_limit: lend_limit applies to a lending pool, but borrowing is disabled"),
])
def test_lending_rule_errors_name_the_line(old: str, new: str, expected: str) -> None:
    assert old in LENDING
    assert _parse_error(LENDING.replace(old, new)) == expected


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("    lend_limit: 75%\n", "    lend_limit: 9\n",
     "p.yaml:5: pools.vision.lend_limit: lend_limit 9 GPUs is more than the pool's 8 GPUs"),
    ("    quota: {vision: 8, llm: 4}\n", "    quota: {vision: 8, llm: 9}\n",
     "p.yaml:13: pools.shared.quota: the quotas add up to 17 GPUs, more than the pool's 16 GPUs "
     "(quota is protected capacity: it must fit on the shared nodes)"),
    # llm may borrow from vision (75% of 8 = 6) and shared (16): 22 GPUs.
    ("borrow_limit: 6", "borrow_limit: 23",
     "p.yaml:16: accounts.llm.borrow_limit: borrow_limit 23 GPUs is more than the 22 GPUs the other pools may "
     "lend (vision, shared)"),
])
def test_limits_larger_than_what_they_limit_are_errors(old: str, new: str, expected: str) -> None:
    assert _validate_error(LENDING.replace(old, new)) == expected


def test_borrow_limit_equal_to_what_is_lendable_is_fine() -> None:
    spec = parse_pools_text(LENDING.replace("borrow_limit: 6", "borrow_limit: 22"), "p.yaml")
    resolve_and_validate(spec, _live(), None, user_exists=lambda name: True)


def test_lending_objects_and_second_apply_changes_nothing(tmp_path: Path) -> None:
    slurm = FakeSlurm(tmp_path)
    report = apply_text(slurm, LENDING)
    assert report.error is None
    assert {("partition", "scavenger-vision", "create"), ("qos", "scavenger-vision", "create"),
            ("qos", "borrow-llm", "create"), ("qos", "shared-vision", "create"), ("qos", "shared-llm", "create"),
            ("partition", "scavenger", "create")} <= change_summary(report)
    # By hand: vision = 2 nodes x 4 GPUs, 75% -> 6; 10 minutes -> 00:10:00; 30 s grace.
    lend = slurm.qos["scavenger-vision"]
    assert (lend["GrpTRES"], lend["PreemptExemptTime"], lend["GraceTime"], lend["PreemptMode"]) == (
        "gres/gpu=6", "00:10:00", "00:00:30", "requeue")
    assert slurm.qos["borrow-llm"]["GrpTRES"] == "gres/gpu=6"
    assert slurm.qos["shared-vision"]["GrpTRES"] == "gres/gpu=8" and slurm.qos["shared-llm"]["GrpTRES"] == "gres/gpu=4"
    assert set(slurm.qos["urgent"]["Preempt"].split(",")) == {"scavenger", "borrow-llm"}
    part = slurm.partitions["scavenger-vision"]
    assert (part["Nodes"], part["QoS"], part["GraceTime"], part["PreemptMode"]) == (
        "gpu[001-002]", "scavenger-vision", "30", "REQUEUE")
    assert set(part["AllowQos"].split(",")) == {"scavenger", "borrow-llm"}
    assert slurm.partitions["scavenger"]["Nodes"] == "gpu[003-008]"
    assert set(slurm.partitions["shared"]["AllowQos"].split(",")) == {"shared-vision", "shared-llm"}
    assert slurm.partitions["shared"]["AllowAccounts"] == "llm,vision"
    qos_of = {account: set(slurm.assocs[(account, "")]["QOS"].split(",")) for account in ("vision", "llm", "physics")}
    assert {"borrow-llm", "shared-llm", "urgent"} <= qos_of["llm"] and "scavenger" not in qos_of["llm"]
    assert {"scavenger", "shared-vision"} <= qos_of["vision"] and not {"borrow-llm", "shared-llm"} & qos_of["vision"]
    assert "scavenger-vision" not in qos_of["physics"] and "shared-vision" not in qos_of["physics"]
    assert apply_text(slurm, LENDING).changes == []


def test_dropping_the_rules_goes_back_to_one_scavenger_and_removes_what_gpupool_made(tmp_path: Path) -> None:
    slurm = FakeSlurm(tmp_path)
    assert apply_text(slurm, LENDING).error is None
    plain = (LENDING.replace("    lend_limit: 75%\n", "").replace('    min_runtime: "10:00"\n', "")
             .replace('    grace_time: "0:30"\n', "").replace(", borrow_limit: 6", ""))
    report = apply_text(slurm, plain)
    assert report.error is None
    assert {("partition", "scavenger-vision", "delete"), ("qos", "scavenger-vision", "delete"),
            ("qos", "borrow-llm", "delete")} <= change_summary(report)
    assert slurm.partitions["scavenger"]["Nodes"] == "gpu[001-008]"
    assert "scavenger" in slurm.assocs[("llm", "")]["QOS"].split(",")
    assert apply_text(slurm, plain).changes == []
    assert apply_text(slurm, LENDING).error is None and apply_text(slurm, LENDING).changes == []


def test_changing_a_limit_modifies_only_that_qos(tmp_path: Path) -> None:
    slurm = FakeSlurm(tmp_path)
    assert apply_text(slurm, LENDING).error is None
    report = apply_text(slurm, LENDING.replace('min_runtime: "10:00"', 'min_runtime: "0:20"'))
    assert [(c.kind, c.name, c.action) for c in report.changes] == [("qos", "scavenger-vision", "modify")]
    assert slurm.qos["scavenger-vision"]["PreemptExemptTime"] == "00:00:20"


def test_a_lending_partition_gpupool_did_not_make_is_refused_naming_the_pool(tmp_path: Path) -> None:
    slurm = FakeSlurm(tmp_path)
    slurm.partitions["scavenger-vision"] = dict(slurm.partitions["batch"])
    with pytest.raises(InputError) as info:
        apply_text(slurm, LENDING, path="p.yaml")
    assert info.value.message.startswith("p.yaml:2: pools.vision: partition 'scavenger-vision' already exists and "
                                         "was not created by gpupool")
    assert slurm.mutations == []


def test_limits_without_enforcement_are_warned(tmp_path: Path) -> None:
    slurm = FakeSlurm(tmp_path)
    slurm.config["AccountingStorageEnforce"] = "associations"
    report = apply_text(slurm, LENDING.replace("queues:\n  urgent: {priority: 1000}\n", ""))
    assert any("lend, borrow and quota GPU limits are not enforced" in w for w in report.warnings)


# -- convergence on random files with lending rules: apply A, B, A; each time nothing is left to do ----

_UNITS = ["alpha", "beta", "gamma", "delta"]


@st.composite
def lending_files(draw: st.DrawFn) -> str:
    units = draw(st.lists(st.sampled_from(_UNITS), min_size=2, max_size=4, unique=True))
    cuts = sorted(draw(st.lists(st.integers(1, 7), min_size=len(units) - 1, max_size=len(units) - 1, unique=True)))
    bounds = [0, *cuts, 8]
    lines = ["pools:"]
    for index, unit in enumerate(units):
        first, last = bounds[index] + 1, bounds[index + 1]
        kind = draw(st.sampled_from(["owned", "quota", "shared"]))
        body = f"nodes: 'gpu[{first:03d}-{last:03d}]'"
        if kind == "owned":
            body += f", owners: [{unit}]"
        elif kind == "quota":
            members = draw(st.lists(st.sampled_from(units), min_size=1, max_size=2, unique=True))
            body += ", quota: {" + ", ".join(f"{m}: 1" for m in members) + "}"
        if kind != "shared":
            if draw(st.booleans()):
                body += f", lend_limit: {draw(st.sampled_from(['0', '1', '50%', '100%']))}"
            if draw(st.booleans()):
                body += f", min_runtime: '0:{draw(st.integers(1, 59)):02d}'"
            if draw(st.booleans()):
                body += f", grace_time: {draw(st.integers(0, 3))}"
        lines.append(f"  {unit}: {{{body}}}")
    lines.append("accounts:")
    for unit in units:
        limit = draw(st.sampled_from(["", ", borrow_limit: 0", ", borrow_limit: 1"]))
        lines.append(f"  {unit}: {{shares: 10, users: [u1]{limit}}}")
    lines.append("queues:\n  urgent: {priority: 10}")
    return "\n".join(lines) + "\n"


def _valid(text: str) -> bool:
    try:
        spec = parse_pools_text(text)
        resolve_and_validate(spec, _live(), None, user_exists=lambda name: True)
    except InputError:
        return False
    return True


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(first=lending_files(), second=lending_files())
def test_any_lending_file_converges(first: str, second: str) -> None:
    assume(_valid(first) and _valid(second))
    with tempfile.TemporaryDirectory() as tmp:
        slurm = FakeSlurm(Path(tmp))
        for text in (first, second, first):
            report = apply_text(slurm, text)
            assert report.error is None, text
            assert apply_text(slurm, text).changes == [], text
            spec = parse_pools_text(text)
            lenders = spec.lending_pools()
            # Expected objects, from the rules of docs/pools.md restated here.
            partitions = set(spec.pools) | {f"scavenger-{p.name}" for p in lenders
                                            if p.lend_limit is not None or p.min_runtime is not None
                                            or p.grace_time is not None}
            if any(p.lend_limit is None and p.min_runtime is None and p.grace_time is None for p in lenders):
                partitions.add("scavenger")
            assert set(slurm.partitions) == partitions | {"batch"}, text
            borrow = {f"borrow-{a.name}" for a in spec.accounts.values() if a.borrow_limit is not None}
            quota = {f"{p.name}-{a}" for p in spec.pools.values() for a, _ in p.quota}
            lending = {n for n in partitions if n.startswith("scavenger-")}
            expected_qos = {"normal", "urgent"} | quota | lending | (
                {"scavenger"} | borrow if spec.borrowing_active() else set())
            assert set(slurm.qos) == expected_qos, text
            for account in spec.accounts.values():
                has = set(slurm.assocs[(account.name, "")]["QOS"].split(","))
                mine = {f"{p.name}-{account.name}" for p in spec.pools.values() if account.name in dict(p.quota)}
                assert mine <= has and not (quota - mine) & has, (account.name, has, text)
                if spec.borrowing_active():
                    limited = account.borrow_limit is not None
                    assert (f"borrow-{account.name}" in has) == limited and ("scavenger" in has) != limited, text


@pytest.mark.parametrize(("percent", "gpus"), [("30%", 2), ("45%", 3), ("99%", 7), ("1%", 0), ("100%", 8)])
def test_percentage_lend_limit_that_does_not_divide_rounds_down(tmp_path: Path, percent: str, gpus: int) -> None:
    # By hand (docs/pools.md: "a percentage of its GPUs, rounded down"): vision = 2 nodes x 4 GPUs = 8;
    # 30% = 2.4 -> 2, 45% = 3.6 -> 3 (never 4: lending more than the limit says), 99% = 7.92 -> 7.
    slurm = FakeSlurm(tmp_path)
    report = apply_text(slurm, LENDING.replace("lend_limit: 75%", f"lend_limit: {percent}"))
    assert report.error is None
    assert slurm.qos["scavenger-vision"]["GrpTRES"] == f"gres/gpu={gpus}"


@pytest.mark.parametrize(("percent", "pool_gpus", "gpus"), [(75, 6, 4), (50, 3, 1), (33, 10, 3), (67, 10, 6),
                                                            (10, 9, 0)])
def test_lend_limit_gpus_rounds_down_by_hand(percent: int, pool_gpus: int, gpus: int) -> None:
    from gpupool.pools.schema import lend_limit_gpus

    spec = parse_pools_text(LENDING.replace("lend_limit: 75%", f"lend_limit: {percent}%"))
    assert lend_limit_gpus(spec.pools["vision"], pool_gpus) == gpus
