"""Multi-node NVLink domains (GB200/GB300 NVL72 racks): which hosts share one NVLink fabric.

An NVLink domain is a set of hosts whose GPUs reach each other over NVLink switches (one
`(clusterUuid, cliqueId)` in NVML's GPU fabric info); GPU traffic inside it never touches the
InfiniBand fabric. The IB captures gpupool reads carry no NVLink information, so domains enter the
fabric file from `fabric generate --nvlink-domain-hosts N` or from the nodes' own reports
(`fabric nvlink`, gpupool.fabric.nvlink_reports). A host is in at most one domain; a host in
none (PCIe or HGX-only servers) is its own NVLink island.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from gpupool.errors import BadInput, BadRequest, param

if TYPE_CHECKING:
    from gpupool.fabric.compiled_fabric import CompiledFabric

_DOMAIN_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")


@dataclass(frozen=True)
class NvlinkDomain:
    """One NVLink domain: a Slurm-safe name (it becomes a topology/block base block name), its hosts
    in fabric order, and NVML's identity of it when it came from the nodes."""

    name: str
    hosts: tuple[str, ...]
    cluster_uuid: str | None = None
    clique_id: int | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"name": self.name, "hosts": list(self.hosts)}
        if self.cluster_uuid is not None:
            doc["cluster_uuid"] = self.cluster_uuid
        if self.clique_id is not None:
            doc["clique_id"] = self.clique_id
        return doc


def domains_from_json(raw: Any, source: str, known_hosts: set[str]) -> list[NvlinkDomain]:
    """The fabric file's `nvlink_domains` list; bad names, a host not in the fabric, a host in two
    domains and two domains of one name are input errors naming the entry."""
    from gpupool.validate import bounded_int, host_name

    if raw is None:
        return []
    if not isinstance(raw, list):
        raise BadInput(f"{source}: \"nvlink_domains\" must be a list")
    out: list[NvlinkDomain] = []
    owner: dict[str, str] = {}
    for i, item in enumerate(raw):
        what = f"{source}: nvlink_domains[{i}]"
        if not isinstance(item, dict):
            raise BadInput(f"{what}: expected an object")
        name = item.get("name")
        if not isinstance(name, str) or not _DOMAIN_NAME.fullmatch(name):
            raise BadInput(f"{what}: name must be 1-64 letters, digits or ._- (got {str(name)[:40]!r})")
        hosts = item.get("hosts")
        if not isinstance(hosts, list) or not hosts:
            raise BadInput(f"{what}: hosts must be a non-empty list of host names")
        names = tuple(host_name(h, f"{what}: hosts") for h in hosts)
        for h in names:
            if h not in known_hosts:
                raise BadInput(f"{what}: host {h} is not in the fabric")
            if h in owner:
                raise BadInput(f"{what}: host {h} is already in NVLink domain {owner[h]}")
            owner[h] = name
        uuid = item.get("cluster_uuid")
        if uuid is not None and (not isinstance(uuid, str) or len(uuid) > 64):
            raise BadInput(f"{what}: cluster_uuid must be a string of at most 64 characters")
        clique = item.get("clique_id")
        out.append(NvlinkDomain(name=name, hosts=names, cluster_uuid=uuid,
                                clique_id=None if clique is None else bounded_int(clique, f"{what}: clique_id", 0,
                                                                                  (1 << 32) - 1)))
    seen: set[str] = set()
    for d in out:
        if d.name in seen:
            raise BadInput(f"{source}: two NVLink domains are named {d.name}")
        seen.add(d.name)
    return out


def generated_domains(host_switches: Sequence[tuple[str, frozenset[int]]], hosts_per_domain: int,
                      prefix: str = "nvl") -> list[NvlinkDomain]:
    """Domains of `hosts_per_domain` consecutive hosts under the same leaf switches (an NVL72 rack's
    compute trays share their top-of-rack leaves): hosts in fabric order, grouped by the switch set
    they plug into; a group whose size is not a multiple of N is a usage error."""
    if hosts_per_domain < 1:
        raise BadRequest(f"{param('hosts_per_domain')} must be at least 1 (got {hosts_per_domain})")
    groups: dict[frozenset[int], list[str]] = {}
    for host, switches in host_switches:
        groups.setdefault(switches, []).append(host)
    total = sum(len(v) // hosts_per_domain for v in groups.values())
    width = max(2, len(str(total)))
    out: list[NvlinkDomain] = []
    for hosts in groups.values():
        if len(hosts) % hosts_per_domain:
            raise BadRequest(f"{param('hosts_per_domain')} {hosts_per_domain} does not divide the {len(hosts)} hosts "
                             f"under one leaf ({hosts[0]}...): a domain would straddle IB leaves")
        for start in range(0, len(hosts), hosts_per_domain):
            out.append(NvlinkDomain(name=f"{prefix}{len(out) + 1:0{width}d}",
                                    hosts=tuple(hosts[start:start + hosts_per_domain])))
    return out


def host_domain_array(host_names: Sequence[str], domains: Sequence[NvlinkDomain]) -> tuple[np.ndarray, list[str]]:
    """Per compute host its domain index (-1: none) and the names of the domains that keep a
    compute host (a domain whose hosts were all set apart drops out)."""
    index = {h: i for i, h in enumerate(host_names)}
    out = np.full(len(host_names), -1, dtype=np.int32)
    names: list[str] = []
    for d in domains:
        members = [index[h] for h in d.hosts if h in index]
        if members:
            out[members] = len(names)
            names.append(d.name)
    return out, names


def domains_touched(host_domain: np.ndarray, hosts: np.ndarray) -> tuple[int, list[int]]:
    """(NVLink islands an allocation spans, the domain indices among them): each domain counts once,
    each host outside any domain counts as its own island."""
    dom = host_domain[np.asarray(hosts, dtype=np.int64)] if host_domain.size else np.full(len(hosts), -1)
    used = sorted({int(d) for d in dom.tolist() if d >= 0})
    return len(used) + int((dom < 0).sum()), used


def domains_across_leaves(compiled: CompiledFabric) -> list[str]:
    """Domains whose hosts sit under more than one IB leaf group (placement cannot nest them)."""
    leaves: dict[int, set[int]] = {}
    for h, d in enumerate(compiled.host_domain.tolist()):
        if d >= 0:
            leaves.setdefault(d, set()).add(int(compiled.host_tree_leaf[h]))
    return [compiled.domain_names[d] for d, seen in sorted(leaves.items()) if len(seen) > 1]
