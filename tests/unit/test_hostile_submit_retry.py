"""Issue 19 item 7: a lost sbatch answer never becomes a duplicate job.

The fake's sbatch creates the job, then "times out" (EnvError) as a stalled slurmctld did in the
probe; the fake's squeue can stay stalled for a few calls. Expected job counts are by hand.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from gpupool.app import submit as submit_module
from gpupool.cli.context import AppContext
from gpupool.cli.main import main
from gpupool.fabric.generate import fat_tree
from gpupool.fabric.model import save_fabric
from gpupool.slurm.fake import FakeSlurm

HOSTS = [f"gpu{i:03d}" for i in range(1, 17)]


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    fabric = tmp_path / "tree.json"
    save_fabric(fat_tree(4, 4, 2), str(fabric))
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/bash\nsrun hostname\n")
    monkeypatch.setenv("GPUPOOL_LOCK_DIR", str(tmp_path))
    monkeypatch.setattr(submit_module, "current_user", lambda: "tester")
    monkeypatch.setattr(submit_module.time, "sleep", lambda _s: None)
    slurm = FakeSlurm.uniform(HOSTS)
    return {"fabric": str(fabric), "script": str(script), "slurm": slurm,
            "ctx": AppContext(slurm=slurm)}


def stall(slurm: FakeSlurm, queries: int) -> None:
    """From sbatch on, the next `queries` squeue calls fail as unreachable."""
    slurm.before_submit = lambda fake, _args: setattr(fake, "stalled_queries", queries)


def _submit(env: dict, *extra: str) -> int:
    return main(["submit", "--fabric", env["fabric"], "--gpus", "8", "--verify-timeout", "0", "--json", *extra,
                 env["script"]], obj=env["ctx"])


def test_lost_answer_finds_the_job_by_its_token(env: dict, capsys: pytest.CaptureFixture[str]) -> None:
    env["slurm"].lost_answers = 1
    stall(env["slurm"], 2)  # squeue still stalled for the first two lookups
    assert _submit(env) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(env["slurm"].submitted) == 1 and list(env["slurm"].jobs_by_id) == [doc["job_id"]]
    assert f"token={doc['token']}" in env["slurm"].jobs_by_id[doc["job_id"]].comment


def test_retry_with_the_printed_token_does_not_submit_twice(env: dict, capsys: pytest.CaptureFixture[str]) -> None:
    env["slurm"].lost_answers = 1
    stall(env["slurm"], 100)  # slurmctld stays stalled for the rest of the first run
    assert _submit(env) == 3
    err = capsys.readouterr().err
    token = re.search(r"--token ([0-9a-f]+)", err)
    assert token, err
    first = list(env["slurm"].jobs_by_id)
    assert len(first) == 1  # the job exists although the user was told exit 3
    env["slurm"].stalled_queries = 0
    env["slurm"].before_submit = None
    assert _submit(env, "--token", token.group(1)) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["job_id"] == first[0] and len(env["slurm"].jobs_by_id) == 1 and len(env["slurm"].submitted) == 1


def test_token_of_another_users_job_is_not_adopted(env: dict, capsys: pytest.CaptureFixture[str]) -> None:
    env["slurm"].user = "mallory"
    env["slurm"].lost_answers = 1
    stall(env["slurm"], 100)
    assert _submit(env) == 3
    token = re.search(r"--token ([0-9a-f]+)", capsys.readouterr().err).group(1)  # type: ignore[union-attr]
    env["slurm"].stalled_queries = 0
    env["slurm"].before_submit = None
    env["slurm"].user = "tester"
    assert _submit(env, "--token", token) == 0  # mallory's job carries the token: ours is submitted anew
    assert len(env["slurm"].jobs_by_id) == 2


def test_malformed_token_is_a_usage_error(env: dict, capsys: pytest.CaptureFixture[str]) -> None:
    assert _submit(env, "--token", "x,alloc=gpu001:8") == 2
    assert not env["slurm"].submitted
