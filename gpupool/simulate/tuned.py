"""The `slurm-tuned` policy: Slurm's own topology/tree selection with the node weights gpupool sets.

What `gpupool fabric export --format slurm-weights` writes (gpupool.fabric.weights)
(default plan) applied to Slurm 22.05's tree selection as gpupool.placement.slurm_reference models it: the gains a
site gets for jobs submitted with plain `sbatch`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from gpupool.fabric.compiled import CompiledFabric
from gpupool.fabric.weights import DEFAULT_PLAN, plan_weights
from gpupool.placement.model import FreeState, Request
from gpupool.placement.slurm_reference import slurm_tree_reference

Chooser = Callable[[FreeState, Request], "dict[str, int] | None"]


def host_weights(compiled: CompiledFabric, plan: str = DEFAULT_PLAN) -> np.ndarray:
    """Per host, the Weight= of the plan (hosts outside the tree: the heaviest plus one)."""
    weights = plan_weights(compiled, plan)
    heaviest = max(weights.values(), default=0) + 1
    return np.asarray([weights.get(h, heaviest) for h in compiled.host_names], dtype=np.int64)


def tuned_chooser(compiled: CompiledFabric, plan: str = DEFAULT_PLAN) -> Chooser:
    """Slurm topology/tree's choice with the plan's weights set."""
    weights = host_weights(compiled, plan)

    def choose(state: FreeState, request: Request) -> dict[str, int] | None:
        # The earlier --gpus=N model, as the slurm-tree policy (docs/simulate.md's figures stay comparable).
        return slurm_tree_reference(compiled, state, request, weights, gpus_tiers=False)
    return choose
