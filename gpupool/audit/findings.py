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
)
from gpupool.findings import SEVERITY_CRITICAL as CRITICAL
from gpupool.findings import SEVERITY_WARNING as WARNING

# Worth knowing, not a fault (a loopback cable, a leaf without hosts): never changes the status.
INFO = "info"


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
