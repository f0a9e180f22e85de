"""Slurm drift: nodes Slurm has that the fabric lacks (and back), and `scontrol show topology`
versus the topology the fabric implies (with the corrected topology.conf)."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Protocol

from gpupool.audit.rollup import WARNING, Finding
from gpupool.fabric.model import natural_key


class SlurmView(Protocol):
    """The two calls of the Slurm port (`gpupool.slurm.port.SlurmClient`) the drift checks use."""

    def node_names(self) -> list[str]: ...

    def topology_text(self) -> str: ...


@dataclass
class SwitchEntry:
    name: str
    nodes: list[str] = field(default_factory=list)
    switches: list[str] = field(default_factory=list)


_KV = re.compile(r"(\w+)=(\S+)")


def parse_topology(text: str) -> dict[str, SwitchEntry]:
    """`scontrol show topology` lines or topology.conf lines: SwitchName=X [Nodes=...] [Switches=...]
    (topology/block's `BlockName=X Nodes=...` read as leaf switches)."""
    from gpupool.errors import BadInput
    from gpupool.hostlist import expand

    out: dict[str, SwitchEntry] = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line.startswith(("SwitchName=", "BlockName=")):
            continue
        values = dict(_KV.findall(line))
        entry = SwitchEntry(values.get("SwitchName") or values["BlockName"])
        try:
            if values.get("Nodes"):
                entry.nodes = expand(values["Nodes"])
            if values.get("Switches"):
                entry.switches = expand(values["Switches"])
        except BadInput:
            continue
        out[entry.name] = entry
    return out


def _hosts_below(topo: dict[str, SwitchEntry]) -> dict[str, frozenset[str]]:
    memo: dict[str, frozenset[str]] = {}

    def below(name: str, seen: frozenset[str]) -> frozenset[str]:
        if name in memo:
            return memo[name]
        entry = topo.get(name)
        if entry is None or name in seen:
            return frozenset()
        hosts = set(entry.nodes)
        for child in entry.switches:
            hosts |= below(child, seen | {name})
        memo[name] = frozenset(hosts)
        return memo[name]

    return {name: below(name, frozenset()) for name in topo}


def _fold(names: set[str] | frozenset[str] | list[str]) -> str:
    from gpupool.hostlist import fold

    return fold(names)


def check_node_sets(slurm_nodes: list[str], fabric_hosts: list[str]) -> list[Finding]:
    """slurm-node-not-in-fabric / fabric-host-not-in-slurm."""
    slurm, fabric = set(slurm_nodes), set(fabric_hosts)
    findings = []
    for name in sorted(slurm - fabric, key=natural_key):
        findings.append(Finding("slurm-node-not-in-fabric", WARNING, name,
                                f"Slurm node {name} has no HCA on the fabric (link down, host off, or an HCA "
                                "without a node description): topology-aware jobs cannot use it"))
    for name in sorted(fabric - slurm, key=natural_key):
        findings.append(Finding("fabric-host-not-in-slurm", WARNING, name,
                                f"fabric host {name} is not a Slurm node (missing from slurm.conf, or named "
                                "differently there)"))
    return findings


@dataclass
class DriftReport:
    findings: list[Finding]
    diff: str
    corrected: str


def check_topology(slurm_text: str, expected_conf: str, slurm_nodes: list[str]) -> DriftReport:
    """slurm-topology-drift: Slurm groups hosts under switches differently from the fabric."""
    actual = parse_topology(slurm_text)
    expected = parse_topology(expected_conf)
    findings: list[Finding] = []
    if not actual:
        findings.append(Finding("slurm-topology-drift", WARNING, "topology",
                                "Slurm reports no switch topology (TopologyPlugin is not topology/tree, or "
                                "topology.conf is empty): it places jobs without regard to the fabric"))
        return DriftReport(findings, "", expected_conf)
    in_slurm = set(slurm_nodes)
    exp_below = {k: v & in_slurm for k, v in _hosts_below(expected).items()}
    act_below = {k: v & in_slurm for k, v in _hosts_below(actual).items()}
    known_exp = set().union(*exp_below.values()) if exp_below else set()
    known_act = set().union(*act_below.values()) if act_below else set()
    common = known_exp & known_act

    # scontrol also lists Nodes= (all below) on upper switches: leaves are the ones without Switches=.
    exp_leaf = {name: frozenset(e.nodes) & common for name, e in expected.items() if e.nodes and not e.switches}
    act_leaf = {name: frozenset(e.nodes) & common for name, e in actual.items() if e.nodes and not e.switches}
    exp_leaf_sets = {v for v in exp_leaf.values() if v}
    for name, hosts in sorted(act_leaf.items(), key=lambda kv: natural_key(kv[0])):
        if not hosts or hosts in exp_leaf_sets:
            continue
        fabric_view = sorted(((n, h & hosts) for n, h in exp_leaf.items() if h & hosts), key=lambda kv: natural_key(kv[0]))
        where = "; ".join(f"{n} has {_fold(h)}" for n, h in fabric_view)
        findings.append(Finding("slurm-topology-drift", WARNING, name,
                                f"Slurm switch {name} holds {_fold(hosts)}, but on the fabric they sit on "
                                f"different leaves ({where})"))
    act_leaf_sets = {v for v in act_leaf.values() if v}
    for name, hosts in sorted(exp_leaf.items(), key=lambda kv: natural_key(kv[0])):
        if not hosts or hosts in act_leaf_sets:
            continue
        slurm_view = sorted(((n, h & hosts) for n, h in act_leaf.items() if h & hosts), key=lambda kv: natural_key(kv[0]))
        if len(slurm_view) == 1 and slurm_view[0][1] == hosts:
            continue  # already reported from Slurm's side (its switch holds more)
        where = "; ".join(f"{n} has {_fold(h)}" for n, h in slurm_view)
        findings.append(Finding("slurm-topology-drift", WARNING, name,
                                f"fabric leaf {name} holds {_fold(hosts)}, which Slurm splits over several "
                                f"switches ({where})"))
    # Upper levels: compare the host sets every switch spans (names aside).
    exp_sets = {v & common for v in exp_below.values() if v & common}
    act_sets = {v & common for v in act_below.values() if v & common}
    if not findings and exp_sets != act_sets:
        only = sorted(_fold(s) for s in act_sets - exp_sets)
        findings.append(Finding("slurm-topology-drift", WARNING, "upper levels",
                                "Slurm's upper-level switches group leaves differently from the fabric: "
                                f"Slurm spans {'; '.join(only[:5])} that no fabric switch spans"))
    for host in sorted(known_exp - known_act, key=natural_key):
        findings.append(Finding("slurm-topology-drift", WARNING, host,
                                f"Slurm node {host} is under no switch in Slurm's topology, but sits on the "
                                "fabric: Slurm cannot place it with topology/tree"))
    current = render_conf(actual)
    diff = "".join(difflib.unified_diff(current.splitlines(keepends=True), expected_conf.splitlines(keepends=True),
                                        fromfile="slurm (scontrol show topology)", tofile="fabric (corrected topology.conf)"))
    return DriftReport(findings, diff if findings else "", expected_conf)


def render_conf(topo: dict[str, SwitchEntry]) -> str:
    lines = []
    for name in sorted(topo, key=natural_key):
        entry = topo[name]
        if entry.switches:
            lines.append(f"SwitchName={name} Switches={_fold(entry.switches)}")
        elif entry.nodes:
            lines.append(f"SwitchName={name} Nodes={_fold(entry.nodes)}")
    return "\n".join(lines) + "\n"
