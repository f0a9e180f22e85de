"""`gpupool status` as a use case: fragmentation of the free GPUs now (fabric + free state, as
`gpupool plan` gets them). Kept apart from `gpupool.app.observe` (accounting, pools, metrics, HTML),
which re-exports these, so `status` imports none of that (issue #26: tests/unit/test_import_budget.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from gpupool.config import Config, resolve_fabric_path

if TYPE_CHECKING:
    from gpupool.fabric.compiled import CompiledFabric
    from gpupool.observe.fragmentation import Fragmentation
    from gpupool.placement.model import FreeState
    from gpupool.slurm.port import SlurmClient

Warn = Callable[[str], None]


def load_fabric_and_free(config: Config, slurm: Callable[[], SlurmClient], fabric_path: str | None,
                         free_path: str | None, partition: str | None, *, ignore_unknown: bool = False,
                         warn: Warn | None = None, gpus_per_node: int | None = None) -> tuple[CompiledFabric, FreeState]:
    """The compiled fabric and the free state, exactly as `gpupool plan` obtains them; `gpus_per_node`
    (the commands' --gpus-per-node K, a whole host's GPUs) refuses a free file saying more on a host."""
    from gpupool.app.plan import free_state_from_slurm, load_free_file
    from gpupool.fabric.compiled import load_compiled
    from gpupool.placement.model import Request

    compiled = load_compiled(resolve_fabric_path(fabric_path, config))
    if free_path:
        return compiled, load_free_file(free_path, compiled, ignore_unknown=ignore_unknown, gpus_per_host=gpus_per_node,
                                        size_option="--gpus-per-node")
    request = Request(gpus=1, partition=partition)
    return compiled, free_state_from_slurm(slurm().node_states(), compiled, request, warn=warn)


def fragmentation(compiled: CompiledFabric, free: FreeState, shapes: str | None,
                  gpus_per_node: int | None) -> Fragmentation:
    """Every fragmentation figure for the `--shapes` list (K from the option, else Slurm's GPUs per node)."""
    from gpupool.observe.fragmentation import gpus_per_node_of, measure, parse_shapes

    k = gpus_per_node_of(free, gpus_per_node)
    return measure(compiled, free, parse_shapes(shapes, k), k)


def check_shapes(shapes: str | None, gpus_per_node: int | None) -> None:
    """Bad `--shapes` are a usage error before any file or Slurm is read."""
    from gpupool.observe.fragmentation import parse_shapes

    parse_shapes(shapes, gpus_per_node or 1)


def status(config: Config, slurm: Callable[[], SlurmClient], *, fabric_path: str | None, free_path: str | None,
           partition: str | None, ignore_unknown: bool, shapes: str | None, gpus_per_node: int | None,
           warn: Warn | None = None) -> Fragmentation:
    """`gpupool status`: fragmentation of the free GPUs now."""
    check_shapes(shapes, gpus_per_node)
    compiled, free = load_fabric_and_free(config, slurm, fabric_path, free_path, partition,
                                          ignore_unknown=ignore_unknown, warn=warn, gpus_per_node=gpus_per_node)
    return fragmentation(compiled, free, shapes, gpus_per_node)
