"""Audit findings, their severities and the monitoring status they add up to."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from gpupool.errors import MON_CRITICAL, MON_OK, MON_UNKNOWN, MON_WARNING

WARNING = "warning"
CRITICAL = "critical"

STATUS_OK = "OK"
STATUS_WARNING = "WARNING"
STATUS_CRITICAL = "CRITICAL"
STATUS_UNKNOWN = "UNKNOWN"

EXIT_CODES = {STATUS_OK: MON_OK, STATUS_WARNING: MON_WARNING, STATUS_CRITICAL: MON_CRITICAL,
              STATUS_UNKNOWN: MON_UNKNOWN}


@dataclass(frozen=True)
class Finding:
    """One problem: `check` id, `severity`, the `subject` at fault (switch, host, HCA, port) and a message."""

    check: str
    severity: str
    subject: str
    message: str
    details: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"check": self.check, "severity": self.severity, "subject": self.subject,
                               "message": self.message}
        if self.details:
            doc["details"] = self.details
        return doc


def status_of(findings: Iterable[Finding], unchecked: Iterable[str] = ()) -> str:
    """CRITICAL > WARNING > UNKNOWN (a requested check could not run) > OK."""
    severities = {f.severity for f in findings}
    if CRITICAL in severities:
        return STATUS_CRITICAL
    if WARNING in severities:
        return STATUS_WARNING
    if any(True for _ in unchecked):
        return STATUS_UNKNOWN
    return STATUS_OK


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    from gpupool.fabric.model import natural_key

    rank = {CRITICAL: 0, WARNING: 1}
    return sorted(findings, key=lambda f: (rank.get(f.severity, 2), f.check, natural_key(f.subject)))
