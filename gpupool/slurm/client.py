"""`SlurmClient` interface and its default backend, the Slurm commands.

Every call has a bounded timeout (`timeout` seconds, default 10); failures raise
`EnvError` (exit 3: Slurm missing/unreachable/slow) or `SlurmCommandError` (exit 4: Slurm
refused the request), see `gpupool.slurm.runner`.

Names other modules use:

- `SlurmClient.node_states() -> list[NodeState]`
- `SlurmClient.jobs(user=None, job_ids=None) -> list[JobInfo]`, `SlurmClient.job(job_id)`
- `SlurmClient.partitions() -> dict[str, dict[str, str]]`
- `SlurmClient.submit(sbatch_args, script, script_args) -> SubmitResult`
- `SlurmClient.test_only(sbatch_args, script) -> TestOnlyResult`
- `SlurmClient.cancel(job_id)`
- `make_client()`: the pyslurm backend when usable, else `CommandsClient()`.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator, Sequence
from typing import Any, Protocol, runtime_checkable

from gpupool.errors import EnvError, GpupoolError, InputError
from gpupool.slurm import parse
from gpupool.slurm.models import JobInfo, NodeState, SubmitResult, TestOnlyResult
from gpupool.slurm.runner import DEFAULT_TIMEOUT, SlurmCommandError, run


@runtime_checkable
class SlurmClient(Protocol):
    """What gpupool needs from Slurm. Backends: `CommandsClient`, `PyslurmClient`, test fakes."""

    def version(self) -> tuple[int, int, int]: ...

    def node_states(self) -> list[NodeState]: ...

    def jobs(self, user: str | None = None, job_ids: Sequence[str] | None = None) -> list[JobInfo]: ...

    def job(self, job_id: str) -> JobInfo: ...

    def partitions(self) -> dict[str, dict[str, str]]: ...

    def submit(self, sbatch_args: Sequence[str], script: str | None,
               script_args: Sequence[str] = ()) -> SubmitResult: ...

    def test_only(self, sbatch_args: Sequence[str], script: str | None) -> TestOnlyResult: ...

    def cancel(self, job_id: str) -> None: ...


class CommandsClient:
    """The Slurm commands (scontrol, sinfo, squeue, sbatch, scancel, sacctmgr, sshare)."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT, submit_timeout: float | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.timeout = timeout
        self.submit_timeout = submit_timeout or max(timeout, 30.0)
        self.env = env
        self._version: tuple[int, int, int] | None = None
        self._asking_version = False

    # -- plumbing -------------------------------------------------------------------------
    def _run(self, argv: list[str], *, timeout: float | None = None, check: bool = True,
             input: str | None = None) -> Any:  # noqa: A002
        with self._release_in_errors():
            return run(argv, timeout=timeout or self.timeout, env=self.env, check=check, input=input)

    def _json(self, argv: list[str]) -> dict[str, Any]:
        proc = self._run(argv)
        with self._release_in_errors():
            try:
                doc = json.loads(proc.stdout)
            except json.JSONDecodeError as exc:
                raise InputError(f"{' '.join(argv)}: output is not JSON ({exc.msg})") from None
            if not isinstance(doc, dict):
                raise InputError(f"{' '.join(argv)}: unexpected JSON document")
            return doc

    def release(self) -> str:
        """"Slurm 26.05.5" for error messages; "Slurm version unknown" when scontrol cannot say."""
        if self._version is None and not self._asking_version:
            self._asking_version = True
            try:
                self.version()
            except GpupoolError:
                pass
            finally:
                self._asking_version = False
        return self._known_release()

    def _known_release(self) -> str:
        if self._version is None:
            return "Slurm version unknown"
        major, minor, micro = self._version
        return f"Slurm {major}.{minor:02d}.{micro}"

    @contextlib.contextmanager
    def _release_in_errors(self) -> Iterator[None]:
        """Errors of Slurm commands and of reading their output name the Slurm release; an
        unreachable Slurm is not asked its version (that would wait out a second timeout)."""
        try:
            yield
        except GpupoolError as exc:
            if "[Slurm " not in exc.message:
                release = self._known_release() if isinstance(exc, EnvError) else self.release()
                exc.args = (f"{exc.message} [{release}]", *exc.args[1:])
            raise

    # -- interface ------------------------------------------------------------------------
    def version(self) -> tuple[int, int, int]:
        """Slurm version, asked once per client (``scontrol --version``)."""
        if self._version is None:
            proc = self._run(["scontrol", "--version"])
            self._version = parse.parse_version(proc.stdout)
        return self._version

    def has_scontrol_json(self) -> bool:
        # `scontrol show nodes --json` appeared in 23.02; 22.05 only has sinfo/squeue --json.
        return self.version()[:2] >= (23, 2)

    def node_states(self) -> list[NodeState]:
        major_minor = self.version()[:2]
        if major_minor >= (23, 2):
            doc = self._json(["scontrol", "show", "nodes", "--json"])
        elif major_minor >= (21, 8):
            # 21.08/22.05: sinfo --json lists nodes with gres_used (openapi v0.0.37/38).
            doc = self._json(["sinfo", "--json"])
        else:
            text = self._run(["scontrol", "-d", "-o", "show", "nodes"]).stdout
            with self._release_in_errors():
                return parse.nodes_from_scontrol(text)
        with self._release_in_errors():
            return parse.nodes_from_json(doc)

    def jobs(self, user: str | None = None, job_ids: Sequence[str] | None = None) -> list[JobInfo]:
        if self.version()[:2] >= (21, 8):
            argv = ["squeue", "--json"]
            if user:
                argv += ["--user", user]
            if job_ids:
                argv += ["--jobs", ",".join(job_ids)]
            try:
                doc = self._json(argv)
            except SlurmCommandError as exc:
                if job_ids and "Invalid job id" in exc.stderr:
                    return []
                raise
            with self._release_in_errors():
                found = parse.jobs_from_json(doc)
            # 22.05's squeue --json ignores --user/--jobs filters: apply them here.
            wanted = {str(j) for j in job_ids or ()}
            return [j for j in found if (not user or j.user == user) and (not wanted or j.job_id in wanted)]
        found: list[JobInfo] = []
        for job_id in job_ids or [None]:
            argv = ["scontrol", "-d", "-o", "show", "job"] + ([job_id] if job_id else [])
            try:
                text = self._run(argv).stdout
            except SlurmCommandError as exc:
                if "Invalid job id" not in exc.stderr:
                    raise
                continue
            with self._release_in_errors():
                found += parse.jobs_from_scontrol(text)
        return [j for j in found if not user or j.user == user]

    def job(self, job_id: str) -> JobInfo:
        """One job with per-node GPU detail (``scontrol -d show job``, the most detailed view)."""
        try:
            proc = self._run(["scontrol", "-d", "-o", "show", "job", str(job_id)])
        except SlurmCommandError as exc:
            if "Invalid job id" in exc.stderr:
                raise InputError(f"unknown job id {job_id}") from None
            raise
        with self._release_in_errors():
            jobs = [j for j in parse.jobs_from_scontrol(proc.stdout) if j.job_id == str(job_id)]
        if not jobs:
            raise InputError(f"unknown job id {job_id}")
        return jobs[0]

    def partitions(self) -> dict[str, dict[str, str]]:
        text = self._run(["scontrol", "-o", "show", "partition"]).stdout
        with self._release_in_errors():
            return parse.partitions_from_scontrol(text)

    def submit(self, sbatch_args: Sequence[str], script: str | None,
               script_args: Sequence[str] = ()) -> SubmitResult:
        argv = ["sbatch", *sbatch_args]
        if script is not None:
            argv += [script, *script_args]
        proc = self._run(argv, timeout=self.submit_timeout)
        with self._release_in_errors():
            job_id, cluster = parse.parse_sbatch_output(proc.stdout + "\n" + proc.stderr)
        return SubmitResult(job_id=job_id, cluster=cluster)

    def test_only(self, sbatch_args: Sequence[str], script: str | None) -> TestOnlyResult:
        argv = ["sbatch", "--test-only", *sbatch_args]
        if script is not None:
            argv.append(script)
        proc = self._run(argv, timeout=self.submit_timeout)
        with self._release_in_errors():
            return parse.parse_test_only(proc.stderr + "\n" + proc.stdout, now=time.time())

    def cancel(self, job_id: str) -> None:
        self._run(["scancel", str(job_id)])

    # -- accounting (read-only helpers; `gpupool.pools` owns changes) ---------------------------
    def sacctmgr_show(self, entity: str, fields: Sequence[str], *where: str) -> list[dict[str, str]]:
        """``sacctmgr -nP show ENTITY format=...`` -> rows as dicts."""
        argv = ["sacctmgr", "--noheader", "--parsable2", "show", entity, *where,
                "format=" + ",".join(fields)]
        proc = self._run(argv)
        return [dict(zip(fields, line.split("|"), strict=False))
                for line in proc.stdout.splitlines() if line.strip()]

    def sshare(self) -> list[dict[str, str]]:
        """``sshare -alP`` -> rows keyed by sshare's own column names."""
        proc = self._run(["sshare", "--all", "--long", "--parsable2"])
        lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
        if not lines:
            return []
        header = [h.strip() for h in lines[0].split("|")]
        return [dict(zip(header, (v.strip() for v in ln.split("|")), strict=False)) for ln in lines[1:]]

    def cluster_name(self) -> str:
        proc = self._run(["scontrol", "show", "config"])
        for line in proc.stdout.splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "ClusterName":
                return value.strip()
        return ""


def make_client(timeout: float | None = None) -> SlurmClient:
    """The default client: pyslurm when importable and matching the running Slurm, else commands.

    `GPUPOOL_SLURM_BACKEND=commands|pyslurm` forces a backend; `GPUPOOL_SLURM_TIMEOUT`
    sets the per-call timeout in seconds.
    """
    if timeout is None:
        try:
            timeout = float(os.environ.get("GPUPOOL_SLURM_TIMEOUT", DEFAULT_TIMEOUT))
        except ValueError:
            timeout = DEFAULT_TIMEOUT
    choice = os.environ.get("GPUPOOL_SLURM_BACKEND", "auto").lower()
    commands = CommandsClient(timeout=timeout)
    if choice == "commands":
        return commands
    from gpupool.slurm.pyslurm_backend import pyslurm_unavailable_reason

    reason = pyslurm_unavailable_reason(commands)
    if reason is None:
        from gpupool.slurm.pyslurm_backend import PyslurmClient

        return PyslurmClient(timeout=timeout, commands=commands)
    if choice == "pyslurm":
        raise EnvError(f"pyslurm backend requested but unusable: {reason}")
    return commands
