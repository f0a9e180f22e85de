"""Reader for `iblinkinfo` output (default layout: a `Switch: 0xGUID desc:` or `CA: desc:` header,
then one line per port). iblinkinfo names a cable's far end by LID and port, so far ends are
resolved through the LIDs the file itself lists. CAs are identified by their port GUID."""

from __future__ import annotations

import re
from collections.abc import Iterable

from gpupool.errors import BadInput
from gpupool.fabric.ibnetdiscover import (
    MAX_PORT,
    NodeRecord,
    PortRecord,
    capture_lines,
    fabric_from_records,
)
from gpupool.fabric.model import SPEED_GBPS, Fabric

_SWITCH = re.compile(r"^Switch:\s+0x([0-9a-fA-F]{1,16})\s+(.*?):?\s*$")
_CA = re.compile(r"^CA:\s+(.*?):?\s*$")
_PORT = re.compile(
    r"^(?:0x([0-9a-fA-F]{1,16})\s+)?(\d{1,6})\s+(\d{1,3})\[[^\]]{0,8}\]\s+==\(\s*(.*?)\s*\)==>"
    r"\s+(?:(\d{1,6})\s+(\d{1,3}))?\s*\[[^\]]{0,8}\]\s+\"(.*)\"\s*\((.*)\)\s*$")
# `4X 25.78125 Gbps Active/  LinkUp`; FDR10 links read `4X 10.0 Gbps (FDR10) Active/  LinkUp`.
_STATE = re.compile(r"^(\d{1,2})X\s+([\d.]{1,12})\s+Gbps\s+(?:\((\w{1,8})\)\s+)?(\w+)\s*/\s*(\w+)", re.IGNORECASE)
_LINE_MODE = re.compile(r'^0x[0-9a-fA-F]{1,16}\s+"')


def lane_speed(gbps: float) -> str:
    """IB speed name from iblinkinfo's per-lane Gb/s figure (2.5, 5.0, 10.0, 14.0625, 25.78125, 53.125...)."""
    for limit, name in ((3, "SDR"), (7, "DDR"), (10.2, "QDR"), (12, "FDR10"), (20, "FDR"), (40, "EDR"), (80, "HDR"),
                        (150, "NDR")):
        if gbps < limit:
            return name
    return "XDR"


def parse_iblinkinfo(text: str, source: str = "<iblinkinfo>", *, node_name_map: dict[str, str] | None = None,
                     hosts: Iterable[str] | None = None, service_hosts: Iterable[str] = ()) -> Fabric:
    first = next((raw.strip() for raw in text.removeprefix("\ufeff").splitlines()
                  if raw.strip() and not raw.strip().startswith("#")), "")
    if _LINE_MODE.match(first):
        line_records, line_warnings = _line_mode_records(text, source)
        return fabric_from_records(line_records, source, line_warnings, node_name_map=node_name_map, hosts=hosts,
                                   service_hosts=service_hosts, reader="iblinkinfo")
    records: list[NodeRecord] = []
    by_lid: dict[int, NodeRecord] = {}
    ca_by_port_guid: dict[str, NodeRecord] = {}
    current: NodeRecord | None = None
    current_ca_desc: str | None = None
    pending: list[tuple[NodeRecord, int, int, int, int, str | None, str | None]] = []
    warnings: list[str] = []
    for lineno, line in capture_lines(text):
        where = f"{source}:{lineno}"
        header = _SWITCH.match(line)
        if header:
            guid = int(header.group(1), 16)
            current = NodeRecord(lineno, "Switch", 1, f"S-{guid:016x}", header.group(2).strip(), None,
                                 f"0x{guid:016x}", [])
            records.append(current)
            current_ca_desc = None
            continue
        ca_header = _CA.match(line)
        if ca_header:
            current, current_ca_desc = None, ca_header.group(1).strip()
            continue
        if _LINE_MODE.match(line):
            raise BadInput(f"{where}: an `iblinkinfo -l` line inside default iblinkinfo output")
        m = _PORT.match(line)
        if not m:
            raise BadInput(f"{where}: malformed iblinkinfo line: {line[:80]!r}")
        port_guid, lid, port = m.group(1), int(m.group(2)), int(m.group(3))
        if current_ca_desc is not None:
            if port_guid is None:
                raise BadInput(f"{where}: a CA port line without its port GUID")
            node = ca_by_port_guid.get(port_guid.lower())
            if node is None:
                guid = int(port_guid, 16)
                node = NodeRecord(lineno, "Ca", 1, f"H-{guid:016x}", current_ca_desc, lid or None, f"0x{guid:016x}", [])
                ca_by_port_guid[port_guid.lower()] = node
                records.append(node)
        elif current is not None:
            node = current
            if node.lid is None and lid:
                node.lid = lid
        else:
            raise BadInput(f"{where}: a port line before any `Switch:` or `CA:` header")
        if not 1 <= port <= MAX_PORT:
            raise BadInput(f"{where}: port {port} is out of range (1..{MAX_PORT})")
        node.nports = max(node.nports, port)
        if lid:
            owner = by_lid.setdefault(lid, node)
            if owner is not node:
                raise BadInput(f"{where}: LID {lid} belongs to {owner.node_id} and {node.node_id}")
        if m.group(5) is None:
            continue  # a port that is down: only the radix is learnt
        state = _STATE.match(m.group(4))
        if state is None:
            raise BadInput(f"{where}: cannot read the link state {m.group(4)[:40]!r}")
        if state.group(4).lower() != "active":
            warnings.append(f"link-not-active: {where}: {node.node_id}[{port}] is {state.group(4)}")
        width = f"{int(state.group(1))}x"
        named = (state.group(3) or "").upper()
        speed = named if named in SPEED_GBPS else lane_speed(float(state.group(2)))
        pending.append((node, port, int(m.group(5)), int(m.group(6)), lineno, width, speed))
    if not records:
        raise BadInput(f"{source}: no `Switch:` or `CA:` records: not iblinkinfo output")
    for node, port, remote_lid, remote_port, lineno, link_width, link_speed in pending:
        remote = by_lid.get(remote_lid)
        if remote is None:
            raise BadInput(f"{source}:{lineno}: {node.node_id}[{port}] is cabled to LID {remote_lid}, "
                             "which no node in the file has (truncated output?)")
        if any(p.port == port for p in node.ports):
            raise BadInput(f"{source}:{lineno}: port {port} of {node.node_id} listed twice")
        node.ports.append(PortRecord(lineno, port, remote.node_id, remote_port, link_width, link_speed))
    by_id = {r.node_id: r for r in records}
    for rec in records:
        for p in rec.ports:
            other = by_id[p.remote_id]
            other.nports = max(other.nports, p.remote_port)
    connected = [r for r in records if r.ports]
    return fabric_from_records(connected, source, warnings, node_name_map=node_name_map, hosts=hosts,
                               service_hosts=service_hosts, reader="iblinkinfo")


# `iblinkinfo -l`: `0xGUID "desc" LID PORT[..] ==( state )==> 0xGUID LID PORT[..] "desc" ( ... )`.
_LINE = re.compile(
    r'^0x([0-9a-fA-F]{1,16})\s+"(.*?)"\s+(\d{1,6})\s+(\d{1,3})\[[^\]]{0,8}\]\s+==\(\s*(.*?)\s*\)==>'
    r'\s+(?:0x([0-9a-fA-F]{1,16})\s+(\d{1,6})\s+(\d{1,3}))?\s*\[[^\]]{0,8}\]\s+"(.*)"\s*\((.*)\)\s*$')
# A CA has one or two ports; a switch lists every port (down ones too) and is cabled on ports above 2.
_CA_MAX_PORT = 2


def _line_mode_records(text: str, source: str) -> tuple[list[NodeRecord], list[str]]:
    """Node records from `iblinkinfo -l`. The line names no node type: a node listed with, or cabled
    on, a port above 2 is a switch, every other node a CA (identified by its port GUID)."""
    local: dict[int, tuple[int, str, set[int]]] = {}  # guid -> (first line, desc, ports listed)
    cables: list[tuple[int, int, int, int, int, str, str | None]] = []
    peers: dict[int, tuple[str, int]] = {}  # far-end guid -> (desc, highest port seen)
    warnings: list[str] = []
    for lineno, line in capture_lines(text):
        where = f"{source}:{lineno}"
        m = _LINE.match(line)
        if not m:
            raise BadInput(f"{where}: malformed `iblinkinfo -l` line: {line[:80]!r}")
        guid, port = int(m.group(1), 16), int(m.group(4))
        if not 1 <= port <= MAX_PORT:
            raise BadInput(f"{where}: port {port} is out of range (1..{MAX_PORT})")
        first, desc, ports = local.setdefault(guid, (lineno, m.group(2).strip(), set()))
        ports.add(port)
        if m.group(6) is None:
            continue
        state = _STATE.match(m.group(5))
        if state is None:
            raise BadInput(f"{where}: cannot read the link state {m.group(5)[:40]!r}")
        if state.group(4).lower() != "active":
            warnings.append(f"link-not-active: {where}: 0x{guid:016x}[{port}] is {state.group(4)}")
        far, far_port = int(m.group(6), 16), int(m.group(8))
        if not 1 <= far_port <= MAX_PORT:
            raise BadInput(f"{where}: port {far_port} is out of range (1..{MAX_PORT})")
        named = (state.group(3) or "").upper()
        speed = named if named in SPEED_GBPS else lane_speed(float(state.group(2)))
        cables.append((lineno, guid, port, far, far_port, f"{int(state.group(1))}x", speed))
        old_desc, old_port = peers.get(far, (m.group(9).strip(), 0))
        peers[far] = (old_desc, max(old_port, far_port))
    if not local:
        raise BadInput(f"{source}: no links: the iblinkinfo -l output is empty")
    top: dict[int, int] = {g: max(ports) for g, (_l, _d, ports) in local.items()}
    for g, (_desc, high) in peers.items():
        top[g] = max(top.get(g, 0), high)
    records: dict[int, NodeRecord] = {}
    for g, high in top.items():
        kind = "Switch" if high > _CA_MAX_PORT else "Ca"
        lineno, desc = (local[g][0], local[g][1]) if g in local else (0, peers[g][0])
        records[g] = NodeRecord(lineno, kind, high, f"{'S' if kind == 'Switch' else 'H'}-{g:016x}", desc, None,
                                f"0x{g:016x}", [])
    seen: set[tuple[int, int]] = set()
    for lineno, guid, port, far, far_port, width, speed in cables:
        # A node that lists no line of its own (`--switches-only`) gets its end from the far side.
        ends = [(guid, port, far, far_port)] + ([(far, far_port, guid, port)] if far not in local else [])
        for g, p, og, op in ends:
            if (g, p) in seen:
                raise BadInput(f"{source}:{lineno}: port {p} of {records[g].node_id} listed twice")
            seen.add((g, p))
            records[g].ports.append(PortRecord(lineno, p, records[og].node_id, op, width, speed))
    return [r for r in records.values() if r.ports], warnings
