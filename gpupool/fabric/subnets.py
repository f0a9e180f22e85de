"""Several captures, one model: one capture per subnet (multi-plane, compute + storage designs).

Hosts are joined by name (the host part of the node description); a host's HCAs on subnet k get
rail k, so a host on several subnets is a multi-rail host of the model (fabric.compiled). A host
seen on only some subnets is reported as a `host-partial-subnets` warning (fabric audit shows it)."""

from __future__ import annotations

from gpupool.errors import BadInput
from gpupool.fabric.model import ROLE_HCA, ROLE_SERVICE, Fabric, Link, natural_key, unique_names
from gpupool.hostlist import fold


def merge_subnets(fabrics: list[Fabric], sources: list[str]) -> Fabric:
    """One fabric from one fabric per subnet (same order as SOURCES)."""
    if len(fabrics) == 1:
        return fabrics[0]
    owner: dict[str, int] = {}
    guid_owner: dict[str, int] = {}
    merged = Fabric(meta={"source": "ibnetdiscover", "subnets": []})
    for k, (fab, source) in enumerate(zip(fabrics, sources, strict=True)):
        offset = len(merged.nodes)
        for node in fab.nodes:
            first = owner.setdefault(node.id, k)
            if first != k:
                raise BadInput(f"{source}: node {node.id} is also in {sources[first]}: "
                                 "give each subnet once (two captures of one subnet cannot be joined)")
            if node.guid:
                first = guid_owner.setdefault(node.guid, k)
                if first != k:
                    raise BadInput(f"{source}: GUID {node.guid} is also in {sources[first]}")
            if node.type == "ca":
                node.rail = k
            merged.nodes.append(node)
        merged.links += [Link(lk.a + offset, lk.a_port, lk.b + offset, lk.b_port, lk.width, lk.speed) for lk in fab.links]
        merged.warnings += [f"{w} (subnet {k + 1}: {source})" if source not in w else w for w in fab.warnings]
        merged.meta["subnets"].append({"input": source, "format": fab.meta.get("format", fab.meta.get("source")),
                                       "hosts": len(fab.hosts()), "switches": len(fab.switch_indices())})
        for key in ("port_labels",):
            if key in fab.meta:
                merged.meta.setdefault(key, {}).update(fab.meta[key])
        if fab.meta.get("service_hosts"):
            merged.meta["service_hosts"] = merged.meta.get("service_hosts", 0) + fab.meta["service_hosts"]
    # Names stay unique across subnets (two subnets may each have a `leaf-01`).
    switch_names = unique_names([n.name for n in merged.nodes if n.type == "switch"])
    hca_names = unique_names([n.name for n in merged.nodes if n.type != "switch"])
    it_sw, it_ca = iter(switch_names), iter(hca_names)
    for node in merged.nodes:
        node.name = next(it_sw) if node.type == "switch" else next(it_ca)
    _report_partial_hosts(merged, sources)
    return merged


def _report_partial_hosts(fabric: Fabric, sources: list[str]) -> None:
    seen: dict[str, set[int]] = {}
    for node in fabric.nodes:
        if node.role in (ROLE_HCA, ROLE_SERVICE) and node.host:
            seen.setdefault(node.host, set()).add(node.rail)
    everywhere = set(range(len(sources)))
    by_missing: dict[tuple[int, ...], list[str]] = {}
    for host, subnets in seen.items():
        if subnets != everywhere:
            by_missing.setdefault(tuple(sorted(everywhere - subnets)), []).append(host)
    for missing, hosts in sorted(by_missing.items()):
        hosts.sort(key=natural_key)
        names = ", ".join(sources[k] for k in missing)
        fabric.warnings.append(f"host-partial-subnets: {len(hosts)} host(s) have no HCA on subnet(s) "
                               f"{', '.join(str(k + 1) for k in missing)} ({names}): {_fold(hosts)}")
    fabric.meta["partial_hosts"] = sum(len(h) for h in by_missing.values())


def _fold(names: list[str]) -> str:
    try:
        return fold(names)
    except BadInput:
        return ",".join(names)
