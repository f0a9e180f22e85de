"""Processes: pid files, spawning and stopping daemons, and starting munge, MariaDB, slurmdbd,
slurmctld and the slurmds of one testbed."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from testbed import prefix as source_prefix
from testbed.chroot import (
    build,
    chroot_for,
    host_binds,
    inside_argv,
    is_built,
    prepare,
    write_wrappers,
)
from testbed.config import (
    CHROOT_SUITES,
    CLIENT_COMMANDS,
    CLIENT_VAR,
    CLUSTER_NAME,
    DEBIAN_PACKAGES,
    HOST_SLURM,
    MARK_VAR,
    PARTITION,
    POOLS_FRAGMENT,
    RUN_AS,
    VENV_BIN,
    Layout,
    Settings,
    all_ports,
    dragonfly_args,
    env_exports,
    fat_tree_args,
    host_script_shim,
    hosts_from_topology_conf,
    job_scripts,
    render_cgroup_conf,
    render_gres_conf,
    render_host_script_shim,
    render_slurm_conf,
    render_slurmdbd_conf,
)
from testbed.errors import EXIT_DOWN, EXIT_ENV, EXIT_USAGE, TestbedError


def proc_start_time(pid: int) -> str | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22 (starttime), counted after the ")" that closes the command name.
    fields = text[text.rindex(")") + 2:].split()
    if fields[0] == "Z":
        return None
    return fields[19]


def write_pid(lay: Layout, daemon: str, pid: int) -> None:
    start = proc_start_time(pid) or "0"
    atomic_write(lay.pid_file(daemon), f"{pid} {start}\n")


def read_pid(lay: Layout, daemon: str) -> int | None:
    """The pid recorded for daemon if that very process is still alive (start time matches)."""
    try:
        pid_text, start = lay.pid_file(daemon).read_text().split()
    except (OSError, ValueError):
        return None
    pid = int(pid_text)
    return pid if proc_start_time(pid) == start else None


def atomic_write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def daemon_env(settings: Settings, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "SLURM_JOB_ID")}
    env.update(env_exports(settings, env.get("PATH", "")))
    env[MARK_VAR] = str(settings.state_dir)
    env.update(extra or {})
    return env


def spawn(settings: Settings, daemon: str, argv: Sequence[str], *, stdin: int | None = None,
          extra_env: dict[str, str] | None = None, cwd: Path | None = None,
          host_view: bool = False) -> subprocess.Popen[bytes]:
    """Start argv in its own session with stdout/stderr appended to log/<daemon>.out."""
    lay = Layout(settings.state_dir)
    out_path = lay.log / f"{daemon}.out"
    with open(out_path, "ab") as out:
        proc = subprocess.Popen(
            release_argv(settings, argv, host_view), stdin=stdin if stdin is not None else subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, env=daemon_env(settings, extra_env), cwd=cwd or lay.root,
            start_new_session=True, close_fds=True)
    write_pid(lay, daemon, proc.pid)
    return proc


def release_argv(settings: Settings, argv: Sequence[str], host_view: bool = False) -> list[str]:
    """argv of a Slurm-side program (daemon, mariadb-install-db) for the testbed's Slurm release:
    as is for the host's, the prefix's Slurm daemon for a source-built release (testbed/prefix.py),
    else inside that release's chroot (same pid: everything execs; host_view for a slurmd, whose
    job scripts run in the host's userland)."""
    if settings.slurm == HOST_SLURM:
        return list(argv)
    if source_prefix.is_prefix_release(settings.slurm):
        return source_prefix.daemon_argv(source_prefix.prefix_of(settings.slurm), argv)
    chroot = chroot_for(settings.slurm)
    return inside_argv(chroot.root, argv, host_binds(settings.state_dir), host_view)


def ensure_release(settings: Settings) -> None:
    """The host's packages, plus the release's chroot and its wrappers, or its source-built prefix
    and links to its clients (built now if not cached)."""
    ensure_packages()
    if settings.slurm == HOST_SLURM:
        return
    lay = Layout(settings.state_dir)
    if source_prefix.is_prefix_release(settings.slurm):
        source_prefix.link_clients(source_prefix.build(settings.slurm), lay.bin, CLIENT_COMMANDS)
        return
    chroot = chroot_for(settings.slurm)
    if not is_built(chroot):
        ensure_packages(("debootstrap",))
        build(chroot)
    prepare(chroot)
    write_wrappers(chroot, lay.bin, settings.state_dir, CLIENT_COMMANDS)


def tail(path: Path, lines: int = 15) -> str:
    try:
        data = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no log at {path})"
    return "\n".join(data[-lines:]) if data else f"(empty log {path})"


BIND_RACE = re.compile(r"Address already in use")  # EADDRINUSE as MariaDB, Slurm and ibsim print it


def daemon_failed(daemon: str, why: str, *logs: Path) -> TestbedError:
    """The error for a daemon that died or hung: its last fatal/error line, then its log tails."""
    for log in logs[:1]:
        try:
            lines = log.read_text(errors="replace").splitlines()[-15:]
        except OSError:
            continue
        culprit = [line for line in lines if re.search(r"fatal|error", line, re.IGNORECASE)]
        if culprit:
            why += f" ({culprit[-1].strip()[-160:]})"
    detail = []
    for log in logs:
        if log.exists() and log.stat().st_size:
            detail.append(f"--- last lines of {log} ---\n{tail(log)}")
    # A port free at the check but bound by someone else since is the caller's "port taken" (exit 3).
    # Only the last lines: logs are appended, and an earlier start's bind error must not count.
    lost_port = any(BIND_RACE.search(tail(log, 8)) for log in logs)
    return TestbedError(f"{daemon} {why}" + ("; its port was taken meanwhile, choose another "
                                             "--port-base" if lost_port else ""),
                        EXIT_ENV if lost_port else EXIT_DOWN, "\n".join(detail))


def wait_for(check, timeout: float, interval: float = 0.2) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def wait_daemon(daemon: str, proc: subprocess.Popen[bytes], ready, timeout: float,  # type: ignore[no-untyped-def]
                what: str, *logs: Path) -> None:
    """Wait until ready() or raise at once when the process exits, or after timeout seconds."""
    def check() -> bool:
        if proc.poll() is not None:
            raise daemon_failed(daemon, f"exited with status {proc.returncode}", *logs)
        return bool(ready())

    if not wait_for(check, timeout, 0.2):
        raise daemon_failed(daemon, f"did not {what} within {timeout:g}s", *logs)


def tcp_listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def port_free(port: int, reuse: bool = True) -> bool:
    # SO_REUSEADDR ignores TIME_WAIT leftovers of a previous run but still fails on a listener.
    # slurmd binds without it, so its ports must be free of TIME_WAIT too (reuse=False): the
    # testbed's ports lie in Linux's ephemeral range, where any client may have left one.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        if reuse:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def ports_taken(settings: Settings) -> list[str]:
    """"PORT (owner)" for every testbed port something else holds."""
    return [f"{port} ({owner})" for owner, port in all_ports(settings).items()
            if not port_free(port, reuse=not owner.startswith("slurmd"))]


def unix_socket_ready(path: Path) -> bool:
    if not path.exists():
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(str(path)) == 0


def abstract_socket_in_use(name: str) -> bool:
    try:
        table = Path("/proc/net/unix").read_text()
    except OSError:
        return False
    return f"@{name}:ctl\n" in table or table.rstrip().endswith(f"@{name}:ctl")


def marked_processes(state_dir: Path) -> set[int]:
    """Pids carrying our marker, plus all their descendants (job steps, prologs), plus every
    process in a mount namespace of ours (a chroot release's slurmstepd detaches from slurmd and
    drops our marker, but stays in the namespace its slurmd was started in)."""
    mark = f"{MARK_VAR}={state_dir}".encode()
    others = (f"{MARK_VAR}=".encode(), f"{CLIENT_VAR}=".encode())
    parents: dict[int, int] = {}
    namespaces: dict[int, str] = {}
    marked: set[int] = set()
    foreign: set[int] = set()  # another testbed's daemons, and any testbed's client commands
    me = os.getpid()
    host_ns = _mount_namespace(me)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        if pid == me:
            continue
        try:
            stat_text = Path(f"/proc/{pid}/stat").read_text()
            parents[pid] = int(stat_text[stat_text.rindex(")") + 2:].split()[1])
            namespaces[pid] = _mount_namespace(pid)
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            if mark in environ:
                marked.add(pid)
            elif any(var.startswith(others) for var in environ):
                foreign.add(pid)
        except (OSError, ValueError):
            continue
    live_ns = {namespaces.get(pid) for pid in marked} - {host_ns, "", None}
    marked |= {pid for pid, ns in namespaces.items() if ns in live_ns}
    # A recorded namespace no daemon of ours holds any more may be gone and its number reused by
    # someone else's (a chroot wrapper's `scontrol` was seen in one): there, only Slurm's own
    # detached processes count (inside a chroot, or slurmstepd), never another testbed's daemons or
    # a client wrapper's command (both seen in parallel runs: munged, scontrol); their jobs follow.
    dead_ns = recorded_namespaces(state_dir) - live_ns - {host_ns, ""}
    marked |= {pid for pid, ns in namespaces.items()
               if ns in dead_ns and pid not in foreign and _slurm_side(pid)}
    changed = True
    while changed:
        changed = False
        for pid, ppid in parents.items():
            if ppid in marked and pid not in marked and pid != me:
                marked.add(pid)
                changed = True
    return marked


def _slurm_side(pid: int) -> bool:
    """The process runs inside a chroot or is a slurmstepd (a job step's keeper)."""
    try:
        proc = Path("/proc", str(pid))
        if os.readlink(proc / "root") != "/":
            return True
        return Path(os.readlink(proc / "exe")).name == "slurmstepd"
    except OSError:
        return False


def namespaces_file(state_dir: Path) -> Path:
    return state_dir / "run" / "mount-namespaces"


def recorded_namespaces(state_dir: Path) -> set[str]:
    try:
        return set(namespaces_file(state_dir).read_text().split())
    except OSError:
        return set()


def record_namespaces(lay: Layout, pids: Iterable[int]) -> None:
    """Remember the mount namespaces our daemons run in (chroot releases), so that `down` finds job
    steps left in one even after its slurmd died or was stopped."""
    host = _mount_namespace(os.getpid())
    found = {_mount_namespace(pid) for pid in pids} - {host, ""}
    known = recorded_namespaces(lay.root)
    if found - known:
        atomic_write(namespaces_file(lay.root), "\n".join(sorted(known | found)) + "\n")


def _mount_namespace(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return ""


def stop_pids(pids: Iterable[int], grace: float) -> list[int]:
    """SIGTERM, wait up to grace seconds, then SIGKILL; returns pids that needed SIGKILL."""
    pids = [p for p in pids if proc_start_time(p)]
    starts = {p: proc_start_time(p) for p in pids}
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)

    def alive() -> list[int]:
        return [p for p in pids if proc_start_time(p) is not None and proc_start_time(p) == starts[p]]

    wait_for(lambda: not alive(), grace, 0.1)
    killed = alive()
    for pid in killed:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not alive(), 5, 0.1)
    return killed


def run_cmd(argv: Sequence[str], env: dict[str, str], timeout: float = 60,
            check: bool = True, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(list(argv), env=env, capture_output=True, text=True,
                              timeout=timeout, cwd=cwd)
    except FileNotFoundError as exc:
        raise TestbedError(f"{argv[0]} not found", EXIT_ENV) from exc
    except subprocess.TimeoutExpired as exc:
        raise TestbedError(f"`{shlex.join(argv)}` timed out after {timeout:.0f}s", EXIT_DOWN) from exc
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip()
        raise TestbedError(f"`{shlex.join(argv)}` failed (exit {proc.returncode})", EXIT_DOWN,
                           "\n".join(detail.splitlines()[-15:]))
    return proc


def ensure_packages(packages: Sequence[str] = DEBIAN_PACKAGES) -> None:
    query = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${Status}\n", *packages],
                           capture_output=True, text=True)
    installed = {line.split()[0] for line in query.stdout.splitlines()
                 if line.endswith("install ok installed")}
    missing = [p for p in packages if p not in installed]
    if not missing:
        return
    if os.geteuid() != 0:
        raise TestbedError(f"missing Debian packages: {' '.join(missing)} (run as root or "
                           "scripts/bootstrap)", EXIT_ENV)
    print(f"testbed: installing {' '.join(missing)}", file=sys.stderr)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # Keep the packages' own services from starting during this install only; a policy-rc.d
    # that was already there is left alone, ours is removed whatever happens.
    policy = Path("/usr/sbin/policy-rc.d")
    created = not policy.exists()
    if created:
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
    try:
        for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *missing]):
            proc = subprocess.run(argv, env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                raise TestbedError(f"cannot install Debian packages {' '.join(missing)} "
                                   f"(`{' '.join(argv[:2])}` exit {proc.returncode})", EXIT_ENV,
                                   "\n".join(proc.stderr.strip().splitlines()[-15:]))
    finally:
        if created:
            policy.unlink(missing_ok=True)


def gpupool_cmd() -> list[str]:
    exe = VENV_BIN / "gpupool"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("gpupool")
    if found:
        return [found]
    raise TestbedError(f"gpupool is not installed ({exe} missing; run scripts/bootstrap)", EXIT_ENV)


def build_fabric(settings: Settings, env: dict[str, str]) -> list[str]:
    """Write fabric.json, topology.conf and ibsim.net with gpupool; return the host names."""
    lay = Layout(settings.state_dir)
    gp = gpupool_cmd()
    if settings.fabric_source:
        source = Path(settings.fabric_source)
        if not source.is_file():
            raise TestbedError(f"--fabric {source}: no such file", EXIT_USAGE)
        shutil.copyfile(source, lay.fabric)
    else:
        sizing = (dragonfly_args if settings.topology == "dragonfly" else fat_tree_args)(
            settings.node_count)
        run_cmd([*gp, "fabric", "generate", *sizing, "-o", str(lay.fabric)], env)
    run_cmd([*gp, "fabric", "export", "--fabric", str(lay.fabric), "--format",
             "slurm-block" if settings.topology_block else "slurm-tree", "-o", str(lay.topology_conf)], env)
    # This ibsim knows SDR/DDR/QDR only: faster links (a discovered NDR fabric) become QDR.
    run_cmd([*gp, "fabric", "export", "--fabric", str(lay.fabric), "--format", "ibsim",
             "--clamp-speed", "-o", str(lay.ibsim_net)], env)
    if settings.topology_yaml:
        run_cmd([*gp, "fabric", "export", "--fabric", str(lay.fabric), "--format", "slurm-yaml",
                 "-o", str(lay.topology_yaml)], env)
    else:
        lay.topology_yaml.unlink(missing_ok=True)  # slurmctld prefers topology.yaml when it exists
    hosts = hosts_from_topology_conf(lay.topology_conf.read_text())
    if not hosts:
        raise TestbedError(f"{lay.topology_conf}: gpupool exported no hosts", EXIT_DOWN)
    if not settings.fabric_source and len(hosts) != settings.node_count:
        raise TestbedError(f"gpupool generated {len(hosts)} hosts, expected {settings.node_count}")
    return hosts


def make_gpu_devices(lay: Layout, count: int) -> None:
    lay.dev.mkdir(parents=True, exist_ok=True)
    for path in lay.gpu_devices(count):
        if path.exists():
            continue
        if os.geteuid() == 0:
            os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # same device as /dev/null
        else:
            path.touch()


def write_configs(settings: Settings, nodes: list[str]) -> None:
    lay = Layout(settings.state_dir)
    if not lay.db_secret.exists():
        atomic_write(lay.db_secret, secrets.token_hex(16) + "\n", 0o600)
    password = lay.db_secret.read_text().strip()
    (lay.root / "jobs").mkdir(parents=True, exist_ok=True)
    fragment = lay.slurm_conf.parent / POOLS_FRAGMENT
    if not fragment.exists():  # an `include` of a missing file stops every Slurm command
        atomic_write(fragment, "# partitions written by `gpupool pool apply`\n")
    if settings.slurm in CHROOT_SUITES:
        for key, program in job_scripts(settings).items():
            atomic_write(host_script_shim(settings, key), render_host_script_shim(settings, key, program), 0o755)
    atomic_write(lay.slurm_conf, render_slurm_conf(settings, nodes))
    atomic_write(lay.gres_conf, render_gres_conf(settings, nodes))
    cgroup = render_cgroup_conf(settings)
    if cgroup is None:
        lay.cgroup_conf.unlink(missing_ok=True)
    else:
        atomic_write(lay.cgroup_conf, cgroup)
    atomic_write(lay.slurmdbd_conf, render_slurmdbd_conf(settings, password), 0o600)
    if settings.job_submit_lua:
        shutil.copyfile(settings.job_submit_lua, lay.job_submit_lua)
    elif lay.job_submit_lua.exists():
        lay.job_submit_lua.unlink()
    make_gpu_devices(lay, settings.gpus_per_node)


def start_munged(settings: Settings) -> None:
    lay = Layout(settings.state_dir)
    lay.munge_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(lay.munge_dir, 0o755)  # munged wants its socket directory searchable by all
    if not lay.munge_key.exists():
        atomic_write(lay.munge_key, "", 0o600)
        with open(lay.munge_key, "wb") as handle:
            handle.write(os.urandom(1024))
    os.chmod(lay.munge_key, 0o600)
    if lay.munge_socket.exists():
        lay.munge_socket.unlink()
    proc = spawn(settings, "munged", [
        "munged", "--foreground", f"--socket={lay.munge_socket}", f"--key-file={lay.munge_key}",
        f"--pid-file={lay.munge_dir}/munged.pid", f"--log-file={lay.log_file('munged')}",
        f"--seed-file={lay.munge_dir}/munged.seed", "--num-threads=4", "--force"])
    wait_daemon("munged", proc, lambda: unix_socket_ready(lay.munge_socket), 15,
                f"create {lay.munge_socket}", lay.log / "munged.out")


def mysql_client(lay: Layout, sql: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_cmd(["mariadb", "--no-defaults", f"--socket={lay.mysql_socket}", "-u", "root",
                    "--batch", "-e", sql], env, timeout=30)


def mariadb_install_argv(settings: Settings) -> list[str]:
    lay = Layout(settings.state_dir)
    # Arguments it does not know go to mariadbd unquoted: the state dir must have no blanks.
    return ["mariadb-install-db", "--no-defaults", f"--datadir={lay.mysql_data}", f"--user={RUN_AS}",
            f"--tmpdir={lay.mysql_tmp}", "--auth-root-authentication-method=socket", "--skip-test-db"]


def mariadbd_argv(settings: Settings) -> list[str]:
    lay = Layout(settings.state_dir)
    return [
        "mariadbd", "--no-defaults", f"--datadir={lay.mysql_data}", f"--socket={lay.mysql_socket}",
        f"--port={settings.mysql_port}", "--bind-address=127.0.0.1", f"--user={RUN_AS}",
        f"--pid-file={lay.mysql_dir}/mariadbd.pid", f"--log-error={lay.log_file('mariadb')}",
        # A tmpdir of its own: at startup mariadbd deletes every #sql* file in its tmpdir, which in
        # a shared /tmp are the temporary tables of another testbed's MariaDB being installed (seen).
        f"--tmpdir={lay.mysql_tmp}",
        "--skip-name-resolve", "--innodb-buffer-pool-size=128M", "--innodb-log-file-size=64M",
        "--innodb-lock-wait-timeout=900", "--max-connections=200",
        # MariaDB 11.x defaults to snapshot isolation, which slurmdbd >= 25.05 refuses; `loose-`
        # keeps older MariaDB (no such option) starting.
        *([] if settings.slurm == HOST_SLURM else ["--loose-innodb-snapshot-isolation=OFF"])]


def start_mariadb(settings: Settings) -> None:
    lay = Layout(settings.state_dir)
    env = daemon_env(settings)
    lay.mysql_dir.mkdir(parents=True, exist_ok=True)
    lay.mysql_tmp.mkdir(parents=True, exist_ok=True)
    if not (lay.mysql_data / "mysql").is_dir():
        shutil.rmtree(lay.mysql_data, ignore_errors=True)
        with open(lay.log / "mariadb-install.log", "w") as out:
            proc = subprocess.run(
                release_argv(settings, mariadb_install_argv(settings)),
                stdout=out, stderr=subprocess.STDOUT, env=env, timeout=180)
        if proc.returncode != 0:
            raise daemon_failed("mariadb-install-db", f"failed (exit {proc.returncode})",
                                lay.log / "mariadb-install.log")
    proc = spawn(settings, "mariadb", mariadbd_argv(settings))

    def ready() -> bool:
        if not unix_socket_ready(lay.mysql_socket):
            return False
        return subprocess.run(["mariadb", "--no-defaults", f"--socket={lay.mysql_socket}", "-u",
                               "root", "-e", "SELECT 1"], capture_output=True, env=env).returncode == 0

    wait_daemon("mariadb", proc, ready, 60, "accept connections", lay.log_file("mariadb"),
                lay.log / "mariadb.out")
    password = lay.db_secret.read_text().strip()
    # A real user with a password: slurmdbd talks TCP to 127.0.0.1, grant tables stay on.
    mysql_client(lay, (
        "CREATE DATABASE IF NOT EXISTS slurm_acct_db; "
        f"CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '{password}'; "
        f"ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '{password}'; "
        "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;"), env)


def start_slurmdbd(settings: Settings) -> None:
    lay = Layout(settings.state_dir)
    proc = spawn(settings, "slurmdbd", ["slurmdbd", "-D"])
    wait_daemon("slurmdbd", proc, lambda: tcp_listening(settings.dbd_port), 60,
                f"listen on 127.0.0.1:{settings.dbd_port}", lay.log_file("slurmdbd"))


def register_accounting(settings: Settings) -> None:
    env = daemon_env(settings)
    clusters = run_cmd(["sacctmgr", "-n", "-P", "show", "cluster", "format=cluster"], env).stdout
    if CLUSTER_NAME not in clusters.split():
        run_cmd(["sacctmgr", "-i", "add", "cluster", CLUSTER_NAME], env)
    accounts = run_cmd(["sacctmgr", "-n", "-P", "show", "account", "format=account"], env).stdout
    if "default" not in accounts.split():
        run_cmd(["sacctmgr", "-i", "add", "account", "default", f"Cluster={CLUSTER_NAME}",
                 "Description=testbed default account", "Organization=gpupool"], env)
    # root (and whoever runs the testbed) may submit under the "default" account.
    for user in sorted({"root", RUN_AS}):
        assoc = run_cmd(["sacctmgr", "-n", "-P", "show", "assoc", "where", f"user={user}",
                         "account=default", "format=user"], env).stdout
        if user not in assoc.split():
            run_cmd(["sacctmgr", "-i", "add", "user", user, "Account=default",
                     f"Cluster={CLUSTER_NAME}"], env)


def start_slurmctld(settings: Settings, clean: bool) -> None:
    lay = Layout(settings.state_dir)
    lay.ctld_state.mkdir(parents=True, exist_ok=True)
    argv = ["slurmctld", "-D", "-i"] + (["-c"] if clean else [])
    proc = spawn(settings, "slurmctld", argv)
    wait_daemon("slurmctld", proc, lambda: tcp_listening(settings.ctld_port), 60,
                f"listen on 127.0.0.1:{settings.ctld_port}", lay.log_file("slurmctld"))


def start_slurmds(settings: Settings, nodes: Sequence[str]) -> dict[str, subprocess.Popen[bytes]]:
    lay = Layout(settings.state_dir)
    procs = {}
    for name in nodes:
        if read_pid(lay, f"slurmd-{name}"):
            continue
        (lay.spool / "slurmd" / name).mkdir(parents=True, exist_ok=True)
        procs[name] = spawn(settings, f"slurmd-{name}", ["slurmd", "-D", "-N", name], host_view=True)
    return procs


def node_states(env: dict[str, str]) -> dict[str, tuple[str, str]]:
    proc = subprocess.run(["sinfo", "-h", "-N", "-p", PARTITION, "-o", "%N|%T|%G"],
                          capture_output=True, text=True, env=env, timeout=30)
    states = {}
    for line in proc.stdout.splitlines():
        name, state, gres = line.split("|", 2)
        states[name] = (state, gres)
    return states


def wait_nodes_ready(settings: Settings, nodes: Sequence[str],
                     procs: dict[str, subprocess.Popen[bytes]], need_idle: bool) -> None:
    """Poll sinfo until every node is idle (need_idle) or at least responding (a repair keeps
    jobs and drains of the running testbed); fail at once if one of our slurmds exits."""
    lay = Layout(settings.state_dir)
    env = daemon_env(settings)
    timeout = 60 + len(nodes) / 2
    last: dict[str, tuple[str, str]] = {}

    def ready(state: str) -> bool:
        if need_idle:
            return state == "idle"
        # sinfo flags a non-responding node with "*", and unknown/down nodes by name.
        return bool(state) and not state.endswith("*") and not state.startswith(("down", "unk"))

    restarts: dict[str, int] = {}

    def check() -> bool:
        nonlocal last
        for name, proc in list(procs.items()):
            if proc.poll() is None:
                continue
            log = lay.log / f"slurmd-{name}.log"
            # Our ports lie in Linux's ephemeral range: a client (even another slurmd talking to
            # slurmctld) may hold this one for a moment. Start that slurmd again, a few times.
            if "Unable to bind listen port" in tail(log, 3) and restarts.get(name, 0) < 3:
                restarts[name] = restarts.get(name, 0) + 1
                time.sleep(1)
                procs[name] = spawn(settings, f"slurmd-{name}", ["slurmd", "-D", "-N", name], host_view=True)
                continue
            raise daemon_failed(f"slurmd -N {name}", f"exited with {proc.returncode}",
                                log, lay.log / f"slurmd-{name}.out")
        last = node_states(env)
        return all(ready(last.get(n, ("", ""))[0]) for n in nodes)

    if not wait_for(check, timeout, 0.5):
        bad = sorted(n for n in nodes if not ready(last.get(n, ("", ""))[0]))
        states = ", ".join(f"{n}={last.get(n, ('missing', ''))[0] or 'missing'}" for n in bad[:5])
        raise daemon_failed(f"{len(bad)} slurmd nodes", f"not {'idle' if need_idle else 'up'} "
                            f"after {timeout:.0f}s ({states})", lay.log / f"slurmd-{bad[0]}.log",
                            lay.log_file("slurmctld"))


def daemon_names(nodes: Sequence[str]) -> list[str]:
    return ["munged", "mariadb", "slurmdbd", "slurmctld", *(f"slurmd-{n}" for n in nodes), "ibsim"]


def load_state(lay: Layout) -> tuple[Settings, list[str]] | None:
    try:
        data = json.loads(lay.settings_file.read_text())
    except (OSError, ValueError):
        return None
    return Settings.from_json(data["settings"]), list(data["nodes"])


def save_state(lay: Layout, settings: Settings, nodes: list[str]) -> None:
    payload = {"settings": settings.to_json(), "nodes": nodes,
               "config_hash": config_hash(lay)}
    atomic_write(lay.settings_file, json.dumps(payload, indent=2) + "\n")


def config_hash(lay: Layout) -> str:
    digest = hashlib.sha256()
    for path in (lay.slurm_conf, lay.gres_conf, lay.topology_conf, lay.topology_yaml, lay.ibsim_net):
        if path.exists():
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def running_daemons(lay: Layout, nodes: Sequence[str]) -> dict[str, int | None]:
    return {name: read_pid(lay, name) for name in daemon_names(nodes)}


def requested_differs(explicit: dict[str, object], current: Settings) -> list[str]:
    diffs = []
    for key, value in explicit.items():
        if value is not None and getattr(current, key) != value:
            diffs.append(f"{key} {getattr(current, key)!r} -> {value!r}")
    return diffs


STOP_ORDER = ("slurmd-", "slurmctld", "slurmdbd", "opensm", "ibsim", "mariadb", "munged")


def stop_daemons(lay: Layout, names: Iterable[str], grace: float = 15) -> list[str]:
    """Stop daemons in dependency order (slurmds first, munged last); return those SIGKILLed."""
    names = list(names)
    killed: list[str] = []
    for prefix in STOP_ORDER:
        batch = {n: read_pid(lay, n) for n in names if n == prefix or
                 (prefix.endswith("-") and n.startswith(prefix))}
        pids = {pid: name for name, pid in batch.items() if pid}
        for pid in stop_pids(list(pids), grace):
            killed.append(pids[pid])
        for name in batch:
            lay.pid_file(name).unlink(missing_ok=True)
    return killed
