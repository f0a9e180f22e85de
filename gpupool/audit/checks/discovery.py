"""Theme: discovery. link-one-sided, host-name-invalid, discovery-diagnostic and other parse-time
warnings of the capture, as findings."""

from __future__ import annotations

import re

from gpupool.audit.checks.registry import AuditInput, CheckInfo, audit_check
from gpupool.audit.rollup import WARNING, Finding
from gpupool.audit.topology import Topo
from gpupool.fabric.model import Fabric

_ONE_SIDED = re.compile(r"^link-one-sided:\s*(\S+)\s*->\s*(\S+)\s*(.*)$")


_ID_PORT = re.compile(r"^(.+)\[(\d+)\]$")


def check_parse_warnings(fabric: Fabric) -> list[Finding]:
    """link-one-sided: a cable only one end reports (a flapping port or a stale node record)."""
    topo = Topo.of(fabric)
    index = fabric.index_by_id()

    def readable(end: str) -> str:
        m = _ID_PORT.match(end)
        if m and m.group(1) in index:
            return topo.port_name(index[m.group(1)], int(m.group(2)))
        return end

    findings = []
    for text in fabric.warnings:
        m = _ONE_SIDED.match(text)
        if m:
            subject = readable(m.group(1))
            findings.append(Finding("link-one-sided", WARNING, subject,
                                    f"{subject} -> {readable(m.group(2))} {m.group(3)}".strip()))
        else:
            check = text.split(":", 1)[0] if ":" in text else "discovery-warning"
            findings.append(Finding(check if re.fullmatch(r"[a-z-]+", check) else "discovery-warning", WARNING,
                                    "fabric", text))
    return findings


@audit_check(reports=(
    CheckInfo("link-one-sided", "discovery", WARNING, "a cable only one end reports"),
    CheckInfo("host-name-invalid", "discovery", WARNING, "a node description whose host name is not legal"),
    CheckInfo("discovery-diagnostic", "discovery", WARNING, "libibmad/ibwarn lines in the capture"),
    CheckInfo("host-partial-subnets", "discovery", WARNING,
              "hosts with no HCA on some of the subnets discovered together (one capture per subnet)"),
    CheckInfo("link-not-active", "discovery", WARNING,
              "a cable an ibdiagnet2.lst or iblinkinfo capture lists in a state other than Active"),
    CheckInfo("discovery-warning", "discovery", WARNING, "any other parse-time oddity"),
))
def _parse_warnings(audit: AuditInput) -> list[Finding]:
    return check_parse_warnings(audit.fabric)
