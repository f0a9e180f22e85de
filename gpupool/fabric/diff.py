"""What changed between two views of one fabric (captures of any format or fabric files).

Nodes are matched by GUID (the S-/H- id), never by name, so renamed hosts stay the same hosts and
their cables do not move. A switch whose GUID vanished while a new GUID took its place (most of its
cables now end on the new one, same ports) is a replaced switch; its cables are compared through the
replacement. Cables are compared by their two ends (node GUID, port)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from gpupool.fabric.model import ROLE_AGGREGATION, ROLE_UNNAMED, Fabric, natural_key

DIFF_KEYS = ("hosts_renamed", "hosts_added", "hosts_removed", "links_added", "links_removed", "links_changed",
             "switches_replaced", "levels_changed")

End = tuple[str, int]  # (node key, port)


@dataclass
class FabricDiff:
    hosts_renamed: list[dict[str, Any]] = field(default_factory=list)
    hosts_added: list[str] = field(default_factory=list)
    hosts_removed: list[str] = field(default_factory=list)
    links_added: list[dict[str, Any]] = field(default_factory=list)
    links_removed: list[dict[str, Any]] = field(default_factory=list)
    links_changed: list[dict[str, Any]] = field(default_factory=list)
    switches_replaced: list[dict[str, Any]] = field(default_factory=list)
    levels_changed: list[dict[str, Any]] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any(getattr(self, key) for key in DIFF_KEYS)

    def to_json(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in DIFF_KEYS} | {"changed": self.changed}


def node_key(fabric: Fabric, index: int) -> str:
    node = fabric.nodes[index]
    return node.guid or node.id


def _host_guids(fabric: Fabric) -> dict[str, list[str]]:
    """Host name -> GUIDs of its HCAs (every named host: compute, service or excluded)."""
    out: dict[str, list[str]] = {}
    for i, node in enumerate(fabric.nodes):
        if node.type == "ca" and node.host and node.role not in (ROLE_UNNAMED, ROLE_AGGREGATION):
            out.setdefault(node.host, []).append(node_key(fabric, i))
    return {h: sorted(g) for h, g in out.items()}


class _View:
    """One side: node names, cable ends and rates by GUID."""

    def __init__(self, fabric: Fabric) -> None:
        self.fabric = fabric
        self.index = {node_key(fabric, i): i for i in range(len(fabric.nodes))}
        self.switches = {node_key(fabric, i) for i in fabric.switch_indices()}
        self.peer: dict[End, End] = {}
        self.rate: dict[frozenset[End], tuple[str, str]] = {}
        for link in fabric.links:
            a, b = (node_key(fabric, link.a), link.a_port), (node_key(fabric, link.b), link.b_port)
            self.peer[a], self.peer[b] = b, a
            self.rate[frozenset((a, b))] = (link.width, link.speed)
        self.labels: dict[str, str] = fabric.meta.get("port_labels") or {}

    def end(self, end: End) -> dict[str, Any]:
        node = self.fabric.nodes[self.index[end[0]]]
        out: dict[str, Any] = {"node": node.name or node.id, "guid": end[0], "port": end[1]}
        label = self.labels.get(f"{node.id}:{end[1]}")
        if label:
            out["label"] = label
        return out


def diff_fabrics(old: Fabric, new: Fabric) -> FabricDiff:
    result = FabricDiff()
    a, b = _View(old), _View(new)
    _hosts(result, old, new)
    replaced = _replaced_switches(a, b)  # new key -> old key
    for new_key, old_key in sorted(replaced.items(), key=lambda kv: natural_key(b.end((kv[0], 0))["node"])):
        result.switches_replaced.append({"old": {"name": a.end((old_key, 0))["node"], "guid": old_key},
                                         "new": {"name": b.end((new_key, 0))["node"], "guid": new_key}})

    def as_old(end: End) -> End:
        return (replaced.get(end[0], end[0]), end[1])

    new_peer = {as_old(e): as_old(p) for e, p in b.peer.items()}
    back = {v: k for k, v in replaced.items()}

    def new_end(end: End) -> dict[str, Any]:
        return b.end((back.get(end[0], end[0]), end[1]))

    old_cables = {frozenset((e, p)) for e, p in a.peer.items()}
    new_cables = {frozenset((e, p)) for e, p in new_peer.items()}
    moved_old: set[frozenset[End]] = set()
    moved_new: set[frozenset[End]] = set()
    # A moved cable keeps one end and lands elsewhere with the other.
    for cable in sorted(old_cables - new_cables, key=_cable_order):
        for fixed in sorted(cable):
            other = next(iter(cable - {fixed})) if len(cable) == 2 else fixed
            landed = new_peer.get(fixed)
            if landed is None or landed == other:
                continue
            new_cable = frozenset((fixed, landed))
            if new_cable in old_cables or new_cable in moved_new:
                continue
            moved_old.add(cable)
            moved_new.add(new_cable)
            before, after = a.end(other), new_end(landed)
            # The same HCA name on the same port with a new GUID: a card was swapped, no cable moved.
            swapped = before["node"] == after["node"] and before["port"] == after["port"] \
                and old.nodes[a.index[other[0]]].type == "ca"
            result.links_changed.append({"change": "hca-replaced" if swapped else "moved", "end": a.end(fixed),
                                         "old_peer": before, "new_peer": after})
            break
    for cable in sorted(old_cables - new_cables - moved_old, key=_cable_order):
        x, y = _pair(cable)
        result.links_removed.append({"a": a.end(x), "b": a.end(y), "rate": "".join(a.rate[frozenset((x, y))])})
    for cable in sorted(new_cables - old_cables - moved_new, key=_cable_order):
        x, y = _pair(cable)
        rate = b.rate[frozenset((_to_new(x, back), _to_new(y, back)))]
        result.links_added.append({"a": new_end(x), "b": new_end(y), "rate": "".join(rate)})
    for cable in sorted(old_cables & new_cables, key=_cable_order):
        x, y = _pair(cable)
        old_rate = a.rate[frozenset((x, y))]
        new_rate = b.rate[frozenset((_to_new(x, back), _to_new(y, back)))]
        if old_rate != new_rate:
            result.links_changed.append({"change": "rate", "a": a.end(x), "b": a.end(y),
                                         "old": "".join(old_rate), "new": "".join(new_rate),
                                         "width_changed": old_rate[0] != new_rate[0],
                                         "speed_changed": old_rate[1] != new_rate[1]})
    result.levels_changed = _levels(old, new, a, b, replaced)
    return result


def _to_new(end: End, back: dict[str, str]) -> End:
    return (back.get(end[0], end[0]), end[1])


def _pair(cable: frozenset[End]) -> tuple[End, End]:
    ends = sorted(cable)
    return (ends[0], ends[-1])


def _cable_order(cable: frozenset[End]) -> tuple[Any, ...]:
    return tuple(sorted(cable))


def _hosts(result: FabricDiff, old: Fabric, new: Fabric) -> None:
    old_hosts, new_hosts = _host_guids(old), _host_guids(new)
    owner_new = {g: h for h, guids in new_hosts.items() for g in guids}
    renamed_from: set[str] = set()
    renamed_to: set[str] = set()
    for host, guids in sorted(old_hosts.items(), key=lambda kv: natural_key(kv[0])):
        targets = sorted({owner_new[g] for g in guids if g in owner_new} - {host}, key=natural_key)
        for target in targets:
            shared = [g for g in guids if owner_new.get(g) == target]
            result.hosts_renamed.append({"old": host, "new": target, "guids": shared})
            renamed_from.add(host)
            renamed_to.add(target)
    result.hosts_added = sorted(set(new_hosts) - set(old_hosts) - renamed_to, key=natural_key)
    result.hosts_removed = sorted(set(old_hosts) - set(new_hosts) - renamed_from, key=natural_key)


def _replaced_switches(a: _View, b: _View) -> dict[str, str]:
    """New switch key -> old switch key it replaces: the old one's cables (port, far GUID) mostly
    end on the new one now."""
    gone = a.switches - b.switches
    came = b.switches - a.switches
    if not gone or not came:
        return {}
    candidates: list[tuple[int, str, str]] = []
    for new_key in came:
        new_ports = {(e[1], p[0]) for e, p in b.peer.items() if e[0] == new_key}
        for old_key in gone:
            old_ports = {(e[1], p[0]) for e, p in a.peer.items() if e[0] == old_key}
            same = len(new_ports & old_ports)
            if old_ports and 2 * same >= len(old_ports):
                candidates.append((-same, old_key, new_key))
    replaced: dict[str, str] = {}
    used: set[str] = set()
    for _score, old_key, new_key in sorted(candidates):
        if old_key not in used and new_key not in replaced:
            replaced[new_key] = old_key
            used.add(old_key)
    return replaced


def _levels(old: Fabric, new: Fabric, a: _View, b: _View, replaced: dict[str, str]) -> list[dict[str, Any]]:
    from gpupool.fabric.compiled import compile_fabric

    def levels(fabric: Fabric) -> dict[str, int]:
        compiled = compile_fabric(fabric)
        return {node_key(fabric, int(n)): int(lv) for n, lv in zip(compiled.switch_node.tolist(),
                                                                     compiled.switch_level.tolist(), strict=True)}

    before, after = levels(old), levels(new)
    out = []
    for new_key, level in after.items():
        old_key = replaced.get(new_key, new_key)
        if old_key in before and before[old_key] != level:
            out.append({"switch": b.end((new_key, 0))["node"], "guid": new_key, "old": before[old_key], "new": level})
    return sorted(out, key=lambda d: natural_key(d["switch"]))


def load_side(path: str) -> Fabric:
    """A fabric file (JSON) or a capture of any format fabric.captures reads."""
    from gpupool.fabric.captures import parse_capture
    from gpupool.fabric.discover import read_text_file
    from gpupool.fabric.model import fabric_from_dict
    from gpupool.validate import load_json_text

    text = read_text_file(path, "fabric file or capture")
    if re.match(r"\s*\{\s*(\"|\}|$)", text):  # JSON, not an ibdiagnet2.lst line (`{ SW Ports:...`)
        return fabric_from_dict(load_json_text(text, path, problem="not a JSON fabric file"), path)
    return parse_capture(text, path)
