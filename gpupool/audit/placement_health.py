"""What an audit's findings mean for placement and draining: broken hosts, degraded leaves.

`health_from_findings` reads findings as `fabric audit --json` writes them (a list of
{"check", "severity", "subject", "message", "details"?}), so a saved audit serves as well as a
live one. `choose_drains` caps how much of the cluster one run may drain.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gpupool.fabric.model import natural_key

# Checks that mean a host's HCA (or one of its cables) is off the fabric: the host cannot run a job well.
HOST_DOWN_CHECKS = ("hca-missing", "link-missing", "host-rails-missing", "slurm-node-not-in-fabric")
# What `fabric audit --drain-broken` acts on: an HCA or cable the reference/peers say should be there is
# gone. Not slurm-node-not-in-fabric: a Slurm node without IB (login, CPU-only) is not broken.
DRAIN_CHECKS = ("hca-missing", "link-missing", "host-rails-missing")
# Checks that make a leaf switch a weaker place for a job (placement avoids it on a tie).
DEGRADED_LEAF_CHECKS = ("leaf-uplinks-missing",)


@dataclass(frozen=True)
class FabricHealth:
    broken_hosts: dict[str, str] = field(default_factory=dict)  # host -> reason
    degraded_leaves: dict[str, str] = field(default_factory=dict)  # leaf switch name -> reason


def _host_of(finding: Mapping[str, Any], hosts: set[str] | None) -> str | None:
    details = finding.get("details") or {}
    host = details.get("host") if isinstance(details, dict) else None
    if isinstance(host, str) and host:
        return host
    check, subject = finding.get("check"), str(finding.get("subject", ""))
    if check in ("host-rails-missing", "slurm-node-not-in-fabric"):
        return subject or None
    if check == "hca-missing" and subject:
        # An HCA is labelled by its node description, "<host> <device>" (e.g. "gpu012 mlx5_0").
        first = subject.split()[0]
        if hosts is None or first in hosts:
            return first
    return None


def _reason(finding: Mapping[str, Any]) -> str:
    check, subject = finding.get("check"), str(finding.get("subject", ""))
    raw_details = finding.get("details")
    details = raw_details if isinstance(raw_details, dict) else {}
    if check == "hca-missing":
        return f"HCA {subject} down"
    if check == "link-missing":
        return f"HCA cable {subject} down"
    if check == "host-rails-missing":
        return f"{details.get('hcas', '?')} of {details.get('expected', '?')} HCAs on the fabric"
    if check == "slurm-node-not-in-fabric":
        return "no HCA on the fabric"
    if check == "leaf-uplinks-missing":
        return f"{details.get('uplinks', '?')} of {details.get('expected', '?')} uplinks"
    return str(finding.get("message", check))


def health_from_findings(findings: Iterable[Mapping[str, Any]], hosts: Iterable[str] | None = None, *,
                         host_checks: tuple[str, ...] = HOST_DOWN_CHECKS) -> FabricHealth:
    """Broken hosts and degraded leaves named by audit findings (`hosts`: the fabric's, to map HCA labels)."""
    known = set(hosts) if hosts is not None else None
    broken: dict[str, list[str]] = {}
    leaves: dict[str, list[str]] = {}
    for finding in findings:
        check = finding.get("check")
        if check in host_checks:
            if check == "link-missing" and finding.get("severity") != "critical":
                continue  # a switch-to-switch cable: the leaf check covers it
            host = _host_of(finding, known)
            if host:
                broken.setdefault(host, []).append(_reason(finding))
        elif check in DEGRADED_LEAF_CHECKS and finding.get("subject"):
            leaves.setdefault(str(finding["subject"]), []).append(_reason(finding))
    return FabricHealth({h: "; ".join(dict.fromkeys(r)) for h, r in sorted(broken.items(), key=lambda i: natural_key(i[0]))},
                        {s: "; ".join(dict.fromkeys(r)) for s, r in leaves.items()})


@dataclass(frozen=True)
class DrainChoice:
    drain: dict[str, str]  # host -> reason, to drain now
    held: dict[str, str]  # broken hosts left up: the cap was reached
    already: list[str]  # broken hosts Slurm already has drained or down
    limit: int  # most hosts one run may have drained (already drained ones count)


def choose_drains(broken: Mapping[str, str], cluster_nodes: Iterable[str], unavailable: Iterable[str],
                  max_fraction: float) -> DrainChoice:
    """Which broken hosts to drain: never more than `max_fraction` of the cluster drained at once.

    Hosts already drained or down (`unavailable`, any cause) count against the cap, so a run after
    a bad one cannot drain the rest; the cap is at least 1 when the fraction is above 0.
    """
    nodes = set(cluster_nodes)
    down = set(unavailable) & nodes
    limit = math.floor(len(nodes) * max_fraction + 1e-9)
    if max_fraction > 0:
        limit = max(limit, 1)
    room = max(0, limit - len(down))
    drain: dict[str, str] = {}
    held: dict[str, str] = {}
    already: list[str] = []
    for host in sorted(broken, key=natural_key):
        if host not in nodes:
            continue  # Slurm does not know it: nothing to drain
        if host in down:
            already.append(host)
        elif len(drain) < room:
            drain[host] = broken[host]
        else:
            held[host] = broken[host]
    return DrainChoice(drain, held, already, limit)
