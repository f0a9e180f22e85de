#!/usr/bin/env python3
"""How often the slurm-tree emulation (placement.slurm_reference) picks the very nodes real Slurm
picks: on random fragmented states of the testbed, compare its node set with `sbatch --test-only`.

    eval "$(scripts/testbed env)"
    PYTHONPATH=. .venv/bin/python scripts/calibrate_slurm_tree.py --states 10 --requests 10 [--seed 1] [--form gpus] \
        [--json]

States are made as scripts/bench_slurm_quality.py makes them (one filler job per chosen host with a
random GPU count). Requests are `-N n --gres=gpu:k` (n >= 2, so topology matters; `--form nodes`, the
default) or, with `--form gpus`, sbatch's whole-job count `--gpus=N` (N from 1 to 8 x --max-nodes),
that Slurm can start now. A case agrees when both choose the same set of nodes. Prints the agreement and every
disagreement (state, request, Slurm's nodes, the emulation's nodes). Exit 1 below --target.

--weights checks the emulation's node weights (Slurm's Weight=): `random` draws a weight 1-3 per
node for every state, `pack-leaf` / `leaf-fill` use gpupool's plan (gpupool.fabric.weights); they
are set live with `scontrol update NodeName=... Weight=N` and put back to 1 at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

from scripts.bench_slurm_quality import clear_fillers, fragment

REPO = Path(__file__).resolve().parent.parent

WEIGHTS = ("none", "random", "pack-leaf", "leaf-fill")


def _set_weights(hosts: list[str], weights: list[int]) -> None:
    """Set node weights live, one scontrol call per weight."""
    import subprocess

    from gpupool.hostlist import fold as fold_hostlist

    by_weight: dict[int, list[str]] = {}
    for host, w in zip(hosts, weights, strict=True):
        by_weight.setdefault(w, []).append(host)
    for w, names in sorted(by_weight.items()):
        subprocess.run(["scontrol", "update", f"NodeName={fold_hostlist(names)}", f"Weight={w}"], check=True,
                       capture_output=True, text=True, timeout=60)


def calibrate(states: int, requests: int, seed: int, busy_share: float = 0.6, max_nodes: int = 8,
              weights_mode: str = "none", form: str = "nodes") -> dict[str, Any]:
    import numpy as np

    from gpupool.config import resolve_fabric_path
    from gpupool.fabric.compiled import load_compiled
    from gpupool.hostlist import fold as fold_hostlist
    from gpupool.placement.model import FreeState, Request
    from gpupool.placement.slurm_reference import slurm_tree_reference
    from gpupool.slurm.commands import CommandsClient
    from gpupool.slurm.freestate import capacity_gpus, free_gpus_for_request

    client = CommandsClient(timeout=30)
    compiled = load_compiled(resolve_fabric_path(None))
    weights: np.ndarray | None = None
    if weights_mode in ("pack-leaf", "leaf-fill"):
        from gpupool.simulate.tuned import host_weights

        weights = host_weights(compiled, weights_mode)
    rng = random.Random(seed)
    cases: list[dict[str, Any]] = []
    not_started = 0
    free_states: list[dict[str, int]] = []  # per state, for replaying the comparison offline
    with tempfile.TemporaryDirectory(prefix="gpupool-calibrate-") as tmp:
        script = os.path.join(tmp, "job.sh")
        Path(script).write_text("#!/bin/sh\nsleep 1\n")
        try:
            for state in range(states):
                clear_fillers(client)
                if weights_mode == "random":
                    weights = np.asarray([rng.randint(1, 3) for _ in compiled.host_names])
                if weights is not None:
                    _set_weights(list(compiled.host_names), weights.tolist())
                fragment(client, rng, busy_share)
                states_now = client.node_states()
                free = FreeState.from_dict(compiled, free_gpus_for_request(states_now), ignore_unknown=True)
                # Each node's configured GPUs, as `plan` knows them (the --gpus=N model needs a node's size).
                totals = capacity_gpus(states_now, usable_only=False)
                free.total_gpus = np.asarray([totals.get(h, 0) for h in compiled.host_names], dtype=np.int32)
                free_states.append(free.to_dict(compiled))
                for _ in range(requests):
                    if form == "gpus":
                        gpus = rng.randint(1, 8 * max_nodes)
                        shape: dict[str, int] = {"gpus": gpus}
                        args, request = [f"--gpus={gpus}"], Request(gpus=gpus)
                    else:
                        nodes = rng.randint(2, max_nodes)
                        per_node = rng.choice([1, 2, 4, 4, 8, 8])
                        shape = {"nodes": nodes, "gpus_per_node": per_node}
                        args, request = [f"--nodes={nodes}", f"--gres=gpu:{per_node}"], Request(nodes=nodes,
                                                                                               gpus_per_node=per_node)
                    test = client.test_only([*args, "--cpus-per-task=1", "--mem=100"], script)
                    if not test.starts_now:
                        not_started += 1
                        continue
                    ours = slurm_tree_reference(compiled, free, request, weights)
                    slurm_nodes = sorted(test.nodes)
                    ours_nodes = sorted(ours or {})
                    cases.append({"state": state, **shape, "agree": slurm_nodes == ours_nodes,
                                  "slurm": fold_hostlist(slurm_nodes),
                                  "emulation": fold_hostlist(ours_nodes) if ours_nodes else ""})
                print(f"state {state}: {len(cases)} cases", file=sys.stderr)
        finally:
            clear_fillers(client)
            if weights is not None:
                _set_weights(list(compiled.host_names), [1] * compiled.n_hosts)
    agree = sum(c["agree"] for c in cases)
    return {"form": form, "busy_share": busy_share, "weights": weights_mode, "states": states, "cases": len(cases), "agree": agree,
            "agreement": round(agree / len(cases), 4) if cases else None, "slurm_would_not_start": not_started,
            "disagreements": [c for c in cases if not c["agree"]], "cases_all": cases, "free_states": free_states}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--states", type=int, default=10)
    parser.add_argument("--requests", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument("--weights", choices=WEIGHTS, default="none", help="node weights to set and emulate")
    parser.add_argument("--busy-share", type=float, default=0.6, help="share of hosts given a filler job")
    parser.add_argument("--form", choices=("nodes", "gpus"), default="nodes",
                        help="request form: -N n --gres=gpu:k (nodes) or --gpus=N (gpus)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    doc = calibrate(args.states, args.requests, args.seed, weights_mode=args.weights, form=args.form,
                    busy_share=args.busy_share)
    if args.json:
        print(json.dumps(doc, indent=2))
    else:
        print(f"slurm-tree emulation (weights: {doc['weights']}) vs sbatch --test-only: {doc['agree']}/{doc['cases']} cases choose the same "
              f"nodes ({doc['agreement']}); {doc['slurm_would_not_start']} requests Slurm would not start now")
        for c in doc["disagreements"]:
            shape = f"--gpus={c['gpus']}" if "gpus" in c else f"-N {c['nodes']} --gres=gpu:{c['gpus_per_node']}"
            print(f"  state {c['state']} {shape}: slurm {c['slurm']}, "
                  f"emulation {c['emulation'] or '(none)'}")
    return 0 if doc["agreement"] is not None and doc["agreement"] >= args.target else 1


if __name__ == "__main__":
    sys.exit(main())
