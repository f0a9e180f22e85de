"""Every Slurm-layer parser against real output of each tested release (tests/fixtures/slurm).

24.11 and 26.05 were captured from the testbed's chroot releases by tests/fixtures/slurm/capture.sh
(8 nodes x 8 GPUs). The expected values below follow from that script's scenario, by hand: job A
`-w gpu001 --gres=gpu:3 -c 2 --mem=1000`; job B `-N2 -w gpu[002-003] --gres=gpu:2 --comment
gpupool:pair_hops_sum=4` (DefMemPerCPU=2000, 1 CPU per node); gpu004 drained "bad hca"; job C
`-N8 --gres=gpu:8 --switches=1@10:00` pending. 22.05's own scenario is in test_slurm_parse.py.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import pytest

from gpupool.errors import InputError
from gpupool.slurm import parse

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "slurm"
CAPTURED = ["24.11", "26.05"]
ALL_RELEASES = ["22.05", *CAPTURED]


def text(name: str) -> str:
    return (FIXTURES / name).read_text()


def start_time_in(line: str) -> float:
    """The start time of a --test-only line, read independently of gpupool's parser."""
    found = re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", line)
    assert found, line
    return datetime.fromisoformat(found.group(0)).timestamp()


@pytest.mark.parametrize("release", CAPTURED)
def test_version_line(release: str) -> None:
    major, minor = (int(x) for x in release.split("."))
    assert parse.parse_version(text(f"scontrol-version-{release}.txt"))[:2] == (major, minor)


@pytest.mark.parametrize("release", CAPTURED)
@pytest.mark.parametrize("source", ["json", "text"])
def test_nodes(release: str, source: str) -> None:
    if source == "json":
        found = parse.nodes_from_json(json.loads(text(f"scontrol-show-nodes-{release}.json")))
    else:
        found = parse.nodes_from_scontrol(text(f"scontrol-show-node-{release}.txt"))
    nodes = {n.name: n for n in found}
    assert sorted(nodes) == [f"gpu{i:03d}" for i in range(1, 9)]
    assert all(n.gpus_total == 8 and n.partitions == ("gpu",) for n in nodes.values())
    a = nodes["gpu001"]
    assert (a.gpus_used, a.cpus_alloc, a.memory_alloc_mb, a.free_gpus) == (3, 2, 1000, 5)
    assert a.flags == {"MIXED"} and a.usable
    for name in ("gpu002", "gpu003"):
        assert (nodes[name].gpus_used, nodes[name].cpus_alloc, nodes[name].memory_alloc_mb) == (2, 1, 2000)
    drained = nodes["gpu004"]
    assert drained.flags == {"IDLE", "DRAIN"} and not drained.usable and drained.reason == "bad hca"
    for i in range(5, 9):
        node = nodes[f"gpu{i:03d}"]
        assert node.flags == {"IDLE"} and node.free_gpus == 8 and node.usable


@pytest.mark.parametrize("release", CAPTURED)
@pytest.mark.parametrize("source", ["json", "text"])
def test_jobs(release: str, source: str) -> None:
    if source == "json":
        found = parse.jobs_from_json(json.loads(text(f"squeue-{release}.json")))
    else:
        found = parse.jobs_from_scontrol(text(f"scontrol-show-job-{release}.txt"))
    assert len(found) == 3
    a, b, c = sorted(found, key=lambda j: int(j.job_id))
    assert (a.state, a.allocation, a.nodes, a.user) == ("RUNNING", {"gpu001": 3}, ("gpu001",), "root")
    assert a.request.gpus_per_node == 3 and a.request.switches == ""
    assert (b.state, b.allocation) == ("RUNNING", {"gpu002": 2, "gpu003": 2})
    assert b.gpupool_plan == {"pair_hops_sum": "4"} and b.request.required_nodes == "gpu[002-003]"
    assert (c.state, c.allocation, c.nodes) == ("PENDING", {}, ())
    assert (c.request.nodes, c.request.gpus_per_node) == (8, 8)
    assert c.request.switches == "1@00:05:00"  # --switches=1@10:00 is capped by MaxSwitchWait
    assert c.reason  # "Resources" or why gpu004 blocks it: the wording moves between passes


@pytest.mark.parametrize("release", ALL_RELEASES)
def test_partitions(release: str) -> None:
    parts = parse.partitions_from_scontrol(text(f"scontrol-show-partition-{release}.txt"))
    assert parts and all(p["PartitionName"] == name and "Nodes" in p for name, p in parts.items())


@pytest.mark.parametrize("release", ALL_RELEASES)
def test_test_only_lines_by_their_node_list(release: str) -> None:
    now_line = text(f"sbatch-test-only-{release}.txt")
    later_line = text(f"sbatch-test-only-later-{release}.txt")
    now = start_time_in(now_line)
    soon = parse.parse_test_only(now_line, now=now)
    later = parse.parse_test_only(later_line, now=now)
    # Both scenarios leave gpu004 as the first whole free node; the later job needs 6 (3 in 22.05).
    assert soon.nodes == ("gpu004",) and soon.starts_now and soon.processors == 1
    wanted = 3 if release == "22.05" else 6
    assert later.nodes == tuple(f"gpu{i:03d}" for i in range(1, wanted + 1))
    assert not later.starts_now and later.processors == wanted
    assert soon.partition == later.partition != ""
    assert soon.job_id.isdigit()


def test_test_only_wording_does_not_matter_but_the_node_list_does() -> None:
    line = "sbatch: Job 68 to start at 2026-11-29T22:26:32 a using 5 processors on nodes gpu[002-004,006-007] in partition gpu"
    got = parse.parse_test_only(line, now=datetime.fromisoformat("2026-11-29T22:26:00").timestamp())
    assert got.nodes == ("gpu002", "gpu003", "gpu004", "gpu006", "gpu007")
    assert (got.job_id, got.processors, got.partition, got.starts_now) == ("68", 5, "gpu", True)
    reworded = parse.parse_test_only("sbatch: job 9 would run on nodes gpu001 (somewhen)")
    assert reworded.nodes == ("gpu001",) and not reworded.starts_now
    with pytest.raises(InputError, match="no node list"):
        parse.parse_test_only("sbatch: Job 68 to start at 2026-11-29T22:26:32 using 5 processors")


@pytest.mark.parametrize("release", CAPTURED)
def test_sshare_has_the_columns_pool_status_reads(release: str) -> None:
    header = text(f"sshare-{release}.txt").splitlines()[0].split("|")
    assert {"Account", "User", "RawShares", "NormShares", "RawUsage", "EffectvUsage", "FairShare"} <= set(header)


@pytest.mark.parametrize("release", CAPTURED)
def test_sacctmgr_parsable_rows_keep_their_columns(release: str) -> None:
    rows = [line.split("|") for line in text(f"sacctmgr-show-assoc-{release}.txt").splitlines()]
    assert rows and all(len(row) == 6 for row in rows)  # format=cluster,account,user,partition,fairshare,grptres
    assert ["gpupool", "default", "root", "", "1", ""] in rows


def _install(bin_dir: Path, name: str, body: str) -> None:
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)


def test_slurm_layer_errors_name_the_release(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gpupool.errors import EnvError
    from gpupool.slurm.commands import CommandsClient
    from gpupool.slurm.invoke import SlurmCommandError

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    _install(bin_dir, "scontrol", 'case "$*" in --version) echo "slurm-wlm 26.05.5";; '
             '*) echo "scontrol: error: Invalid partition name specified" >&2; exit 1;; esac')
    _install(bin_dir, "sbatch", 'echo "sbatch: something new and unreadable" >&2')
    _install(bin_dir, "squeue", 'echo "not json"')
    client = CommandsClient()
    with pytest.raises(InputError) as unreadable:
        client.test_only(["-N1"], "job.sh")
    assert unreadable.value.message.endswith("[Slurm 26.05.5]")
    assert "no node list" in unreadable.value.message
    with pytest.raises(SlurmCommandError) as rejected:
        client.partitions()
    assert rejected.value.message.endswith("Invalid partition name specified [Slurm 26.05.5]")
    with pytest.raises(InputError) as not_json:
        client.jobs()
    assert not_json.value.message.count("[Slurm 26.05.5]") == 1
    # Unreachable Slurm: the version is not asked again (that would wait a second timeout).
    _install(bin_dir, "scontrol", 'echo "scontrol: error: Unable to contact slurm controller (connect failure)" >&2; exit 1')
    with pytest.raises(EnvError) as down:
        CommandsClient().partitions()
    assert down.value.message.endswith("[Slurm version unknown]")


@pytest.mark.parametrize(("release", "json_file"), [("22.05", "sinfo-22.05.json"),
                                                     ("24.11", "scontrol-show-nodes-24.11.json"),
                                                     ("26.05", "scontrol-show-nodes-26.05.json")])
def test_node_text_reads_what_the_json_says(release: str, json_file: str) -> None:
    # gpupool reads nodes from `scontrol -d -o show nodes` (issue #26: 2.5x fewer bytes than the JSON);
    # both were captured from the same cluster state, so every field of every node must agree.
    from_text = parse.nodes_from_scontrol(text(f"scontrol-show-node-{release}.txt"))
    from_json = parse.nodes_from_json(json.loads(text(json_file)))
    assert len(from_text) == len(from_json) >= 4
    assert {n.name: n for n in from_text} == {n.name: n for n in from_json}
