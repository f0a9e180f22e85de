"""Submission library on an in-memory Slurm: plan -> sbatch, fallbacks, races, conflicts, locking."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from gpupool.app.submit import SubmitRequest, submit_planned
from gpupool.cli.errors import exit_code_for, flag_spelling
from gpupool.errors import InfeasibleError, InputError, UsageError
from gpupool.fabric.compiled import compile_fabric
from gpupool.fabric.generate import fat_tree
from gpupool.placement.cost import cost_of
from gpupool.slurm.fake import FakeSlurm

HOSTS = [f"gpu{i:03d}" for i in range(1, 17)]  # 4 leaves x 4 hosts


@pytest.fixture(scope="module")
def compiled():  # type: ignore[no-untyped-def]
    return compile_fabric(fat_tree(4, 4, 2))


@pytest.fixture
def job_script(tmp_path: Path) -> str:
    path = tmp_path / "job.sh"
    path.write_text("#!/bin/bash\nsrun hostname\n")
    return str(path)


def leaf_of(compiled, host: str) -> int:  # type: ignore[no-untyped-def]
    return int(compiled.host_tree_leaf[compiled.host_index()[host]])


def request(tmp_path: Path, **kw) -> SubmitRequest:  # type: ignore[no-untyped-def]
    kw.setdefault("lock_path", str(tmp_path / "submit.lock"))
    kw.setdefault("verify_timeout", 0.0)
    return SubmitRequest(**kw)


def opt(args: list[str], name: str) -> str | None:
    for arg in args:
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
    return None


def test_submit_pins_planned_nodes_and_records_cost(compiled, tmp_path: Path, job_script: str) -> None:  # type: ignore[no-untyped-def]
    slurm = FakeSlurm.uniform(HOSTS)
    # Fragment: leaf 1 (gpu001-004) half used, leaf 2 (gpu005-008) untouched.
    for host in HOSTS[:4]:
        slurm.use(host, 4)
    out = submit_planned(slurm, compiled, request(tmp_path, gpus=16, gpus_per_node=8, script=job_script))
    assert out.mode == "now" and out.job_state == "RUNNING"
    hosts = list(out.placement.allocation)
    assert len(hosts) == 2 and leaf_of(compiled, hosts[0]) == leaf_of(compiled, hosts[1])
    args = slurm.submitted[0]
    assert opt(args, "nodelist") == out.nodelist and opt(args, "nodes") == "2" and opt(args, "gres") == "gpu:8"
    comment = opt(args, "comment") or ""
    assert comment.startswith(f"gpupool:pair_hops_sum={cost_of(compiled, out.placement.allocation).pair_hops_sum},")
    assert "mode=now" in comment and "alloc=" in comment
    job = slurm.job(out.job_id or "")
    assert set(job.nodes) == set(hosts)
    assert out.sbatch_argv[-1] == job_script and out.to_json()["job_id"] == out.job_id


def test_request_learned_from_sbatch_directives(compiled, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    script = tmp_path / "train.sh"
    script.write_text("#!/bin/bash\n#SBATCH --gres=gpu:4\n#SBATCH -N 2\n#SBATCH -J train\nsrun x\n")
    slurm = FakeSlurm.uniform(HOSTS)
    out = submit_planned(slurm, compiled, request(tmp_path, script=str(script), sbatch_args=["--mem=10G"]))
    assert out.placement.allocation == dict.fromkeys(out.placement.allocation, 4)
    assert len(out.placement.allocation) == 2
    assert slurm.submitted[0][0] == "--mem=10G"  # user options pass through, first and untouched
    assert opt(slurm.submitted[0], "gres") == "gpu:4"


def test_dry_run_submits_nothing(compiled, tmp_path: Path, job_script: str) -> None:  # type: ignore[no-untyped-def]
    slurm = FakeSlurm.uniform(HOSTS)
    out = submit_planned(slurm, compiled, request(tmp_path, gpus=8, script=job_script, dry_run=True,
                                                  sbatch_args=["-J", "x"]))
    assert slurm.submitted == [] and out.job_id is None and "job_id" not in out.to_json()
    assert out.sbatch_argv[:3] == ["sbatch", "-J", "x"] and "--nodes=1" in out.sbatch_argv


def test_uneven_plan_uses_total_gpus(compiled, tmp_path: Path, job_script: str) -> None:  # type: ignore[no-untyped-def]
    slurm = FakeSlurm.uniform(HOSTS)
    for host in HOSTS:
        slurm.use(host, 8)
    slurm.nodes["gpu001"] = slurm.nodes["gpu001"].__class__(**{**slurm.nodes["gpu001"].__dict__, "gpus_used": 0})
    slurm.nodes["gpu002"] = slurm.nodes["gpu002"].__class__(**{**slurm.nodes["gpu002"].__dict__, "gpus_used": 4})
    out = submit_planned(slurm, compiled, request(tmp_path, gpus=12, script=job_script))
    assert out.placement.allocation == {"gpu001": 8, "gpu002": 4}
    assert opt(slurm.submitted[0], "gpus") == "12" and opt(slurm.submitted[0], "gres") is None
    assert slurm.job(out.job_id or "").allocation == {"gpu001": 8, "gpu002": 4}


def test_nothing_fits_now_submits_with_switches(compiled, tmp_path: Path, job_script: str) -> None:  # type: ignore[no-untyped-def]
    slurm = FakeSlurm.uniform(HOSTS)
    for host in HOSTS:
        slurm.use(host, 6)
    out = submit_planned(slurm, compiled, request(tmp_path, gpus=16, gpus_per_node=8, script=job_script,
                                                  switch_wait="30:00"))
    assert out.mode == "wait-switches" and out.job_state == "PENDING"
    args = slurm.submitted[0]
    assert opt(args, "nodelist") is None
    assert opt(args, "switches") == "1@00:30:00"  # 2 hosts fit under one leaf once jobs end
    assert any("nothing fits now" in n for n in out.notes) and any("--switches=1@00:30:00" in n for n in out.notes)


def _one_free_host_per_leaf() -> FakeSlurm:
    slurm = FakeSlurm.uniform(HOSTS)
    for i, host in enumerate(HOSTS):
        if i % 4:  # gpu001, gpu005, gpu009, gpu013 stay free: one per leaf
            slurm.use(host, 8)
    return slurm


@pytest.mark.parametrize(("sbatch_args", "switch_wait", "wait"), [
    (["--time=2:00:00"], "25%", "00:30:00"),  # 25% of 2 h
    (["-t", "1-00:00:00"], "25%", "06:00:00"),  # 25% of a day
    (["--time=90"], "50%", "00:45:00"),  # Slurm's bare --time is minutes
    ([], "25%", "01:00:00"),  # no --time: the fallback hour
    (["--time=2:00:00"], "45:00", "00:45:00"),  # a fixed wait, [[H:]M:]S
    (["--time=2:00:00"], "90", "00:01:30"),  # a bare --switch-wait is seconds
])
def test_a_spread_placement_now_waits_for_its_fewest_leaves(compiled, tmp_path: Path, job_script: str,  # type: ignore[no-untyped-def]
                                                             sbatch_args: list[str], switch_wait: str,
                                                             wait: str) -> None:
    slurm = _one_free_host_per_leaf()
    out = submit_planned(slurm, compiled, request(tmp_path, gpus=16, gpus_per_node=8, script=job_script,
                                                  sbatch_args=sbatch_args, switch_wait=switch_wait))
    # Two whole hosts are free now, on two leaves; one leaf holds both once its jobs end.
    assert out.mode == "wait-switches" and out.job_state == "PENDING"
    args = slurm.submitted[0]
    assert opt(args, "nodelist") is None and opt(args, "switches") == f"1@{wait}"
    assert any("a placement now would take 2 leaf switches" in n for n in out.notes)
    assert any(f"--switches=1@{wait}" in n and "then places the job anyway" in n for n in out.notes)
    assert any("gives no --time" in n for n in out.notes) == (not sbatch_args)


def test_switch_wait_zero_pins_the_spread_placement_now(compiled, tmp_path: Path, job_script: str) -> None:  # type: ignore[no-untyped-def]
    slurm = _one_free_host_per_leaf()
    out = submit_planned(slurm, compiled, request(tmp_path, gpus=16, gpus_per_node=8, script=job_script,
                                                  switch_wait="0"))
    assert out.mode == "now" and out.job_state == "RUNNING"
    hosts = list(out.placement.allocation)
    assert len({leaf_of(compiled, h) for h in hosts}) == 2 and opt(slurm.submitted[0], "switches") is None


def test_a_compact_placement_now_is_pinned_whatever_the_wait(compiled, tmp_path: Path, job_script: str) -> None:  # type: ignore[no-untyped-def]
    slurm = _one_free_host_per_leaf()
    slurm.use("gpu001", 0)
    for host in ("gpu002", "gpu003"):  # leaf 1: gpu001-003 free now
        slurm.nodes[host] = slurm.nodes[host].__class__(**{**slurm.nodes[host].__dict__, "gpus_used": 0})
    out = submit_planned(slurm, compiled, request(tmp_path, gpus=16, gpus_per_node=8, script=job_script,
                                                  sbatch_args=["--time=10:00:00"]))
    assert out.mode == "now" and len({leaf_of(compiled, h) for h in out.placement.allocation}) == 1


@pytest.mark.parametrize(("kw", "message"), [
    ({"switch_wait": "٣0%"}, "--switch-wait"), ({"switch_wait": "101%"}, "--switch-wait"),
    ({"switch_wait": "1:2:3:4"}, "--switch-wait"), ({"sbatch_args": ["--time=soon"]}, "--time"),
])
def test_bad_switch_wait_or_time_is_refused_before_slurm(compiled, tmp_path: Path, job_script: str,  # type: ignore[no-untyped-def]
                                                        kw: dict, message: str) -> None:
    slurm = _one_free_host_per_leaf()
    with pytest.raises((UsageError, InputError), match=message) as info:
        submit_planned(slurm, compiled, request(tmp_path, gpus=16, gpus_per_node=8, script=job_script, **kw))
    assert exit_code_for(info.value) in (2, 4) and slurm.submitted == []


def test_larger_than_partition_is_infeasible(compiled, tmp_path: Path, job_script: str) -> None:  # type: ignore[no-untyped-def]
    slurm = FakeSlurm.uniform(HOSTS)
    with pytest.raises(InfeasibleError, match="larger than partition gpu \\(128 GPUs on 16 nodes\\)") as info:
        submit_planned(slurm, compiled, request(tmp_path, gpus=136, script=job_script))
    assert exit_code_for(info.value) == 1 and slurm.submitted == []


def test_drained_nodes_never_planned_even_in_future(compiled, tmp_path: Path, job_script: str) -> None:  # type: ignore[no-untyped-def]
    slurm = FakeSlurm.uniform(HOSTS)
    for host in HOSTS[2:]:
        slurm.set_flags(host, "IDLE", "DRAIN")
    with pytest.raises(InfeasibleError, match="even with every running job finished"):
        submit_planned(slurm, compiled, request(tmp_path, gpus=24, script=job_script))
    assert slurm.submitted == []


def test_unknown_partition_is_input_error(compiled, tmp_path: Path, job_script: str) -> None:  # type: ignore[no-untyped-def]
    slurm = FakeSlurm.uniform(HOSTS)
    with pytest.raises(InputError, match="unknown partition 'nosuch'") as info:
        submit_planned(slurm, compiled, request(tmp_path, gpus=8, script=job_script, sbatch_args=["-p", "nosuch"]))
    assert exit_code_for(info.value) == 4 and slurm.submitted == []


@pytest.mark.parametrize(("kw", "message"), [
    ({"sbatch_args": ["-w", "gpu001"]}, "-w gpu001 conflicts with gpupool"),
    ({"sbatch_args": ["--nodelist=gpu001"]}, "--nodelist=gpu001 conflicts with gpupool"),
    ({"sbatch_args": ["-N", "3"], "gpus_per_node": 8}, "--nodes 2 conflicts with sbatch --nodes=3"),
    ({"sbatch_args": ["-N", "3"]}, "--gpus 16 cannot be split evenly over --nodes 3"),
    ({"sbatch_args": ["-N", "3-4"]}, "-N/--nodes 3-4 conflicts with gpupool's placement on 2 node"),
    ({"sbatch_args": ["--gpus=8"]}, "--gpus 16 conflicts with sbatch --gpus=8"),
])
def test_conflicting_sbatch_options(compiled, tmp_path: Path, job_script: str, kw: dict, message: str) -> None:  # type: ignore[no-untyped-def]
    slurm = FakeSlurm.uniform(HOSTS)
    base = {"gpus": 16, "script": job_script}
    if kw.get("gpus_per_node"):
        base["nodes"] = 2
    with flag_spelling(), pytest.raises(UsageError, match=message):  # as the CLI shows it: flags named
        submit_planned(slurm, compiled, request(tmp_path, **{**base, **kw}))
    assert slurm.submitted == []


def test_missing_script_and_missing_request(compiled, tmp_path: Path, job_script: str) -> None:  # type: ignore[no-untyped-def]
    slurm = FakeSlurm.uniform(HOSTS)
    with pytest.raises(InputError, match="nope.sh: batch script not found"):
        submit_planned(slurm, compiled, request(tmp_path, gpus=8, script=str(tmp_path / "nope.sh")))
    with pytest.raises(UsageError, match="no GPU request"):
        submit_planned(slurm, compiled, request(tmp_path, script=job_script))
    with pytest.raises(UsageError, match="missing batch SCRIPT"):
        submit_planned(slurm, compiled, request(tmp_path, gpus=8))
    out = submit_planned(slurm, compiled, request(tmp_path, gpus=8, sbatch_args=["--wrap=hostname"]))
    assert out.job_state == "RUNNING" and slurm.submitted[0][0] == "--wrap=hostname"


def test_race_node_drained_after_plan_replans_once(compiled, tmp_path: Path, job_script: str) -> None:  # type: ignore[no-untyped-def]
    slurm = FakeSlurm.uniform(HOSTS)
    planned_first: list[str] = []

    def drain_planned(fake: FakeSlurm, args: list[str]) -> None:
        if not planned_first:  # only the first submission loses the race
            from gpupool.hostlist import expand as expand_hostlist

            planned_first.extend(expand_hostlist(opt(args, "nodelist")))
            for host in planned_first:
                fake.set_flags(host, "IDLE", "DRAIN")

    slurm.before_submit = drain_planned
    out = submit_planned(slurm, compiled, request(tmp_path, gpus=16, gpus_per_node=8, script=job_script))
    assert out.replanned and out.job_state == "RUNNING"
    assert len(slurm.submitted) == 2 and slurm.cancelled == [str(100)]
    assert not set(out.placement.allocation) & set(planned_first)
    live = [j for j in slurm.jobs_by_id.values() if j.state != "CANCELLED"]
    assert [j.job_id for j in live] == [out.job_id]  # no duplicate job left behind


def test_sbatch_node_rejection_replans_once_then_fails(compiled, tmp_path: Path, job_script: str) -> None:  # type: ignore[no-untyped-def]
    slurm = FakeSlurm.uniform(HOSTS)
    slurm.reject = lambda args: "Requested node configuration is not available"
    from gpupool.slurm.invoke import SlurmCommandError

    with pytest.raises(SlurmCommandError, match="Requested node configuration is not available") as info:
        submit_planned(slurm, compiled, request(tmp_path, gpus=8, script=job_script))
    assert exit_code_for(info.value) == 4 and slurm.submitted == []
    attempts: list[int] = []

    def once(args: list[str]) -> str | None:
        attempts.append(1)
        return "Requested node configuration is not available" if len(attempts) == 1 else None

    slurm.reject = once
    out = submit_planned(slurm, compiled, request(tmp_path, gpus=8, script=job_script))
    assert out.replanned and len(attempts) == 2 and len(slurm.submitted) == 1


def test_other_rejections_are_not_retried(compiled, tmp_path: Path, job_script: str) -> None:  # type: ignore[no-untyped-def]
    slurm = FakeSlurm.uniform(HOSTS)
    calls: list[int] = []

    def bad_account(args: list[str]) -> str:
        calls.append(1)
        return "Invalid account or account/partition combination specified"

    slurm.reject = bad_account
    from gpupool.slurm.invoke import SlurmCommandError

    with pytest.raises(SlurmCommandError, match="Invalid account"):
        submit_planned(slurm, compiled, request(tmp_path, gpus=8, script=job_script, sbatch_args=["-A", "nosuch"]))
    assert calls == [1]


def test_pending_gpupool_jobs_hold_their_gpus(compiled, tmp_path: Path, job_script: str) -> None:  # type: ignore[no-untyped-def]
    slurm = FakeSlurm.uniform(HOSTS)
    first = submit_planned(slurm, compiled, request(tmp_path, gpus=8, script=job_script))
    # Pretend slurmctld has not started it yet: GPUs not yet shown as used on the node.
    host = next(iter(first.placement.allocation))
    job = slurm.jobs_by_id[first.job_id or ""]
    slurm.jobs_by_id[job.job_id] = job.__class__(**{**job.__dict__, "state": "PENDING", "reason": "None",
                                                     "nodes": (), "allocation": {}})
    slurm.cancel  # noqa: B018 - keep the fake's API visible in this test
    node = slurm.nodes[host]
    slurm.nodes[host] = node.__class__(**{**node.__dict__, "gpus_used": 0})
    second = submit_planned(slurm, compiled, request(tmp_path, gpus=8, script=job_script, dry_run=True))
    assert host not in second.placement.allocation


def test_concurrent_submits_never_double_book(compiled, tmp_path: Path, job_script: str) -> None:  # type: ignore[no-untyped-def]
    slurm = FakeSlurm.uniform(HOSTS)
    results: list[object] = []
    lock = threading.Lock()

    def one() -> None:
        try:
            out = submit_planned(slurm, compiled, request(tmp_path, gpus=6, script=job_script))
            value: object = out
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            value = exc
        with lock:
            results.append(value)

    threads = [threading.Thread(target=one) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 20 x 6 = 120 GPUs of 128: every call gets a job, started at once.
    assert all(not isinstance(r, Exception) for r in results), results
    job_ids = [r.job_id for r in results]  # type: ignore[attr-defined]
    assert len(set(job_ids)) == 20 and len(slurm.submitted) == 20
    per_host = slurm.allocated()
    assert all(per_host[h] <= 8 for h in per_host)
    assert sum(per_host.values()) == 120
    assert all(r.job_state == "RUNNING" for r in results)  # type: ignore[attr-defined]


def test_submit_lock_excludes_and_times_out(tmp_path: Path) -> None:
    import os

    from gpupool.app.lock import submit_lock
    from gpupool.errors import EnvError

    path = str(tmp_path / "cluster.lock")
    with submit_lock(path, timeout=1):
        assert os.stat(path).st_mode & 0o777 == 0o600  # only its user can open it, let alone hold it
        with pytest.raises(EnvError, match="held .* for more than 0.2s"), submit_lock(path, timeout=0.2):
            pass
    with submit_lock(path, timeout=0.2):  # released on exit
        pass


def test_submit_lock_lives_in_a_private_per_user_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import stat

    from gpupool.app.lock import default_lock_path
    from gpupool.errors import EnvError

    monkeypatch.delenv("GPUPOOL_LOCK_DIR", raising=False)
    monkeypatch.setenv("SLURM_CONF", "/etc/slurm/slurm.conf")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    (tmp_path / "run").mkdir()
    path = default_lock_path()
    directory = os.path.dirname(path)
    assert directory == str(tmp_path / "run" / "gpupool")
    assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700 and os.stat(directory).st_uid == os.getuid()
    assert os.path.basename(path).startswith("submit-") and path.endswith(".lock")
    # a directory others can write to is refused, never used
    monkeypatch.setenv("GPUPOOL_LOCK_DIR", str(tmp_path / "shared"))
    (tmp_path / "shared").mkdir(mode=0o777)
    os.chmod(tmp_path / "shared", 0o777)
    with pytest.raises(EnvError, match="open to other users"):
        default_lock_path()
    # so is a symlink planted where the directory should be
    (tmp_path / "elsewhere").mkdir(mode=0o700)
    os.symlink(tmp_path / "elsewhere", tmp_path / "planted")
    monkeypatch.setenv("GPUPOOL_LOCK_DIR", str(tmp_path / "planted"))
    with pytest.raises(EnvError, match="not a directory"):
        default_lock_path()
    # without XDG_RUNTIME_DIR: ~/.cache/gpupool
    monkeypatch.delenv("GPUPOOL_LOCK_DIR")
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    assert os.path.dirname(default_lock_path()) == str(tmp_path / "home" / ".cache" / "gpupool")


def test_submit_lock_directory_of_another_user_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from gpupool.app.lock import default_lock_path
    from gpupool.errors import EnvError

    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    try:
        os.chown(theirs, os.getuid() + 4242, -1)  # only root can give a directory away
    except PermissionError:
        pytest.skip("needs root to make a directory that belongs to another user")
    monkeypatch.setenv("GPUPOOL_LOCK_DIR", str(theirs))
    with pytest.raises(EnvError, match=f"belongs to uid {os.getuid() + 4242}, not to you"):
        default_lock_path()


def test_one_plan_reads_the_partition_table_once(compiled, tmp_path: Path, job_script: str) -> None:  # type: ignore[no-untyped-def]
    # The default partition and the topology Slurm applies to it both come from `scontrol show partition`:
    # one read per plan (issue #26: every Slurm call is time the user waits).
    class Counting(FakeSlurm):
        reads = 0

        def partitions(self) -> dict[str, dict[str, str]]:
            Counting.reads += 1
            return super().partitions()

    slurm = Counting.uniform(HOSTS)
    assert isinstance(slurm, Counting)
    out = submit_planned(slurm, compiled, request(tmp_path, gpus=8, script=job_script, dry_run=True))
    assert out.placement.allocation and Counting.reads == 1
