"""Slurm's topology.yaml (25.05+): refuse what slurmctld would refuse, and say which topology a
partition uses (its `Topology=`, else the cluster default, else `TopologyPlugin`).

Refused (BadInput, exit 4), before gpupool writes such a file: no topology at all (an empty
topology.yaml crash-loops slurmctld 25.11), two topologies of one name, two switches or blocks of
one name in a topology, a topology with no tree/block/flat section, a node in two blocks of one
topology, and more than one cluster_default.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gpupool.errors import BadInput
from gpupool.hostlist import expand

KINDS = ("tree", "block", "flat")
_PLUGIN_KIND = {"topology/tree": "tree", "topology/block": "block", "topology/flat": "flat",
                "topology/default": "flat", "topology/none": "flat", "": "flat"}


def _nodes(value: Any, where: str) -> list[str]:
    if value in (None, ""):
        return []
    try:
        return expand(str(value))  # the one hostlist reader: capped, no node groups
    except BadInput as exc:
        raise BadInput(f"topology.yaml: {where}: cannot read node list {value!r} ({exc.message})") from None


def _kind(topology: Mapping[str, Any]) -> str | None:
    return next((kind for kind in KINDS if topology.get(kind) not in (None, False)), None)


def topologies(text: str) -> dict[str, str]:
    """Check a topology.yaml as slurmctld would; returns {topology name: "tree"|"block"|"flat"}."""
    import yaml  # only commands that meet a topology.yaml pay for PyYAML

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise BadInput(f"topology.yaml: not YAML ({exc})") from None
    if not doc:
        raise BadInput("topology.yaml: no topology (Slurm refuses an empty topology.yaml)")
    if not isinstance(doc, list) or not all(isinstance(t, Mapping) for t in doc):
        raise BadInput("topology.yaml: expected a list of topologies (- topology: NAME)")
    kinds: dict[str, str] = {}
    defaults = []
    for topology in doc:
        name = str(topology.get("topology") or "")
        if not name:
            raise BadInput("topology.yaml: a topology without a name")
        if name in kinds:
            raise BadInput(f"topology.yaml: topology {name!r} defined twice")
        kind = _kind(topology)
        if kind is None:
            raise BadInput(f"topology.yaml: topology {name!r} has no tree, block or flat section")
        kinds[name] = kind
        if topology.get("cluster_default"):
            defaults.append(name)
        if kind == "tree":
            _check_items(name, topology["tree"], "switches", "switch", nodes_once=False)
        elif kind == "block":
            _check_items(name, topology["block"], "blocks", "block", nodes_once=True)
    if len(defaults) > 1:
        raise BadInput(f"topology.yaml: more than one cluster_default ({', '.join(defaults)})")
    return kinds


def _check_items(topology: str, section: Any, key: str, item: str, *, nodes_once: bool) -> None:
    items = section.get(key) if isinstance(section, Mapping) else None
    if not items or not isinstance(items, list):
        raise BadInput(f"topology.yaml: topology {topology!r} lists no {key}")
    names: set[str] = set()
    owner: dict[str, str] = {}
    for entry in items:
        name = str(entry.get(item) or "") if isinstance(entry, Mapping) else ""
        if not name:
            raise BadInput(f"topology.yaml: topology {topology!r}: a {item} without a name")
        if name in names:
            raise BadInput(f"topology.yaml: topology {topology!r}: {item} {name!r} defined twice")
        names.add(name)
        if not nodes_once:
            continue
        for node in _nodes(entry.get("nodes"), f"{item} {name}"):
            if node in owner:
                raise BadInput(f"topology.yaml: topology {topology!r}: node {node} is in "
                                 f"{item}s {owner[node]!r} and {name!r}")
            owner[node] = name


def topology_kind(partition: Mapping[str, str], topology_plugin: str,
                  yaml_text: str | None = None) -> str:
    """Which topology applies to a partition (an `scontrol -o show partition` record): its
    `Topology=` in topology.yaml, else topology.yaml's cluster default (or its first topology),
    else slurm.conf's `TopologyPlugin`."""
    if yaml_text is not None:
        kinds = topologies(yaml_text)
        wanted = partition.get("Topology", "")
        if wanted and wanted not in ("(null)", "N/A"):
            if wanted not in kinds:
                raise BadInput(f"partition {partition.get('PartitionName', '?')}: Topology="
                                 f"{wanted} is not in topology.yaml")
            return kinds[wanted]
        import yaml

        doc = yaml.safe_load(yaml_text)
        default = next((str(t["topology"]) for t in doc if t.get("cluster_default")), str(doc[0]["topology"]))
        return kinds[default]
    return _PLUGIN_KIND.get(topology_plugin.strip(), "flat" if not topology_plugin else
                            topology_plugin.removeprefix("topology/"))
