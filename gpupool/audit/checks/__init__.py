"""Structural fabric checks, grouped by theme; pure functions from a Topo (and an optional reference)
to findings.

Each check has an id (the `check` of its findings), a fixed severity, and names the switch, port
and host at fault. "Expected" comes from the reference design when one is given, else from the
majority of comparable things of the same class (compute leaves with compute leaves, links between
the same hardware, hosts named alike). CHECKS below is the complete list: a new check is added to
its theme module and to this list (a test holds every finding's id to it).
"""

from __future__ import annotations

from dataclasses import dataclass

from gpupool.audit.checks.common import (
    GENERIC_HOST_NAMES,
    MIN_PEERS,
    Rate,
    describe_link,
    link_class,
    link_ends,
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


@dataclass(frozen=True)
class CheckInfo:
    id: str
    theme: str
    severity: str  # the most severe it reports
    what: str


CHECKS: tuple[CheckInfo, ...] = (
    # links
    CheckInfo("link-degraded", "links", "warning",
              "a cable below the rate of its class, capped by what both ends' hardware supports"),
    CheckInfo("switch-loopback", "links", "info", "a cable between two ports of one switch"),
    # leaves and uplinks
    CheckInfo("leaf-uplinks-missing", "leaves", "warning", "a leaf with fewer uplinks than the leaves of its class"),
    CheckInfo("switch-uplinks-missing", "leaves", "warning", "a spine with fewer cables up than its level's peers"),
    CheckInfo("leaf-oversubscribed", "leaves", "warning", "compute HCA bandwidth above uplink bandwidth"),
    CheckInfo("leaf-group-short", "leaves", "critical",
              "a group of rail leaves short of a leaf, whose compute hosts all lack that rail"),
    CheckInfo("leaf-hostless", "leaves", "info", "a leaf with no host at all"),
    # hosts and HCAs
    CheckInfo("host-rails-missing", "hosts", "warning", "a compute host with fewer HCAs than the hosts named like it"),
    CheckInfo("host-name-generic", "hosts", "warning", "HCAs reporting an installer's default host name"),
    CheckInfo("duplicate-guid", "hosts", "critical", "two nodes with one GUID"),
    CheckInfo("duplicate-name", "hosts", "warning", "two nodes with one name"),
    CheckInfo("rail-crossed", "hosts", "warning", "two HCAs of one host cabled to each other's rail leaves"),
    CheckInfo("host-port-mismatch", "hosts", "warning", "one rail of a host on another port number than its others"),
    CheckInfo("hca-unnamed", "hosts", "warning", "an HCA whose node description names no host"),
    # discovery
    CheckInfo("link-one-sided", "discovery", "warning", "a cable only one end reports"),
    CheckInfo("host-name-invalid", "discovery", "warning", "a node description whose host name is not legal"),
    CheckInfo("discovery-diagnostic", "discovery", "warning", "libibmad/ibwarn lines in the capture"),
    CheckInfo("host-partial-subnets", "discovery", "warning",
              "hosts with no HCA on some of the subnets discovered together (one capture per subnet)"),
    CheckInfo("link-not-active", "discovery", "warning", "a cable an ibdiagnet2.lst or iblinkinfo capture lists "
              "in a state other than Active"),
    CheckInfo("discovery-warning", "discovery", "warning", "any other parse-time oddity"),
    # dragonfly
    CheckInfo("dragonfly-global-missing", "dragonfly", "critical", "a group pair short of global links"),
)

CHECK_IDS = frozenset(c.id for c in CHECKS)

__all__ = [
    "CHECKS", "CHECK_IDS", "GENERIC_HOST_NAMES", "MIN_PEERS", "CheckInfo", "Rate", "UplinkReport",
    "check_duplicates", "check_dragonfly", "check_generic_host_names", "check_host_rails", "check_hostless_leaves",
    "check_leaf_groups", "check_leaf_uplinks", "check_link_rates", "check_loopbacks", "check_oversubscription",
    "check_parse_warnings", "check_rail_cabling", "check_unnamed_hcas", "check_upper_uplinks", "describe_link", "fold_oversubscription",
    "host_peer_classes", "link_class", "link_ends",
]
