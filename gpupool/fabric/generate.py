"""Fabric generators for planning and for the testbed: fat-trees (2/3 levels, rails) and dragonfly."""

from __future__ import annotations

from gpupool.errors import BadInput, BadRequest, param
from gpupool.fabric.model import ROLE_HCA, ROLE_SWITCH, Fabric, Link, Node
from gpupool.fabric.nvlink import generated_domains

SWITCH_GUID_BASE = 0x0002C90300000000
CA_GUID_BASE = 0x0002C90400000000
# ibsim reserves nports+1 GUIDs per CA; keep CA GUIDs 16 apart so port GUIDs never collide.
CA_GUID_STRIDE = 16


class _Builder:
    def __init__(self, prefix: str, speed: str, width: str) -> None:
        self.nodes: list[Node] = []
        self.links: list[Link] = []
        self.used_ports: list[int] = []
        self.prefix = prefix
        self.speed = speed
        self.width = width
        self.n_switches = 0
        self.n_cas = 0

    def switch(self, name: str, group: int = -1) -> int:
        guid = SWITCH_GUID_BASE + self.n_switches + 1
        self.n_switches += 1
        self.nodes.append(Node(id=f"S-{guid:016x}", type="switch", ports=0, desc=name, guid=f"0x{guid:016x}",
                               role=ROLE_SWITCH, name=name, group=group))
        self.used_ports.append(0)
        return len(self.nodes) - 1

    def hca(self, host: str, rail: int) -> int:
        guid = CA_GUID_BASE + (self.n_cas + 1) * CA_GUID_STRIDE
        self.n_cas += 1
        desc = f"{host} mlx5_{rail}"
        self.nodes.append(Node(id=f"H-{guid:016x}", type="ca", ports=1, desc=desc, guid=f"0x{guid:016x}",
                               role=ROLE_HCA, host=host, name=f"{host}/mlx5_{rail}", rail=rail))
        self.used_ports.append(0)
        return len(self.nodes) - 1

    def cable(self, a: int, b: int) -> None:
        self.used_ports[a] += 1
        self.used_ports[b] += 1
        self.links.append(Link(a, self.used_ports[a], b, self.used_ports[b], self.width, self.speed))

    def finish(self, meta: dict[str, object]) -> Fabric:
        for node, used in zip(self.nodes, self.used_ports, strict=True):
            # Switch radix: the ports in use rounded up to a real product size (ibsim needs port <= radix).
            node.ports = max(used, 1) if node.type == "ca" else _radix(used)
        return Fabric(nodes=self.nodes, links=self.links, meta=meta)


def _radix(used: int) -> int:
    for size in (8, 12, 18, 24, 36, 40, 48, 64, 80, 128, 255):
        if used <= size:
            return size
    raise BadRequest(f"a switch would need {used} ports: more than 255")


# Largest designs `fabric generate` builds (docs/contract.md): beyond these the file runs to gigabytes
# and planning on it is no longer interactive; a size past them is refused before anything is built.
MAX_GENERATED_HOSTS = 100_000
MAX_GENERATED_SWITCHES = 20_000


def check_design_size(hosts: int, switches: int, ports: dict[str, int]) -> None:
    """Refuse, before building, a design past the documented maximum (BadInput, exit 4) or a switch
    with more ports than any product (`ports`: switch role -> ports it would use; BadRequest as before)."""
    if hosts > MAX_GENERATED_HOSTS or switches > MAX_GENERATED_SWITCHES:
        raise BadInput(f"the design has {hosts:,} hosts and {switches:,} switches: more than gpupool generates "
                         f"(at most {MAX_GENERATED_HOSTS:,} hosts and {MAX_GENERATED_SWITCHES:,} switches)")
    for role, used in ports.items():
        if used > 255:
            raise BadRequest(f"a {role} switch would need {used} ports: more than 255")


def fat_tree_size(leaves: int, hosts_per_leaf: int, spines: int, pods: int = 1, cores: int = 0,
                  rails: int = 1) -> tuple[int, int]:
    """(hosts, switches) of a fat-tree design, computed without building it."""
    return pods * leaves * hosts_per_leaf, cores + pods * (spines + leaves * rails)


def dragonfly_size(groups: int, routers_per_group: int, hosts_per_router: int) -> tuple[int, int]:
    """(hosts, switches) of a dragonfly design, computed without building it."""
    return groups * routers_per_group * hosts_per_router, groups * routers_per_group


def host_name(prefix: str, index: int, total: int) -> str:
    return f"{prefix}{index:0{max(3, len(str(total)))}d}"


def _positive(**values: int) -> None:
    for name, value in values.items():
        if value < 1:
            raise BadRequest(f"{param(name)} must be at least 1 (got {value})")


def fat_tree(leaves: int, hosts_per_leaf: int, spines: int, *, pods: int = 1, cores: int = 0, rails: int = 1,
             uplinks: int = 1, prefix: str = "gpu", speed: str = "QDR", width: str = "4x") -> Fabric:
    """A 2-level (pods=1, cores=0) or 3-level fat-tree; with rails > 1 each leaf position becomes
    `rails` rail leaves and every host has one HCA per rail (rail-optimised, like a DGX SuperPOD SU).

    `leaves` and `spines` are per pod; every leaf cables to every spine of its pod with `uplinks` parallel
    cables (a leaf's oversubscription is hosts_per_leaf : spines x uplinks, all cables at one rate); spine j of each pod
    cables to the cores of plane j (cores c with c % spines == j, or core j % cores when cores < spines).
    """
    _positive(leaves=leaves, hosts_per_leaf=hosts_per_leaf, spines=spines, pods=pods, rails=rails, uplinks=uplinks)
    if pods > 1 and cores < 1:
        raise BadRequest(f"{param('pods')} above 1 needs {param('cores')} (the third level)")
    if cores < 0:
        raise BadRequest(f"{param('cores')} must not be negative")
    hosts, switches = fat_tree_size(leaves, hosts_per_leaf, spines, pods, cores, rails)
    planes = -(-cores // spines) if cores else 0
    check_design_size(hosts, switches, {"leaf": hosts_per_leaf + spines * uplinks,
                                        "spine": leaves * rails * uplinks + planes,
                                        "core": pods * max(1, -(-spines // cores)) if cores else 0})
    b = _Builder(prefix, speed, width)
    three_level = cores > 0
    total_hosts = pods * leaves * hosts_per_leaf
    core_ids = [b.switch(f"core{c + 1:02d}") for c in range(cores)]
    host_counter = 0
    for p in range(pods):
        pod_tag = f"pod{p + 1}-" if three_level else ""
        spine_ids = [b.switch(f"{pod_tag}spine{s + 1:02d}") for s in range(spines)]
        for leaf in range(leaves):
            if rails > 1:
                leaf_ids = [b.switch(f"{pod_tag}leaf{leaf + 1:02d}-rail{r}") for r in range(rails)]
            else:
                leaf_ids = [b.switch(f"{pod_tag}leaf{leaf + 1:02d}")]
            for _ in range(hosts_per_leaf):
                host_counter += 1
                name = host_name(prefix, host_counter, total_hosts)
                for r, leaf_id in enumerate(leaf_ids):
                    b.cable(leaf_id, b.hca(name, r))
            for leaf_id in leaf_ids:
                for spine_id in spine_ids:
                    for _ in range(uplinks):
                        b.cable(leaf_id, spine_id)
        for j, spine_id in enumerate(spine_ids):
            plane = [c for c in range(cores) if c % spines == j] or ([j % cores] if cores else [])
            for c in plane:
                b.cable(spine_id, core_ids[c])
    meta = {"generator": "fat-tree", "leaves": leaves, "hosts_per_leaf": hosts_per_leaf, "spines": spines,
            "pods": pods, "cores": cores, "rails": rails, "prefix": prefix}
    if uplinks != 1:
        meta["uplinks"] = uplinks  # only when set, so files generated before the option stay byte-identical
    return b.finish(meta)


def dragonfly(groups: int, routers_per_group: int, hosts_per_router: int, global_links_per_router: int, *,
              prefix: str = "gpu", speed: str = "QDR", width: str = "4x") -> Fabric:
    """Dragonfly: routers all-to-all inside a group; global links in the standard consecutive
    arrangement: the k-th global link of group g goes to group (g + 1 + k mod (G-1)) mod G."""
    _positive(groups=groups, routers_per_group=routers_per_group, hosts_per_router=hosts_per_router)
    if global_links_per_router < 0:
        raise BadRequest(f"{param('global_links_per_router')} must not be negative")
    if groups > 1 and global_links_per_router < 1:
        raise BadRequest(f"{param('global_links_per_router')} must be at least 1 with more than one group")
    hosts, switches = dragonfly_size(groups, routers_per_group, hosts_per_router)
    check_design_size(hosts, switches, {"router": hosts_per_router + routers_per_group - 1 + global_links_per_router})
    b = _Builder(prefix, speed, width)
    total_hosts = groups * routers_per_group * hosts_per_router
    routers: list[list[int]] = []
    host_counter = 0
    for g in range(groups):
        row = [b.switch(f"g{g + 1:02d}-r{r + 1:02d}", group=g) for r in range(routers_per_group)]
        routers.append(row)
        for router in row:
            for _ in range(hosts_per_router):
                host_counter += 1
                b.cable(router, b.hca(host_name(prefix, host_counter, total_hosts), 0))
        for i in range(routers_per_group):
            for j in range(i + 1, routers_per_group):
                b.cable(row[i], row[j])
    per_group = routers_per_group * global_links_per_router
    if groups > 1:
        for g in range(groups):
            for k in range(per_group):
                rnd, off = divmod(k, groups - 1)
                t = (g + 1 + off) % groups
                k_back = rnd * (groups - 1) + (g - t - 1) % groups
                if g < t and k_back < per_group:
                    b.cable(routers[g][k // global_links_per_router], routers[t][k_back // global_links_per_router])
    meta = {"generator": "dragonfly", "groups": groups, "routers_per_group": routers_per_group,
            "hosts_per_router": hosts_per_router, "global_links_per_router": global_links_per_router, "prefix": prefix}
    return b.finish(meta)


def add_generated_domains(fabric: Fabric, hosts_per_domain: int) -> None:
    """`fabric generate ... --nvlink-domain-hosts N`: cut the hosts under each leaf (set) into domains
    of N consecutive hosts (generated_domains) and record N in the fabric's meta."""
    hosts = fabric.hosts()
    node_host = {node: host for host, hcas in hosts.items() for node in hcas}
    switches: dict[str, set[int]] = {host: set() for host in hosts}
    for link in fabric.links:
        for ca, other in ((link.a, link.b), (link.b, link.a)):
            if ca in node_host and fabric.nodes[other].type == "switch":
                switches[node_host[ca]].add(other)
    fabric.nvlink_domains = generated_domains([(h, frozenset(s)) for h, s in switches.items()], hosts_per_domain)
    fabric.meta["nvlink_domain_hosts"] = hosts_per_domain
