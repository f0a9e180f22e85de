"""Which topology Slurm applies to a job, so `plan`, `submit` and `explain` optimise what Slurm honours.

`--topology auto` (the default) asks Slurm when Slurm is read anyway: the partition's `Topology=`
in topology.yaml (25.05+; the file next to `SLURM_CONF`), else topology.yaml's cluster default,
else slurm.conf's `TopologyPlugin`. Under a block topology the blocks are those Slurm loaded
(topology.yaml's block section or topology.conf's BlockName lines) when that file is readable,
else the fabric's own (`gpupool.fabric.blocks.fabric_blocks`, what `fabric export` writes).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gpupool.errors import BadRequest
from gpupool.fabric.blocks import (
    BlockLayout,
    blocks_from_topology_conf,
    blocks_from_topology_yaml,
    fabric_blocks,
)
from gpupool.fabric.compiled import CompiledFabric
from gpupool.fabric.topology_yaml import topology_kind
from gpupool.slurm.port import SlurmClient

TOPOLOGY_CHOICES = ("auto", "tree", "block")


@dataclass(frozen=True)
class TopologyChoice:
    kind: str  # "tree" (hop distances; also flat/dragonfly) or "block"
    why: str
    layout: BlockLayout | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"kind": self.kind, "source": self.why}
        if self.layout is not None:
            doc.update(self.layout.to_json())
        return doc


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except (OSError, UnicodeDecodeError):
        return None


def resolve_topology(compiled: CompiledFabric, wanted: str, partition: str | None,
                     slurm: Callable[[], SlurmClient] | None) -> TopologyChoice:
    """The topology to plan under: `wanted` tree/block, or (auto) what Slurm applies to `partition`."""
    if wanted not in TOPOLOGY_CHOICES:
        raise BadRequest(f"--topology {wanted!r}: choose from {', '.join(TOPOLOGY_CHOICES)}")
    if wanted == "tree":
        return TopologyChoice("tree", "--topology tree")
    if wanted == "block":
        return TopologyChoice("block", "--topology block", fabric_blocks(compiled))
    if slurm is None:
        return TopologyChoice("tree", "no Slurm read: hop distances")
    client = slurm()
    conf = client.config()
    plugin = conf.get("TopologyPlugin", "")
    parts = client.partitions()
    name = partition or next((p for p, f in parts.items() if f.get("Default", "").upper() == "YES"), None)
    record = parts.get(name or "", {})
    conf_dir = os.path.dirname(conf.get("SLURM_CONF", ""))
    yaml_text = _read(os.path.join(conf_dir, "topology.yaml")) if conf_dir else None
    kind = topology_kind(record, plugin, yaml_text)
    wanted_name = record.get("Topology", "")
    if yaml_text is not None:
        why = (f"partition {name}: Topology={wanted_name} in topology.yaml" if wanted_name not in ("", "(null)", "N/A")
               else "topology.yaml's cluster default")
    else:
        why = f"TopologyPlugin={plugin or '(none)'}"
    if kind != "block":
        return TopologyChoice("tree", why) if kind == "tree" else TopologyChoice("tree", f"{why} ({kind}): hop distances")
    if yaml_text is not None:
        named = wanted_name if wanted_name not in ("", "(null)", "N/A") else None
        return TopologyChoice("block", why, blocks_from_topology_yaml(yaml_text, named))
    conf_text = _read(os.path.join(conf_dir, "topology.conf")) if conf_dir else None
    if conf_text is not None and "blockname" in conf_text.lower():
        return TopologyChoice("block", why, blocks_from_topology_conf(conf_text))
    return TopologyChoice("block", f"{why} (blocks from the fabric: Slurm's file is not readable here)",
                          fabric_blocks(compiled))
