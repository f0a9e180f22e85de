"""Plain-data fabric model (switches, HCAs grouped into hosts, cables) and its JSON file."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gpupool.errors import BadInput
from gpupool.fsutil import atomic_write_text

if TYPE_CHECKING:
    from gpupool.fabric.nvlink import NvlinkDomain

FABRIC_VERSION = 1

# Roles of CA nodes: only "hca" nodes belong to compute hosts.
ROLE_SWITCH = "switch"
ROLE_HCA = "hca"
ROLE_AGGREGATION = "aggregation"  # SHARP aggregation nodes: never hosts
ROLE_UNNAMED = "unnamed"  # HCA whose node description gives no host name
ROLE_EXCLUDED = "excluded"  # named HCA outside --hosts / Slurm's node list
ROLE_SERVICE = "service"  # HCA of a storage / management / login host (fabric.structure.classify_hosts)

# Rate per lane in Gb/s, by IB speed name (signalling rate as ibnetdiscover names it).
SPEED_GBPS: dict[str, float] = {
    "SDR": 2.5, "DDR": 5.0, "QDR": 10.0, "FDR10": 10.3125, "FDR": 14.0625,
    "EDR": 25.78125, "HDR": 50.0, "NDR": 100.0, "XDR": 200.0,
}
WIDTH_LANES: dict[str, int] = {"1x": 1, "2x": 2, "4x": 4, "8x": 8, "12x": 12}


@dataclass
class Node:
    """A switch or a channel adapter (one HCA of a host, an aggregation node...)."""

    id: str  # unique within the fabric, e.g. "S-2c5eab0300b87b40" or "H-...", as ibnetdiscover quotes it
    type: str  # "switch" | "ca"
    ports: int
    desc: str = ""
    guid: str | None = None  # "0x..." node GUID
    lid: int | None = None
    role: str = ROLE_SWITCH
    host: str | None = None  # host name, for role "hca" (and a guess for unnamed HCAs)
    name: str = ""  # readable, stable name (switches: from the node description)
    group: int = -1  # dragonfly group when known from a generator
    rail: int = -1  # rail index of an HCA when known
    devid: str | None = None  # "0xd2f0": the device id ibnetdiscover prints (fabric.devices)


@dataclass
class Link:
    """A cable between port `a_port` of node `a` and port `b_port` of node `b` (node indices)."""

    a: int
    a_port: int
    b: int
    b_port: int
    width: str = "4x"
    speed: str = "QDR"

    @property
    def gbps(self) -> float:
        return WIDTH_LANES.get(self.width, 4) * SPEED_GBPS.get(self.speed, 0.0)


@dataclass
class Fabric:
    nodes: list[Node] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # parse-time oddities the audit reports
    nvlink_domains: list[NvlinkDomain] = field(default_factory=list)  # multi-node NVLink domains (fabric.nvlink)

    # ---- derived views (cheap, computed on demand) ----
    def switch_indices(self) -> list[int]:
        return [i for i, n in enumerate(self.nodes) if n.type == "switch"]

    def hosts(self) -> dict[str, list[int]]:
        """Host name -> indices of its HCA nodes, hosts sorted by name, HCAs by name."""
        by_host: dict[str, list[int]] = {}
        for i, node in enumerate(self.nodes):
            if node.role == ROLE_HCA and node.host:
                by_host.setdefault(node.host, []).append(i)
        return {h: sorted(v, key=lambda i: (self.nodes[i].name, i)) for h, v in sorted(by_host.items(), key=lambda kv: natural_key(kv[0]))}

    def host_names(self) -> list[str]:
        return list(self.hosts())

    def neighbours(self) -> list[list[tuple[int, int]]]:
        """Per node: (neighbour node index, link index)."""
        adj: list[list[tuple[int, int]]] = [[] for _ in self.nodes]
        for li, link in enumerate(self.links):
            adj[link.a].append((link.b, li))
            adj[link.b].append((link.a, li))
        return adj

    def index_by_id(self) -> dict[str, int]:
        return {n.id: i for i, n in enumerate(self.nodes)}


def natural_key(text: str) -> tuple[Any, ...]:
    """Sort key that orders gpu2 before gpu10."""
    import re

    parts = re.split(r"(\d+)", text)
    return tuple(int(p) if p.isdigit() else p for p in parts)


# ---------------------------------------------------------------------------
# JSON file
# ---------------------------------------------------------------------------

def fabric_to_dict(fabric: Fabric) -> dict[str, Any]:
    node_keys = ("id", "type", "ports", "desc", "guid", "lid", "role", "host", "name", "group", "rail", "devid")
    nodes = []
    for n in fabric.nodes:
        d = {k: getattr(n, k) for k in node_keys}  # flat scalar fields: dataclasses.asdict's deep copy costs 10x
        # Drop defaults to keep 65k-host files small.
        nodes.append({k: d[k] for k in node_keys if d[k] not in (None, "", -1) or k in ("id", "type", "ports")})
    links = [[lk.a, lk.a_port, lk.b, lk.b_port, lk.width, lk.speed] for lk in fabric.links]
    doc = {"version": FABRIC_VERSION, "meta": fabric.meta, "warnings": fabric.warnings, "nodes": nodes, "links": links}
    if fabric.nvlink_domains:  # only NVLink fabrics carry the key: other files stay as they were
        doc["nvlink_domains"] = [d.to_json() for d in fabric.nvlink_domains]
    return doc


def fabric_from_dict(doc: Any, source: str = "<fabric>") -> Fabric:
    """A fabric file's document -> Fabric; wrong types, out-of-range numbers and host names that
    are not host names are input errors naming the node or link."""
    if not isinstance(doc, dict) or "version" not in doc:
        raise BadInput(f"{source}: not a gpupool fabric file (no top-level \"version\" key)")
    if doc["version"] != FABRIC_VERSION or isinstance(doc["version"], bool):
        raise BadInput(f"{source}: fabric file version {str(doc['version'])[:40]!r} is not supported "
                         f"(expected {FABRIC_VERSION})")
    raw_nodes, raw_links = doc.get("nodes"), doc.get("links")
    if not isinstance(raw_nodes, list) or not isinstance(raw_links, list):
        raise BadInput(f"{source}: malformed fabric file: \"nodes\" and \"links\" must be lists")
    nodes = [_node_from_dict(n, f"{source}: node {i}") for i, n in enumerate(raw_nodes)]
    links = [_link_from_list(lk, f"{source}: link {i}", len(nodes)) for i, lk in enumerate(raw_links)]
    meta, warnings = doc.get("meta") or {}, doc.get("warnings") or []
    if not isinstance(meta, dict) or not isinstance(warnings, list):
        raise BadInput(f"{source}: malformed fabric file: \"meta\" must be an object, \"warnings\" a list")
    from gpupool.fabric.nvlink import domains_from_json

    domains = domains_from_json(doc.get("nvlink_domains"), source, {n.host for n in nodes if n.host})
    return Fabric(nodes=nodes, links=links, meta=dict(meta), warnings=[str(w) for w in warnings],
                  nvlink_domains=domains)


def _text(value: Any, what: str, default: str = "") -> str:
    if value is None:
        return default
    if not isinstance(value, str):
        raise BadInput(f"{what}: expected a string, got {type(value).__name__}")
    return value


def _node_from_dict(n: Any, what: str) -> Node:
    from gpupool.validate import bounded_int, host_name

    if not isinstance(n, dict):
        raise BadInput(f"{what}: expected an object")
    for key in ("id", "type", "ports"):
        if key not in n:
            raise BadInput(f"{what}: missing key {key!r}")
    node_type = _text(n["type"], f"{what}: type")
    if node_type not in ("switch", "ca"):
        raise BadInput(f"{what}: type must be \"switch\" or \"ca\", got {node_type[:20]!r}")
    host = n.get("host")
    role = _text(n.get("role"), f"{what}: role", ROLE_SWITCH if node_type == "switch" else ROLE_HCA)
    if host is not None:
        host = host_name(host, f"{what}: host") if role in (ROLE_HCA, ROLE_SERVICE) else _text(host, f"{what}: host")
    lid = n.get("lid")
    return Node(id=_text(n["id"], f"{what}: id"), type=node_type,
                ports=bounded_int(n["ports"], f"{what}: ports", 0, 65535),
                desc=_text(n.get("desc"), f"{what}: desc"), guid=n.get("guid") if n.get("guid") is None
                else _text(n.get("guid"), f"{what}: guid"),
                lid=None if lid is None else bounded_int(lid, f"{what}: lid", 0, 0xFFFFF),
                role=role, host=host, name=_text(n.get("name"), f"{what}: name"),
                group=bounded_int(n.get("group", -1), f"{what}: group", -1, 1 << 31),
                rail=bounded_int(n.get("rail", -1), f"{what}: rail", -1, 1 << 16),
                devid=None if n.get("devid") is None else _text(str(n["devid"]) if isinstance(n["devid"], int)
                                                               else n["devid"], f"{what}: devid"))


def _link_from_list(item: Any, what: str, n_nodes: int) -> Link:
    from gpupool.validate import bounded_int

    if not isinstance(item, list) or len(item) != 6:
        raise BadInput(f"{what}: expected [a, a_port, b, b_port, width, speed]")
    a, a_port, b, b_port, width, speed = item
    a = bounded_int(a, f"{what}: node a", 0, max(0, n_nodes - 1))
    b = bounded_int(b, f"{what}: node b", 0, max(0, n_nodes - 1))
    if n_nodes == 0:
        raise BadInput(f"{what}: refers to a node index out of range")
    return Link(a, bounded_int(a_port, f"{what}: port", 0, 65535), b, bounded_int(b_port, f"{what}: port", 0, 65535),
                _one_of(width, f"{what}: width", WIDTH_LANES), _one_of(speed, f"{what}: speed", SPEED_GBPS))


def _one_of(value: Any, what: str, known: dict[str, Any]) -> str:
    # Exports write width and speed verbatim (ibsim, dot, audits): only InfiniBand's own names pass.
    text = _text(value, what)
    if text not in known:
        raise BadInput(f"{what}: {text[:20]!r} is not one of {', '.join(known)}")
    return text


def save_fabric(fabric: Fabric, path: str, *, backup: bool = False) -> None:
    text = json.dumps(fabric_to_dict(fabric), separators=(",", ":"))
    atomic_write_text(path, text + "\n", backup=backup)


def read_json_document(path: str, what: str) -> Any:
    """A JSON input file's document; unreadable, non-UTF-8 or malformed: BadInput `PATH: not a JSON WHAT ...`."""
    from gpupool.fsutil import read_input_bytes
    from gpupool.validate import load_json_text

    raw = read_input_bytes(path, what)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{path}: not a JSON {what} (not UTF-8 at byte {exc.start})") from None
    return load_json_text(text, path, problem=f"not a JSON {what}")


def load_fabric(path: str) -> Fabric:
    return fabric_from_dict(read_json_document(path, "fabric file"), path)


def fabric_digest(path: str) -> str:
    """Content hash of a fabric file, used to validate the compiled cache."""
    import hashlib

    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


_UNSAFE_NAME_CHARS = re.compile(r"[^A-Za-z0-9._/-]")


def switch_display_name(desc: str, fallback: str) -> str:
    """Readable switch name from a node description like "MF0;A09-P1-IBLEAF-04-04:MQM9701/U1".

    ASICs of a director (`MF0;core1-mgt1:CS7500/L11/U1`) keep their chassis position
    (`core1-mgt1/L11/U1`), so the name does not depend on which node ran the discovery. Characters
    outside letters, digits and `._/-` (tabs, `=`, `#`...) become `_`: a name is never syntax.
    """
    text = desc.strip()
    if text.startswith("MF0;"):
        text = text[4:]
    name, _, model = text.partition(":")
    name = name.strip()
    if not name or name.lower().startswith(("mellanox", "nvidia", "quantum", "mf0")) or " " in name:
        return fallback
    parts = [p.strip() for p in model.split("/")][1:] if model else []
    if parts and parts != ["U1"] and all(parts) and " " not in "".join(parts):
        name = "/".join([name, *parts])
    return _UNSAFE_NAME_CHARS.sub("_", name)


def unique_names(names: Iterable[str]) -> list[str]:
    """Make names unique by suffixing repeats (`x`, `x-2`, ...), keeping the first as is."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        if name in seen:
            seen[name] += 1
            out.append(f"{name}-{seen[name]}")
        else:
            seen[name] = 1
            out.append(name)
    return out


def restrict_hosts(fabric: Fabric, hosts: Iterable[str]) -> None:
    """Keep only these compute hosts (an explicit list wins over the structural service class);
    other named HCAs become `excluded` (unknown names: input error)."""
    wanted = set(hosts)
    named = (ROLE_HCA, ROLE_SERVICE)
    present = {n.host for n in fabric.nodes if n.role in named and n.host}
    unknown = sorted(wanted - present, key=natural_key)
    if unknown:
        raise BadInput(f"hosts not in the fabric: {', '.join(unknown[:10])}{' ...' if len(unknown) > 10 else ''}")
    for node in fabric.nodes:
        if node.role in named:
            node.role = ROLE_HCA if node.host in wanted else ROLE_EXCLUDED
