"""The testbed's pure configuration: settings, paths, ports, hostlists, sizing and the Slurm
config files it writes (unit-tested without daemons)."""

from __future__ import annotations

import dataclasses
import os
import pwd
import re
import shlex
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"
DEFAULT_PORT_BASE = 16800
DEFAULT_NODES = 64
DEFAULT_GPUS = 8
HOST_SLURM = "22.05"
# Slurm releases the testbed runs: the host's packages, a Debian chroot (24.11 trixie, 26.05 sid),
# or a host prefix built from the vendored source (25.11, testbed/prefix.py).
SLURM_RELEASES = (HOST_SLURM, "24.11", "25.11", "26.05")
# Releases where many slurmd sharing NodeHostname=localhost stop responding ("Duplicated
# NodeHostName", measured on 25.11.7): their nodes get only NodeAddr.
NO_SHARED_NODEHOSTNAME = frozenset({"25.11"})
# Releases whose slurmd forward slurmctld's pings and registration requests with the sender's munge
# credential, which the next slurmd on the same munged refuses as replayed (measured on 25.11.7
# with 64 nodes: nodes "not responding", jobs left pending): slurmctld contacts every node itself.
NO_FANOUT = frozenset({"25.11"})
# The Debian suite of each chroot release (testbed/chroot.py builds them with debootstrap).
CHROOT_SUITES = {"24.11": "trixie", "26.05": "sid"}
# Where a chroot release's slurmd sees the host's root: the Prolog, Epilog and TaskProlog given to
# `up` are host programs (gpupool's venv, the fake NVML) and run there, in the host's userland.
HOST_VIEW = Path("/run/gpupool-host")
# Slurm and MariaDB clients a chroot release reaches through wrappers in <state>/bin.
CLIENT_COMMANDS = ("sbatch", "squeue", "scontrol", "sacctmgr", "sshare", "sinfo", "srun", "scancel",
                   "sacct", "sprio", "sreport", "salloc", "sstat", "sdiag", "mariadb")
CLUSTER_NAME = "gpupool"
PARTITION = "gpu"
# With --topology-yaml (Slurm 25.05+): a partition on the same nodes under topology.yaml's block topology.
BLOCK_PARTITION = "blk"
POOLS_FRAGMENT = "gpupool-partitions.conf"
MARK_VAR = "GPUPOOL_TESTBED_MARK"
# Set by a chroot release's client wrappers: a client (scontrol, ...) in its own mount namespace is
# never a leftover of any testbed's daemons, even where that namespace's number was reused.
CLIENT_VAR = "GPUPOOL_TESTBED_CLIENT"
DEBIAN_PACKAGES = ("slurmctld", "slurmd", "slurmdbd", "slurm-client", "munge", "mariadb-server",
                   "ibsim-utils", "opensm", "infiniband-diags")
UMAD2SIM = "/usr/lib/x86_64-linux-gnu/umad2sim/libumad2sim.so"
# Offsets from --port-base; slurmds take base+SLURMD_OFFSET .. base+SLURMD_OFFSET+N-1.
CTLD_OFFSET, DBD_OFFSET, MYSQL_OFFSET, SLURMD_OFFSET = 0, 1, 2, 100

# Every daemon runs as whoever runs the testbed (root in CI and containers).
RUN_AS = pwd.getpwuid(os.geteuid()).pw_name


@dataclasses.dataclass(frozen=True)
class Settings:
    """What `up` was asked for, resolved to concrete values."""

    state_dir: Path
    port_base: int = DEFAULT_PORT_BASE
    node_count: int = DEFAULT_NODES
    gpus_per_node: int = DEFAULT_GPUS
    topology: str = "fat-tree"
    fabric_source: str | None = None
    prolog: str | None = None
    epilog: str | None = None
    task_prolog: str | None = None
    job_submit_lua: str | None = None
    # Slurm release: the host's (22.05) or one from a cached Debian chroot (testbed/chroot.py).
    slurm: str = HOST_SLURM
    # Write gpupool's topology.yaml (tree as cluster default, blocks beside it) and a block partition.
    topology_yaml: bool = False
    # TopologyPlugin=topology/block with gpupool's slurm-block topology.conf (Slurm 23.11+).
    topology_block: bool = False

    @property
    def ctld_port(self) -> int:
        return self.port_base + CTLD_OFFSET

    @property
    def dbd_port(self) -> int:
        return self.port_base + DBD_OFFSET

    @property
    def mysql_port(self) -> int:
        return self.port_base + MYSQL_OFFSET

    @property
    def ibsim_sockname(self) -> str:
        # ibsim and umad2sim meet on abstract unix sockets "<name>:ctl", so the name must be unique.
        return f"gpupool-testbed-{self.port_base}"

    def to_json(self) -> dict[str, object]:
        data = dataclasses.asdict(self)
        data["state_dir"] = str(self.state_dir)
        return data

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Settings:
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in fields}
        values["state_dir"] = Path(str(values["state_dir"]))
        return cls(**values)  # type: ignore[arg-type]


@dataclasses.dataclass(frozen=True)
class Layout:
    """Every path the testbed uses, all under the state directory."""

    root: Path

    @property
    def etc(self) -> Path:
        return self.root / "etc"

    @property
    def slurm_conf(self) -> Path:
        return self.etc / "slurm.conf"

    @property
    def gres_conf(self) -> Path:
        return self.etc / "gres.conf"

    @property
    def topology_conf(self) -> Path:
        return self.etc / "topology.conf"

    @property
    def topology_yaml(self) -> Path:
        return self.etc / "topology.yaml"

    @property
    def slurmdbd_conf(self) -> Path:
        return self.etc / "slurmdbd.conf"

    @property
    def cgroup_conf(self) -> Path:
        return self.etc / "cgroup.conf"

    @property
    def bin(self) -> Path:
        # Wrappers that run a chroot release's client commands (absent for the host's release).
        return self.root / "bin"

    @property
    def job_submit_lua(self) -> Path:
        return self.etc / "job_submit.lua"

    @property
    def fabric(self) -> Path:
        return self.root / "fabric.json"

    @property
    def ibsim_net(self) -> Path:
        return self.root / "ibsim.net"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def log(self) -> Path:
        return self.root / "log"

    @property
    def spool(self) -> Path:
        return self.root / "spool"

    @property
    def ctld_state(self) -> Path:
        return self.spool / "ctld"

    @property
    def dev(self) -> Path:
        return self.root / "dev"

    @property
    def munge_dir(self) -> Path:
        return self.root / "munge"

    @property
    def munge_socket(self) -> Path:
        return self.munge_dir / "munged.sock"

    @property
    def munge_key(self) -> Path:
        return self.munge_dir / "munge.key"

    @property
    def mysql_dir(self) -> Path:
        return self.root / "mysql"

    @property
    def mysql_data(self) -> Path:
        return self.mysql_dir / "data"

    @property
    def mysql_tmp(self) -> Path:
        return self.mysql_dir / "tmp"

    @property
    def mysql_socket(self) -> Path:
        return self.mysql_dir / "mysqld.sock"

    @property
    def db_secret(self) -> Path:
        return self.mysql_dir / "slurm.secret"

    @property
    def ibsim_dir(self) -> Path:
        return self.root / "ibsim"

    @property
    def ibsim_fifo(self) -> Path:
        return self.ibsim_dir / "console.fifo"

    @property
    def ibsim_work(self) -> Path:
        # umad2sim clients create ./sys-<pid> in their working directory.
        return self.ibsim_dir / "work"

    @property
    def opensm_dir(self) -> Path:
        return self.root / "opensm"

    @property
    def settings_file(self) -> Path:
        return self.root / "testbed.json"

    def pid_file(self, daemon: str) -> Path:
        return self.run / f"{daemon}.pid"

    def log_file(self, daemon: str) -> Path:
        return self.log / f"{daemon}.log"

    def gpu_devices(self, count: int) -> list[Path]:
        return [self.dev / f"gpu{i}" for i in range(count)]


def slurmd_port(settings: Settings, index: int) -> int:
    return settings.port_base + SLURMD_OFFSET + index


def all_ports(settings: Settings) -> dict[str, int]:
    """Every TCP port the testbed listens on, by owner."""
    ports = {"slurmctld": settings.ctld_port, "slurmdbd": settings.dbd_port,
             "mariadb": settings.mysql_port}
    for i in range(settings.node_count):
        ports[f"slurmd #{i + 1}"] = slurmd_port(settings, i)
    return ports


_NAME_NUM = re.compile(r"^(.*?)(\d+)$")


def node_runs(names: Sequence[str]) -> list[list[str]]:
    """Split names (in order) into runs that one Slurm hostlist range can express (gpu001-gpu064)."""
    runs: list[list[str]] = []
    prev: tuple[str, int, int] | None = None
    for name in names:
        match = _NAME_NUM.match(name)
        key = (match.group(1), int(match.group(2)), len(match.group(2))) if match else None
        if runs and prev and key and key[0] == prev[0] and key[2] == prev[2] and key[1] == prev[1] + 1:
            runs[-1].append(name)
        else:
            runs.append([name])
        prev = key
    return runs


def hostlist_of_run(run: Sequence[str]) -> str:
    """Slurm hostlist expression of one run from node_runs()."""
    if len(run) == 1:
        return run[0]
    first, last = _NAME_NUM.match(run[0]), _NAME_NUM.match(run[-1])
    assert first and last
    return f"{first.group(1)}[{first.group(2)}-{last.group(2)}]"


def expand_hostlist(expr: str) -> list[str]:
    """Expand a Slurm hostlist such as "gpu[001-003,007],login1" (nested ranges too)."""
    names: list[str] = []
    for item in _split_top_level(expr):
        names.extend(_expand_one(item))
    return names


def _split_top_level(expr: str) -> list[str]:
    items, depth, current = [], 0, ""
    for ch in expr.strip():
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        if ch == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += ch
    if current:
        items.append(current)
    return [i.strip() for i in items if i.strip()]


def _expand_one(item: str) -> list[str]:
    open_at = item.find("[")
    if open_at < 0:
        return [item]
    close_at = item.index("]", open_at)
    head, body, tail = item[:open_at], item[open_at + 1:close_at], item[close_at + 1:]
    out: list[str] = []
    for part in body.split(","):
        if "-" in part:
            lo, hi = part.split("-", 1)
            width = len(lo)
            numbers = [str(n).zfill(width) for n in range(int(lo), int(hi) + 1)]
        else:
            numbers = [part]
        for number in numbers:
            out.extend(head + number + rest for rest in _expand_one(tail))
    return out


def hosts_from_topology_conf(text: str) -> list[str]:
    """Host names in a Slurm topology.conf (Nodes= of every switch), in first-seen order."""
    seen: dict[str, None] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0]
        for token in line.split():
            key, _, value = token.partition("=")
            if key.lower() == "nodes" and value:
                for name in expand_hostlist(value):
                    seen.setdefault(name, None)
    return list(seen)


def fat_tree_args(node_count: int) -> list[str]:
    """`gpupool fabric generate fat-tree` options: 2 levels of 8-host leaves up to 64 hosts, then
    pods of 4 leaves x 8 hosts under 4 cores (3 levels) when the count allows."""
    if node_count > 64 and node_count % 32 == 0:
        return ["fat-tree", "--leaves", "4", "--hosts-per-leaf", "8", "--spines", "4",
                "--pods", str(node_count // 32), "--cores", "4"]
    hosts_per_leaf = next(d for d in range(8, 0, -1) if node_count % d == 0)
    leaves = node_count // hosts_per_leaf
    spines = max(1, min(leaves // 2, 8))
    return ["fat-tree", "--leaves", str(leaves), "--hosts-per-leaf", str(hosts_per_leaf),
            "--spines", str(spines)]


def dragonfly_args(node_count: int) -> list[str]:
    """`gpupool fabric generate dragonfly` options: 4 hosts x 4 routers per group when it divides."""
    for per_router, routers in ((4, 4), (2, 2), (1, 1)):
        if node_count % (per_router * routers) == 0:
            break
    groups = node_count // (per_router * routers)
    # Every group needs a global link to every other group: routers * links >= groups - 1.
    links = max(1, -(-(groups - 1) // routers))
    return ["dragonfly", "--groups", str(groups), "--routers-per-group", str(routers),
            "--hosts-per-router", str(per_router), "--global-links-per-router", str(links)]


_NET_NODE = re.compile(r"^(Switch|Ca|Hca|Rt)\s+(\d+)\s+\"", re.M)


def ibsim_limits(net_text: str) -> list[str]:
    """ibsim -N/-S/-P options big enough for this net file (defaults: 2048 nodes, 256 switches,
    13312 ports); a switch also has port 0."""
    nodes = switches = ports = 0
    for kind, count in _NET_NODE.findall(net_text):
        nodes += 1
        ports += int(count) + (kind == "Switch")
        switches += kind == "Switch"
    return ["-N", str(max(2048, nodes + 64)), "-S", str(max(256, switches + 16)),
            "-P", str(max(13312, ports + 1024))]


def render_slurm_conf(settings: Settings, nodes: Sequence[str]) -> str:
    lay = Layout(settings.state_dir)
    cpus = max(16, 2 * settings.gpus_per_node)
    lines = [
        "# Generated by gpupool scripts/testbed: do not edit (rewritten by `up`).",
        f"ClusterName={CLUSTER_NAME}",
        "SlurmctldHost=localhost(127.0.0.1)",
        f"SlurmctldPort={settings.ctld_port}",
        # Every node has its own Port= below; this one is never used.
        f"SlurmdPort={settings.port_base + SLURMD_OFFSET - 1}",
        f"SlurmUser={RUN_AS}",
        f"SlurmdUser={RUN_AS}",
        "AuthType=auth/munge",
        "CredType=cred/munge",
        f"AuthInfo=socket={lay.munge_socket}",
        f"StateSaveLocation={lay.ctld_state}",
        f"SlurmdSpoolDir={lay.spool}/slurmd/%n",
        f"SlurmctldPidFile={lay.run}/slurmctld.daemon.pid",
        f"SlurmdPidFile={lay.run}/slurmd-%n.daemon.pid",
        f"SlurmctldLogFile={lay.log}/slurmctld.log",
        f"SlurmdLogFile={lay.log}/slurmd-%n.log",
        "SlurmctldDebug=info",
        "SlurmdDebug=info",
        # No cgroups in a container: processes are tracked by parent pid.
        "ProctrackType=proctrack/linuxproc",
        "TaskPlugin=task/none",
        "JobAcctGatherType=jobacct_gather/none",
        "SwitchType=switch/none",
        "MpiDefault=none",
        "LaunchType=launch/slurm",
        "MailProg=/bin/true",
        "ReturnToService=2",
        "SlurmdParameters=config_overrides",
        "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core_Memory",
        "DefMemPerCPU=2000",
        "GresTypes=gpu",
        "TopologyPlugin=topology/block" if settings.topology_block else "TopologyPlugin=topology/tree",
        "AccountingStorageType=accounting_storage/slurmdbd",
        "AccountingStorageHost=127.0.0.1",
        f"AccountingStoragePort={settings.dbd_port}",
        # For the slurmdbd connection Slurm takes the munge socket from here, not from AuthInfo.
        f"AccountingStoragePass={lay.munge_socket}",
        "AccountingStorageTRES=gres/gpu",
        "AccountingStorageEnforce=associations,limits,qos",
        "JobCompType=jobcomp/none",
        "PriorityType=priority/multifactor",
        "PriorityWeightFairshare=100000",
        "PriorityWeightAge=1000",
        "PriorityWeightPartition=1000",
        "PriorityWeightQOS=10000",
        "PriorityWeightJobSize=0",
        "PriorityDecayHalfLife=1-0",
        "PriorityCalcPeriod=1",
        # Borrowing between GPU pools: owners' partitions preempt the scavenger partition (docs/pools.md).
        "PreemptType=preempt/partition_prio",
        "PreemptMode=REQUEUE",
        "SchedulerType=sched/backfill",
        # Fast scheduling so tests do not wait for the default 30-60 s cycles; max_switch_wait as gpupool
        # recommends (docs/simulate.md): a --switches=N@T wait of a share of a job's limit is not cut to 300 s.
        "SchedulerParameters=bf_interval=1,bf_resolution=1,sched_interval=2,sched_min_interval=100000,"
        "max_switch_wait=604800",
        "MinJobAge=10",
        "KillWait=2",
        "InactiveLimit=0",
        "Waittime=0",
        "SlurmctldTimeout=30",
        "SlurmdTimeout=300",
        "MessageTimeout=30",
    ]
    if settings.slurm in NO_FANOUT:
        lines.append("TreeWidth=65533")
    for key, program in job_scripts(settings).items():
        lines.append(f"{key}={host_script_shim(settings, key) if settings.slurm in CHROOT_SUITES else program}")
    if settings.job_submit_lua:
        lines.append("JobSubmitPlugins=lua")
    lines.append("")
    index = 0
    for run in node_runs(nodes):
        first, last = slurmd_port(settings, index), slurmd_port(settings, index + len(run) - 1)
        ports = str(first) if len(run) == 1 else f"{first}-{last}"
        hostname = "" if settings.slurm in NO_SHARED_NODEHOSTNAME else " NodeHostname=localhost"
        lines.append(
            f"NodeName={hostlist_of_run(run)} NodeAddr=127.0.0.1{hostname} Port={ports} "
            f"CPUs={cpus} RealMemory=64000 Gres=gpu:{settings.gpus_per_node} State=UNKNOWN")
        index += len(run)
    lines.append(f"PartitionName={PARTITION} Nodes=ALL Default=YES MaxTime=INFINITE State=UP")
    if settings.topology_yaml:
        lines.append(f"PartitionName={BLOCK_PARTITION} Nodes=ALL MaxTime=INFINITE State=UP Topology=block")
    # Partitions made by `gpupool pool apply` survive restarts through this fragment.
    lines.append(f"include {lay.slurm_conf.parent / POOLS_FRAGMENT}")
    return "\n".join(lines) + "\n"


def job_scripts(settings: Settings) -> dict[str, str]:
    """slurm.conf key -> the host program `up` was given for it."""
    scripts = {"Prolog": settings.prolog, "Epilog": settings.epilog, "TaskProlog": settings.task_prolog}
    return {key: program for key, program in scripts.items() if program}


def host_script_shim(settings: Settings, key: str) -> Path:
    """Where a chroot release's slurm.conf points `key` (Prolog, ...): a shim that runs the host program."""
    return Layout(settings.state_dir).etc / f"{key.lower()}-in-host"


def render_host_script_shim(settings: Settings, key: str, program: str) -> str:
    """A shim slurmd (inside the chroot) runs for `key`: it goes back to the host's userland through
    HOST_VIEW and runs `program` there, in the job's working directory, with the testbed's PATH
    (client wrappers first, so `scontrol` in a Prolog talks to this release)."""
    path = env_exports(settings, "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")["PATH"]
    inner = 'cd "$1" 2>/dev/null || cd /; shift; exec "$@"'
    return (f"#!/bin/sh\n# Generated by gpupool scripts/testbed: the Slurm {settings.slurm} chroot's {key} "
            f"runs the host program {program}.\n"
            f"exec /usr/sbin/chroot {HOST_VIEW} /bin/sh -c {shlex.quote(inner)} sh \"$(pwd)\" "
            f"/usr/bin/env PATH={shlex.quote(path)} {shlex.quote(program)} \"$@\"\n")


def slurm_at_least(settings: Settings, release: str) -> bool:
    def key(text: str) -> tuple[int, ...]:
        return tuple(int(part) for part in text.split("."))
    return key(settings.slurm) >= key(release)


def render_cgroup_conf(settings: Settings) -> str | None:
    """From 23.11 slurmd initialises a cgroup plugin even under proctrack/linuxproc, which fails in a
    container; `disabled` turns it off (22.05 does not know the value, so it gets no file)."""
    if not slurm_at_least(settings, "23.11"):
        return None
    return "# Generated by gpupool scripts/testbed: no cgroups in a container.\nCgroupPlugin=disabled\n"


def render_gres_conf(settings: Settings, nodes: Sequence[str]) -> str:
    lay = Layout(settings.state_dir)
    last = settings.gpus_per_node - 1
    files = f"{lay.dev}/gpu0" if last == 0 else f"{lay.dev}/gpu[0-{last}]"
    lines = ["# Generated by gpupool scripts/testbed: fake GPUs are /dev/null-like char devices.",
             "AutoDetect=off"]
    lines += [f"NodeName={hostlist_of_run(run)} Name=gpu File={files}" for run in node_runs(nodes)]
    return "\n".join(lines) + "\n"


def render_slurmdbd_conf(settings: Settings, db_password: str) -> str:
    lay = Layout(settings.state_dir)
    return "\n".join([
        "# Generated by gpupool scripts/testbed (mode 600: holds the database password).",
        "AuthType=auth/munge",
        f"AuthInfo=socket={lay.munge_socket}",
        "DbdHost=localhost",
        "DbdAddr=127.0.0.1",
        f"DbdPort={settings.dbd_port}",
        f"SlurmUser={RUN_AS}",
        "DebugLevel=info",
        f"LogFile={lay.log}/slurmdbd.log",
        f"PidFile={lay.run}/slurmdbd.daemon.pid",
        "StorageType=accounting_storage/mysql",
        "StorageHost=127.0.0.1",
        f"StoragePort={settings.mysql_port}",
        "StorageUser=slurm",
        f"StoragePass={db_password}",
        "StorageLoc=slurm_acct_db",
        "",
    ])


def env_exports(settings: Settings, path: str) -> dict[str, str]:
    """Environment that points Slurm clients, gpupool and ibsim-run at this testbed."""
    lay = Layout(settings.state_dir)
    first = [str(VENV_BIN)] if settings.slurm == HOST_SLURM else [str(lay.bin), str(VENV_BIN)]
    parts = first + [p for p in path.split(os.pathsep) if p and p not in first]
    for extra in ("/usr/sbin", "/usr/bin"):  # Slurm daemons and ibsim tools live here
        if extra not in parts:
            parts.append(extra)
    return {
        "GPUPOOL_TESTBED_DIR": str(settings.state_dir),
        "GPUPOOL_TESTBED_PORT_BASE": str(settings.port_base),
        "GPUPOOL_TESTBED_SLURM": settings.slurm,
        "SLURM_CONF": str(lay.slurm_conf),
        "GPUPOOL_FABRIC": str(lay.fabric),
        "IBSIM_SOCKNAME": settings.ibsim_sockname,
        # Batch output goes to the state dir, not to whatever directory sbatch ran in.
        "SBATCH_OUTPUT": str(lay.root / "jobs" / "slurm-%j.out"),
        # gpupool runs ibnetdiscover/ibstat through this, i.e. against our ibsim.
        "GPUPOOL_IBDIAG_WRAPPER": "ibsim-run",
        "PATH": os.pathsep.join(parts),
    }
