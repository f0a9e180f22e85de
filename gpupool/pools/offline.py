"""`pool apply --dry-run --offline`: Slurm's state as files describe it (slurm.conf, gpupool's
partition fragment), so a pools file can be checked on a laptop without slurmctld or slurmdbd.

What the files cannot tell (QOS, accounts, associations and users in slurmdbd; node states; GPU
types and counts without a `Gres=` in slurm.conf) is left empty and named in `unchecked`.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from gpupool.errors import BadInput
from gpupool.fsutil import read_input_bytes
from gpupool.hostlist import expand
from gpupool.pools.fragment import Fragment
from gpupool.pools.slurm_state import LiveState, SlurmNode, parse_kv_line
from gpupool.slurm.gres import gpu_count, gpu_types

# What an offline preview never sees: it lives in slurmdbd or in slurmctld's memory.
ALWAYS_UNCHECKED = (
    "QOS, accounts, associations and users already in slurmdbd (every one is shown as created; "
    "a parent account outside the file is not checked)",
    "node states (down or drained nodes)",
)


@dataclass
class SlurmConf:
    """The parts of slurm.conf a pools file is checked against."""

    path: str
    config: dict[str, str] = field(default_factory=dict)
    nodes: dict[str, SlurmNode] = field(default_factory=dict)
    partitions: dict[str, dict[str, str]] = field(default_factory=dict)
    includes: list[str] = field(default_factory=list)


def read_slurm_conf(path: str) -> SlurmConf:
    """`key=value` settings, `NodeName=` (with DEFAULT) and `PartitionName=` lines; `include`
    lines are listed, not followed (gpupool's own fragment is read separately)."""
    raw = read_input_bytes(path, "slurm.conf")
    conf = SlurmConf(path)
    node_defaults: dict[str, str] = {}
    for number, line in enumerate(raw.decode("utf-8", errors="replace").splitlines(), start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        if text.lower().startswith("include "):
            conf.includes.append(text.split(None, 1)[1].strip())
            continue
        try:
            words = shlex.split(text)
        except ValueError as exc:
            raise BadInput(f"{path}:{number}: cannot parse ({exc})") from None
        record = dict(word.split("=", 1) for word in words if "=" in word)
        if "NodeName" in record:
            if record["NodeName"].upper() == "DEFAULT":
                node_defaults.update({k: v for k, v in record.items() if k != "NodeName"})
                continue
            merged = {**node_defaults, **record}
            gres = merged.get("Gres", "")
            try:
                names = expand(record["NodeName"])
            except ValueError as exc:
                raise BadInput(f"{path}:{number}: NodeName={record['NodeName']}: {exc}") from None
            for name in names:
                conf.nodes[name] = SlurmNode(name=name, gpus=gpu_count(gres), gpu_types=tuple(gpu_types(gres)),
                                             gpus_used=0, state=frozenset())
        elif "PartitionName" in record:
            if record["PartitionName"].upper() != "DEFAULT":
                conf.partitions[record["PartitionName"]] = {k: v for k, v in record.items() if k != "PartitionName"}
        else:
            conf.config.update(record)
    conf.config.setdefault("SLURM_CONF", path)
    return conf


def offline_state(conf: SlurmConf | None, fragment: Fragment) -> tuple[LiveState, list[str]]:
    """A LiveState from the files (empty where they say nothing) and what it could not check."""
    unchecked = list(ALWAYS_UNCHECKED)
    partitions: dict[str, dict[str, str]] = {}
    for name, line in fragment.lines.items():  # gpupool's partitions, as last applied
        record = parse_kv_line(line)
        partitions[name] = {k: v for k, v in record.items() if k != "PartitionName"}
    if conf is None:
        unchecked.append("node names and GPU counts (no --slurm-conf: nodes are not compared with Slurm's, "
                         "and limits are checked only for pools with gpus_per_node)")
        unchecked.append("slurm.conf settings (PreemptType, PriorityType, AccountingStorageEnforce, include of "
                         "the fragment) and partitions gpupool does not manage")
        live = LiveState(cluster="", config={}, nodes={}, partitions=partitions, qos={}, accounts={},
                         associations=[])
        return live, unchecked
    every_node = ",".join(conf.nodes)
    # Nodes=ALL is every node of slurm.conf (so a partition over all nodes overlaps owned pools).
    partitions = {**{name: {**attrs, "Nodes": every_node} if attrs.get("Nodes", "").upper() == "ALL" else attrs
                     for name, attrs in conf.partitions.items()}, **partitions}
    others = [path for path in conf.includes if path != fragment.path]
    if others:
        unchecked.append(f"files included by {conf.path} ({', '.join(others)}): not read")
    if conf.nodes and not any(node.gpus for node in conf.nodes.values()):
        unchecked.append(f"GPU counts: no NodeName line of {conf.path} has Gres=gpu:K")
    live = LiveState(cluster=conf.config.get("ClusterName", ""), config=conf.config, nodes=conf.nodes,
                     partitions=partitions, qos={}, accounts={}, associations=[])
    return live, unchecked
