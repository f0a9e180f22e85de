"""Health placement sees, on the testbed: a host whose HCA cable is unlinked in ibsim is skipped by
`gpupool plan --health AUDIT.json` (a saved live audit), and the reason is shown.

The host is picked at random (seed in every assertion message; GPUPOOL_AUDIT_SEED replays one) and
relinked afterwards.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from pathlib import Path

import pytest

from gpupool.fabric.model import load_fabric
from tests.integration.conftest import Testbed

pytestmark = pytest.mark.integration

SEED = int(os.environ.get("GPUPOOL_AUDIT_SEED", str(int(time.time()) % 100000)))


def test_host_with_unlinked_hca_is_skipped_by_plan(testbed: Testbed, tmp_path: Path) -> None:
    testbed.cancel_all()
    fab = load_fabric(str(testbed.fabric_path))
    switches = {i for i, n in enumerate(fab.nodes) if n.type == "switch"}
    # Host cables whose host is a Slurm node with this one HCA (so unlinking it takes the host off the fabric).
    hcas_of: dict[str, int] = {}
    for n in fab.nodes:
        if n.type != "switch" and n.host:
            hcas_of[n.host] = hcas_of.get(n.host, 0) + 1
    candidates = []
    for lk in fab.links:
        if (lk.a in switches) == (lk.b in switches):
            continue
        sw, sw_port, hca = (lk.a, lk.a_port, lk.b) if lk.a in switches else (lk.b, lk.b_port, lk.a)
        host = fab.nodes[hca].host
        if host in testbed.nodes and hcas_of[host] == 1:
            candidates.append((fab.nodes[sw].id, sw_port, host))
    assert candidates, "the testbed's fabric has no single-HCA Slurm host"
    sw_id, sw_port, victim = random.Random(f"{SEED}-plan-health").choice(candidates)
    where = f"seed {SEED}: unlinked {victim} ({sw_id} port {sw_port})"
    k = testbed.gpus_per_node
    others = sorted(set(testbed.nodes) - {victim})
    audit_json = tmp_path / "audit.json"
    testbed.ibsim_console(f'Unlink "{sw_id}"[{sw_port}]')
    try:
        testbed.run_sm()
        proc = testbed.run([sys.executable, "-m", "gpupool", "fabric", "audit", "--live", "--reference",
                            str(testbed.fabric_path), "--route-samples", "0", "--json"], timeout=300)
        assert proc.returncode == 2, f"{where}: audit exit {proc.returncode}: {proc.stderr[-2000:]}"
        audit_json.write_text(proc.stdout)

        # Every node but one, from Slurm's free state (all idle): without health any one could be left out.
        proc = testbed.run(["gpupool", "plan", "--gpus-per-node", str(k), "--nodes", str(len(others)),
                            "--health", str(audit_json), "--json"], timeout=120)
        assert proc.returncode == 0, f"{where}: {proc.stderr}"
        doc = json.loads(proc.stdout)
        assert sorted(doc["allocation"]) == others, where
        assert victim in doc["skipped"] and "down" in doc["skipped"][victim], f"{where}: {doc.get('skipped')}"

        # Only the broken host is free: nothing fits, and the human output says why it was skipped.
        free = tmp_path / "free.json"
        free.write_text(json.dumps({victim: k}))
        proc = testbed.run(["gpupool", "plan", "--gpus", str(k), "--free", str(free), "--health", str(audit_json)],
                           timeout=120)
        assert proc.returncode == 1, f"{where}: {proc.stdout}{proc.stderr}"
        assert f"skipped: {victim} (HCA " in proc.stderr and "down)" in proc.stderr, f"{where}: {proc.stderr}"
    finally:
        testbed.ibsim_console(f'ReLink "{sw_id}"[{sw_port}]')
        testbed.run_sm()
    # Healthy again: the same plan may use the host.
    proc = testbed.run([sys.executable, "-m", "gpupool", "fabric", "audit", "--live", "--reference",
                        str(testbed.fabric_path), "--route-samples", "0", "--json"], timeout=300)
    audit_json.write_text(proc.stdout)
    proc = testbed.run(["gpupool", "plan", "--gpus", str(k), "--free", str(tmp_path / "free.json"),
                        "--health", str(audit_json), "--json"], timeout=120)
    assert proc.returncode == 0 and json.loads(proc.stdout)["allocation"] == {victim: k}, f"{where}: {proc.stderr}"
