"""Findings and monitoring statuses shared by `fabric audit` and `node check` (same JSON shape)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gpupool.errors import MON_CRITICAL, MON_OK, MON_UNKNOWN, MON_WARNING

SEVERITY_WARNING = "warning"
SEVERITY_CRITICAL = "critical"

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
