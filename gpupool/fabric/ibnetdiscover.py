"""Parser for `ibnetdiscover` topology output (default format, with or without -g chassis lines)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from gpupool.errors import BadInput
from gpupool.fabric.model import (
    ROLE_AGGREGATION,
    ROLE_EXCLUDED,
    ROLE_HCA,
    ROLE_SWITCH,
    ROLE_UNNAMED,
    SPEED_GBPS,
    WIDTH_LANES,
    Fabric,
    Link,
    Node,
    natural_key,
    switch_display_name,
    unique_names,
)
from gpupool.hostlist import fold

MAX_INPUT_BYTES = 512 * 1024 * 1024

# Numbers are ASCII digits, converted by `_number` (at most 9 digits: a longer one is one exit-4 line naming
# what it is, never Python's int-conversion limit error).
_HEADER = re.compile(r'^(Switch|Ca|Rt)\s+([0-9]+)\s+"([^"]+)"\s*(?:#\s*(.*))?$')
# A port: `[N]`, then an optional port GUID `(hex)` and/or the port label ibdiagnet writes,
# `(ASIC/Cage/Port)`, `(ASIC/Cage/Port/Split)` (Quantum-2) or `(Port/Split)` (Quantum split mode).
_PORT_REF = r'\[([0-9]+)\]((?:\([0-9a-fA-Fx/]{1,40}\)){0,2})'
_PORT = re.compile(rf'^{_PORT_REF}\s+"([^"]+)"{_PORT_REF}\s*(?:#\s*(.*))?$')
_PAREN = re.compile(r"\(([^()]*)\)")
_LABEL = re.compile(r"^[0-9]{1,3}(?:/[0-9]{1,3}){1,3}$")
_QUOTED = re.compile(r'"([^"]*)"')
_LID = re.compile(r"\blid\s+([0-9]+)\b")
_RATE = re.compile(r"\b([0-9]+)x(SDR|DDR|QDR|FDR10|FDR|EDR|HDR|NDR|XDR)\b", re.IGNORECASE)
_GUID_LINE = re.compile(r"^(switchguid|caguid|rtguid)=0x([0-9a-fA-F]{1,16})\b(?:\((?:0x)?([0-9a-fA-F]{1,16})\))?")
# libibmad / infiniband-diags diagnostics that `2>&1` mixes into a saved capture, e.g.
# `src/query_smp.c:195; umad (DR path slid 0; ...) bad status 110; Connection timed out`, `ibwarn: ...`.
_DIAGNOSTIC = re.compile(r"^(?:[\w./-]+\.c:[0-9]+;|ibwarn:|ibdebug:|ibpanic:|iberror:|ibnetdiscover:\s*iberror)")
# A host name: RFC 1123 label characters plus the `_` and `.` Slurm accepts; nothing a Slurm
# hostlist, a key=value line, a comment or YAML would read as syntax.
HOST_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,252}[A-Za-z0-9])?")
MAX_PORT = 255
_SYSIMG = re.compile(r"^sysimgguid=0x([0-9a-fA-F]{1,16})\b")
_DEVID = re.compile(r"^devid=0x([0-9a-fA-F]{1,8})\b")
# vendid/devid lines, `-g` chassis grouping headers, and `-s` discovery trace lines carry no topology.
_IGNORED = re.compile(r"^(vendid|devid|sysimgguid|chassis|\w+guid)\b|^(Chassis|Spine|Line|Non-Chassis Nodes)\b"
                      r"|^DR path\b", re.IGNORECASE)
# `ibnetdiscover -p`: one line per port, `SW 2 1 0xGUID 4x QDR - CA 5 1 0xGUID ( 'desc' - 'desc' )`.
_PORTS_LIST = re.compile(
    r"^(SW|CA|RT)\s+([0-9]+)\s+([0-9]+)\s+0x([0-9a-fA-F]{1,16})\s+([0-9]{1,2}x)\s+(\S+)"
    r"(?:\s+-\s+(SW|CA|RT)\s+([0-9]+)\s+([0-9]+)\s+0x([0-9a-fA-F]{1,16})\s+\(\s*'(.*)'\s+-\s+'(.*)'\s*\))?\s*(?:'(.*)')?\s*$")
# `ibnetdiscover -l/-H/-S/-R`: node lists without cables.
_NODE_LIST = re.compile(r"^(Switch|Ca|Router)\s*:\s*0x[0-9a-fA-F]+\s+ports\s+[0-9]+")

_AGGREGATION = re.compile(r"aggregation node", re.IGNORECASE)
# Descriptions that name no host: factory defaults and unconfigured OS host names.
_NO_HOST_FIRST_WORD = re.compile(r"^(MT[0-9]+|localhost(\.localdomain)?|\(none\)|\(null\)|mellanox|nvidia|connectx\S*)$", re.IGNORECASE)


@dataclass
class PortRecord:
    """One cabled port as a capture lists it (readers of every format produce these)."""

    lineno: int
    port: int
    remote_id: str
    remote_port: int
    width: str | None
    speed: str | None
    label: str | None = None  # ibdiagnet's port label, e.g. "1/3/2/1" (ASIC/Cage/Port/Split)
    remote_label: str | None = None


@dataclass
class NodeRecord:
    """One node (switch, CA, router) as a capture lists it, with its cabled ports."""

    lineno: int
    kind: str  # "Switch" | "Ca" | "Rt"
    nports: int
    node_id: str
    desc: str
    lid: int | None
    guid: str | None
    ports: list[PortRecord]
    devid: str | None = None
    sysimg: str | None = None  # system image GUID: the ASICs of one director chassis share it


_PortLine = PortRecord
_Record = NodeRecord


def host_from_description(desc: str) -> str | None:
    """Host name = first word of an HCA node description, unless it names no host."""
    words = desc.split()
    if not words or _AGGREGATION.search(desc):
        return None
    first = words[0]
    if _NO_HOST_FIRST_WORD.match(first):
        return None
    return first


def is_host_name(name: str) -> bool:
    return HOST_NAME.fullmatch(name) is not None


class NodeNameMap(dict[str, str]):
    """GUID -> name, remembering each entry's line so errors can name it."""

    def __init__(self, path: str = "<node-name-map>") -> None:
        super().__init__()
        self.path = path
        self.lines: dict[str, int] = {}


def read_node_name_map(path: str) -> NodeNameMap:
    """OpenSM node-name-map: lines `0xGUID "name"`; comments with #. A name with control
    characters is refused (exit 4) naming its line."""
    mapping = NodeNameMap(path)
    try:
        with open(path, encoding="utf-8", errors="strict") as handle:
            for lineno, raw in enumerate(handle, 1):
                line = raw.split("#", 1)[0].strip() if not raw.lstrip().startswith("0x") else raw.strip()
                if not line or line.startswith("#"):
                    continue
                m = re.match(r'^(0x[0-9a-fA-F]+)\s+"([^"]*)"', line)
                if not m:
                    raise BadInput(f"{path}:{lineno}: expected `0xGUID \"name\"`")
                if any(ord(c) < 32 or ord(c) == 127 for c in m.group(2)):
                    raise BadInput(f"{path}:{lineno}: the name has control characters")
                guid = _norm_guid(m.group(1))
                mapping[guid] = m.group(2)
                mapping.lines[guid] = lineno
    except FileNotFoundError:
        raise BadInput(f"{path}: node-name-map not found") from None
    except UnicodeDecodeError:
        raise BadInput(f"{path}: node-name-map is not text") from None
    return mapping


def _norm_guid(text: str) -> str:
    return f"0x{int(text, 16):016x}"


def parse_ibnetdiscover(text: str, source: str = "<ibnetdiscover>", *, node_name_map: dict[str, str] | None = None,
                        hosts: Iterable[str] | None = None, service_hosts: Iterable[str] = ()) -> Fabric:
    """Parse ibnetdiscover output into a Fabric; errors name `source:line`.

    Without an explicit host list, storage / management hosts are set apart from compute hosts by
    the `service_hosts` name globs and by structure (fabric.structure.classify_hosts)."""
    if "\x00" in text:
        raise BadInput(f"{source}: binary data, not ibnetdiscover output")
    text = text.removeprefix("\ufeff")  # a BOM from a Windows editor
    warnings: list[str] = []
    text = _drop_diagnostics(text, source, warnings)
    records = _ports_list_records(text, source) if _is_ports_list(text) else _records(text, source)
    if not records:
        raise BadInput(f"{source}: no Switch or Ca records: not ibnetdiscover output")
    return fabric_from_records(records, source, warnings, node_name_map=node_name_map, hosts=hosts,
                               service_hosts=service_hosts)


def fabric_from_records(records: list[NodeRecord], source: str, warnings: list[str], *,
                        node_name_map: dict[str, str] | None = None, hosts: Iterable[str] | None = None,
                        service_hosts: Iterable[str] = (), reader: str = "ibnetdiscover") -> Fabric:
    """The fabric model from the node records any capture reader produced: roles, host names,
    cables checked from both ends, readable names. Errors name `source:line`."""
    _check_duplicates(records, source)
    # Canonical order (switches, then CAs, by node id): the model does not depend on which node
    # ran the discovery, so rediscovering an unchanged fabric gives the same file.
    records.sort(key=lambda r: (r.kind != "Switch", r.node_id))
    name_map = node_name_map or {}
    map_lines = getattr(name_map, "lines", {})
    map_path = getattr(name_map, "path", "node-name-map")
    allowed = set(hosts) if hosts is not None else None

    nodes: list[Node] = []
    index: dict[str, int] = {}
    for rec in records:
        # The S-/H- id is the node GUID; ibdiagnet's `switchguid=<chassis>(<node>)` lines give
        # every ASIC of a director the chassis GUID first, so they come second.
        guid = _guid_from_id(rec.node_id) or rec.guid
        desc = name_map.get(guid, rec.desc) if guid else rec.desc
        desc = _printable(desc)
        node = Node(id=rec.node_id, type="switch" if rec.kind == "Switch" else "ca", ports=rec.nports, desc=desc,
                    guid=guid, lid=rec.lid, devid=rec.devid)
        if node.type == "switch":
            node.role = ROLE_SWITCH
        elif _AGGREGATION.search(desc):
            node.role = ROLE_AGGREGATION
        else:
            host = host_from_description(desc)
            if host is not None and not is_host_name(host):
                if guid in map_lines:
                    raise BadInput(f"{map_path}:{map_lines[guid]}: {host!r} is not a legal host name "
                                     "(letters, digits, '-', '_' and '.')")
                warnings.append(f"host-name-invalid: {source}:{rec.lineno}: HCA {rec.node_id} has node description "
                                f"{desc!r}, whose host name {host!r} is not a legal host name: left unnamed")
                host = None
            if host is None:
                node.role = ROLE_UNNAMED
            elif allowed is not None and host not in allowed:
                node.role, node.host = ROLE_EXCLUDED, host
            else:
                node.role, node.host = ROLE_HCA, host
        index[rec.node_id] = len(nodes)
        nodes.append(node)

    guid_owner: dict[str, str] = {}
    for node in nodes:
        if node.guid:
            if node.guid in guid_owner and guid_owner[node.guid] != node.id:
                raise BadInput(f"{source}: duplicate GUID {node.guid} on {guid_owner[node.guid]} and {node.id}")
            guid_owner[node.guid] = node.id

    links = _links(records, index, nodes, source, warnings)
    _name_nodes(nodes)
    if allowed is not None:
        missing = sorted(allowed - {n.host for n in nodes if n.role == ROLE_HCA and n.host}, key=natural_key)
        if missing:
            raise BadInput(f"{source}: hosts not in the fabric: {_fold(missing)}")
    fabric = Fabric(nodes=nodes, links=links, meta={"source": reader}, warnings=warnings)
    labels = _port_labels(records)
    if labels:
        fabric.meta["port_labels"] = labels
    chassis = _chassis_guids(records)
    if chassis:
        fabric.meta["chassis_guids"] = chassis
    if not links:
        raise BadInput(f"{source}: no links: the output is truncated or empty")
    if allowed is None:
        from gpupool.fabric.structure import classify_hosts

        service = classify_hosts(fabric, service_hosts)
        if service:
            fabric.meta["service_hosts"] = len(service)
    return fabric


def _chassis_guids(records: list[NodeRecord]) -> dict[str, str]:
    """Switch id -> system image GUID, for switches that share one (the ASICs of a director)."""
    by_image: dict[str, list[str]] = {}
    for rec in records:
        if rec.kind == "Switch" and rec.sysimg:
            by_image.setdefault(rec.sysimg, []).append(rec.node_id)
    return dict(sorted((node, image) for image, nodes in by_image.items() if len(nodes) >= 2 for node in nodes))


def _port_labels(records: list[NodeRecord]) -> dict[str, str]:
    """`node-id:port` -> ibdiagnet's port label, from either end of a cable's line."""
    labels: dict[str, str] = {}
    for rec in records:
        for p in rec.ports:
            if p.label:
                labels[f"{rec.node_id}:{p.port}"] = p.label
            if p.remote_label:
                labels.setdefault(f"{p.remote_id}:{p.remote_port}", p.remote_label)
    return dict(sorted(labels.items()))


def _split_port_ref(parens: str, source: str, lineno: int) -> tuple[str | None, str | None]:
    """`(guid)` and/or `(label)` after a `[N]`: a label has slashes, a GUID is hex."""
    guid = label = None
    for item in _PAREN.findall(parens):
        if "/" in item:
            if not _LABEL.match(item):
                raise BadInput(f"{source}:{lineno}: malformed port label ({item[:40]})")
            label = item
        elif re.fullmatch(r"(0x)?[0-9a-fA-F]{1,16}", item):
            guid = item
        else:
            raise BadInput(f"{source}:{lineno}: malformed port GUID ({item[:40]})")
    return guid, label


def _check_duplicates(records: list[_Record], source: str) -> None:
    first: dict[str, _Record] = {}
    for rec in records:
        if rec.node_id in first:
            raise BadInput(f"{source}:{rec.lineno}: duplicate node {rec.node_id} "
                             f"(first seen as {first[rec.node_id].desc!r})")
        first[rec.node_id] = rec


def _printable(text: str) -> str:
    """Control characters (tabs, newlines from a node-name-map or a fabric file) become spaces."""
    return "".join(" " if ord(c) < 32 or ord(c) == 127 else c for c in text)


def _drop_diagnostics(text: str, source: str, warnings: list[str]) -> str:
    """Blank out libibmad/ibwarn diagnostic lines (keeping line numbers), with one warning each."""
    if "ibwarn" not in text and ".c:" not in text and "iberror" not in text and "ibdebug" not in text \
            and "ibpanic" not in text:
        return text
    lines = text.splitlines()
    dropped = 0
    for k, raw in enumerate(lines):
        if _DIAGNOSTIC.match(raw.strip()):
            dropped += 1
            if dropped <= 10:
                warnings.append(f"discovery-diagnostic: {source}:{k + 1}: skipped a diagnostic line: {raw.strip()[:120]!r}")
            lines[k] = "#"
    if dropped > 10:
        warnings.append(f"discovery-diagnostic: {source}: {dropped - 10} more diagnostic lines skipped")
    return "\n".join(lines)


def _fold(names: list[str]) -> str:
    try:
        return fold(names)
    except BadInput:  # names with hostlist syntax in them: list them as they are
        return ",".join(names)


def _guid_from_id(node_id: str) -> str | None:
    m = re.match(r"^[SHR]-([0-9a-fA-F]{1,16})$", node_id)
    return _norm_guid(m.group(1)) if m else None


def _records(text: str, source: str) -> list[_Record]:
    records: list[_Record] = []
    current: _Record | None = None
    pending_guid: str | None = None
    pending_devid: str | None = None
    pending_sysimg: str | None = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            current = None if not line else current
            continue
        if line.startswith("["):
            if current is None:
                raise BadInput(f"{source}:{lineno}: port line outside a Switch/Ca record")
            m = _PORT.match(line)
            if not m:
                raise BadInput(f"{source}:{lineno}: malformed port line: {line[:80]!r}")
            port, remote_id, remote_port = (_number(m.group(1), "port", source, lineno), m.group(3),
                                             _number(m.group(4), "remote port", source, lineno))
            _guid, label = _split_port_ref(m.group(2), source, lineno)
            _rguid, remote_label = _split_port_ref(m.group(5), source, lineno)
            if port < 1 or port > current.nports:
                raise BadInput(f"{source}:{lineno}: port {port} above the radix ({current.nports}) of {current.node_id}")
            if any(p.port == port for p in current.ports):
                raise BadInput(f"{source}:{lineno}: port {port} of {current.node_id} listed twice")
            comment = m.group(6) or ""
            width, speed = _rate(comment)
            if current.kind != "Switch" and current.lid is None:
                # A CA's own port LID opens its port comment: `# lid 647 lmc 0 "switch" lid 73 4xNDR`.
                own = re.match(r"lid\s+([0-9]+)\b", comment)
                own_lid = _number(own.group(1), "LID", source, lineno) if own else 0
                if own_lid > 0:
                    current.lid = own_lid
            current.ports.append(_PortLine(lineno, port, remote_id, remote_port, width, speed, label, remote_label))
            continue
        header = _HEADER.match(line)
        if header:
            kind, node_id, rest = header.group(1), header.group(3), header.group(4) or ""
            nports = _number(header.group(2), "port count", source, lineno)
            if nports < 1 or nports > 255:
                raise BadInput(f"{source}:{lineno}: {kind} {node_id} has an invalid port count {nports}")
            quoted = _QUOTED.search(rest)
            desc = quoted.group(1) if quoted else ""
            lid_match = _LID.search(rest[quoted.end():] if quoted else rest)
            current = _Record(lineno, kind, nports, node_id, desc.strip(),
                              _number(lid_match.group(1), "LID", source, lineno) if lid_match else None,
                              pending_guid, [], pending_devid, pending_sysimg)
            pending_guid = pending_devid = pending_sysimg = None
            records.append(current)
            continue
        guid_line = _GUID_LINE.match(line)
        if guid_line:
            pending_guid = _norm_guid(guid_line.group(2))
            # ibdiagnet: `switchguid=0x<chassis>(0x<node>)`: a different first GUID is the chassis's.
            if guid_line.group(3) and pending_sysimg is None and _norm_guid(guid_line.group(3)) != pending_guid:
                pending_sysimg = pending_guid
            current = None
            continue
        devid = _DEVID.match(line)
        if devid:
            pending_devid = f"0x{int(devid.group(1), 16):04x}"
            current = None
            continue
        sysimg = _SYSIMG.match(line)
        if sysimg:
            pending_sysimg = _norm_guid(sysimg.group(1))
            current = None
            continue
        if _IGNORED.match(line):
            current = None
            continue
        if _NODE_LIST.match(line):
            raise BadInput(f"{source}:{lineno}: a node list (ibnetdiscover -l/-H/-S/-R) has no cables: "
                             "give the default output or `ibnetdiscover -p`")
        raise BadInput(f"{source}:{lineno}: unrecognised line: {line[:80]!r}")
    for rec in records:
        if not rec.ports:
            raise BadInput(f"{source}:{rec.lineno}: {rec.kind} {rec.node_id} has no connected ports (truncated output?)")
    return records


# More digits than any port count, port index or LID has: refused before int() (Python refuses
# more than 4,300 digits with a ValueError; a million digits would cost seconds).
MAX_NUMBER_DIGITS = 9


def capture_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, stripped line) of a text capture's content lines: no BOM, blanks or `#` comments."""
    for lineno, raw in enumerate(text.removeprefix("\ufeff").splitlines(), 1):
        line = raw.strip()
        if line and not line.startswith("#"):
            yield lineno, line


def _number(digits: str, what: str, source: str, lineno: int) -> int:
    if len(digits) > MAX_NUMBER_DIGITS:
        raise BadInput(f"{source}:{lineno}: {what} of {len(digits)} digits is out of range")
    return int(digits)


def _first_line(text: str) -> str:
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#") and not line.startswith("DR path"):
            return line
    return ""


def _is_ports_list(text: str) -> bool:
    return bool(re.match(r"^(SW|CA|RT)\s+[0-9]+\s+[0-9]+\s+0x", _first_line(text)))


def _ports_list_records(text: str, source: str) -> list[_Record]:
    """Records from `ibnetdiscover -p` (ports list): each cable is listed from both of its ends."""
    kinds = {"SW": "Switch", "CA": "Ca", "RT": "Rt"}
    records: dict[str, _Record] = {}

    def record(kind: str, lid: str, guid: str, desc: str, lineno: int) -> _Record:
        node_id = f"{'S' if kind == 'SW' else 'H'}-{int(guid, 16):016x}"
        rec = records.get(node_id)
        if rec is None:
            rec = records[node_id] = _Record(lineno, kinds[kind], 1, node_id, desc.strip(), _number(lid, "LID", source, lineno) or None,
                                             _norm_guid(guid), [])
        return rec

    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#") or _IGNORED.match(line):
            continue
        m = _PORTS_LIST.match(line)
        if not m:
            raise BadInput(f"{source}:{lineno}: malformed ports-list line: {line[:80]!r}")
        kind, lid, port, guid, width, speed = m.group(1, 2, 3, 4, 5, 6)
        for number in (port, m.group(9)):
            if number is not None and not 1 <= _number(number, "port", source, lineno) <= MAX_PORT:
                raise BadInput(f"{source}:{lineno}: port {int(number)} is out of range (1..{MAX_PORT})")
        local = record(kind, lid, guid, m.group(11) or m.group(13) or "", lineno)
        local.nports = max(local.nports, int(port))
        if m.group(7) is None:
            continue  # an unconnected port: only the radix is learnt
        remote = record(m.group(7), m.group(8), m.group(10), m.group(12), lineno)
        remote.nports = max(remote.nports, int(m.group(9)))
        if any(p.port == int(port) for p in local.ports):
            raise BadInput(f"{source}:{lineno}: port {port} of {local.node_id} listed twice")
        rate_width, rate_speed = _rate(f"{width}{speed}")
        local.ports.append(_PortLine(lineno, int(port), remote.node_id, int(m.group(9)), rate_width, rate_speed))
    for rec in records.values():
        if not rec.ports:
            raise BadInput(f"{source}:{rec.lineno}: {rec.kind} {rec.node_id} has no connected ports (truncated output?)")
    return list(records.values())


def _rate(comment: str) -> tuple[str | None, str | None]:
    found = _RATE.findall(comment)
    if not found:
        return None, None
    lanes, speed = found[-1]
    speed = speed.upper()
    # A lane count InfiniBand does not have (3x, 99x) is left to the other end or the default.
    width = f"{lanes}x" if f"{lanes}x" in WIDTH_LANES else None
    return width, speed if speed in SPEED_GBPS else None


def _links(records: list[_Record], index: dict[str, int], nodes: list[Node], source: str,
           warnings: list[str]) -> list[Link]:
    claims: dict[tuple[int, int], tuple[int, int, _PortLine]] = {}
    for rec in records:
        a = index[rec.node_id]
        for p in rec.ports:
            if p.remote_id not in index:
                raise BadInput(f"{source}:{p.lineno}: {rec.node_id}[{p.port}] is cabled to unknown node {p.remote_id}")
            b = index[p.remote_id]
            if p.remote_port < 1 or p.remote_port > nodes[b].ports:
                raise BadInput(f"{source}:{p.lineno}: remote port {p.remote_port} above the radix ({nodes[b].ports}) of {p.remote_id}")
            claims[(a, p.port)] = (b, p.remote_port, p)
    links: list[Link] = []
    done: set[tuple[int, int]] = set()
    for (a, ap), (b, bp, pline) in claims.items():
        if (a, ap) in done:
            continue
        back = claims.get((b, bp))
        if back is None:
            warnings.append(f"link-one-sided: {nodes[a].id}[{ap}] -> {nodes[b].id}[{bp}] is listed by one end only ({source}:{pline.lineno})")
        elif (back[0], back[1]) != (a, ap):
            raise BadInput(
                f"{source}:{pline.lineno}: {nodes[a].id}[{ap}] says it is cabled to {nodes[b].id}[{bp}], "
                f"but line {back[2].lineno} says {nodes[b].id}[{bp}] is cabled to {nodes[back[0]].id}[{back[1]}]")
        done.add((a, ap))
        done.add((b, bp))
        width = pline.width or (back[2].width if back else None) or "4x"
        speed = pline.speed or (back[2].speed if back else None) or "SDR"
        links.append(Link(a, ap, b, bp, width, speed))
    return links


def _name_nodes(nodes: list[Node]) -> None:
    """Readable, stable names: switches from their descriptions, HCAs as `host/mlx5_N`."""
    switch_names = unique_names([switch_display_name(n.desc, n.id) if n.type == "switch" else "" for n in nodes])
    hca_count: dict[str, int] = {}
    for i, node in enumerate(nodes):
        if node.type == "switch":
            node.name = switch_names[i]
            continue
        words = node.desc.split()
        label = words[1] if len(words) > 1 and node.host else ""
        if node.host:
            k = hca_count.get(node.host, 0)
            hca_count[node.host] = k + 1
            node.name = f"{node.host}/{label or f'hca{k}'}"
        else:
            node.name = node.id
