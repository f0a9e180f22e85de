"""Capture formats gpupool reads, detected from the text: the one place that knows them all.

To add a reader: write `parse_<format>(text, source, *, node_name_map, hosts, service_hosts) -> Fabric`
in its own module (building NodeRecords and calling ibnetdiscover.fabric_from_records), add a
detection rule to `detect_format` and a row to READERS."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from gpupool.errors import BadInput
from gpupool.fabric.model import Fabric

FORMAT_NAMES = ("ibnetdiscover", "ibdiagnet2.lst", "ibdiagnet2.db_csv", "iblinkinfo")
_SCAN_LINES = 200

# Text that is a known output, but not a topology: what it looks like, in the error's words.
_NOT_TOPOLOGY: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^Switch\s*:\s*0x[0-9a-fA-F]+\s+ports\s+\d+"),
     "a switch list (`ibswitches` or `ibnetdiscover -S/-l`), not a topology: it has no cables"),
    (re.compile(r"^Ca\s*:\s*0x[0-9a-fA-F]+\s+ports\s+\d+"),
     "a CA list (`ibhosts` or `ibnetdiscover -H/-l`), not a topology: it has no cables"),
    (re.compile(r"^Router\s*:\s*0x[0-9a-fA-F]+\s+ports\s+\d+"),
     "a router list (`ibrouters` or `ibnetdiscover -R`), not a topology: it has no cables"),
    (re.compile(r"^CA '[^']*'"), "`ibstat` output (one host's HCAs), not a fabric topology"),
    (re.compile(r"^#\s*Port (counters|extended counters):|^PortXmitData|^Errors for "),
     "port counters (perfquery / ibqueryerrors: give them to `fabric audit --counters`), not a topology"),
    (re.compile(r"^\s*(SwitchName|BlockName)="), "a Slurm topology.conf, not a capture"),
    (re.compile(r"^\s*[{\[]\s*(\"|$)"), "a JSON document (a gpupool fabric file is given with --fabric), not a capture"),
    (re.compile(r"^(topology|switches|blocks)\s*:"), "YAML (a Slurm topology.yaml?), not a capture"),
]


# Any line ibnetdiscover's reader knows (records, ports, vendor lines, -p lists, -s traces, diagnostics).
_IBNETDISCOVER_LINE = re.compile(
    r'^(?:(?:Switch|Ca|Rt)\s+\d+\s+"|\[\d+\]|(?:vendid|devid|sysimgguid|switchguid|caguid|rtguid)=|(?:SW|CA|RT)\s+\d+\s'
    r'|DR path\b|(?:Chassis|Spine|Line|Non-Chassis Nodes)\b|[\w./-]+\.c:\d+;|ib(?:warn|error|debug|panic):)')


def _meaningful_lines(text: str) -> list[str]:
    lines = []
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            lines.append(line)
            if len(lines) >= _SCAN_LINES:
                break
    return lines


def detect_format(text: str, source: str) -> str:
    """Which capture format TEXT is; a known non-topology output is an input error saying what it is."""
    text = text.removeprefix("\ufeff")
    lines = _meaningful_lines(text)
    raw_first = next((r.strip() for r in text.splitlines() if r.strip()), "")
    if not lines and not raw_first:
        raise BadInput(f"{source}: empty file, not a fabric capture")
    first = lines[0] if lines else raw_first
    for pattern, what in _NOT_TOPOLOGY:
        if pattern.match(first) or (raw_first.startswith("#") and pattern.match(raw_first)):
            raise BadInput(f"{source}: {what}")
    if re.match(r"^START_\w+$", first):
        return "ibdiagnet2.db_csv"
    if re.match(r"^\{\s*(SW|CA|RT)\s", first):
        return "ibdiagnet2.lst"
    if re.match(r"^(Switch|CA):\s", first) or any("==(" in line and ")==>" in line for line in lines[:20]):
        return "iblinkinfo"
    if not any(_IBNETDISCOVER_LINE.match(line) for line in lines):
        lineno = next(k for k, raw in enumerate(text.splitlines(), 1) if raw.strip() == first)
        what = "CSV without ibdiagnet's START_/END_ tables" if first.count(",") >= 2 else "not a fabric capture"
        raise BadInput(f"{source}:{lineno}: {what} (first line {first[:60]!r}); gpupool reads ibnetdiscover, "
                         "ibdiagnet2 .ibnetdiscover/.lst/.db_csv and iblinkinfo output")
    return "ibnetdiscover"


def _reader(fmt: str) -> Callable[..., Fabric]:
    if fmt == "ibdiagnet2.lst":
        from gpupool.fabric.ibdiagnet import parse_lst
        return parse_lst
    if fmt == "ibdiagnet2.db_csv":
        from gpupool.fabric.ibdiagnet import parse_db_csv
        return parse_db_csv
    if fmt == "iblinkinfo":
        from gpupool.fabric.iblinkinfo import parse_iblinkinfo
        return parse_iblinkinfo
    from gpupool.fabric.ibnetdiscover import parse_ibnetdiscover
    return parse_ibnetdiscover


def parse_capture(text: str, source: str, *, node_name_map: dict[str, str] | None = None,
                  hosts: Iterable[str] | None = None, service_hosts: Iterable[str] = ()) -> Fabric:
    """Read a capture of any supported format (detected) into a Fabric; meta.format names it."""
    if "\x00" in text:
        raise BadInput(f"{source}: binary data, not a fabric capture")
    fmt = detect_format(text, source)
    fabric = _reader(fmt)(text, source, node_name_map=node_name_map, hosts=hosts, service_hosts=service_hosts)
    fabric.meta["format"] = fmt
    return fabric
