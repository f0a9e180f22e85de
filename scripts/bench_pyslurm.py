#!/usr/bin/env python3
"""Per-call speed of the pyslurm backend over the commands backend on a real Slurm 25.11 cluster.

    PYTHONPATH=. .venv/bin/python scripts/bench_pyslurm.py [--calls 30] [--jobs 12] [--port-base 46000] [--json]

Needs scripts/build-slurm-25.11 (Slurm 25.11.7 + pyslurm 25.11.2, cached outside the clone). Brings
up the 8-node loopback cluster of tests/support/slurm2511.py, submits `--jobs` GPU jobs so the
answers are not empty, then times `node_states()` and `jobs()` through each backend, `--calls` times
each after one warm-up call (the pyslurm child is forked and imports pyslurm once per client, outside
the timed calls; the commands pay a process start per call, which is what they cost in gpupool).
Prints the median milliseconds per call and the speedup (commands / pyslurm), then stops the cluster.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from gpupool.slurm.client import make_client
from tests.support.slurm2511 import Cluster, built, prefixes

REPO = Path(__file__).resolve().parents[1]


def median_ms(call: Callable[[], object], calls: int) -> float:
    call()  # warm-up: the first call pays imports and connection setup
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--jobs", type=int, default=12)
    parser.add_argument("--port-base", type=int, default=int(os.environ.get("GPUPOOL_TESTBED_PYTEST_PORT_BASE", 46000)))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    missing = built()
    if missing:
        print(f"bench_pyslurm: error: {missing}", file=sys.stderr)
        return 3
    prefix, pydir = prefixes()
    if str(pydir) not in sys.path:  # the pyslurm built outside the clone: run again with it on PYTHONPATH
        paths = [str(pydir), *(p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p)]
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "PYTHONPATH": os.pathsep.join(paths)})
    with tempfile.TemporaryDirectory(prefix="bp2511-") as tmp:
        cluster = Cluster(root=Path(tmp), port_base=args.port_base, prefix=prefix)
        os.environ.update(cluster.env())
        try:
            cluster.start()
            for i in range(args.jobs):
                subprocess.run(["sbatch", "--parsable", f"--output={tmp}/jobs/%j.out", "--gres=gpu:1",
                                f"--job-name=bench{i}", "--wrap", "sleep 600"], check=True, capture_output=True)
            results: dict[str, dict[str, float]] = {}
            for backend in ("commands", "pyslurm"):
                client = make_client(timeout=10, backend=backend)
                results[backend] = {"node_states": median_ms(client.node_states, args.calls),
                                    "jobs": median_ms(client.jobs, args.calls)}
        finally:
            cluster.stop()
    doc = {call: {"commands_ms": round(results["commands"][call], 2), "pyslurm_ms": round(results["pyslurm"][call], 2),
                  "speedup": round(results["commands"][call] / results["pyslurm"][call], 2)}
           for call in ("node_states", "jobs")}
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        for call, row in doc.items():
            print(f"{call:12s} commands {row['commands_ms']:8.2f} ms  pyslurm {row['pyslurm_ms']:8.2f} ms  "
                  f"speedup {row['speedup']:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
