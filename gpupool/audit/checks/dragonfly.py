"""Theme: dragonfly. dragonfly-global-missing."""

from __future__ import annotations

from collections import Counter, defaultdict

from gpupool.audit.findings import CRITICAL, WARNING, Finding
from gpupool.audit.topology import mode
from gpupool.fabric.model import Fabric, natural_key


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
