"""Port error counters: parse `perfquery` and `ibqueryerrors` text, compare with thresholds.

Thresholds default to the ones infiniband-diags ships in /etc/infiniband-diags/error_thresholds;
the config's `[audit.thresholds]` table overrides them (0 or a negative value disables a counter).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from gpupool.audit.rollup import CRITICAL, WARNING, Finding
from gpupool.audit.topology import Topo
from gpupool.errors import BadInput

DEFAULT_THRESHOLDS: dict[str, int] = {
    "SymbolErrorCounter": 10,
    "LinkErrorRecoveryCounter": 10,
    "LinkDownedCounter": 10,
    "PortRcvErrors": 10,
    "PortRcvRemotePhysicalErrors": 100,
    "PortRcvSwitchRelayErrors": 100,
    "PortXmitDiscards": 100,
    "PortXmitConstraintErrors": 100,
    "PortRcvConstraintErrors": 100,
    "LocalLinkIntegrityErrors": 10,
    "ExcessiveBufferOverrunErrors": 10,
    "VL15Dropped": 100,
}
# Counters this many times over their threshold make the finding critical.
DEFAULT_CRITICAL_FACTOR = 10


@dataclass
class PortCounters:
    """Error counters of one port, located by LID or GUID (and a node name when the tool gave one)."""

    port: int
    values: dict[str, int]
    lid: int | None = None
    guid: str | None = None
    name: str | None = None
    source: str = ""


@dataclass
class CounterConfig:
    thresholds: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    critical_factor: float = DEFAULT_CRITICAL_FACTOR

    @classmethod
    def from_section(cls, section: Mapping[str, object], source: str = "config") -> CounterConfig:
        cfg = cls()
        table = section.get("thresholds", {})
        if not isinstance(table, Mapping):
            raise BadInput(f"{source}: [audit.thresholds] must be a table of counter = number")
        for name, value in table.items():
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise BadInput(f"{source}: [audit.thresholds] {name} must be a number, not {value!r}")
            if value <= 0:
                cfg.thresholds.pop(str(name), None)
            else:
                cfg.thresholds[str(name)] = int(value)
        factor = section.get("critical_factor", DEFAULT_CRITICAL_FACTOR)
        if not isinstance(factor, int | float) or isinstance(factor, bool) or factor < 1:
            raise BadInput(f"{source}: [audit] critical_factor must be a number >= 1, not {factor!r}")
        cfg.critical_factor = float(factor)
        return cfg


# ---------------------------------------------------------------------------------------------
# Parsers
# ---------------------------------------------------------------------------------------------

_PQ_HEADER = re.compile(r"^#\s*Port (?:extended )?counters:\s*Lid\s+(\d+)\s+port\s+(\d+|ALL|255)", re.IGNORECASE)
_PQ_FIELD = re.compile(r"^([A-Za-z0-9]+):\.*\s*(0x[0-9a-fA-F]+|\d+)\s*$")
_IQE_NODE = re.compile(r'^Errors for\s+(?:(0x[0-9a-fA-F]+)\s+)?"(.*)"\s*$')
_IQE_PORT = re.compile(r"^\s*GUID\s+(0x[0-9a-fA-F]+)\s+port\s+(\d+|ALL):(.*)$")
_IQE_VALUE = re.compile(r"\[(\w+)\s*==\s*(\d+)")


def parse_perfquery(text: str, source: str = "perfquery") -> list[PortCounters]:
    """One or more `perfquery [-x] LID PORT` outputs, concatenated."""
    out: list[PortCounters] = []
    current: PortCounters | None = None
    for raw in text.splitlines():
        line = raw.strip()
        header = _PQ_HEADER.match(line)
        if header:
            port = header.group(2)
            current = PortCounters(port=255 if port in ("ALL", "255") else int(port), values={},
                                   lid=int(header.group(1)), source=source)
            out.append(current)
            continue
        field_match = _PQ_FIELD.match(line)
        if field_match and current is not None:
            name, value = field_match.groups()
            if name in ("PortSelect", "CounterSelect", "CounterSelect2"):
                continue
            current.values[name] = int(value, 16) if value.startswith("0x") else int(value)
    return out


def parse_ibqueryerrors(text: str, source: str = "ibqueryerrors") -> list[PortCounters]:
    """`ibqueryerrors` output: `Errors for ... "name"` then `GUID 0x.. port N: [Counter == v] ...`."""
    out: list[PortCounters] = []
    node_guid: str | None = None
    node_name: str | None = None
    for raw in text.splitlines():
        line = raw.rstrip()
        node = _IQE_NODE.match(line.strip())
        if node:
            node_guid, node_name = node.group(1), node.group(2)
            continue
        port = _IQE_PORT.match(line)
        if port and node_name is not None:
            values = {k: int(v) for k, v in _IQE_VALUE.findall(port.group(3))}
            number = 255 if port.group(2) == "ALL" else int(port.group(2))
            out.append(PortCounters(port=number, values=values, guid=node_guid or port.group(1),
                                    name=node_name, source=source))
    return out


_COUNTER_KEYS = {name.lower(): name for name in DEFAULT_THRESHOLDS}
PM_TABLE = "PM_INFO"


def parse_db_csv_counters(text: str, source: str = "ibdiagnet2.db_csv") -> list[PortCounters]:
    """The port counters of an ibdiagnet2.db_csv file (its PM_INFO table: NodeGUID, PortNumber and
    one column per counter, snake_case or CamelCase); [] when the file has no such table."""
    from gpupool.fabric.ibdiagnet import db_csv_table_rows

    out: list[PortCounters] = []
    for k, row in enumerate(db_csv_table_rows(text, PM_TABLE, source)):
        guid = (row.get("NodeGUID") or row.get("NodeGuid") or "").strip()
        port = (row.get("PortNumber") or row.get("PortNum") or "").strip()
        if not re.fullmatch(r"0x[0-9a-fA-F]{1,16}", guid) or not re.fullmatch(r"\d{1,3}", port):
            raise BadInput(f"{source}: {PM_TABLE} row {k + 1}: NodeGUID {guid[:40]!r} / PortNumber {port[:10]!r} "
                             "is not a GUID and a port number")
        values: dict[str, int] = {}
        for column, value in row.items():
            name = _COUNTER_KEYS.get(column.replace("_", "").lower())
            value = value.strip()
            if name is None or value in ("", "N/A", "NA"):
                continue
            if not re.fullmatch(r"0x[0-9a-fA-F]{1,16}|\d{1,20}", value):
                raise BadInput(f"{source}: {PM_TABLE} row {k + 1}: {column} {value[:40]!r} is not a counter value")
            values[name] = int(value, 16) if value.startswith("0x") else int(value)
        out.append(PortCounters(port=int(port), values=values, guid=guid, source=source))
    return out


def parse_counters(text: str, source: str) -> list[PortCounters]:
    """Saved output of perfquery, ibqueryerrors or an ibdiagnet2.db_csv (detected from its text)."""
    if re.match(r"\A(?:\s*(?:#[^\n]*)?\n)*\s*START_\w+\s*$", text, re.MULTILINE):
        return parse_db_csv_counters(text, source)
    if _IQE_NODE.search(text) or re.search(r"^## Summary:", text, re.MULTILINE):
        return parse_ibqueryerrors(text, source)
    samples = parse_perfquery(text, source)
    if not samples and text.strip():
        raise BadInput(f"{source}: neither perfquery nor ibqueryerrors output")
    return samples


# ---------------------------------------------------------------------------------------------
# Check
# ---------------------------------------------------------------------------------------------

def _locate(topo: Topo, sample: PortCounters, by_lid: dict[int, int], by_guid: dict[int, int],
            by_desc: dict[str, int]) -> int | None:
    if sample.lid is not None and sample.lid in by_lid:
        return by_lid[sample.lid]
    if sample.guid:
        value = int(sample.guid, 16)
        # CA port GUIDs sit just above the node GUID (ibsim: +port); real ConnectX often reuse it.
        for delta in range(0, 3):
            if value - delta in by_guid:
                return by_guid[value - delta]
    if sample.name and sample.name in by_desc:
        return by_desc[sample.name]
    return None


def check_counters(topo: Topo, samples: list[PortCounters], config: CounterConfig | None = None) -> list[Finding]:
    """port-errors: a port whose error counters exceed their thresholds, naming the cable's far end."""
    config = config or CounterConfig()
    nodes = topo.fabric.nodes
    by_lid = {n.lid: i for i, n in enumerate(nodes) if n.lid}
    by_guid = {int(n.guid, 16): i for i, n in enumerate(nodes) if n.guid}
    by_desc: dict[str, int] = {}
    for i, n in enumerate(nodes):
        by_desc.setdefault(n.desc, i)
    # Several sources may report the same port: keep the largest value of each counter.
    merged: dict[tuple[object, int], tuple[int | None, PortCounters]] = {}
    for sample in samples:
        node = _locate(topo, sample, by_lid, by_guid, by_desc)
        key = (node if node is not None else (sample.lid, sample.guid, sample.name), sample.port)
        if key in merged:
            values = merged[key][1].values
            for k, v in sample.values.items():
                values[k] = max(v, values.get(k, 0))
        else:
            merged[key] = (node, PortCounters(sample.port, dict(sample.values), sample.lid, sample.guid,
                                              sample.name, sample.source))
    findings = []
    for node, sample in merged.values():
        over = {k: v for k, v in sample.values.items() if k in config.thresholds and v > config.thresholds[k]}
        if not over:
            continue
        if node is None:
            where = f"lid {sample.lid}" if sample.lid is not None else (sample.name or sample.guid or "?")
            subject = f"{where} port {sample.port}"
            far = ""
        else:
            subject = f"{topo.label(node)} port {sample.port}"
            far = _far_end(topo, node, sample.port)
        worst = max(v / config.thresholds[k] for k, v in over.items())
        severity = CRITICAL if worst >= config.critical_factor else WARNING
        text = ", ".join(f"{k}={v} (threshold {config.thresholds[k]})" for k, v in sorted(over.items()))
        message = f"{subject}{far}: {text}"
        findings.append(Finding("port-errors", severity, subject, message, {"counters": over}))
    return findings


def _far_end(topo: Topo, node: int, port: int) -> str:
    for j, li in topo.adj[node]:
        link = topo.fabric.links[li]
        if (link.a == node and link.a_port == port) or (link.b == node and link.b_port == port):
            far_port = link.b_port if link.a == node else link.a_port
            return f" (cable to {topo.label(j)} port {far_port})"
    return ""
