"""Contention model: end times worked out by hand in the comments (docs/simulate.md, "Contention model").

Fabric OVER: 2 leaves x 4 hosts, 1 spine, every cable QDR 4x = 40 Gb/s. A leaf's uplink bundle is
one cable (40 Gb/s) under 4 hosts of 40 Gb/s each: 4:1 oversubscribed. Hosts have 4 GPUs here, so a
host whose 4 GPUs a job holds injects 40 Gb/s for it, one with 2 GPUs 20 Gb/s.
leaf01: gpu001-gpu004 (host indices 0-3); leaf02: gpu005-gpu008 (4-7).

With comm fraction c and bandwidth share s a job progresses at r = 1 / ((1 - c) + c / s) isolated
seconds per second; c = 0.5 and s = 0.5 give r = 1 / 1.5 = 2/3.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gpupool.cli.main import main
from gpupool.errors import InputError
from gpupool.fabric.compiled import compile_fabric
from gpupool.fabric.generate import dragonfly, fat_tree
from gpupool.simulate.scheduler import SimConfig, Simulator
from gpupool.simulate.speed import ClassFactors, SpeedModel, load_speed_model
from gpupool.simulate.workload import Job

QDR = 40.0
OVER = compile_fabric(fat_tree(2, 4, 1))  # 4:1
FULL = compile_fabric(fat_tree(2, 4, 1, uplinks=4))  # 1:1: four parallel cables from each leaf to the spine


def _job(job_id: str, submit: float, duration: float, hosts: int, per_host: int, limit: float = 10_000.0,
         job_class: str = "heavy") -> Job:
    return Job(job_id=job_id, submit=submit, duration=duration, time_limit=limit, gpus=hosts * per_host, nodes=hosts,
               job_class=job_class)


def _speed(model: str = "contention", per_extra_leaf: float = 0.0) -> SpeedModel:
    # No hop factor unless a test sets one, so the end times show contention alone.
    return SpeedModel(classes={"heavy": ClassFactors(per_extra_leaf, 0.0, 0.5),
                               "default": ClassFactors(per_extra_leaf, 0.0, 0.2)}, model=model)


def _run(compiled, jobs: list[Job], where: dict[str, list[int]], speed: SpeedModel | None = None
         ) -> tuple[Simulator, dict[str, float]]:
    """Replay with every job placed on the hosts `where` names (all its GPUs per host); returns job ends."""
    # gpupool-hops: the placement alone (the `gpupool` policy would also hold a spread job for fewer leaves).
    sim = Simulator(compiled, "gpupool-hops", SimConfig(gpus_per_host=4, backfill="easy"), speed or _speed())
    by_id = {j.job_id: j for j in jobs}

    def scripted(free: np.ndarray, job: Job) -> tuple[np.ndarray, np.ndarray, float] | None:
        hosts = where[job.job_id]
        per_host = by_id[job.job_id].gpus // len(hosts)
        if any(free[h] < per_host for h in hosts):
            return None
        return np.asarray(hosts), np.full(len(hosts), per_host), 0.0

    sim.place = scripted  # type: ignore[method-assign]
    ends: dict[str, float] = {}
    finish = sim.finish

    def record(rid: int, now: float) -> None:
        ends[sim.running[rid].job.job_id] = now
        finish(rid, now)

    sim.finish = record  # type: ignore[method-assign]
    sim.run(jobs)
    return sim, ends


def test_uplink_capacities_are_cable_counts_times_rates() -> None:
    # 2-level: a leaf's bundle is its cables to the spines; the spine level is the root (no bundle).
    assert OVER.tree_uplink_gbps.tolist() == [QDR, QDR, 0.0]
    assert FULL.tree_uplink_gbps.tolist() == [4 * QDR, 4 * QDR, 0.0]
    assert compile_fabric(fat_tree(2, 4, 2, uplinks=3)).tree_uplink_gbps.tolist() == [6 * QDR, 6 * QDR, 0.0]
    # 3-level, 2 pods x 4 leaves x 2 hosts, 2 spines per pod, 2 cores: spine j of a pod cables to core j only,
    # so a pod's bundle is 2 cables; a leaf's is its 2 spine cables.
    three = compile_fabric(fat_tree(4, 2, 2, pods=2, cores=2))
    levels = three.tree_level.tolist()
    assert [c for c, lv in zip(three.tree_uplink_gbps.tolist(), levels, strict=True) if lv == 1] == [2 * QDR] * 8
    assert [c for c, lv in zip(three.tree_uplink_gbps.tolist(), levels, strict=True) if lv == 2] == [2 * QDR] * 2
    # Rails: the 2 rail leaves of a position form one leaf; its bundle is 2 rails x 2 spines; hosts inject 2 x 40.
    rails = compile_fabric(fat_tree(2, 2, 2, rails=2))
    assert rails.tree_uplink_gbps.tolist()[:2] == [4 * QDR, 4 * QDR] and rails.host_gbps.tolist() == [2 * QDR] * 4
    # Dragonfly, 3 groups x 2 routers, 1 global link per router: a router's bundle is its cable to the other
    # router of its group plus its global link; a group's is its 2 global links.
    fly = compile_fabric(dragonfly(3, 2, 2, 1))
    by_level = {lv: sorted({c for c, x in zip(fly.tree_uplink_gbps.tolist(), fly.tree_level.tolist(), strict=True)
                            if x == lv}) for lv in (1, 2, 3)}
    assert by_level == {1: [2 * QDR], 2: [2 * QDR], 3: [0.0]}


def test_one_job_within_an_uplink_runs_at_full_speed() -> None:
    # 1 + 1 host: it sends min(40, 40) = 40 Gb/s over each leaf bundle of 40: share 1, end 100.
    sim, ends = _run(OVER, [_job("A", 0, 100, 2, 4)], {"A": [0, 4]})
    assert ends == {"A": pytest.approx(100.0)}
    m = sim.metrics.to_json()
    assert m["mean_contention_slowdown_multi_node"] == pytest.approx(1.0)
    assert m["contention_slowed_share_multi_node"] == 0


def test_one_job_larger_than_an_uplink_is_slowed_on_4_to_1_only() -> None:
    # 2 + 2 hosts: min(80, 80) = 80 Gb/s over a 40 Gb/s bundle: s = 0.5, r = 2/3, end 100 x 1.5 = 150.
    _sim, ends = _run(OVER, [_job("A", 0, 100, 4, 4)], {"A": [0, 1, 4, 5]})
    assert ends == {"A": pytest.approx(150.0)}
    # 1:1 (160 Gb/s bundles): 80 fits, end 100.
    _sim, ends = _run(FULL, [_job("A", 0, 100, 4, 4)], {"A": [0, 1, 4, 5]})
    assert ends == {"A": pytest.approx(100.0)}
    # A default-class job (c = 0.2) on 4:1: r = 1 / (0.8 + 0.2 / 0.5) = 1 / 1.2, end 120.
    _sim, ends = _run(OVER, [_job("A", 0, 100, 4, 4, job_class="default")], {"A": [0, 1, 4, 5]})
    assert ends == {"A": pytest.approx(120.0)}


def test_the_hop_factor_stays_the_latency_part() -> None:
    # per_extra_leaf 0.1, 2 hosts that fit one leaf placed on two: work 100 x 1.1 = 110; share 1 -> end 110.
    _sim, ends = _run(OVER, [_job("A", 0, 100, 2, 4)], {"A": [0, 4]}, _speed(per_extra_leaf=0.1))
    assert ends == {"A": pytest.approx(110.0)}


def test_two_comm_heavy_jobs_sharing_one_oversubscribed_uplink() -> None:
    # Each sends 40 Gb/s over both leaf bundles: load 80 on 40, s = 0.5 for both, r = 2/3: both end at 150.
    sim, ends = _run(OVER, [_job("A", 0, 100, 2, 4), _job("B", 0, 100, 2, 4)], {"A": [0, 4], "B": [1, 5]})
    assert ends == {"A": pytest.approx(150.0), "B": pytest.approx(150.0)}
    m = sim.metrics.to_json()
    assert m["mean_contention_slowdown_multi_node"] == pytest.approx(1.5)
    assert m["contention_slowed_share_multi_node"] == 1.0
    assert m["timeouts"] == 0
    # The isolated model ignores the shared uplink: both end at 100.
    sim, ends = _run(OVER, [_job("A", 0, 100, 2, 4), _job("B", 0, 100, 2, 4)], {"A": [0, 4], "B": [1, 5]},
                     _speed("isolated"))
    assert ends == {"A": pytest.approx(100.0), "B": pytest.approx(100.0)}
    assert sim.metrics.to_json()["mean_contention_slowdown_multi_node"] is None


def test_a_job_on_one_leaf_is_never_slowed() -> None:
    # L holds 2 GPUs on each host of leaf01: it crosses no bundle. W holds 2 GPUs on all 8 hosts: 20 Gb/s per
    # host, min(80, 80) = 80 on each 40 Gb/s bundle: s = 0.5 -> W ends at 150; L at 100.
    jobs = [_job("L", 0, 100, 4, 2), _job("W", 0, 100, 8, 2)]
    sim, ends = _run(OVER, jobs, {"L": [0, 1, 2, 3], "W": list(range(8))})
    assert ends == {"L": pytest.approx(100.0), "W": pytest.approx(150.0)}
    m = sim.metrics.to_json()
    assert m["multi_node_jobs"] == 2
    assert m["mean_contention_slowdown_multi_node"] == pytest.approx((1.0 + 1.5) / 2)
    assert m["contention_slowed_share_multi_node"] == 0.5


def test_an_end_releases_bandwidth_and_the_other_job_speeds_up() -> None:
    # A (100 s of work) alone from 0: rate 1, 50 done by 50. B (300 s) starts at 50: both s = 0.5, r = 2/3.
    # A's last 50 take 75 -> A ends at 125; B has done 75 x 2/3 = 50 by then, 250 left alone at rate 1 -> 375.
    jobs = [_job("A", 0, 100, 2, 4), _job("B", 50, 300, 2, 4)]
    sim, ends = _run(OVER, jobs, {"A": [0, 4], "B": [1, 5]})
    assert ends == {"A": pytest.approx(125.0), "B": pytest.approx(375.0)}
    m = sim.metrics.to_json()
    assert m["jct_s"]["mean"] == pytest.approx((125 + (375 - 50)) / 2, rel=1e-6)
    # Slowdown = elapsed / work: A 125 / 100, B 325 / 300.
    assert m["mean_contention_slowdown_multi_node"] == pytest.approx((1.25 + 325 / 300) / 2, abs=1e-4)


def test_three_jobs_on_one_uplink_get_a_third_each() -> None:
    # C runs 1 + 1 host on gpu003 / gpu007 too: load 120 on 40 -> s = 1/3, r = 1 / (0.5 + 1.5) = 0.5 for all three:
    # 100 s of work each end at 200.
    jobs = [_job("A", 0, 100, 2, 4), _job("B", 0, 100, 2, 4), _job("C", 0, 100, 2, 4)]
    _sim, ends = _run(OVER, jobs, {"A": [0, 4], "B": [1, 5], "C": [2, 6]})
    assert ends == {"A": pytest.approx(200.0), "B": pytest.approx(200.0), "C": pytest.approx(200.0)}


def test_time_limit_kills_a_job_slowed_by_contention() -> None:
    # Both at r = 2/3 from 0. B's limit is 120: killed at 120 with 80 of 100 done (a timeout). A has 80 done
    # too, 20 left alone at rate 1 -> ends 140.
    jobs = [_job("A", 0, 100, 2, 4), _job("B", 0, 100, 2, 4, limit=120)]
    sim, ends = _run(OVER, jobs, {"A": [0, 4], "B": [1, 5]})
    assert ends == {"A": pytest.approx(140.0), "B": pytest.approx(120.0)}
    m = sim.metrics.to_json()
    assert m["timeouts"] == 1
    # Slowdowns: A 140 / 100, B 120 / 80.
    assert m["mean_contention_slowdown_multi_node"] == pytest.approx((1.4 + 1.5) / 2, abs=1e-4)


def test_non_blocking_fabric_matches_the_isolated_model() -> None:
    # On 1:1 no bundle can carry more than its hosts inject, so every job runs as in the isolated model.
    from gpupool.simulate.synthetic import SyntheticSpec, synthetic_jobs

    fabric = compile_fabric(fat_tree(4, 4, 4))
    results = []
    for model in ("isolated", "contention"):
        sim = Simulator(fabric, "slurm-tree", SimConfig(gpus_per_host=8, record_starts=True), SpeedModel(model=model))
        sim.run(synthetic_jobs(SyntheticSpec(jobs=300, multi=0.4, seed=3), total_gpus=128, gpus_per_host=8))
        results.append((sim.starts, sim.metrics.to_json()["jct_s"]))
    assert results[0] == results[1]


def test_speed_model_file_comm_fraction(tmp_path: Path) -> None:
    good = tmp_path / "speed.json"
    good.write_text(json.dumps({"classes": {"comm-heavy": {"per_extra_leaf": 0.1}, "mine": {"comm_fraction": 0.7},
                                            "other": {}}}))
    model = load_speed_model(str(good))
    # Left out: the built-in class's fraction (comm-heavy 0.5), else 0.2.
    assert [model.classes[k].comm_fraction for k in ("comm-heavy", "mine", "other")] == [0.5, 0.7, 0.2]
    for bad in (1.5, -0.1, "half", True):
        path = tmp_path / "bad.json"
        path.write_text(json.dumps({"classes": {"mine": {"comm_fraction": bad}}}))
        with pytest.raises(InputError, match=r"bad\.json: classes\.mine\.comm_fraction must be a number from 0 to 1"):
            load_speed_model(str(path))


def test_cli_contention_option_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fabric = tmp_path / "f.json"
    assert main(["fabric", "generate", "fat-tree", "--leaves", "2", "--hosts-per-leaf", "4", "--spines", "1",
                 "-o", str(fabric)]) == 0
    capsys.readouterr()
    base = ["simulate", "--fabric", str(fabric), "--workload", "synthetic:jobs=60,multi=0.5", "--policies",
            "slurm-tree", "--json"]
    report = tmp_path / "report.html"
    assert main([*base, "--contention", "on", "--report", str(report)]) == 0
    doc = json.loads(capsys.readouterr().out)
    page = report.read_text()
    assert "contention slowdown / multi-node job" in page and "oversubscription level1 up to 4:1" in page
    assert doc["speed_model"]["model"] == "contention"
    assert doc["speed_model"]["classes"]["comm-heavy"]["comm_fraction"] == 0.5
    # 4 hosts of 40 Gb/s under one 40 Gb/s cable.
    assert doc["speed_model"]["contention"]["links"]["level1"] == {"bundles": 2, "min_uplink_gbps": 40.0,
                                                                  "max_oversubscription": 4.0}
    (policy,) = doc["policies"]
    assert policy["mean_contention_slowdown_multi_node"] >= 1.0
    assert 0.0 <= policy["contention_slowed_share_multi_node"] <= 1.0
    assert main(base) == 0  # default: isolated
    doc = json.loads(capsys.readouterr().out)
    assert doc["speed_model"]["model"] == "isolated" and "contention" not in doc["speed_model"]
    assert doc["policies"][0]["mean_contention_slowdown_multi_node"] is None
    bad = tmp_path / "speed.json"
    bad.write_text('{"classes": {"default": {"comm_fraction": 2}}}')
    assert main([*base, "--contention", "on", "--speed-model", str(bad)]) == 4
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"gpupool: error: {bad}: classes.default.comm_fraction must be a number from 0 to 1, got 2"]
    assert main([*base, "--contention", "maybe"]) == 2


def test_pooled_simulator_with_contention_frees_every_flow() -> None:
    """Pool policies (with preemptions) under contention on a 4:1 fabric: every job completes once, preempted
    flows leave their bundles, and all bundles are idle at the end."""
    from gpupool.simulate.pooled import PoolLayout, PoolUnit
    from gpupool.simulate.synthetic import parse_spec, synthetic_jobs

    wide = compile_fabric(fat_tree(4, 4, 1))
    index = wide.host_index()
    names = wide.host_names
    layout = PoolLayout(pools=(
        PoolUnit("a", tuple(index[h] for h in names[:8]), owners=("a",)),
        PoolUnit("b", tuple(index[h] for h in names[8:]), owners=("b",)),
    ))
    spec = parse_spec("synthetic:jobs=400,seed=2,load=1.2,multi=0.4,multi_nodes=2:50/4:30/6:20,accounts=a:2/b:1")
    sim = Simulator(wide, "pools-lend", SimConfig(gpus_per_host=8), SpeedModel(model="contention"), layout=layout)
    jobs = list(synthetic_jobs(spec, total_gpus=128, gpus_per_host=8))
    metrics = sim.run(jobs)
    assert metrics.jobs + sim.counts.too_large == len(jobs)
    assert metrics.preemptions > 0
    assert sim.contention is not None and not sim.contention.flows
    assert sim.contention.load == [0.0] * len(sim.contention.load)
    assert not any(sim.contention.on_link)
    assert metrics.contention_slowed > 0 and metrics.contention_total > metrics.multi_node_jobs


def test_two_jobs_share_the_spine_to_core_bundle_of_a_3_level_tree() -> None:
    # 2 pods x 2 leaves x 2 hosts, 2 spines per pod, 1 core: a leaf has 2 spine cables (80) under 2 hosts (80):
    # 1:1; both spines of a pod cable to the one core, so a pod has 80 under 4 hosts (160): 2:1.
    # Pod 1: leaf01 gpu001-002 (0, 1), leaf02 (2, 3); pod 2: leaf01 (4, 5), leaf02 (6, 7).
    three = compile_fabric(fat_tree(2, 2, 2, pods=2, cores=1))
    assert three.tree_uplink_gbps.tolist() == [2 * QDR] * 4 + [2 * QDR] * 2 + [0.0]
    # A alone on 0, 1 | 4, 5: 80 over its leaf bundles (80) and pod bundles (80): full speed, end 100.
    _sim, ends = _run(three, [_job("A", 0, 100, 4, 4)], {"A": [0, 1, 4, 5]})
    assert ends == {"A": pytest.approx(100.0)}
    # B on the other leaves (2, 3 | 6, 7): the leaf bundles stay apart, the pod bundles carry 160 on 80:
    # s = 0.5, r = 2/3 for both: end 150.
    _sim, ends = _run(three, [_job("A", 0, 100, 4, 4), _job("B", 0, 100, 4, 4)], {"A": [0, 1, 4, 5], "B": [2, 3, 6, 7]})
    assert ends == {"A": pytest.approx(150.0), "B": pytest.approx(150.0)}


def test_generator_uplinks_must_be_positive(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["fabric", "generate", "fat-tree", "--leaves", "2", "--hosts-per-leaf", "4", "--spines", "1",
                 "--uplinks", "0", "-o", str(tmp_path / "f.json")]) == 2
    assert "--uplinks must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "f.json").exists()


def test_incremental_shares_match_a_recount_at_every_event() -> None:
    """On a busy 4:1 trace, after every start and end each running flow's share equals the share recounted
    from scratch (loads summed over all running flows), so re-rating only the touched jobs misses none."""
    from gpupool.simulate.synthetic import parse_spec, synthetic_jobs

    fabric = compile_fabric(fat_tree(4, 4, 1))
    sim = Simulator(fabric, "slurm-tree", SimConfig(gpus_per_host=8), SpeedModel(model="contention"))
    model = sim.contention
    assert model is not None
    checked = [0]

    def recount() -> None:
        load = [0.0] * len(model.capacity)
        for flow in model.flows.values():
            for t, d in zip(flow.links, flow.demands, strict=True):
                load[t] += d
        for flow in model.flows.values():
            share = min([1.0] + [model.capacity[t] / load[t] for t in flow.links if load[t] > model.capacity[t]])
            assert flow.share == pytest.approx(share, rel=1e-9)
            checked[0] += 1

    commit, release = sim.commit, sim.release

    def commit_then_check(*args, **kwargs):  # type: ignore[no-untyped-def]
        rid = commit(*args, **kwargs)
        recount()
        return rid

    def release_then_check(*args, **kwargs):  # type: ignore[no-untyped-def]
        out = release(*args, **kwargs)
        recount()
        return out

    sim.commit = commit_then_check  # type: ignore[method-assign]
    sim.release = release_then_check  # type: ignore[method-assign]
    spec = parse_spec("synthetic:jobs=400,seed=5,load=1.1,multi=0.5,multi_nodes=2:40/3:30/5:30")
    metrics = sim.run(synthetic_jobs(spec, total_gpus=128, gpus_per_host=8))
    assert metrics.jobs == 400 and metrics.contention_slowed > 0 and checked[0] > 1000


def test_fabric_show_reports_uplink_oversubscription(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # 8 hosts of 40 Gb/s under 2 spine cables (80): 4:1; with --uplinks 4, 8 cables: 1:1.
    for uplinks, ratio in ((1, 4.0), (4, 1.0)):
        fabric = tmp_path / f"f{uplinks}.json"
        assert main(["fabric", "generate", "fat-tree", "--leaves", "3", "--hosts-per-leaf", "8", "--spines", "2",
                     "--uplinks", str(uplinks), "-o", str(fabric)]) == 0
        capsys.readouterr()
        assert main(["fabric", "show", "--fabric", str(fabric), "--json"]) == 0
        doc = json.loads(capsys.readouterr().out)
        assert doc["uplink_bundles"] == {"level1": {"bundles": 3, "min_uplink_gbps": 2 * uplinks * QDR,
                                                    "max_oversubscription": ratio}}
