"""`gpupool fabric audit --live` against ibsim: injected faults are each reported, the rest stays silent.

Faults are picked at random (the seed is in every assertion message; set GPUPOOL_AUDIT_SEED to
replay one): a cable unlinked through ibsim's console, error counters raised with PerformanceSet
(both on the shared `testbed`, restored afterwards), and a link's width or speed reduced in the
net file (on a private ibsim started here, since the testbed's ibsim cannot be restarted).
The uplink case needs a testbed fabric with redundant uplinks (>= 2 spines: GPUPOOL_TESTBED_NODES >= 32;
the default 64 is fine).
"""

from __future__ import annotations

import copy
import json
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from gpupool.fabric.generate import dragonfly, fat_tree
from gpupool.fabric.model import Fabric, load_fabric, save_fabric
from tests.integration.private_ibsim import private_ibsim

pytestmark = pytest.mark.integration

SEED = int(os.environ.get("GPUPOOL_AUDIT_SEED", str(int(time.time()) % 100000)))


def _audit(run: Any, *args: str, timeout: float = 300) -> tuple[int, dict[str, Any], str]:
    proc = run([sys.executable, "-m", "gpupool", "fabric", "audit", "--live", *args, "--json"], timeout=timeout)
    try:
        doc = json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"audit printed no JSON (exit {proc.returncode}): {proc.stderr[-2000:]}")
    return proc.returncode, doc, proc.stderr


def _pairs(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(f["check"], f["subject"]) for f in doc["findings"]}


def _switch_end(fab: Fabric, li: int) -> tuple[str, int, str, int]:
    """(switch id, switch port, other id, other port) of a cable: the end the audit names first
    (the switch; between switches the leaf)."""
    from gpupool.audit.checks import link_ends
    from gpupool.audit.topology import Topo

    a, ap, b, bp = link_ends(Topo.of(fab), fab.links[li])
    return fab.nodes[a].id, ap, fab.nodes[b].id, bp


# ---------------------------------------------------------------------------------------------
# On the shared testbed: Unlink and PerformanceSet
# ---------------------------------------------------------------------------------------------

def test_healthy_testbed_has_no_findings(testbed: Any) -> None:
    code, doc, err = _audit(testbed.run, "--reference", str(testbed.fabric_path), "--slurm")
    assert (code, doc["status"], doc["findings"]) == (0, "OK", []), err
    assert doc["totals"]["routes_checked"] > 0 and doc["totals"]["ports_with_counters"] > 0


def _connected_without(fab: Fabric, skip: int) -> bool:
    adj: dict[int, list[int]] = {}
    for li, lk in enumerate(fab.links):
        if li != skip:
            adj.setdefault(lk.a, []).append(lk.b)
            adj.setdefault(lk.b, []).append(lk.a)
    seen, todo = {0}, [0]
    while todo:
        for w in adj.get(todo.pop(), []):
            if w not in seen:
                seen.add(w)
                todo.append(w)
    return len(seen) == len(fab.nodes)


@pytest.mark.parametrize("kind", ["uplink", "host-link"])
def test_unlinked_cable_is_reported(testbed: Any, kind: str) -> None:
    fab = load_fabric(str(testbed.fabric_path))
    rng = random.Random(f"{SEED}-{kind}")
    switch_ids = {i for i, n in enumerate(fab.nodes) if n.type == "switch"}
    if kind == "uplink":
        # Only cables whose loss leaves the fabric in one piece: ibnetdiscover sees one side only otherwise.
        candidates = [li for li, lk in enumerate(fab.links)
                      if lk.a in switch_ids and lk.b in switch_ids and _connected_without(fab, li)]
        if not candidates:
            pytest.fail("the testbed's fabric has no redundant uplink: run it with at least 2 spines "
                        "(GPUPOOL_TESTBED_NODES >= 32)")
    else:
        candidates = [li for li, lk in enumerate(fab.links) if (lk.a in switch_ids) != (lk.b in switch_ids)]
    li = rng.choice(candidates)
    sw_id, sw_port, other_id, _other_port = _switch_end(fab, li)
    switch = next(n for n in fab.nodes if n.id == sw_id)
    other = next(n for n in fab.nodes if n.id == other_id)
    where = f"seed {SEED}: unlinked {switch.name} port {sw_port} -- {other.name}"
    testbed.ibsim_console(f'Unlink "{sw_id}"[{sw_port}]')
    try:
        testbed.run_sm()
        code, doc, err = _audit(testbed.run, "--reference", str(testbed.fabric_path), "--slurm")
        got = _pairs(doc)
        if other.type == "switch":
            # An uplink: the cable itself, and its leaf now short of uplinks (maybe oversubscribed).
            expected = {("link-missing", f"{switch.name} port {sw_port}"), ("leaf-uplinks-missing", switch.name)}
            allowed = expected | {("leaf-oversubscribed", switch.name)}
            assert expected <= got <= allowed, f"{where}: {got}"
            assert code == 1, f"{where}: {err}"
        else:
            # A host's only cable: its HCA vanishes from the fabric, and Slurm's node has no HCA.
            assert got == {("hca-missing", other.name), ("slurm-node-not-in-fabric", other.host)}, f"{where}: {got}"
            message = next(f["message"] for f in doc["findings"] if f["check"] == "hca-missing")
            assert f"{switch.name} port {sw_port}" in message, where
            assert code == 2, f"{where}: {err}"
    finally:
        testbed.ibsim_console(f'ReLink "{sw_id}"[{sw_port}]')
        testbed.run_sm()
    code, doc, err = _audit(testbed.run, "--reference", str(testbed.fabric_path), "--route-samples", "0")
    assert (code, doc["findings"]) == (0, []), f"{where}: not healthy after ReLink: {err}"


@pytest.mark.parametrize("counter", ["SymbolErrorCounter", "PortRcvErrors", "LinkDownedCounter"])
def test_raised_error_counters_are_reported(testbed: Any, counter: str) -> None:
    fab = load_fabric(str(testbed.fabric_path))
    rng = random.Random(f"{SEED}-{counter}")
    sw_id, sw_port, other_id, other_port = _switch_end(fab, rng.randrange(len(fab.links)))
    switch = next(n for n in fab.nodes if n.id == sw_id)
    other = next(n for n in fab.nodes if n.id == other_id)
    value = rng.choice([11, 55, 99])  # above the default threshold 10, below critical (100)
    where = f"seed {SEED}: {counter}={value} on {switch.name} port {sw_port}"
    reply = testbed.ibsim_console(f'PerformanceSet "{sw_id}"[{sw_port}] PortCounters.{counter}={value}')
    assert "has been set" in reply or reply == "", f"{where}: {reply}"
    try:
        code, doc, err = _audit(testbed.run, "--route-samples", "0")
        assert _pairs(doc) == {("port-errors", f"{switch.name} port {sw_port}")}, f"{where}: {doc['findings']}"
        finding = doc["findings"][0]
        assert finding["severity"] == "warning" and f"{counter}={value}" in finding["message"], where
        assert f"cable to {other.name} port {other_port}" in finding["message"], where
        assert code == 1, err
    finally:
        testbed.ibsim_console(f'PerformanceSet "{sw_id}"[{sw_port}] PortCounters.{counter}=0')


# ---------------------------------------------------------------------------------------------
# On a private ibsim: width/speed reduced in the net file (both ends of the port lines)
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fault", ["width", "speed"])
def test_reduced_width_or_speed_is_reported(fault: str, tmp_path: Path) -> None:
    design = fat_tree(4, 4, 2, rails=2)
    degraded = copy.deepcopy(design)
    rng = random.Random(f"{SEED}-{fault}")
    li = rng.randrange(len(degraded.links))
    link = degraded.links[li]
    if fault == "width":
        link.width = "1x"  # ibsim w=1 on both port lines
    else:
        link.speed = rng.choice(["SDR", "DDR"])  # ibsim s=1 / s=2
    sw_id, sw_port, _other, _op = _switch_end(degraded, li)
    switch = next(n for n in degraded.nodes if n.id == sw_id)
    where = f"seed {SEED}: {switch.name} port {sw_port} at {link.width} {link.speed}"
    save_fabric(design, str(tmp_path / "design.json"))

    def run(cmd: list[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=tmp_path)

    expected = {("link-degraded", f"{switch.name} port {sw_port}")}
    # A slower uplink may also push its leaf over the design's oversubscription: that is the same fault.
    allowed = expected | {("leaf-oversubscribed", n.name) for n in degraded.nodes if n.type == "switch"}
    with private_ibsim(degraded, tmp_path) as env:
        code, doc, err = _audit(run, "--reference", str(tmp_path / "design.json"))
        got = _pairs(doc)
        assert expected <= got <= allowed, f"{where}: {doc['findings']} {err}"
        assert all(s == switch.name for c, s in got - expected), f"{where}: {got}"
        message = next(f["message"] for f in doc["findings"] if f["check"] == "link-degraded")
        assert f"{link.width} {link.speed}" in message, where
        assert code == 1
        # Without the design, the majority of its link class tells the same.
        code, doc, err = _audit(run)
        assert _pairs(doc) == got, f"{where}: {doc['findings']} {err}"


def test_slurm_topology_drift_against_real_scontrol(testbed: Any, tmp_path: Path) -> None:
    """Slurm's live topology vs a fabric where two hosts on different leaves traded places."""
    fab = load_fabric(str(testbed.fabric_path))
    rng = random.Random(f"{SEED}-drift")
    leaf_of: dict[str, str] = {}
    for lk in fab.links:
        for ca, sw in ((lk.a, lk.b), (lk.b, lk.a)):
            if fab.nodes[ca].type == "ca" and fab.nodes[sw].type == "switch" and fab.nodes[ca].host:
                leaf_of[fab.nodes[ca].host] = fab.nodes[sw].name
    first = rng.choice(sorted(leaf_of))
    second = rng.choice(sorted(h for h in leaf_of if leaf_of[h] != leaf_of[first]))
    for node in fab.nodes:
        if node.host in (first, second):
            new = second if node.host == first else first
            node.desc = node.desc.replace(node.host, new)
            node.name = node.name.replace(node.host, new)
            node.host = new
    path = tmp_path / "drifted.json"
    save_fabric(fab, str(path))
    proc = testbed.run([sys.executable, "-m", "gpupool", "fabric", "audit", "--fabric", str(path), "--slurm",
                        "--json"], timeout=120)
    doc = json.loads(proc.stdout)
    where = f"seed {SEED}: swapped {first} ({leaf_of[first]}) and {second} ({leaf_of[second]})"
    assert _pairs(doc) == {("slurm-topology-drift", leaf_of[first]), ("slurm-topology-drift", leaf_of[second])}, \
        f"{where}: {doc['findings']} {proc.stderr}"
    assert proc.returncode == 1, proc.stderr
    message = next(f["message"] for f in doc["findings"] if f["subject"] == leaf_of[first])
    assert f"Slurm switch {leaf_of[first]} holds" in message and f"{leaf_of[second]} has {first}" in message, message
    # The corrected topology.conf puts each host under its new leaf; the diff shows the move.
    assert re.search(rf"SwitchName={re.escape(leaf_of[first])} Nodes=\S*", doc["topology_conf"])
    assert f"+SwitchName={leaf_of[first]} " in doc["topology_diff"]
    assert f"-SwitchName={leaf_of[first]} " in doc["topology_diff"]


def test_non_minimal_routes_are_reported(tmp_path: Path) -> None:
    """Up/down routing rooted at one dragonfly router sends some pairs through extra groups."""
    design = dragonfly(4, 3, 2, 1)
    save_fabric(design, str(tmp_path / "design.json"))
    roots = tmp_path / "roots"
    roots.write_text(f"{design.nodes[0].guid}\n")

    def run(cmd: list[str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=tmp_path)

    with private_ibsim(design, tmp_path, ("-R", "updn", "-a", str(roots))) as env:
        code, doc, err = _audit(run, "--reference", str(tmp_path / "design.json"), "--route-samples", "60")
    assert doc["totals"]["routes_checked"] == 60, err
    checks = {f["check"] for f in doc["findings"]}
    assert checks == {"route-longer"}, doc["findings"]
    assert all(f["details"]["route"] > f["details"]["shortest"] >= 2 for f in doc["findings"])
    assert code == 1
    # The same fabric under OpenSM's default (min-hop) routing: every sampled route is minimal.
    minhop = tmp_path / "minhop"
    minhop.mkdir()
    with private_ibsim(design, minhop) as env:
        code, doc, err = _audit(run, "--reference", str(tmp_path / "design.json"), "--route-samples", "60")
    assert (code, doc["findings"]) == (0, []), err
