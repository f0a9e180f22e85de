"""The commands backend of the Slurm port: scontrol, sinfo, squeue, sbatch, scancel, sacctmgr, sshare.

Every call has a bounded timeout (`timeout` seconds, default 10); failures raise `Unreachable`
(exit 3: Slurm missing/unreachable/slow) or `SlurmCommandError` (exit 4: Slurm refused the
request), see `gpupool.slurm.invoke`, the process runner this backend is built on.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import time
from collections.abc import Iterator, Sequence
from typing import Any

from gpupool.errors import BadInput, GpupoolError, Unreachable
from gpupool.slurm import parse
from gpupool.slurm.invoke import DEFAULT_TIMEOUT, SlurmCommandError, run
from gpupool.slurm.models import JobInfo, NodeState, PreemptionConfig, SubmitResult, TestOnlyResult
from gpupool.slurm.port import Backend, register


class CommandsClient:
    """The Slurm commands (scontrol, sinfo, squeue, sbatch, scancel, sacctmgr, sshare)."""

    name = "commands"

    def __init__(self, timeout: float = DEFAULT_TIMEOUT, submit_timeout: float | None = None,
                 env: dict[str, str] | None = None) -> None:
        self.timeout = timeout
        self.submit_timeout = submit_timeout or max(timeout, 30.0)
        self.env = env
        self._version: tuple[int, int, int] | None = None
        self._asking_version = False

    # -- plumbing -------------------------------------------------------------------------
    def _run(self, argv: list[str], *, timeout: float | None = None, check: bool = True,
             input: str | None = None) -> subprocess.CompletedProcess[str]:  # noqa: A002
        with self._release_in_errors():
            return run(argv, timeout=timeout or self.timeout, env=self.env, check=check, input=input)

    def _json(self, argv: list[str]) -> dict[str, Any]:
        proc = self._run(argv)
        with self._release_in_errors():
            try:
                doc = json.loads(proc.stdout)
            except json.JSONDecodeError as exc:
                raise BadInput(f"{' '.join(argv)}: output is not JSON ({exc.msg})") from None
            if not isinstance(doc, dict):
                raise BadInput(f"{' '.join(argv)}: unexpected JSON document")
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
                release = self._known_release() if isinstance(exc, Unreachable) else self.release()
                exc.args = (f"{exc.message} [{release}]", *exc.args[1:])
            raise

    # -- interface ------------------------------------------------------------------------
    def version(self) -> tuple[int, int, int]:
        """Slurm version, asked once per client (``scontrol --version``)."""
        if self._version is None:
            proc = self._run(["scontrol", "--version"])
            self._version = parse.parse_version(proc.stdout)
        return self._version

    def node_states(self) -> list[NodeState]:
        """Every node (``scontrol -d -o show nodes``: one line per node on every release; -d adds
        GresUsed). Not the JSON forms (``scontrol show nodes --json`` from 23.02, ``sinfo --json``
        before): they carry the same fields but are 2.5x the bytes, and at 16,384 nodes decoding
        28 MB of JSON alone took about 3x a Python start (issue #26); the tests read the JSON and the
        text captured from the same cluster state and require equal node states."""
        text = self._run(["scontrol", "-d", "-o", "show", "nodes"]).stdout
        with self._release_in_errors():
            return parse.nodes_from_scontrol(text)

    def node_names(self) -> list[str]:
        """Every node Slurm knows (``sinfo -h -N -o %N``)."""
        proc = self._run(["sinfo", "-h", "-N", "-o", "%N"])
        return sorted({line.strip() for line in proc.stdout.splitlines() if line.strip()})

    def topology_text(self) -> str:
        """``scontrol show topology`` as Slurm prints it."""
        return self._run(["scontrol", "show", "topology"]).stdout

    def config(self) -> dict[str, str]:
        """``scontrol show config`` -> {key: value} (TopologyPlugin, SLURM_CONF, ...)."""
        return parse.config_from_scontrol(self._run(["scontrol", "show", "config"]).stdout)

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
        shown: list[JobInfo] = []
        each: Sequence[str | None] = job_ids or [None]
        for job_id in each:
            argv = ["scontrol", "-d", "-o", "show", "job"] + ([job_id] if job_id else [])
            try:
                text = self._run(argv).stdout
            except SlurmCommandError as exc:
                if "Invalid job id" not in exc.stderr:
                    raise
                continue
            with self._release_in_errors():
                shown += parse.jobs_from_scontrol(text)
        return [j for j in shown if not user or j.user == user]

    def job(self, job_id: str) -> JobInfo:
        """One job with per-node GPU detail (``scontrol -d show job``, the most detailed view)."""
        try:
            proc = self._run(["scontrol", "-d", "-o", "show", "job", str(job_id)])
        except SlurmCommandError as exc:
            # 25.11 answers an unknown array task (7_9) with "Job 7_9 not found".
            said = f"{exc.stderr}\n{exc.stdout}\n{exc}"
            if "Invalid job id" in said or f"Job {job_id} not found" in said:
                raise BadInput(f"unknown job id {job_id}") from None
            raise
        with self._release_in_errors():
            jobs = parse.scontrol_job_records(proc.stdout, str(job_id))
        if not jobs:
            raise BadInput(f"unknown job id {job_id}")
        return jobs[0]

    def partitions(self) -> dict[str, dict[str, str]]:
        text = self._run(["scontrol", "-o", "show", "partition"]).stdout
        with self._release_in_errors():
            return parse.partitions_from_scontrol(text)

    def preemption(self) -> PreemptionConfig:
        """slurm.conf's PreemptType/PreemptExemptTime and the QOS preemption table (sacctmgr);
        without reachable accounting the QOS part is empty and `qos_known` False."""
        config = self.config()
        try:
            rows: list[dict[str, str]] | None = self.sacctmgr_show("qos", parse.QOS_PREEMPT_FIELDS)
        except (Unreachable, SlurmCommandError):
            rows = None
        with self._release_in_errors():
            return parse.preemption_from(config, rows)

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

    # -- node side (Prolog): short timeouts, a missing answer is "unknown", never an exception ----
    def node_gres(self, node: str) -> str | None:
        """The node's configured Gres (``scontrol -o show node``), None when Slurm does not answer."""
        try:
            proc = self._run(["scontrol", "-o", "show", "node", node])
        except (Unreachable, SlurmCommandError):
            return None
        values: dict[str, str] = {}
        for key, value in re.findall(r"(\w+)=(\S*)", proc.stdout):
            values.setdefault(key, value)
        return values.get("Gres")

    def drain(self, node: str, reason: str) -> None:
        self._run(["scontrol", "update", f"nodename={node}", "state=drain", f"reason={reason}"])


register(Backend("commands", preference=0, create=lambda timeout: CommandsClient(timeout=timeout)))
