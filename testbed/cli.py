"""Local Slurm + InfiniBand (ibsim) testbed for gpupool, on loopback, all state in one directory.

    scripts/testbed up [--nodes N] [--gpus-per-node G] [--fabric FILE | --topology fat-tree|dragonfly]
                       [--state-dir DIR] [--port-base N] [--prolog P] [--epilog P] [--task-prolog P]
                       [--job-submit-lua FILE] [--slurm 22.05|24.11|25.11|26.05]
    scripts/testbed down | status [--json] [--verbose] | env | console CMD | sm

Every daemon (munged, MariaDB, slurmdbd, slurmctld, one slurmd per node, ibsim) runs in the
foreground of its own session, started by this script, with its pid in <state>/run/NAME.pid and
the marker GPUPOOL_TESTBED_MARK=<state dir> in its environment, so `down` stops exactly what
`up` started (and the job steps those daemons forked). Ports all derive from --port-base.
--slurm 22.05 uses the host's Slurm packages; 24.11 and 26.05 run munge, MariaDB and every Slurm
daemon from a Debian chroot (trixie, sid) that `up` builds with debootstrap on first use and caches
in /var/cache/gpupool-testbed ($GPUPOOL_TESTBED_CACHE); each daemon runs in its own mount namespace
(unshare), so no mount outlives it. `env` puts wrappers for the chroot's commands first on PATH.
--prolog/--epilog/--task-prolog name host programs: a chroot's slurmd, which sees the host's root
at /run/gpupool-host, runs them there (chroot back) with the testbed's PATH.
25.11 (in no Debian suite) runs the Slurm daemons of the prefix scripts/build-slurm-25.11 builds
from the vendored source (cached; about an hour cold) with the host's munged and MariaDB; `env`
puts links to its commands first on PATH and the pyslurm built against it on PYTHONPATH.
Exit codes: 0 success, 1 a daemon did not come up / is down, 2 usage, 3 environment (missing
package, port in use).
Stdlib only: runs with the system python3 or the venv's.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from testbed import prefix as source_prefix
from testbed.config import (
    DEFAULT_GPUS,
    DEFAULT_NODES,
    DEFAULT_PORT_BASE,
    HOST_SLURM,
    REPO,
    SLURM_RELEASES,
    SLURMD_OFFSET,
    Layout,
    Settings,
    env_exports,
    slurm_at_least,
)
from testbed.daemons import (
    abstract_socket_in_use,
    build_fabric,
    daemon_env,
    daemon_names,
    ensure_release,
    load_state,
    marked_processes,
    namespaces_file,
    ports_taken,
    proc_start_time,
    read_pid,
    record_namespaces,
    register_accounting,
    requested_differs,
    running_daemons,
    save_state,
    start_mariadb,
    start_munged,
    start_slurmctld,
    start_slurmdbd,
    start_slurmds,
    stop_daemons,
    stop_pids,
    wait_nodes_ready,
    write_configs,
)
from testbed.errors import EXIT_DOWN, EXIT_ENV, EXIT_OK, EXIT_USAGE, TestbedError
from testbed.ibsim import ibsim_console, run_opensm_once, start_ibsim


def cmd_up(settings: Settings, explicit: dict[str, object]) -> int:
    lay = Layout(settings.state_dir)
    started_at = time.monotonic()
    previous = load_state(lay)
    if previous:
        prev_settings, prev_nodes = previous
        running = {k: v for k, v in running_daemons(lay, prev_nodes).items() if v}
        if running:
            diffs = requested_differs(explicit, prev_settings)
            if diffs:
                raise TestbedError(f"testbed in {lay.root} is running with other settings "
                                   f"({'; '.join(diffs)}); run `scripts/testbed down` first",
                                   EXIT_DOWN)
            settings, nodes = prev_settings, prev_nodes
            if len(running) == len(daemon_names(nodes)):
                print(f"testbed: already running in {lay.root} ({len(nodes)} nodes)",
                      file=sys.stderr)
                return EXIT_OK
            print(f"testbed: {len(running)} daemons running; starting the others", file=sys.stderr)
            return bring_up(settings, nodes, fresh=False, started_at=started_at)
    ensure_release(settings)
    for directory in (lay.root, lay.etc, lay.run, lay.log, lay.spool):
        directory.mkdir(parents=True, exist_ok=True)
    taken = ports_taken(settings)
    if taken:
        raise TestbedError(f"port {taken[0]} on 127.0.0.1 is in use"
                           + (f" (and {len(taken) - 1} more)" if len(taken) > 1 else "")
                           + "; choose another --port-base", EXIT_ENV)
    if abstract_socket_in_use(settings.ibsim_sockname):
        raise TestbedError(f"ibsim socket @{settings.ibsim_sockname}:ctl is in use (another testbed "
                           "with this port base?); choose another --port-base", EXIT_ENV)
    nodes = build_fabric(settings, daemon_env(settings))
    if len(nodes) + SLURMD_OFFSET + settings.port_base > 65535:
        raise TestbedError(f"--port-base {settings.port_base} too high for {len(nodes)} nodes",
                           EXIT_USAGE)
    write_configs(settings, nodes)
    save_state(lay, settings, nodes)
    return bring_up(settings, nodes, fresh=True, started_at=started_at)


def bring_up(settings: Settings, nodes: list[str], fresh: bool, started_at: float) -> int:
    """Start every daemon that is not running. fresh: nothing runs, so the controller starts
    with clean state (no jobs or drained nodes from an earlier run) and every node must be idle."""
    lay = Layout(settings.state_dir)
    before = {k for k, v in running_daemons(lay, nodes).items() if v}
    try:
        if "munged" not in before:
            start_munged(settings)
        if "mariadb" not in before:
            start_mariadb(settings)
        if "slurmdbd" not in before:
            start_slurmdbd(settings)
        register_accounting(settings)
        if "slurmctld" not in before:
            start_slurmctld(settings, clean=fresh)
        procs = start_slurmds(settings, nodes)
        if "ibsim" not in before:  # starts while the slurmds register
            start_ibsim(settings)
            run_opensm_once(settings)
        wait_nodes_ready(settings, nodes if fresh else list(procs), procs, need_idle=fresh)
        record_namespaces(lay, [pid for pid in running_daemons(lay, nodes).values() if pid])
    except BaseException:
        started = [name for name, pid in running_daemons(lay, nodes).items()
                   if pid and name not in before]
        if started:
            print(f"testbed: stopping the {len(started)} daemons this `up` started",
                  file=sys.stderr)
            stop_daemons(lay, started)
        raise
    elapsed = time.monotonic() - started_at
    print(f"testbed: up in {elapsed:.1f}s: Slurm {settings.slurm}, {len(nodes)} nodes x {settings.gpus_per_node} GPUs, "
          f"state {lay.root}, slurmctld 127.0.0.1:{settings.ctld_port}", file=sys.stderr)
    print(f"testbed: eval \"$({Path(sys.argv[0]).resolve()} env --state-dir {lay.root})\"",
          file=sys.stderr)
    return EXIT_OK


def cmd_down(lay: Layout) -> int:
    names = sorted(p.stem for p in lay.run.glob("*.pid") if not p.stem.endswith(".daemon"))
    ours_before = marked_processes(lay.root)  # while the daemons still show their namespaces
    killed = stop_daemons(lay, names)
    # Job steps and prologs forked by our slurmds (and anything else carrying our marker).
    leftovers = marked_processes(lay.root) | {pid for pid in ours_before if proc_start_time(pid)}
    if leftovers:
        stop_pids(leftovers, 5)
    remaining = marked_processes(lay.root)
    # Under load a killed job step can take seconds to go (a chroot slurmstepd's exit also tears down
    # its mount namespace; one outlived the 5 s once in CI): two more rounds before it counts as left.
    for _ in range(2):
        if not remaining:
            break
        stop_pids(remaining, 5)
        remaining = marked_processes(lay.root)
    for stale in lay.run.glob("*.pid"):
        stale.unlink(missing_ok=True)
    if lay.munge_socket.exists():
        lay.munge_socket.unlink()
    if not remaining:
        namespaces_file(lay.root).unlink(missing_ok=True)
    if remaining:
        raise TestbedError(f"processes still running after down: {sorted(remaining)}", EXIT_DOWN,
                           "\n".join(f"{pid} [{_state(pid)}] {_cmdline(pid)}" for pid in sorted(remaining)))
    note = f" ({len(killed)} needed SIGKILL)" if killed else ""
    print(f"testbed: down: stopped {len(names)} daemons and {len(leftovers)} other processes"
          f"{note} in {lay.root}", file=sys.stderr)
    return EXIT_OK


def _state(pid: int) -> str:
    """The process's state letter and what it waits in (`R`, `D folio_wait_bit`, ...), for the error."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        state = stat[stat.rindex(")") + 2:].split()[0]
        wchan = Path(f"/proc/{pid}/wchan").read_text().strip()
    except (OSError, IndexError, ValueError):
        return "?"
    return f"{state} {wchan}" if wchan and wchan != "0" else state


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "(gone)"


def cmd_status(lay: Layout, as_json: bool, verbose: bool) -> int:
    state = load_state(lay)
    if state is None:
        if as_json:
            print(json.dumps({"state_dir": str(lay.root), "running": False, "daemons": {}}))
        else:
            print(f"testbed: no testbed in {lay.root}", file=sys.stderr)
        return EXIT_DOWN
    settings, nodes = state
    daemons = running_daemons(lay, nodes)
    ok = all(daemons.values())
    if as_json:
        print(json.dumps({"state_dir": str(lay.root), "running": ok, "port_base": settings.port_base,
                          "settings": settings.to_json(), "nodes": nodes, "daemons": daemons,
                          "env": client_env(settings)}, indent=2))
        return EXIT_OK if ok else EXIT_DOWN
    slurmds = {k: v for k, v in daemons.items() if k.startswith("slurmd-")}
    for name, pid in daemons.items():
        if name.startswith("slurmd-") and not verbose:
            continue
        print(f"{name:<20} {'running' if pid else 'stopped':<8} {pid or '-'}")
    if not verbose:
        up = sum(1 for pid in slurmds.values() if pid)
        down = [k.removeprefix("slurmd-") for k, pid in slurmds.items() if not pid]
        extra = f" (stopped: {', '.join(down[:10])}{' ...' if len(down) > 10 else ''})" if down else ""
        print(f"{'slurmd':<20} {up}/{len(slurmds)} running{extra}")
    print(f"state {lay.root}  port base {settings.port_base}  {len(nodes)} nodes x "
          f"{settings.gpus_per_node} GPUs  "
          f"{'OK' if ok else 'DEGRADED' if any(daemons.values()) else 'STOPPED'}")
    return EXIT_OK if ok else EXIT_DOWN


def client_env(settings: Settings) -> dict[str, str]:
    """What `env` exports: Slurm, gpupool and ibsim-run pointed at this testbed, plus pyslurm on
    PYTHONPATH for a source-built release that has one (testbed/prefix.py)."""
    env = env_exports(settings, os.environ.get("PATH", ""))
    if source_prefix.is_prefix_release(settings.slurm):
        env.update(source_prefix.client_env(settings.slurm, dict(os.environ)))
    return env


def cmd_env(lay: Layout) -> int:
    state = load_state(lay)
    if state is None:
        raise TestbedError(f"no testbed in {lay.root}; run `scripts/testbed up` first", EXIT_DOWN)
    for key, value in client_env(state[0]).items():
        print(f"export {key}={shlex.quote(value)}")
    return EXIT_OK


def cmd_console(lay: Layout, command: str) -> int:
    sys.stdout.write(ibsim_console(lay, command))
    return EXIT_OK


def cmd_sm(lay: Layout) -> int:
    state = load_state(lay)
    if state is None or not read_pid(lay, "ibsim"):
        raise TestbedError(f"ibsim is not running in {lay.root}", EXIT_DOWN)
    run_opensm_once(state[0])
    return EXIT_OK


def default_state_dir() -> Path:
    return Path(os.environ.get("GPUPOOL_TESTBED_DIR") or REPO / ".testbed")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--state-dir", type=Path, default=None,
                        help="state directory (default $GPUPOOL_TESTBED_DIR or <repo>/.testbed)")
    doc = (__doc__ or "").split("\n\n", 1)
    parser = argparse.ArgumentParser(prog="testbed", description=doc[0], epilog=doc[-1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", parents=[common], help="start the testbed")
    up.add_argument("--nodes", type=int, default=None, help=f"node count (default {DEFAULT_NODES})")
    up.add_argument("--gpus-per-node", type=int, default=None, help=f"default {DEFAULT_GPUS}")
    group = up.add_mutually_exclusive_group()
    group.add_argument("--fabric", default=None, help="gpupool fabric file to use (all its hosts)")
    group.add_argument("--topology", choices=("fat-tree", "dragonfly"), default=None)
    up.add_argument("--port-base", type=int, default=None,
                    help=f"first port (default $GPUPOOL_TESTBED_PORT_BASE or {DEFAULT_PORT_BASE})")
    up.add_argument("--prolog", default=None, help="Slurm Prolog= program")
    up.add_argument("--epilog", default=None, help="Slurm Epilog= program")
    up.add_argument("--task-prolog", default=None, help="Slurm TaskProlog= program")
    up.add_argument("--job-submit-lua", default=None, help="job_submit.lua to enable")
    up.add_argument("--slurm", choices=SLURM_RELEASES, default=None,
                    help=f"Slurm release (default $GPUPOOL_TESTBED_SLURM or {HOST_SLURM}, the "
                         "host's); 24.11/26.05 run from a Debian chroot, 25.11 from a source build, "
                         "each built once and cached")
    up.add_argument("--topology-yaml", action="store_true", default=None,
                    help="Slurm 25.05+: topology.yaml with the tree (cluster default) and blocks side by "
                         "side, and a partition `blk` with Topology=block")
    up.add_argument("--topology-block", action="store_true", default=None,
                    help="Slurm 23.11+: TopologyPlugin=topology/block with gpupool's slurm-block topology.conf")
    sub.add_parser("down", parents=[common], help="stop every process the testbed started")
    status = sub.add_parser("status", parents=[common], help="daemon states; exit 1 if any is down")
    status.add_argument("--json", action="store_true")
    status.add_argument("--verbose", "-v", action="store_true", help="list every slurmd")
    sub.add_parser("env", parents=[common], help="print export lines for eval")
    console = sub.add_parser("console", parents=[common], help="send an ibsim console command")
    console.add_argument("words", nargs="+", metavar="CMD")
    sub.add_parser("sm", parents=[common], help="run OpenSM once against ibsim")
    return parser.parse_args(argv)


def settings_from_args(args: argparse.Namespace, state_dir: Path) -> tuple[Settings, dict[str, object]]:
    env_base = os.environ.get("GPUPOOL_TESTBED_PORT_BASE")
    port_base = args.port_base if args.port_base is not None else (
        int(env_base) if env_base else None)
    fabric = str(Path(args.fabric).resolve()) if args.fabric else None
    explicit: dict[str, object] = {
        "port_base": port_base, "node_count": args.nodes, "gpus_per_node": args.gpus_per_node,
        "topology": args.topology, "fabric_source": fabric,
        "prolog": _abs(args.prolog), "epilog": _abs(args.epilog),
        "task_prolog": _abs(args.task_prolog), "job_submit_lua": _abs(args.job_submit_lua),
        "slurm": args.slurm or os.environ.get("GPUPOOL_TESTBED_SLURM") or None,
        "topology_yaml": args.topology_yaml, "topology_block": args.topology_block}
    settings = Settings(
        state_dir=state_dir,
        port_base=port_base if port_base is not None else DEFAULT_PORT_BASE,
        node_count=args.nodes if args.nodes is not None else DEFAULT_NODES,
        gpus_per_node=args.gpus_per_node if args.gpus_per_node is not None else DEFAULT_GPUS,
        topology=args.topology or "fat-tree", fabric_source=fabric,
        prolog=explicit["prolog"], epilog=explicit["epilog"],  # type: ignore[arg-type]
        task_prolog=explicit["task_prolog"], job_submit_lua=explicit["job_submit_lua"],  # type: ignore[arg-type]
        slurm=str(explicit["slurm"] or HOST_SLURM), topology_yaml=bool(args.topology_yaml),
        topology_block=bool(args.topology_block))
    if settings.slurm not in SLURM_RELEASES:
        raise TestbedError(f"GPUPOOL_TESTBED_SLURM={settings.slurm}: not one of "
                           f"{', '.join(SLURM_RELEASES)}", EXIT_USAGE)
    if settings.topology_yaml and not slurm_at_least(settings, "25.05"):
        raise TestbedError(f"--topology-yaml needs Slurm 25.05 or later (not {settings.slurm})", EXIT_USAGE)
    if settings.topology_block and not slurm_at_least(settings, "23.11"):
        raise TestbedError(f"--topology-block needs Slurm 23.11 or later (not {settings.slurm})", EXIT_USAGE)
    if settings.topology_block and settings.topology_yaml:
        raise TestbedError("give --topology-block or --topology-yaml, not both", EXIT_USAGE)
    if settings.node_count < 1 or settings.gpus_per_node < 1:
        raise TestbedError("--nodes and --gpus-per-node must be at least 1", EXIT_USAGE)
    if not 1024 <= settings.port_base <= 65000:
        raise TestbedError("--port-base must be within 1024..65000", EXIT_USAGE)
    for key in ("prolog", "epilog", "task_prolog", "job_submit_lua"):
        value = explicit[key]
        if value and not Path(str(value)).is_file():
            raise TestbedError(f"--{key.replace('_', '-')} {value}: no such file", EXIT_USAGE)
    return settings, explicit


def _abs(path: str | None) -> str | None:
    return str(Path(path).resolve()) if path else None


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    state_dir = (args.state_dir or default_state_dir()).resolve()
    lay = Layout(state_dir)
    try:
        if args.command == "up":
            settings, explicit = settings_from_args(args, state_dir)
            return cmd_up(settings, explicit)
        if args.command == "down":
            return cmd_down(lay)
        if args.command == "status":
            return cmd_status(lay, args.json, args.verbose)
        if args.command == "env":
            return cmd_env(lay)
        if args.command == "console":
            return cmd_console(lay, " ".join(args.words))
        if args.command == "sm":
            return cmd_sm(lay)
    except TestbedError as exc:
        print(f"testbed: error: {exc.message}", file=sys.stderr)
        if exc.detail:
            print(exc.detail, file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("testbed: interrupted", file=sys.stderr)
        return 130
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
