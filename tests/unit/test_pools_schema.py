"""Pools file parsing and validation: every error names file, line and key."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gpupool.cli.errors import exit_code_for
from gpupool.errors import InputError
from gpupool.fabric.compiled import compile_fabric
from gpupool.fabric.generate import dragonfly, fat_tree
from gpupool.pools.nodes import resolve_nodes, resolve_selector
from gpupool.pools.schema import format_time_minutes, parse_pools_text
from gpupool.pools.slurm_state import LiveState, SlurmNode
from gpupool.pools.validate import resolve_and_validate
from gpupool.slurm.duration import parse_minutes as parse_time_minutes

BASE = """\
pools:
  vision:
    nodes: gpu[001-004]
    owners: [vision]
accounts:
  vision: {shares: 30, users: [alice]}
queues:
  urgent: {priority: 1000, max_gpus: 16}
"""


def _error(text: str) -> str:
    with pytest.raises(InputError) as info:
        parse_pools_text(text, "p.yaml")
    assert exit_code_for(info.value) == 4
    return info.value.message


def _live(nodes: int = 8, gpus: int = 4, gpu_type: str = "h100") -> LiveState:
    return LiveState(cluster="c", config={}, partitions={}, qos={}, accounts={"root": {}}, associations=[],
                     nodes={f"gpu{i:03d}": SlurmNode(f"gpu{i:03d}", gpus, (gpu_type,), 0, frozenset({"IDLE"}))
                            for i in range(1, nodes + 1)},
                     users={"slurmonly"})


def _validate(text: str, live: LiveState | None = None, **kwargs: object):  # type: ignore[no-untyped-def]
    spec = parse_pools_text(text, "p.yaml")
    return resolve_and_validate(spec, live if live is not None else _live(), None,
                                user_exists=kwargs.pop("user_exists", lambda name: True), **kwargs)  # type: ignore[arg-type]


def test_minimal_contract_example_parses() -> None:
    spec = parse_pools_text("""\
pools:                    # Slurm partitions
  vision:
    nodes: gpu[001-016]   # Slurm hostlist
    owners: [vision]
    max_time: 2-00:00:00  # optional
accounts:
  vision: {shares: 30, users: [vis01, vis02]}
  llm:    {shares: 70, users: [llm01]}
queues:
  urgent: {priority: 1000, max_gpus: 32, max_gpus_per_user: 16}
""")
    assert spec.pools["vision"].max_time == 2 * 24 * 60
    assert spec.accounts["llm"].shares == 70
    assert spec.accounts["vision"].users == ("vis01", "vis02")
    assert spec.queues["urgent"].max_gpus_per_user == 16
    assert spec.borrowing_active()
    assert spec.queue_preempts(spec.queues["urgent"]) == ("scavenger",)


@pytest.mark.parametrize(("text", "expected"), [
    (BASE.replace("shares: 30", "shares: 0"), "p.yaml:6: accounts.vision.shares: shares must be at least 1"),
    (BASE.replace("shares: 30", "shares: -2"), "p.yaml:6: accounts.vision.shares: must be at least 0"),
    (BASE.replace("shares: 30", "shares: lots"), "p.yaml:6: accounts.vision.shares: expected an integer"),
    (BASE.replace("owners: [vision]", "owners: [vison]"), "p.yaml:4: pools.vision.owners.0: owner 'vison' is not an account"),
    (BASE.replace("    owners", "    colour: red\n    owners"), "p.yaml:4: pools.vision.colour: unknown key"),
    (BASE.replace("priority: 1000", "priority: high"), "p.yaml:8: queues.urgent.priority: expected an integer"),
    (BASE.replace("max_gpus: 16", "max_gpus: 0"), "p.yaml:8: queues.urgent.max_gpus: must be at least 1"),
    (BASE.replace("  vision: {shares", "  Vision: {shares"), "p.yaml:6: accounts.Vision: invalid name 'Vision'"),
    (BASE.replace("    nodes: gpu[001-004]\n", ""), "p.yaml:2: pools.vision: missing required key `nodes`"),
    (BASE + "  urgent: {priority: 1}\n", "p.yaml:9: queues.urgent: duplicate key"),
    (BASE.replace("owners: [vision]", "owners: [vision]\n    max_time: soon"), "p.yaml:5: pools.vision.max_time: 'soon' is not a Slurm time limit"),
    (BASE.replace("{priority: 1000, max_gpus: 16}", "{priority: 1, preempt: [nothere]}"), "p.yaml:8: queues.urgent.preempt.0: unknown queue 'nothere'"),
    (BASE + "  scavenger: {priority: 0}\n", "p.yaml:9: queues.scavenger: this name is reserved"),
    (BASE.replace("shares: 30,", "shares: 30, parent: vision,"), "p.yaml:6: accounts.vision.parent: an account cannot be its own parent"),
    ("pools: {}\n", "p.yaml:1: pools: at least one pool is required"),
    ("accounts: {}\n", "p.yaml:1: (top level): missing required key `pools`"),
    ("pools: [1, 2\n", "p.yaml:2: invalid YAML"),
])
def test_structural_errors_name_line_and_key(text: str, expected: str) -> None:
    assert _error(text).startswith(expected)


def test_account_cycle_is_rejected() -> None:
    text = BASE.replace("  vision: {shares: 30, users: [alice]}",
                        "  vision: {shares: 30, users: [alice], parent: a}\n  a: {shares: 1, parent: b}\n"
                        "  b: {shares: 1, parent: vision}")
    assert "the account tree has a cycle" in _error(text)


def test_twelve_hour_limit_is_not_read_as_base_60() -> None:
    spec = parse_pools_text(BASE.replace("owners: [vision]", "owners: [vision]\n    max_time: 12:00:00"))
    assert spec.pools["vision"].max_time == 12 * 60


@pytest.mark.parametrize(("text", "minutes"), [
    ("90", 90), ("1:30", 2), ("02:00:00", 120), ("1-0", 1440), ("2-00:00:00", 2880), ("1-2:30", 1590),
    ("UNLIMITED", None), ("INFINITE", None), (45, 45)])
def test_time_limits(text: str | int, minutes: int | None) -> None:
    assert parse_time_minutes(text) == minutes


@given(st.one_of(st.none(), st.integers(min_value=0, max_value=400 * 24 * 60)))
def test_time_format_round_trips(minutes: int | None) -> None:
    assert parse_time_minutes(format_time_minutes(minutes)) == minutes


def test_unknown_node_against_slurm() -> None:
    with pytest.raises(InputError) as info:
        _validate(BASE.replace("gpu[001-004]", "gpu[007-010]"))
    assert info.value.message.startswith(
        "p.yaml:3: pools.vision.nodes: unknown node(s) not in Slurm's node list: gpu009, gpu010")


def test_node_in_two_owned_pools() -> None:
    text = BASE.replace("accounts:", "  llm:\n    nodes: gpu[004-005]\n    owners: [llm]\naccounts:").replace(
        "  vision: {shares", "  llm: {shares: 70}\n  vision: {shares")
    with pytest.raises(InputError) as info:
        _validate(text)
    assert info.value.message.startswith(
        "p.yaml:6: pools.llm.nodes: node gpu004 is also in owned pool 'vision'")


def test_unowned_pools_may_overlap() -> None:
    text = BASE.replace("accounts:", "  shared:\n    nodes: gpu[001-008]\naccounts:")
    resolved = _validate(text)
    assert resolved.gpus == {"vision": 16, "shared": 32}


def test_queue_limit_above_pool_size() -> None:
    with pytest.raises(InputError) as info:
        _validate(BASE.replace("max_gpus: 16", "max_gpus: 17"))
    assert info.value.message == "p.yaml:8: queues.urgent.max_gpus: 17 GPUs is more than the 16 GPUs of all pools"
    with pytest.raises(InputError) as info:
        _validate(BASE.replace("max_gpus: 16}", "max_gpus: 16, max_gpus_per_user: 20}"))
    assert "queues.urgent.max_gpus_per_user: 20 GPUs is more than the 16 GPUs" in info.value.message
    assert _validate(BASE).gpus == {"vision": 16}


def test_queue_limit_uses_gpus_per_node_when_given() -> None:
    text = BASE.replace("owners: [vision]", "owners: [vision]\n    gpus_per_node: 8").replace("max_gpus: 16", "max_gpus: 32")
    assert _validate(text).gpus == {"vision": 32}


def test_gpu_type_mismatch() -> None:
    text = BASE.replace("owners: [vision]", "owners: [vision]\n    gpu_type: a100")
    with pytest.raises(InputError) as info:
        _validate(text)
    assert info.value.message.startswith("p.yaml:5: pools.vision.gpu_type: node gpu001 has GPUs of type h100")


def test_unknown_user_rejected_unless_allowed() -> None:
    text = BASE.replace("users: [alice]", "users: [alice, mallory, slurmonly]")
    known = {"alice"}.__contains__
    with pytest.raises(InputError) as info:
        _validate(text, user_exists=known)
    assert info.value.message.startswith("p.yaml:6: accounts.vision.users.1: unknown user 'mallory'")
    _validate(text, user_exists=known, allow_unknown_users=True)
    _validate(text.replace("pools:", "options: {allow_unknown_users: true}\npools:"), user_exists=known)


def test_unknown_parent_account() -> None:
    with pytest.raises(InputError) as info:
        _validate(BASE.replace("shares: 30,", "shares: 30, parent: physics,"))
    assert "accounts.vision.parent: parent account 'physics' is neither in this file nor in Slurm" in info.value.message


def test_fabric_selectors_resolve_on_the_model() -> None:
    compiled = compile_fabric(fat_tree(4, 4, 2))
    assert resolve_selector("leaf:leaf02", compiled) == ["gpu005", "gpu006", "gpu007", "gpu008"]
    assert len(resolve_selector("switch:spine02", compiled)) == 16
    pods = compile_fabric(fat_tree(4, 2, 2, pods=2, cores=2))
    assert resolve_selector("switch:pod2-spine02", pods) == [f"gpu{i:03d}" for i in range(9, 17)]
    rails = compile_fabric(fat_tree(4, 2, 2, rails=2))
    assert resolve_selector("leaf:leaf03-rail1", rails) == ["gpu005", "gpu006"]
    fly = compile_fabric(dragonfly(3, 2, 2, 1))
    assert resolve_selector("group:1", fly) == ["gpu005", "gpu006", "gpu007", "gpu008"]
    assert resolve_nodes(("leaf:leaf01", "gpu[015-016]"), lambda: compiled) == [
        "gpu001", "gpu002", "gpu003", "gpu004", "gpu015", "gpu016"]
    with pytest.raises(ValueError, match="no leaf switch named 'leaf09'"):
        resolve_selector("leaf:leaf09", compiled)
    with pytest.raises(ValueError, match="not a leaf switch"):
        resolve_selector("leaf:spine01", compiled)


def test_selector_errors_carry_the_line() -> None:
    compiled = compile_fabric(fat_tree(2, 4, 1))
    spec = parse_pools_text(BASE.replace("gpu[001-004]", "leaf:leaf07"), "p.yaml")
    with pytest.raises(InputError) as info:
        resolve_and_validate(spec, _live(), lambda: compiled, user_exists=lambda n: True)
    assert info.value.message.startswith("p.yaml:3: pools.vision.nodes: 'leaf:leaf07': the fabric has no leaf switch")
    spec = parse_pools_text(BASE.replace("gpu[001-004]", "leaf:leaf02"), "p.yaml")
    assert resolve_and_validate(spec, _live(), lambda: compiled, user_exists=lambda n: True).hosts == {
        "vision": ["gpu005", "gpu006", "gpu007", "gpu008"]}


def test_documented_example_is_valid_on_the_default_testbed_fabric() -> None:
    from gpupool.pools.changes import build_desired
    from gpupool.pools.schema import load_pools_file
    from tests.support.helpers import REPO

    spec = load_pools_file(str(REPO / "examples" / "pools.yaml"))
    compiled = compile_fabric(fat_tree(8, 8, 4))  # what `scripts/testbed up` builds for 64 nodes
    resolved = resolve_and_validate(spec, _live(64, 8), lambda: compiled, user_exists=lambda name: True)
    assert resolved.hosts["vision"] == [f"gpu{i:03d}" for i in range(1, 17)]
    assert resolved.hosts["physics"] == [f"gpu{i:03d}" for i in range(49, 57)]
    assert resolved.gpus == {"vision": 128, "llm": 192, "research": 64, "physics": 64, "interactive": 64}
    desired = build_desired(spec, resolved, "c")
    # physics does not lend; vision lends through its own partition, at most half its 128 GPUs.
    assert desired.partitions["scavenger"]["Nodes"] == "gpu[017-048]"
    assert desired.partitions["scavenger-vision"]["Nodes"] == "gpu[001-016]"
    assert desired.qos["scavenger-vision"].max_gpus == 64 and desired.qos["scavenger-vision"].preempt_exempt == 600
    assert desired.qos["borrow-llm"].max_gpus == 64
    assert desired.qos["research-physics"].max_gpus == 32
    assert desired.partitions["interactive"]["AllowAccounts"] == "ALL"
    assert desired.accounts["vision"].parent == "ai"
    with pytest.raises(InputError, match="unknown user 'vis01'"):
        resolve_and_validate(spec, _live(64, 8), lambda: compiled, user_exists=lambda name: False)
