"""Findings and monitoring statuses shared by `fabric audit` and `node check` (same JSON shape).

One vocabulary: `Severity` of a finding, `Status` of a run, and `roll_up`, the one place a run's
findings and "could not check" notes add up to a status. The two commands rank UNKNOWN differently
on purpose (`RollUp`, docs/contract.md "Statuses"). Severities and statuses are str-valued enums,
so JSON documents, files and comparisons with the plain strings are unchanged. Check ids are
kebab-case (`hca-missing`, `ecc-uncorrected`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from gpupool.errors import MON_CRITICAL, MON_OK, MON_UNKNOWN, MON_WARNING


class Severity(StrEnum):
    INFO = "info"  # worth knowing, not a fault: never changes the status
    WARNING = "warning"
    CRITICAL = "critical"


class Status(StrEnum):
    OK = "OK"
    WARNING = "WARNING"
    CRITICAL = "CRITICAL"
    UNKNOWN = "UNKNOWN"


class RollUp(StrEnum):
    """How a run's findings and unchecked parts add up to one status."""

    # `fabric audit`: CRITICAL > WARNING > UNKNOWN > OK. A fault found says more than a part that
    # could not be checked (a Slurm or ibdiag tool away) about the fabric being watched.
    MONITORING = "monitoring"
    # `node check` (Prolog/Epilog gate): CRITICAL > UNKNOWN > WARNING > OK. A node not fully checked
    # is not known fit to take a job; one with a warning still takes it.
    PLACEMENT = "placement"


SEVERITY_INFO = Severity.INFO
SEVERITY_WARNING = Severity.WARNING
SEVERITY_CRITICAL = Severity.CRITICAL

STATUS_OK = Status.OK
STATUS_WARNING = Status.WARNING
STATUS_CRITICAL = Status.CRITICAL
STATUS_UNKNOWN = Status.UNKNOWN

EXIT_CODES = {STATUS_OK: MON_OK, STATUS_WARNING: MON_WARNING, STATUS_CRITICAL: MON_CRITICAL,
              STATUS_UNKNOWN: MON_UNKNOWN}


def check_id(name: str) -> str:
    """The one spelling of a check id: kebab-case (`ecc_uncorrected` -> `ecc-uncorrected`); where a
    user types an id, the old snake_case spelling is accepted through this."""
    return name.strip().replace("_", "-")


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


def roll_up(findings: Iterable[Finding], unchecked: Iterable[str], mode: RollUp) -> Status:
    """The run's status; `unchecked` lists what could not be checked. `info` findings never count."""
    severities = {f.severity for f in findings}
    incomplete = any(True for _ in unchecked)
    if SEVERITY_CRITICAL in severities:
        return STATUS_CRITICAL
    ranked = ((STATUS_WARNING, SEVERITY_WARNING in severities), (STATUS_UNKNOWN, incomplete))
    for status, present in (ranked if mode is RollUp.MONITORING else ranked[::-1]):
        if present:
            return status
    return STATUS_OK
