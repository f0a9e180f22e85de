"""The rate the fabric model expects on this node's HCA ports (matched by node GUID and port)."""

from __future__ import annotations

from collections.abc import Iterable

from gpupool.fabric.model import Fabric, load_fabric
from gpupool.node.facts import HcaPort
from gpupool.node.hca import normalise_guid


def expected_port_rates(fabric: Fabric, ports: Iterable[HcaPort]) -> dict[str, float]:
    """Port subject ("mlx5_0/1") -> Gb/s of the cable the fabric model has on that GUID and port."""
    wanted = {(port.node_guid, port.port): port.subject for port in ports if port.node_guid}
    if not wanted:
        return {}
    by_guid = {normalise_guid(node.guid): index for index, node in enumerate(fabric.nodes) if node.guid}
    nodes = {by_guid[guid]: guid for guid, _ in wanted if guid in by_guid}
    rates: dict[str, float] = {}
    for link in fabric.links:
        for end, port_number in ((link.a, link.a_port), (link.b, link.b_port)):
            guid = nodes.get(end)
            if guid is not None and (guid, port_number) in wanted:
                rates[wanted[(guid, port_number)]] = link.gbps
    return rates


def fabric_port_rates(path: str, ports: Iterable[HcaPort]) -> dict[str, float]:
    return expected_port_rates(load_fabric(path), ports)
