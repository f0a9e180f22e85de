"""The audit's checks over a fabric: which checks run, in what order, and the result they make.

`audit_fabric` needs nothing but the fabric (and a reference design); reading files, running the
ibdiag tools, asking Slurm and draining live in the use case, `gpupool.app.audit`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gpupool.audit import checks
from gpupool.audit.rollup import Finding, sort_findings, status_of
from gpupool.audit.topology import Topo
from gpupool.fabric.kinds import FabricKind
from gpupool.fabric.model import Fabric

if TYPE_CHECKING:
    from gpupool.fabric.compiled import CompiledFabric


@dataclass
class AuditResult:
    findings: list[Finding] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)  # requested checks that could not run, and why
    totals: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, Any] = field(default_factory=dict)  # e.g. corrected topology.conf

    @property
    def status(self) -> str:
        return status_of(self.findings, self.unchecked)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"status": self.status, "findings": [f.to_json() for f in sort_findings(self.findings)]}
        if self.unchecked:
            doc["unchecked"] = self.unchecked
        if self.totals:
            doc["totals"] = self.totals
        doc.update(self.extras)
        return doc


def audit_fabric(fabric: Fabric, reference: Fabric | None = None, *, max_oversubscription: float | None = None,
                 compiled: CompiledFabric | None = None) -> AuditResult:
    """All checks that need nothing but the fabric (and a reference design, when given)."""
    topo = Topo.of(fabric)
    result = AuditResult()
    expected_by_link = None
    expected_uplinks = None
    if reference is not None:
        from gpupool.audit.reference import compare

        match = compare(topo, reference)
        result.findings += match.findings
        expected_by_link, expected_uplinks = match.expected_by_link, match.expected_uplinks
        result.totals["missing_links_vs_reference"] = match.missing_links
    if compiled is None and fabric.switch_indices():
        from gpupool.fabric.compiled import compile_fabric

        compiled = compile_fabric(fabric)
    global_links: frozenset[int] = frozenset()
    if compiled is not None and compiled.kind is FabricKind.DRAGONFLY:
        group_of = {int(n): int(g) for n, g in zip(compiled.switch_node, compiled.switch_group, strict=True)}
        global_links = frozenset(li for li, lk in enumerate(fabric.links)
                                 if lk.a in group_of and lk.b in group_of and group_of[lk.a] != group_of[lk.b])
    audit = checks.AuditInput(fabric, topo, reference, compiled, expected_by_link, expected_uplinks, global_links,
                              max_oversubscription, result.totals)
    for check in checks.AUDIT_CHECKS.values():  # every registered structural check (audit/checks/)
        result.findings += check.run(audit)
    result.totals["unnamed_hcas"] = len(topo.unnamed())
    return result
