"""Registries (issue 28): one entry per name (a duplicate raises), toys registered in three steps or
fewer, CLI choices and docs tables that follow the registries, the fabric kind enum, and the one
status roll-up with its two orders."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import pytest

from gpupool.audit.checks import AUDIT_CHECKS, CHECK_IDS, AuditInput, all_check_infos, audit_check
from gpupool.audit.rollup import status_of
from gpupool.audit.run import audit_fabric
from gpupool.fabric.compiled import compile_fabric, load_compiled
from gpupool.fabric.export import EXPORT_FORMATS, ExportSource, export, export_format
from gpupool.fabric.generate import dragonfly, fat_tree
from gpupool.fabric.kinds import FabricKind
from gpupool.fabric.model import save_fabric
from gpupool.findings import Finding, RollUp, Severity, Status, check_id, roll_up
from gpupool.node.catalog import NODE_CHECKS, node_check
from gpupool.node.checks import Judge, node_checks, overall_status, run_checks
from gpupool.node.facts import HcaPort, NodeFacts
from gpupool.node.settings import NodeSettings, settings_from_table
from gpupool.registry import DuplicateRegistration, Registry
from gpupool.slurm.port import BACKENDS, Backend, register
from tests.support.helpers import REPO

# --- duplicates refused -------------------------------------------------------------------------


def test_every_registry_refuses_a_second_entry_under_a_taken_name() -> None:
    with pytest.raises(DuplicateRegistration, match="export format 'json' is already registered"):
        export_format("json", "another json", needs_compiled=False)(lambda source: "")
    with pytest.raises(DuplicateRegistration, match="audit check id 'duplicate-guid'"):
        audit_check("duplicate-guid", "hosts", Severity.CRITICAL, "again")
    with pytest.raises(DuplicateRegistration, match="node check 'xid' is already registered"):
        node_check("xid", Severity.WARNING, "again")(lambda judge, facts: None)
    first = BACKENDS.get("commands", None)
    if first is None:
        from gpupool.slurm import client

        client.load_backends(("commands",))
        first = BACKENDS["commands"]
    with pytest.raises(DuplicateRegistration, match="Slurm backend 'commands' is already registered"):
        register(Backend("commands", preference=99, create=first.create))
    assert BACKENDS["commands"] is first  # the first registration stands


def test_registry_keeps_registration_order_and_takes_entries_out() -> None:
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Toy:
        name: str

    toys: Registry[Toy] = Registry("toy")
    for name in ("b", "a", "c"):
        toys.register(Toy(name))
    assert toys.names() == ("b", "a", "c") and list(toys) == ["b", "a", "c"]
    with pytest.raises(DuplicateRegistration):
        toys["a"] = Toy("a")
    with pytest.raises(ValueError, match="under another name"):
        toys["d"] = Toy("e")
    del toys["a"]
    assert toys.names() == ("b", "c") and "a" not in toys


# --- toys in three steps or fewer ---------------------------------------------------------------


def test_a_toy_export_format_in_two_steps() -> None:
    fabric = fat_tree(2, 2, 1)
    try:
        @export_format("toy-hosts", "one host name a line", needs_compiled=True)  # step 1: write + register
        def _toy(source: ExportSource) -> str:
            return "".join(f"{h}\n" for h in source.compiled.host_names)

        # step 2: use it (2 leaves x 2 hosts: four host names, each once)
        lines = export(fabric, "toy-hosts").splitlines()
        assert len(lines) == 4 and sorted(lines) == sorted({n.host for n in fabric.nodes if n.host})
    finally:
        EXPORT_FORMATS.unregister("toy-hosts")
    assert "toy-hosts" not in EXPORT_FORMATS


def test_a_toy_audit_check_in_two_steps() -> None:
    fabric = fat_tree(2, 2, 1)
    try:
        @audit_check("toy-many-hosts", "hosts", Severity.WARNING, "more than 3 hosts")  # step 1
        def _toy(audit: AuditInput) -> list[Finding]:
            hosts = audit.fabric.host_names()
            return [Finding("toy-many-hosts", Severity.WARNING, "fabric", f"{len(hosts)} hosts")] if len(hosts) > 3 else []

        result = audit_fabric(fabric)  # step 2: audit_fabric runs every registered check
        assert [(f.check, f.message) for f in result.findings if f.check == "toy-many-hosts"] == [
            ("toy-many-hosts", "4 hosts")]
        assert "toy-many-hosts" in {c.id for c in all_check_infos()}
    finally:
        AUDIT_CHECKS.unregister("toy-many-hosts")
    assert "toy-many-hosts" not in {c.id for c in all_check_infos()}
    assert not [f for f in audit_fabric(fabric).findings if f.check == "toy-many-hosts"]


def test_a_toy_node_check_in_two_steps() -> None:
    from gpupool.node import catalog

    facts = NodeFacts(hca_ports=[HcaPort(hca="mlx5_0", port=1, state="ACTIVE", phys_state="LinkUp", rate_gbps=400.0)])
    try:
        @node_check("toy-port-count", Severity.CRITICAL, "fewer than 2 HCA ports", enabled=False)  # step 1
        def _toy(judge: Judge, facts: NodeFacts) -> None:
            if judge.on("toy-port-count") and facts.hca_ports is not None:
                count = len(facts.hca_ports)
                judge.judge("toy-port-count", "hcas", count, 2, count < 2, f"{count} HCA port(s)")

        # step 2: run_checks runs it; the config knows its id, in either spelling; opt-in by default
        findings, _unknown = run_checks(facts, settings_from_table({"enabled_checks": ["toy_port_count"]}))
        assert [(f.check, f.severity, f.message) for f in findings] == [("toy-port-count", "critical",
                                                                         "1 HCA port(s)")]
        assert not [f for f in run_checks(facts, settings_from_table({}))[0] if f.check == "toy-port-count"]
    finally:
        catalog.unregister("toy-port-count")
    assert "toy-port-count" not in NODE_CHECKS
    with pytest.raises(KeyError, match="not registered"):
        Judge(NodeSettings()).judge("toy-port-count", "hcas", 1, 2, True, "gone")


# --- CLI and docs follow the registries -----------------------------------------------------------


def test_fabric_export_choices_are_the_registry() -> None:
    from gpupool.cli.fabric import export as export_command

    option = next(p for p in export_command.params if p.name == "fmt")
    assert list(option.type.choices) == ["slurm-tree", "slurm-block", "slurm-yaml", "slurm-weights", "ibsim",
                                         "dot", "json"] == list(EXPORT_FORMATS.names())
    for entry in EXPORT_FORMATS.values():
        assert f"{entry.name}: {entry.what}" in option.help


def _table_ids(text: str, name: str) -> list[str]:
    """The first column's `ids` of the generated table NAME, read from the markdown by hand."""
    block = re.search(rf"<!-- generated: {name} .*?-->\n(.*?)<!-- end: {name} -->", text, re.S)
    assert block, f"no generated {name} table"
    rows = [line for line in block.group(1).splitlines() if line.startswith("| `")]
    return [re.match(r"\| `([^`]+)`", line).group(1) for line in rows]  # type: ignore[union-attr]


def test_docs_tables_list_exactly_the_registered_entries() -> None:
    contract = (REPO / "docs" / "contract.md").read_text(encoding="utf-8")
    readme = (REPO / "slurm-plugins" / "README.md").read_text(encoding="utf-8")
    assert _table_ids(contract, "export-formats") == list(EXPORT_FORMATS.names())
    assert _table_ids(contract, "audit-checks") == [c.id for c in all_check_infos()]
    assert set(_table_ids(contract, "audit-checks")) == CHECK_IDS
    assert _table_ids(readme, "node-checks") == list(node_checks().names())


def test_docs_tables_are_current() -> None:
    from gpupool.app.registry_docs import generated_files

    for name, text in generated_files(REPO).items():
        assert (REPO / name).read_text(encoding="utf-8") == text, f"{name}: run scripts/gen-docs"


def test_a_drifted_table_is_caught(tmp_path: Path) -> None:
    from gpupool.app.registry_docs import generated_files

    for name in ("docs/contract.md", "slurm-plugins/README.md", "docs/simulate.md"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        text = (REPO / name).read_text(encoding="utf-8")
        (tmp_path / name).write_text(text.replace("| `dot` |", "| `dotty` |").replace("| `xid` |", "| `xids` |")
                                     .replace("| `gpupool-pack` |", "| `gpupool-packed` |"))
    drifted = generated_files(tmp_path)
    assert drifted["docs/contract.md"] != (tmp_path / "docs/contract.md").read_text()
    assert drifted["slurm-plugins/README.md"] != (tmp_path / "slurm-plugins/README.md").read_text()
    assert drifted["docs/simulate.md"] != (tmp_path / "docs/simulate.md").read_text()


# --- one case style -----------------------------------------------------------------------------


def test_check_ids_are_kebab_case_everywhere() -> None:
    kebab = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
    assert all(kebab.fullmatch(c.id) for c in all_check_infos())
    assert all(kebab.fullmatch(name) for name in NODE_CHECKS.names())
    assert check_id("ecc_uncorrected") == "ecc-uncorrected" and check_id("hca-missing") == "hca-missing"


def test_node_settings_accept_the_old_snake_case_spelling() -> None:
    old = settings_from_table({"disabled_checks": ["ecc_uncorrected"], "enabled_checks": ["pcie_gen"],
                               "severity": {"remapped_rows_pending": "critical"}})
    new = settings_from_table({"disabled_checks": ["ecc-uncorrected"], "enabled_checks": ["pcie-gen"],
                               "severity": {"remapped-rows-pending": "critical"}})
    assert old == new
    assert not old.enabled("ecc-uncorrected") and not old.enabled("ecc_uncorrected") and old.enabled("pcie-gen")
    assert old.severity_of("remapped-rows-pending") == "critical"
    from gpupool.errors import InputError

    with pytest.raises(InputError, match="unknown check"):
        settings_from_table({"disabled_checks": ["ecc-uncorrectd"]})


# --- fabric kinds ---------------------------------------------------------------------------------


def test_fabric_kind_is_an_enum_with_the_old_strings(tmp_path: Path) -> None:
    tree, fly = compile_fabric(fat_tree(2, 2, 1)), compile_fabric(dragonfly(4, 3, 2, 1))
    assert tree.kind is FabricKind.FAT_TREE and fly.kind is FabricKind.DRAGONFLY
    assert json.dumps({"kind": tree.kind}) == '{"kind": "fat-tree"}' and f"{fly.kind}" == "dragonfly"
    path = tmp_path / "fly.json"
    save_fabric(dragonfly(4, 3, 2, 1), str(path))
    load_compiled(str(path))  # writes the cache
    again = load_compiled(str(path))  # read back from the cache: the stored string becomes the enum
    assert again.kind is FabricKind.DRAGONFLY


# --- one roll-up, two orders ----------------------------------------------------------------------

# The orders as docs/contract.md states them, worst first.
MONITORING_ORDER = ["CRITICAL", "WARNING", "UNKNOWN", "OK"]
PLACEMENT_ORDER = ["CRITICAL", "UNKNOWN", "WARNING", "OK"]


@pytest.mark.parametrize("severities,unchecked", [
    (combo, unchecked) for n in range(3) for combo in itertools.combinations(["info", "warning", "critical"], n)
    for unchecked in (False, True)])
def test_roll_up_follows_each_documented_order(severities: tuple[str, ...], unchecked: bool) -> None:
    findings = [Finding("x", s, "s", "m") for s in severities]
    notes = ["x: could not"] if unchecked else []
    present = {"CRITICAL": "critical" in severities, "WARNING": "warning" in severities, "UNKNOWN": unchecked,
               "OK": True}
    for mode, order, legacy in ((RollUp.MONITORING, MONITORING_ORDER, status_of),
                                (RollUp.PLACEMENT, PLACEMENT_ORDER, overall_status)):
        want = next(s for s in order if present[s])
        assert roll_up(findings, notes, mode) == want == legacy(findings, notes)
        assert isinstance(roll_up(findings, notes, mode), Status)


def test_the_two_orders_differ_only_on_warning_with_unknown() -> None:
    warning = [Finding("x", "warning", "s", "m")]
    assert roll_up(warning, ["n"], RollUp.MONITORING) == "WARNING"
    assert roll_up(warning, ["n"], RollUp.PLACEMENT) == "UNKNOWN"
