#!/usr/bin/env python3
"""Reality check of `gpupool simulate`: run a short trace on the testbed, then replay the sacct
export of what happened with the matching policy and compare.

    eval "$(scripts/testbed env)"
    .venv/bin/python scripts/reality_check_simulate.py [--jobs 40] [--seed 1] [--via sbatch|gpupool]
        [--backfill slurm|easy] [--json]
    .venv/bin/python scripts/reality_check_simulate.py --replay KEPT.txt --fabric F [--via ...] [--backfill ...]

The trace: per-node requests `-N n --gres=gpu:k` (70% one host, 30% 2-8 hosts), runtimes of 5-40
seconds (`sleep`: a site's hours scaled down to seconds), time limits of 1-2 minutes, submitted at
their arrival offsets over `--span` seconds (default 1.5 s per job), so the cluster queues. With
`--via sbatch` each job is a plain `sbatch` and the replay uses `slurm-tree` (Slurm's own
selection); with `--via gpupool` each job goes through `gpupool submit` (nodes planned by gpupool
and pinned when they fit now; otherwise submitted with `--switches=N@--switch-wait` for Slurm to
place) and the replay uses the `gpupool` policy. After all jobs end, `sacct -P` (the documented
export, plus NodeList) is read with the simulator's own reader and replayed on the testbed's
fabric. Compared per job: the node set chosen (exact match), and per pair of jobs the order in
which they started (pairs that started in the same second in reality count as either order).
Slurm's clock has 1 s resolution and it schedules in cycles, so exact agreement is not expected;
the figures say how close the model is.

GPUPOOL_REALITY_KEEP=PATH keeps the export (`{via}` in PATH is replaced by the --via value) and the
fabric next to it (PATH.fabric); `--replay PATH --fabric PATH.fabric` compares a kept export again
without the testbed, e.g. under the other `--backfill` model.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from gpupool.simulate.workload import SACCT_FIELDS, parse_slurm_time

NAME = "gpupool-reality"


def sh(argv: list[str], timeout: float = 60) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"reality_check: {' '.join(argv)} failed: {proc.stderr.strip()}")
    return proc.stdout


def trace(jobs: int, seed: int, gpus_per_node: int, max_nodes: int, span: float) -> list[tuple[float, int, int, int, int]]:
    """(arrival offset s, nodes, GPUs per node, runtime s, limit min) per job, the same for both ways of submitting."""
    rng = random.Random(seed)
    out = []
    offset = 0.0
    for _ in range(jobs):
        offset += rng.expovariate(jobs / span)
        nodes = 1 if rng.random() < 0.7 else rng.randint(2, max_nodes)
        per_node = rng.choice([1, 2, 4, gpus_per_node]) if nodes == 1 else gpus_per_node
        runtime = rng.randint(5, 40)
        limit = 1 if runtime < 50 and rng.random() < 0.5 else 2
        out.append((offset, nodes, per_node, runtime, limit))
    return out


def submit_trace(jobs: list[tuple[float, int, int, int, int]], via: str, switch_wait: str) -> tuple[list[str], dict[str, str]]:
    """Submit at the arrival offsets; returns the job ids and, for gpupool, each job's submit mode."""
    ids: list[str] = []
    modes: dict[str, str] = {}
    start = time.monotonic()
    for offset, nodes, per_node, runtime, limit in jobs:
        delay = start + offset - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        slurm_args = [f"--job-name={NAME}", "-t", str(limit), "--cpus-per-task=1", "--mem=100",
                      "--output=/dev/null", f"--wrap=sleep {runtime}"]
        if via == "sbatch":
            out = sh(["sbatch", "--parsable", "-N", str(nodes), f"--gres=gpu:{per_node}", *slurm_args])
            ids.append(out.strip().split(";")[0])
            continue
        out = sh(["gpupool", "submit", "--nodes", str(nodes), "--gpus-per-node", str(per_node), "--verify-timeout", "0",
                  "--switch-wait", switch_wait, "--json", "--", *slurm_args], timeout=120)
        doc = json.loads(out)
        ids.append(str(doc["job_id"]))
        modes[str(doc["job_id"])] = str(doc.get("mode", ""))
    return ids, modes


def wait_idle(timeout: float = 120) -> None:
    """The replay starts from an idle cluster: wait until Slurm says every node is (one still completing
    or drained would shift every placement after it), else stop with the nodes that are not."""
    deadline = time.monotonic() + timeout
    while True:
        rows = [line.split() for line in sh(["sinfo", "-h", "-N", "-o", "%N %T"]).splitlines() if line.strip()]
        busy = sorted({row[0] for row in rows if len(row) < 2 or row[1] != "idle"})
        if not busy:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"reality_check: the replay starts from an idle cluster, but {len(busy)} node(s) "
                             f"are not idle after {timeout:.0f} s: {', '.join(busy[:8])}")
        time.sleep(1)


def wait_done(ids: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not sh(["squeue", "-h", "--name", NAME, "-o", "%i"]).split():
            return
        time.sleep(2)
    raise SystemExit("reality_check: jobs did not finish in time")


def export(ids: list[str], path: Path, timeout: float = 120) -> dict[str, list[str]]:
    """Write the documented sacct -P export; return the real node list of each job (expanded)."""
    from gpupool.slurm.parse import expand_hostlist

    deadline = time.monotonic() + timeout
    fields = ",".join(SACCT_FIELDS) + ",NodeList"
    while True:
        text = sh(["sacct", "-a", "-X", "-P", "--noconvert", "-j", ",".join(ids), f"--format={fields}"])
        rows = [line.split("|") for line in text.splitlines()[1:] if line]
        if len(rows) == len(ids) and all(r[SACCT_FIELDS.index("State")] not in ("RUNNING", "PENDING") for r in rows):
            break
        if time.monotonic() > deadline:
            raise SystemExit("reality_check: sacct did not record every job")
        time.sleep(2)
    path.write_text(text)
    return {r[0]: sorted(expand_hostlist(r[-1])) for r in rows}


def compare(path: Path, real_nodes: dict[str, list[str]], real_start: dict[str, float], policy: str,
            modes: dict[str, str], backfill: str = "slurm", fabric: str | None = None,
            whole_hosts: bool = True, by_policy: bool = True) -> dict[str, Any]:
    """The figures CI judges: `gpupool.simulate.reality.compare_with_reality` on the testbed's (or a kept) fabric."""
    from gpupool.config import resolve_fabric_path
    from gpupool.fabric.compiled import load_compiled
    from gpupool.simulate.reality import compare_with_reality

    compiled = load_compiled(fabric or resolve_fabric_path(None))
    return compare_with_reality(str(path), compiled, real_nodes, real_start, policy, modes, backfill, whole_hosts,
                                by_policy)


def replay_kept(path: Path, fabric: str | None, policy: str, backfill: str, whole_hosts: bool,
                by_policy: bool) -> dict[str, Any]:
    """Compare a kept export again: real starts and nodes from its own Start and NodeList columns."""
    from gpupool.slurm.parse import expand_hostlist

    lines = [line.split("|") for line in path.read_text().splitlines() if line]
    header, rows = lines[0], lines[1:]
    col = {name: i for i, name in enumerate(header)}
    real_nodes = {r[col["JobIDRaw"]]: sorted(expand_hostlist(r[col["NodeList"]])) for r in rows}
    real_start = {}
    for r in rows:
        moment = parse_slurm_time(r[col["Start"]])
        if moment is not None:
            real_start[r[col["JobIDRaw"]]] = moment
    return compare(path, real_nodes, real_start, policy, {}, backfill, fabric, whole_hosts, by_policy)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-nodes", type=int, default=8)
    parser.add_argument("--span", type=float, help="seconds over which the jobs arrive (default 1.5 per job)")
    parser.add_argument("--via", choices=("sbatch", "gpupool"), default="sbatch",
                        help="plain sbatch (replayed with slurm-tree) or gpupool submit (replayed with gpupool)")
    parser.add_argument("--switch-wait", default="25%",
                        help="--via gpupool: gpupool submit's --switch-wait (its default, which the gpupool policy "
                             "replays: 25%% of each job's limit)")
    parser.add_argument("--backfill", choices=("slurm", "easy"), default="slurm", help="the replay's backfill model")
    parser.add_argument("--gpu-reservations", action="store_true",
                        help="slurm backfill: reservations book only the GPUs they need, not whole hosts")
    parser.add_argument("--best-fit-reservations", action="store_true",
                        help="slurm backfill: reservations pin best-fit hosts (default: the policy's placement)")
    parser.add_argument("--replay", metavar="FILE", help="compare a kept export (GPUPOOL_REALITY_KEEP) again; no testbed")
    parser.add_argument("--fabric", metavar="F", help="--replay: the kept fabric (FILE.fabric)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    policy = "slurm-tree" if args.via == "sbatch" else "gpupool"
    if args.replay:
        doc = replay_kept(Path(args.replay), args.fabric, policy, args.backfill, not args.gpu_reservations,
                          not args.best_fit_reservations)
        print(json.dumps(doc, indent=2))
        return 0
    jobs = trace(args.jobs, args.seed, 8, args.max_nodes, args.span or 1.5 * args.jobs)
    wait_idle()
    began = time.monotonic()
    ids, modes = submit_trace(jobs, args.via, args.switch_wait)
    wait_done(ids, 900 + 10 * args.jobs)
    with tempfile.TemporaryDirectory(prefix="gpupool-reality-") as tmp:
        path = Path(tmp) / "sacct.txt"
        real_nodes = export(ids, path)
        starts = sh(["sacct", "-a", "-X", "-P", "-n", "--noconvert", "-j", ",".join(ids), "--format=JobIDRaw,Start"])
        real_start = {}
        for line in starts.splitlines():
            job_id, start = line.split("|")
            moment = parse_slurm_time(start)
            if moment is not None:
                real_start[job_id] = moment
        doc = compare(path, real_nodes, real_start, policy, modes, args.backfill,
                      whole_hosts=not args.gpu_reservations, by_policy=not args.best_fit_reservations)
        doc["via"] = args.via
        doc["wall_s"] = round(time.monotonic() - began, 1)
        if os.environ.get("GPUPOOL_REALITY_KEEP"):
            from gpupool.config import resolve_fabric_path

            keep = Path(os.environ["GPUPOOL_REALITY_KEEP"].replace("{via}", args.via))
            keep.write_text(path.read_text())
            shutil.copyfile(resolve_fabric_path(None), keep.with_name(keep.name + ".fabric"))
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(f"reality check via {args.via} ({doc['jobs']} jobs over {doc['real_span_s']:.0f} s): simulate's "
              f"{doc['policy']} chose "
              f"the same nodes for {doc['same_nodes']} ({doc['same_nodes_share']:.0%}; multi-node "
              f"{doc['multi_node_same_nodes']}/{doc['multi_node_jobs']}), start order agrees on "
              f"{doc['start_order_agree']}/{doc['start_order_pairs']} job pairs ({doc['start_order_share']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
