"""Structural fabric checks, grouped by theme; pure functions from a Topo (and an optional reference)
to findings.

Each check has an id (the `check` of its findings), a fixed severity, and names the switch, port
and host at fault. "Expected" comes from the reference design when one is given, else from the
majority of comparable things of the same class (compute leaves with compute leaves, links between
the same hardware, hosts named alike).

A check is registered once, where it is written: a function `(AuditInput) -> list[Finding]` in its
theme module, decorated with `@audit_check(id, theme, severity, what)` (gpupool.audit.checks.registry).
`audit_fabric` runs every registered check; `CHECKS` (one row per finding id) and `CHECK_IDS` are
read off the registry (a test holds every finding's id to them). A new theme module is imported here.
"""

from __future__ import annotations

from gpupool.audit.checks.common import (
    GENERIC_HOST_NAMES,
    MIN_PEERS,
    Rate,
    describe_link,
    link_class,
)
from gpupool.audit.checks.discovery import check_parse_warnings
from gpupool.audit.checks.dragonfly import check_dragonfly
from gpupool.audit.checks.hosts import (
    check_duplicates,
    check_generic_host_names,
    check_host_rails,
    check_rail_cabling,
    check_unnamed_hcas,
    host_peer_classes,
)
from gpupool.audit.checks.leaves import (
    UplinkReport,
    check_hostless_leaves,
    check_leaf_groups,
    check_leaf_uplinks,
    check_oversubscription,
    check_upper_uplinks,
    fold_oversubscription,
)
from gpupool.audit.checks.links import check_link_rates, check_loopbacks
from gpupool.audit.checks.registry import (
    AUDIT_CHECKS,
    AuditCheck,
    AuditInput,
    CheckInfo,
    all_check_infos,
    audit_check,
)
from gpupool.audit.topology import link_ends  # kept here for the checks' callers

CHECKS: tuple[CheckInfo, ...] = all_check_infos()

CHECK_IDS = frozenset(c.id for c in CHECKS)

__all__ = [
    "AUDIT_CHECKS", "CHECKS", "CHECK_IDS", "GENERIC_HOST_NAMES", "MIN_PEERS", "AuditCheck", "AuditInput", "CheckInfo",
    "all_check_infos", "audit_check", "Rate", "UplinkReport",
    "check_duplicates", "check_dragonfly", "check_generic_host_names", "check_host_rails", "check_hostless_leaves",
    "check_leaf_groups", "check_leaf_uplinks", "check_link_rates", "check_loopbacks", "check_oversubscription",
    "check_parse_warnings", "check_rail_cabling", "check_unnamed_hcas", "check_upper_uplinks", "describe_link", "fold_oversubscription",
    "host_peer_classes", "link_class", "link_ends",
]
