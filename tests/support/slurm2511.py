"""A small real Slurm 25.11 cluster on loopback for the backend comparison (no slurmdbd, no ibsim).

Built by scripts/build-slurm-25.11 (Slurm 25.11.7 and pyslurm 25.11.2 in a cache outside the clone);
`prefixes()` asks the script where, without building. One munged, one slurmctld and one `slurmd -N`
per node, all as the current user, under a temporary state directory; `stop()` ends exactly the
processes `start()` spawned. Nodes mix the GPU shapes the backends must agree on:
n[1-4] gpu:h100:4 (typed), n[5-6] gpu:4 (untyped), n[7-8] gpu:a100:2 + gpu:h100:2 (two types).
No slurmdbd, so GPUs are not an accounted TRES (slurmctld refuses AccountingStorageTRES=gres/gpu
without one): the common case, where the node's allocated TRES carries no GPUs at all.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import stat
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "scripts" / "build-slurm-25.11"
NODES = [f"n{i}" for i in range(1, 9)]
GPU_SHAPES = {  # node -> {type: count} as configured ("" is untyped)
    **{f"n{i}": {"h100": 4} for i in range(1, 5)},
    **{f"n{i}": {"": 4} for i in range(5, 7)},
    **{f"n{i}": {"a100": 2, "h100": 2} for i in range(7, 9)},
}


def prefixes() -> tuple[Path, Path]:
    """(Slurm prefix, pyslurm target dir) that scripts/build-slurm-25.11 builds into."""
    out = subprocess.run([str(BUILD_SCRIPT), "--print"], capture_output=True, text=True, check=True, timeout=60)
    prefix, pydir = out.stdout.split()
    return Path(prefix), Path(pydir)


def built() -> str | None:
    """None when both builds are complete, else what is missing."""
    prefix, pydir = prefixes()
    missing = [str(p) for p in (prefix, pydir) if not (p / ".complete").exists()]
    return None if not missing else "not built: " + ", ".join(missing) + " (run scripts/build-slurm-25.11)"


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Cluster:
    root: Path
    port_base: int
    prefix: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def conf(self) -> Path:
        return self.root / "etc" / "slurm.conf"

    @property
    def munge_socket(self) -> Path:
        return self.root / "munge" / "munged.sock"

    @property
    def ctld_port(self) -> int:
        return self.port_base

    def env(self) -> dict[str, str]:
        """What clients need: the 25.11 commands first on PATH and this cluster's configuration."""
        path = os.pathsep.join([str(self.prefix / "bin"), os.environ.get("PATH", "")])
        return {"PATH": path, "SLURM_CONF": str(self.conf)}

    def _write_config(self) -> None:
        user = pwd.getpwuid(os.geteuid()).pw_name
        etc, dev = self.root / "etc", self.root / "dev"
        for sub in ("etc", "dev", "state", "spool", "log", "run", "munge", "jobs"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        for i in range(4):
            path = dev / f"gpu{i}"
            if not path.exists():
                os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # /dev/null-like fake GPU
        epilog = etc / "epilog.sh"
        # A job whose id has a marker file stays COMPLETING for a while after it ends.
        epilog.write_text(f"#!/bin/sh\n[ -e {self.root}/jobs/slow-$SLURM_JOB_ID ] && sleep 45\nexit 0\n")
        epilog.chmod(0o755)
        lines = [
            "ClusterName=gp2511", "SlurmctldHost=localhost(127.0.0.1)", f"SlurmctldPort={self.ctld_port}",
            f"SlurmUser={user}", f"SlurmdUser={user}", "AuthType=auth/munge", "CredType=cred/munge",
            f"AuthInfo=socket={self.munge_socket}", f"StateSaveLocation={self.root}/state",
            f"SlurmdSpoolDir={self.root}/spool/%n", f"SlurmctldPidFile={self.root}/run/slurmctld.pid",
            f"SlurmdPidFile={self.root}/run/slurmd-%n.pid", f"SlurmctldLogFile={self.root}/log/slurmctld.log",
            f"SlurmdLogFile={self.root}/log/slurmd-%n.log", "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none", "JobAcctGatherType=jobacct_gather/none", "MpiDefault=none",
            "MailProg=/bin/true", "ReturnToService=2", "SlurmdParameters=config_overrides",
            "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core_Memory", "DefMemPerCPU=500",
            "GresTypes=gpu", "TopologyPlugin=topology/tree",
            "SchedulerType=sched/backfill",
            "SchedulerParameters=bf_interval=1,sched_interval=1,sched_min_interval=100000",
            "MinJobAge=300", "KillWait=2", "InactiveLimit=0", "Waittime=0", "SlurmdTimeout=300",
            "MessageTimeout=10", f"Epilog={epilog}", "",
        ]
        for index, name in enumerate(NODES):
            gres = ",".join(f"gpu:{t}:{c}" if t else f"gpu:{c}" for t, c in GPU_SHAPES[name].items())
            # No NodeHostname: on 25.11 a shared NodeHostname=localhost makes the nodes stop responding.
            lines.append(f"NodeName={name} NodeAddr=127.0.0.1 Port={self.port_base + 10 + index} "
                         f"CPUs=8 RealMemory=8000 Gres={gres} State=UNKNOWN")
        lines.append("PartitionName=gpu Nodes=ALL Default=YES MaxTime=INFINITE State=UP")
        self.conf.write_text("\n".join(lines) + "\n")
        gres_lines = ["AutoDetect=off"]
        for name in NODES:
            first = 0
            for gpu_type, count in GPU_SHAPES[name].items():
                files = f"{dev}/gpu[{first}-{first + count - 1}]"
                type_part = f" Type={gpu_type}" if gpu_type else ""
                gres_lines.append(f"NodeName={name} Name=gpu{type_part} File={files}")
                first += count
        (etc / "gres.conf").write_text("\n".join(gres_lines) + "\n")
        (etc / "topology.conf").write_text(
            "SwitchName=leaf1 Nodes=n[1-4]\nSwitchName=leaf2 Nodes=n[5-8]\nSwitchName=spine Switches=leaf[1-2]\n")

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.root / "log" / f"{name}.out", "wb")  # noqa: SIM115 - the daemon owns it
        env = {**os.environ, **self.env()}
        self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env,
                                            stdin=subprocess.DEVNULL, start_new_session=True)

    def _wait(self, what: str, check: object, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():  # type: ignore[operator]
                return
            dead = [n for n, p in self.procs.items() if p.poll() is not None]
            if dead:
                raise RuntimeError(f"{', '.join(dead)} exited while waiting for {what}: {self.logs()}")
            time.sleep(0.3)
        raise RuntimeError(f"timed out waiting for {what}: {self.logs()}")

    def logs(self) -> str:
        out = []
        for path in sorted((self.root / "log").glob("*")):
            text = path.read_text(errors="replace").strip().splitlines()[-5:]
            if text:
                out.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(out)

    def start(self) -> None:
        self._write_config()
        self.root.chmod(0o755)  # munged wants every directory above its socket searchable
        munge_key = self.root / "munge" / "munge.key"
        munge_key.write_bytes(os.urandom(1024))
        munge_key.chmod(0o600)
        munged = shutil.which("munged", path="/usr/sbin:/usr/bin:/sbin") or "munged"
        self._spawn("munged", [munged, "--foreground", f"--socket={self.munge_socket}", f"--key-file={munge_key}",
                               f"--pid-file={self.root}/munge/munged.pid", f"--log-file={self.root}/log/munged.log",
                               f"--seed-file={self.root}/munge/munged.seed", "--force"])
        self._wait("munged", self.munge_socket.exists, 20)
        self._spawn("slurmctld", [str(self.prefix / "sbin" / "slurmctld"), "-D", "-i", "-c"])
        self._wait("slurmctld", lambda: _listening(self.ctld_port), 90)
        for name in NODES:
            (self.root / "spool" / name).mkdir(parents=True, exist_ok=True)
            self._spawn(f"slurmd-{name}", [str(self.prefix / "sbin" / "slurmd"), "-D", "-N", name])
        self._wait("all nodes idle", self._all_idle, 180)

    def _all_idle(self) -> bool:
        proc = subprocess.run(["sinfo", "-h", "-N", "-o", "%N %t"], capture_output=True, text=True,
                              env={**os.environ, **self.env()}, timeout=30)
        states = dict(line.split() for line in proc.stdout.splitlines() if line.strip())
        return proc.returncode == 0 and len(states) == len(NODES) and set(states.values()) == {"idle"}

    def stop(self) -> None:
        """Cancel every job, then SIGTERM/SIGKILL slurmds, slurmctld, munged: only what start() spawned."""
        env = {**os.environ, **self.env()}
        if self.procs.get("slurmctld") is not None and self.procs["slurmctld"].poll() is None:
            subprocess.run(["scancel", "--full", "--user", pwd.getpwuid(os.geteuid()).pw_name],
                           capture_output=True, env=env, timeout=30, check=False)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                out = subprocess.run(["squeue", "-h", "-t", "R,CG,S", "-o", "%i"], capture_output=True,
                                     text=True, env=env, timeout=30, check=False).stdout
                if not out.strip():
                    break
                time.sleep(1)
        order = sorted(self.procs, key=lambda n: (n == "munged", n == "slurmctld"))
        for name in order:
            proc = self.procs[name]
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
        self.procs.clear()
