"""Audit findings, their severities and the monitoring status they add up to."""

from __future__ import annotations

from collections.abc import Iterable

from gpupool.findings import (  # noqa: F401 - re-exported for the audit modules
    EXIT_CODES,
    STATUS_CRITICAL,
    STATUS_OK,
    STATUS_UNKNOWN,
    STATUS_WARNING,
    Finding,
    RollUp,
    Status,
    roll_up,
)
from gpupool.findings import SEVERITY_CRITICAL as CRITICAL

# Worth knowing, not a fault (a loopback cable, a leaf without hosts): never changes the status.
from gpupool.findings import SEVERITY_INFO as INFO  # noqa: F401 - re-exported for the audit modules
from gpupool.findings import SEVERITY_WARNING as WARNING


def status_of(findings: Iterable[Finding], unchecked: Iterable[str] = ()) -> Status:
    """The audit's order: CRITICAL > WARNING > UNKNOWN (a requested check could not run) > OK."""
    return roll_up(findings, unchecked, RollUp.MONITORING)


def sort_findings(findings: Iterable[Finding]) -> list[Finding]:
    from gpupool.fabric.model import natural_key

    rank: dict[str, int] = {CRITICAL: 0, WARNING: 1}
    return sorted(findings, key=lambda f: (rank.get(f.severity, 2), f.check, natural_key(f.subject)))
