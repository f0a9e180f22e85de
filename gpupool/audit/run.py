"""The audit's checks over a fabric: which checks run, in what order, and the result they make.

`audit_fabric` needs nothing but the fabric (and a reference design); reading files, running the
ibdiag tools, asking Slurm and draining live in the use case, `gpupool.app.audit`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gpupool.audit import checks
from gpupool.audit.findings import Finding, sort_findings, status_of
from gpupool.audit.topology import Topo
from gpupool.fabric.model import Fabric


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
                 compiled: Any = None) -> AuditResult:
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
    result.findings += checks.check_link_rates(topo, expected_by_link)
    result.findings += checks.check_loopbacks(topo)
    if compiled is None and fabric.switch_indices():
        from gpupool.fabric.compiled import compile_fabric

        compiled = compile_fabric(fabric)
    global_links: frozenset[int] = frozenset()
    if compiled is not None and compiled.kind == "dragonfly":
        group_of = {int(n): int(g) for n, g in zip(compiled.switch_node, compiled.switch_group, strict=True)}
        global_links = frozenset(li for li, lk in enumerate(fabric.links)
                                 if lk.a in group_of and lk.b in group_of and group_of[lk.a] != group_of[lk.b])
        expected_uplinks = None  # the reference's per-cable comparison covers dragonfly routers
    uplinks = checks.check_leaf_uplinks(topo, expected_uplinks, global_links)
    if compiled is not None and compiled.kind == "fat-tree":
        levels = {int(n): int(lv) for n, lv in zip(compiled.switch_node, compiled.switch_level, strict=True)}
        upper = checks.check_upper_uplinks(topo, levels)
        result.findings += upper
        # Every missing cable counted once: spine-to-core cables beside the leaves' uplinks.
        result.totals["missing_switch_uplinks"] = sum(f.details["expected"] - f.details["uplinks"] for f in upper)
        result.totals["switches_missing_uplinks"] = len(upper)
    # A leaf oversubscribed only by its missing uplinks is said once, in its leaf-uplinks-missing finding.
    short_leaves, oversubscribed = checks.fold_oversubscription(
        uplinks.findings, checks.check_oversubscription(topo, max_oversubscription))
    result.findings += short_leaves
    result.totals["missing_uplinks"] = uplinks.missing_total
    result.totals["leaves_missing_uplinks"] = uplinks.leaves_short
    result.findings += oversubscribed
    result.findings += checks.check_host_rails(topo)
    result.findings += checks.check_generic_host_names(topo)
    result.findings += checks.check_unnamed_hcas(topo)
    result.findings += checks.check_duplicates(topo)
    result.findings += checks.check_rail_cabling(topo)
    result.findings += checks.check_leaf_groups(topo)
    result.findings += checks.check_hostless_leaves(topo)
    result.findings += checks.check_parse_warnings(fabric)
    result.totals["unnamed_hcas"] = len(topo.unnamed())
    if compiled is not None and compiled.kind == "dragonfly":
        result.findings += checks.check_dragonfly(fabric, [int(x) for x in compiled.switch_node],
                                                  [int(g) for g in compiled.switch_group],
                                                  _reference_pairs(fabric, reference, compiled))
    return result


def _reference_pairs(fabric: Fabric, reference: Fabric | None, compiled: Any) -> dict[tuple[int, int], int] | None:
    """Global links per group pair in the reference, keyed by the current fabric's group numbers."""
    if reference is None:
        return None
    from collections import Counter

    from gpupool.audit.reference import match_nodes

    nmap = match_nodes(fabric, reference)
    group_of = {int(n): int(g) for n, g in zip(compiled.switch_node, compiled.switch_group, strict=True)}
    ref_group = {r: group_of[c] for r, c in nmap.items() if c in group_of}
    pairs: Counter[tuple[int, int]] = Counter()
    for link in reference.links:
        ga, gb = ref_group.get(link.a), ref_group.get(link.b)
        if ga is not None and gb is not None and ga != gb:
            pairs[(min(ga, gb), max(ga, gb))] += 1
    return dict(pairs)
