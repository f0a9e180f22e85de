"""What shape a compiled fabric has (`CompiledFabric.kind`), as an enum whose values are the strings
gpupool has always written (JSON documents, the compiled-fabric cache, topology.conf comments)."""

from __future__ import annotations

from enum import StrEnum


class FabricKind(StrEnum):
    """fat-tree: every switch cable joins adjacent levels; dragonfly: dense groups joined by sparse
    global links; graph: anything else (hop distances still hold, no tree Slurm could mirror)."""

    FAT_TREE = "fat-tree"
    DRAGONFLY = "dragonfly"
    GRAPH = "graph"
