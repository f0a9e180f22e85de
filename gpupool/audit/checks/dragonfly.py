"""Theme: dragonfly. dragonfly-global-missing."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import TYPE_CHECKING

from gpupool.audit.checks.registry import AuditInput, audit_check
from gpupool.audit.reference import match_nodes
from gpupool.audit.rollup import CRITICAL, WARNING, Finding
from gpupool.audit.topology import mode
from gpupool.fabric.kinds import FabricKind
from gpupool.fabric.model import Fabric, natural_key

if TYPE_CHECKING:
    from gpupool.fabric.compiled import CompiledFabric


def check_dragonfly(fabric: Fabric, switch_nodes: list[int], switch_group: list[int],
                    expected_pairs: dict[tuple[int, int], int] | None = None) -> list[Finding]:
    """dragonfly-global-missing: a pair of groups with fewer global links than the others (or the reference)."""
    group_of = {node: g for node, g in zip(switch_nodes, switch_group, strict=True) if g >= 0}
    groups = sorted(set(group_of.values()))
    if len(groups) < 2:
        return []
    members: dict[int, list[str]] = defaultdict(list)
    for node, g in group_of.items():
        members[g].append(fabric.nodes[node].name or fabric.nodes[node].id)
    counts: Counter[tuple[int, int]] = Counter()
    for link in fabric.links:
        ga, gb = group_of.get(link.a), group_of.get(link.b)
        if ga is None or gb is None or ga == gb:
            continue
        counts[(min(ga, gb), max(ga, gb))] += 1
    pairs = [(a, b) for i, a in enumerate(groups) for b in groups[i + 1:]]
    usual = mode(counts[p] for p in pairs) or 0
    findings = []
    for a, b in pairs:
        want = (expected_pairs or {}).get((a, b), usual)
        have = counts[(a, b)]
        if have >= want:
            continue
        first_a = sorted(members[a], key=natural_key)[0]
        first_b = sorted(members[b], key=natural_key)[0]
        severity = CRITICAL if have == 0 else WARNING
        findings.append(Finding("dragonfly-global-missing", severity, f"group {a + 1} - group {b + 1}",
                                f"dragonfly groups {a + 1} ({first_a}...) and {b + 1} ({first_b}...) have "
                                f"{have} global links, expected {want}: {want - have} missing"
                                + ("; traffic between them takes an extra group hop" if have == 0 else ""),
                                {"links": have, "expected": want}))
    return findings


@audit_check("dragonfly-global-missing", "dragonfly", CRITICAL, "a group pair short of global links")
def _dragonfly_global_missing(audit: AuditInput) -> list[Finding]:
    compiled = audit.compiled
    if compiled is None or compiled.kind is not FabricKind.DRAGONFLY:
        return []
    return check_dragonfly(audit.fabric, [int(x) for x in compiled.switch_node],
                           [int(g) for g in compiled.switch_group],
                           reference_pairs(audit.fabric, audit.reference, compiled))


def reference_pairs(fabric: Fabric, reference: Fabric | None,
                    compiled: CompiledFabric) -> dict[tuple[int, int], int] | None:
    """Global links per group pair in the reference, keyed by the current fabric's group numbers."""
    if reference is None:
        return None
    nmap = match_nodes(fabric, reference)
    group_of = {int(n): int(g) for n, g in zip(compiled.switch_node, compiled.switch_group, strict=True)}
    ref_group = {r: group_of[c] for r, c in nmap.items() if c in group_of}
    pairs: Counter[tuple[int, int]] = Counter()
    for link in reference.links:
        ga, gb = ref_group.get(link.a), ref_group.get(link.b)
        if ga is not None and gb is not None and ga != gb:
            pairs[(min(ga, gb), max(ga, gb))] += 1
    return dict(pairs)
