"""Readers for ibdiagnet 2.x dump files: `ibdiagnet2.lst` (one line per link) and `ibdiagnet2.db_csv`
(NODES / PORTS / LINKS tables). Both produce node records for fabric_from_records, so roles, host
names and cable checks are the same as for ibnetdiscover output. Numbers in `.lst` are hex."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from typing import Any

from gpupool.errors import BadInput
from gpupool.fabric.ibnetdiscover import (
    MAX_PORT,
    NodeRecord,
    PortRecord,
    capture_lines,
    fabric_from_records,
)
from gpupool.fabric.model import Fabric

KINDS = {"SW": "Switch", "CA": "Ca", "RT": "Rt"}
ID_PREFIX = {"Switch": "S", "Ca": "H", "Rt": "R"}
# `.lst` SPD= is the lane rate in Gb/s; ibdiagnet prints the nominal figure.
LANE_RATE_SPEED = {"2.5": "SDR", "5": "DDR", "10": "QDR", "14": "FDR", "FDR10": "FDR10", "25": "EDR", "50": "HDR",
                   "100": "NDR", "200": "XDR"}
_END = re.compile(r"\{\s*(SW|CA|RT)\s+([^{}]*?)(?:\{([^{}]*)\})?([^{}]*)\}")
_TAIL = re.compile(r"^\s*PHY=(\w{1,4})\s+LOG=(\w{1,8})\s+SPD=(\S{1,12})\s*$")
_FIELD = re.compile(r"(\w+):(\S*)")


def _hex(value: str | None, what: str, where: str, digits: int) -> int:
    if value is None or not re.fullmatch(rf"(0x)?[0-9a-fA-F]{{1,{digits}}}", value):
        raise BadInput(f"{where}: {what} {str(value)[:40]!r} is not a hex number of at most {digits} digits")
    return int(value, 16)


def _lane_speed(spd: str) -> str | None:
    text = spd.rstrip("0").rstrip(".") if "." in spd else spd
    return LANE_RATE_SPEED.get(text)


def parse_lst(text: str, source: str = "<ibdiagnet2.lst>", *, node_name_map: dict[str, str] | None = None,
              hosts: Iterable[str] | None = None, service_hosts: Iterable[str] = ()) -> Fabric:
    """ibdiagnet2.lst: `{ CA Ports:01 ... NodeGUID:... {desc} LID:00b5 PN:01 } { SW ... } PHY=4x LOG=ACT SPD=100`."""
    records: dict[str, NodeRecord] = {}
    warnings: list[str] = []
    for lineno, line in capture_lines(text):
        where = f"{source}:{lineno}"
        ends = list(_END.finditer(line))
        tail = _TAIL.match(line[ends[-1].end():]) if len(ends) == 2 and ends[0].start() == 0 \
            and not line[ends[0].end():ends[1].start()].strip() else None
        if tail is None:
            raise BadInput(f"{where}: malformed ibdiagnet2.lst line: {line[:80]!r}")
        (a, a_port), (b, b_port) = (_lst_end(m, where, records) for m in ends)
        width, state, spd = tail.group(1).lower(), tail.group(2), tail.group(3)
        if not re.fullmatch(r"(1|2|4|8|12)x", width):
            raise BadInput(f"{where}: link width PHY={tail.group(1)[:8]} is not 1x, 2x, 4x, 8x or 12x")
        speed = _lane_speed(spd)
        if speed is None and spd != "?":
            raise BadInput(f"{where}: link speed SPD={spd[:12]} is not a lane rate ibdiagnet prints "
                             f"({', '.join(LANE_RATE_SPEED)})")
        if state != "ACT":
            warnings.append(f"link-not-active: {where}: {a.node_id}[{a_port}] - {b.node_id}[{b_port}] is {state}")
        for rec, port, other, other_port in ((a, a_port, b, b_port), (b, b_port, a, a_port)):
            if any(p.port == port for p in rec.ports):
                raise BadInput(f"{where}: port {port} of {rec.node_id} listed twice")
            rec.ports.append(PortRecord(lineno, port, other.node_id, other_port, width, speed))
    if not records:
        raise BadInput(f"{source}: no links: the ibdiagnet2.lst file is empty")
    return fabric_from_records(list(records.values()), source, warnings, node_name_map=node_name_map, hosts=hosts,
                               service_hosts=service_hosts, reader="ibdiagnet2.lst")


def _lst_end(m: re.Match[str], where: str, records: dict[str, NodeRecord]) -> tuple[NodeRecord, int]:
    kind = KINDS[m.group(1)]
    fields = dict(_FIELD.findall(f"{m.group(2)} {m.group(4)}"))
    for key in ("Ports", "NodeGUID", "PN"):
        if key not in fields:
            raise BadInput(f"{where}: a link end without {key}:")
    nports = _hex(fields["Ports"], "Ports:", where, 3)
    port = _hex(fields["PN"], "PN:", where, 3)
    guid = _hex(fields["NodeGUID"], "NodeGUID:", where, 16)
    lid = _hex(fields["LID"], "LID:", where, 5) if "LID" in fields else 0
    if nports > MAX_PORT:
        raise BadInput(f"{where}: Ports:{fields['Ports']} is not a port count (1..{MAX_PORT}, hex)")
    if not 1 <= port <= (nports or MAX_PORT):
        raise BadInput(f"{where}: PN:{fields['PN']} is not a port of a node with Ports:{fields['Ports']} (hex)")
    nports = nports or port  # Ports:00 (a .lst written by other tools): the radix is the highest port seen
    desc = (m.group(3) or "").strip()
    node_id = f"{ID_PREFIX[kind]}-{guid:016x}"
    rec = records.get(node_id)
    if rec is None:
        rec = records[node_id] = NodeRecord(int(where.rsplit(":", 1)[1]), kind, nports, node_id, desc, lid or None,
                                            f"0x{guid:016x}", [])
        if "DevID" in fields:
            rec.devid = f"0x{_hex(fields['DevID'], 'DevID:', where, 8) & 0xFFFF:04x}"
        if "SystemGUID" in fields:
            rec.sysimg = f"0x{_hex(fields['SystemGUID'], 'SystemGUID:', where, 16):016x}"
    elif rec.kind != kind:
        raise BadInput(f"{where}: {node_id} is listed as {m.group(1)} here but as {rec.kind} before")
    rec.nports = max(rec.nports, nports)
    if rec.kind == "Ca" and lid and rec.lid is None:
        rec.lid = lid
    return rec, port


# ---------------------------------------------------------------------------------------------
# ibdiagnet2.db_csv
# ---------------------------------------------------------------------------------------------

# PortInfo codes (IBA spec): LinkWidthActive and LinkSpeedActive / LinkSpeedExtActive.
WIDTH_CODES = {1: "1x", 2: "4x", 4: "8x", 8: "12x", 16: "2x"}
SPEED_CODES = {1: "SDR", 2: "DDR", 4: "QDR"}
EXT_SPEED_CODES = {1: "FDR", 2: "EDR", 4: "HDR", 8: "NDR", 16: "XDR"}
NODE_TYPES = {1: "Ca", 2: "Switch", 3: "Rt"}
_MAX_CELL = 4096


class CsvTable:
    """One `START_NAME` ... `END_NAME` table: its header and rows, each row with its line number."""

    def __init__(self, name: str, header: list[str], lineno: int) -> None:
        self.name, self.header, self.lineno = name, header, lineno
        self.rows: list[tuple[int, dict[str, str]]] = []


def read_db_csv_tables(text: str, source: str = "<ibdiagnet2.db_csv>") -> dict[str, CsvTable]:
    """Every table of a db_csv file (cable info and counters included, for later checks)."""
    tables: dict[str, CsvTable] = {}
    current: CsvTable | None = None
    for lineno, raw in enumerate(text.removeprefix("\ufeff").splitlines(), 1):
        line = raw.strip()
        if not line or (line.startswith("#") and current is None):
            continue
        where = f"{source}:{lineno}"
        if current is None:
            m = re.fullmatch(r"START_(\w{1,64})", line)
            if not m:
                raise BadInput(f"{where}: expected START_<TABLE>, got {line[:60]!r}")
            if m.group(1) in tables:
                raise BadInput(f"{where}: table {m.group(1)} appears twice")
            current = CsvTable(m.group(1), [], lineno)
            continue
        if line == f"END_{current.name}":
            tables[current.name] = current
            current = None
            continue
        if line.startswith(("START_", "END_")):
            raise BadInput(f"{where}: {line[:60]!r} inside table {current.name} (its END_{current.name} is missing)")
        try:
            cells = next(csv.reader([line]))
        except csv.Error as exc:
            raise BadInput(f"{where}: malformed CSV row: {exc}") from None
        if any(len(c) > _MAX_CELL for c in cells):
            raise BadInput(f"{where}: a cell is longer than {_MAX_CELL} characters")
        if not current.header:
            current.header = [c.strip() for c in cells]
            continue
        if len(cells) != len(current.header):
            raise BadInput(f"{where}: {len(cells)} cells, but table {current.name} has {len(current.header)} columns")
        current.rows.append((lineno, dict(zip(current.header, cells, strict=True))))
    if current is not None:
        raise BadInput(f"{source}: table {current.name} has no END_{current.name} (truncated file?)")
    return tables


def _int(row: dict[str, str], key: str, where: str, *, required: bool = True) -> int:
    value = row.get(key)
    if value is None or value.strip() == "":
        if required:
            raise BadInput(f"{where}: {key} is missing")
        return 0
    value = value.strip()
    if re.fullmatch(r"0x[0-9a-fA-F]{1,16}", value):
        return int(value, 16)
    if re.fullmatch(r"\d{1,20}", value):
        return int(value)
    raise BadInput(f"{where}: {key} {value[:40]!r} is not a number (decimal, or hex with 0x)")


def _guid(row: dict[str, str], key: str, where: str) -> int:
    value = (row.get(key) or "").strip()
    if not re.fullmatch(r"(0x)?[0-9a-fA-F]{1,16}", value):
        raise BadInput(f"{where}: {key} {value[:40]!r} is not a GUID (hex, at most 16 digits)")
    return int(value, 16)


def _require(tables: dict[str, CsvTable], name: str, columns: tuple[str, ...], source: str) -> CsvTable:
    table = tables.get(name)
    if table is None:
        raise BadInput(f"{source}: no {name} table: not a complete ibdiagnet2.db_csv file")
    missing = [c for c in columns if c not in table.header]
    if missing:
        raise BadInput(f"{source}:{table.lineno}: table {name} has no column {', '.join(missing)}")
    return table


def parse_db_csv(text: str, source: str = "<ibdiagnet2.db_csv>", *, node_name_map: dict[str, str] | None = None,
                 hosts: Iterable[str] | None = None, service_hosts: Iterable[str] = ()) -> Fabric:
    """Topology from NODES, PORTS and LINKS; the other tables' names are kept in meta."""
    tables = read_db_csv_tables(text, source)
    nodes_t = _require(tables, "NODES", ("NodeDesc", "NumPorts", "NodeType", "NodeGUID"), source)
    ports_t = _require(tables, "PORTS", ("NodeGuid", "PortNum"), source)
    if "LINKS" not in tables:
        # Some ibdiagnet versions write no LINKS table: the cables are in the run's other files.
        raise BadInput(f"{source}: this ibdiagnet2.db_csv has no LINKS table, so no cables: give "
                         "ibdiagnet2.lst or ibdiagnet2.ibnetdiscover from the same ibdiagnet run")
    links_t = _require(tables, "LINKS", ("NodeGuid1", "PortNum1", "NodeGuid2", "PortNum2"), source)
    records: dict[int, NodeRecord] = {}
    for lineno, row in nodes_t.rows:
        where = f"{source}:{lineno}"
        guid = _guid(row, "NodeGUID", where)
        kind = NODE_TYPES.get(_int(row, "NodeType", where))
        if kind is None:
            raise BadInput(f"{where}: NodeType {row['NodeType'][:20]!r} is not 1 (CA), 2 (switch) or 3 (router)")
        nports = _int(row, "NumPorts", where)
        if not 1 <= nports <= MAX_PORT:
            raise BadInput(f"{where}: NumPorts {nports} is out of range (1..{MAX_PORT})")
        if guid in records:
            raise BadInput(f"{where}: node 0x{guid:016x} is listed twice")
        rec = NodeRecord(lineno, kind, nports, f"{ID_PREFIX[kind]}-{guid:016x}", row["NodeDesc"].strip(), None,
                         f"0x{guid:016x}", [])
        if (row.get("SystemImageGUID") or "").strip():
            rec.sysimg = f"0x{_guid(row, 'SystemImageGUID', where):016x}"
        if row.get("DeviceID", "").strip():
            rec.devid = f"0x{_int(row, 'DeviceID', where) & 0xFFFF:04x}"
        records[guid] = rec
    rates: dict[tuple[int, int], tuple[str | None, str | None]] = {}
    for lineno, row in ports_t.rows:
        where = f"{source}:{lineno}"
        guid, port = _guid(row, "NodeGuid", where), _int(row, "PortNum", where)
        width = WIDTH_CODES.get(_int(row, "LinkWidthActive", where, required=False))
        ext = _int(row, "LinkSpeedExtActive", where, required=False)
        speed = EXT_SPEED_CODES.get(ext) if ext else SPEED_CODES.get(_int(row, "LinkSpeedActive", where, required=False))
        lid = _int(row, "LID", where, required=False)
        owner = records.get(guid)
        if owner is not None and lid and (owner.lid is None or owner.kind != "Switch" and port == 1):
            owner.lid = lid
        rates[(guid, port)] = (width, speed)
    for lineno, row in links_t.rows:
        where = f"{source}:{lineno}"
        ends = [(_guid(row, f"NodeGuid{k}", where), _int(row, f"PortNum{k}", where)) for k in (1, 2)]
        for guid, port in ends:
            if guid not in records:
                raise BadInput(f"{where}: node 0x{guid:016x} is not in the NODES table")
            if not 1 <= port <= records[guid].nports:
                raise BadInput(f"{where}: port {port} is not a port of 0x{guid:016x} "
                                 f"(NumPorts {records[guid].nports})")
        (ga, pa), (gb, pb) = ends
        width, speed = rates.get((ga, pa)) or rates.get((gb, pb)) or (None, None)
        for (g, p), (og, op) in (((ga, pa), (gb, pb)), ((gb, pb), (ga, pa))):
            rec = records[g]
            if any(x.port == p for x in rec.ports):
                raise BadInput(f"{where}: port {p} of {rec.node_id} is in two links")
            rec.ports.append(PortRecord(lineno, p, records[og].node_id, op, width, speed))
    connected = [r for r in records.values() if r.ports]
    if not connected:
        raise BadInput(f"{source}: the LINKS table is empty")
    fabric = fabric_from_records(connected, source, [], node_name_map=node_name_map, hosts=hosts,
                                 service_hosts=service_hosts, reader="ibdiagnet2.db_csv")
    fabric.meta["db_csv_tables"] = sorted(tables)
    return fabric


def db_csv_table_rows(text: str, name: str, source: str = "<ibdiagnet2.db_csv>") -> list[dict[str, Any]]:
    """Rows of one optional table (e.g. CABLE_INFO, PM_INFO) for checks that use them; [] if absent."""
    table = read_db_csv_tables(text, source).get(name)
    return [dict(row) for _lineno, row in table.rows] if table else []
