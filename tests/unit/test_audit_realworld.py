"""Audit findings on the real Selene and UFM-lab captures, each checked against the raw file by a
small independent reader in this test (regexes over the port lines, no gpupool parsing)."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from gpupool.audit.checks import CHECK_IDS
from gpupool.audit.run import audit_fabric
from gpupool.fabric.ibnetdiscover import parse_ibnetdiscover

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ibnetdiscover"
SELENE = FIXTURES / "selene-compute-hdr.out"
UFM = FIXTURES / "ufm-lab-small-hdr-fdr.out"

_HEADER = re.compile(r'^(Switch|Ca)\s+\d+\s+"([^"]+)"\s+#\s+"([^"]*)"')
_PORT = re.compile(r'^\[(\d+)\]\S*\s+"([^"]+)"\[(\d+)\]')


def _raw(path: Path) -> tuple[dict[str, str], dict[str, str], dict[str, list[tuple[int, str]]]]:
    """(switch id -> name, CA id -> description, node id -> [(port, remote id)]) from the raw text."""
    switches, cas, ports = {}, {}, defaultdict(list)
    current = None
    for line in path.read_text().splitlines():
        if m := _HEADER.match(line):
            current = m.group(2)
            if m.group(1) == "Switch":
                switches[current] = m.group(3).removeprefix("MF0;").split(":")[0]
            else:
                cas[current] = m.group(3)
        elif (m := _PORT.match(line)) and current:
            ports[current].append((int(m.group(1)), m.group(2)))
    return switches, cas, ports


@pytest.fixture(scope="module")
def selene():  # type: ignore[no-untyped-def]
    return audit_fabric(parse_ibnetdiscover(SELENE.read_text(), str(SELENE)))


def test_selene_has_no_critical_and_every_check_is_listed(selene) -> None:  # type: ignore[no-untyped-def]
    assert [f for f in selene.findings if f.severity == "critical"] == []
    assert {f.check for f in selene.findings} <= CHECK_IDS
    assert selene.status == "WARNING"


def test_selene_findings_are_exactly_the_cables_missing_in_the_capture(selene) -> None:  # type: ignore[no-untyped-def]
    switches, cas, ports = _raw(SELENE)
    by_name = {name: sid for sid, name in switches.items()}
    up = {name: sum(1 for _p, r in ports[sid] if r in switches) for name, sid in by_name.items()}
    # Rail leaves LG*: every one has 20 uplinks but these, which have 19.
    lg = {n: c for n, c in up.items() if n.startswith("LG")}
    assert Counter(lg.values()) == {20: 187, 19: 13}
    short_leaves = {n for n, c in lg.items() if c == 19}
    # Compute spines CSPINE*: 14 cables to CCORE* each, but these.
    to_core = {n: sum(1 for _p, r in ports[by_name[n]] if switches.get(r, "").startswith("CCORE"))
               for n in by_name if n.startswith("CSPINE")}
    short_spines = {n: 14 - c for n, c in to_core.items() if c < 14}
    assert sum(short_spines.values()) == 16 and len(short_spines) == 15
    # A short leaf is oversubscribed when its host HCAs now outnumber its uplinks (all HDR, 1:1 design).
    hcas = {n: sum(1 for _p, r in ports[by_name[n]] if r in cas and "Aggregation" not in cas[r]) for n in lg}
    oversubscribed = {n for n in short_leaves if hcas[n] > lg[n]}

    got: dict[str, set[str]] = defaultdict(set)
    for f in selene.findings:
        got[f.check].add(f.subject)
    assert got["leaf-uplinks-missing"] == short_leaves
    assert got["switch-uplinks-missing"] == set(short_spines)
    # Each is oversubscribed only by its missing cable (20 HCAs at most: 1:1 with 20 uplinks back),
    # so it is told in its leaf-uplinks-missing finding: one root cause, one finding (issue 27).
    assert len(oversubscribed) == 3 and all(hcas[n] <= 20 for n in oversubscribed)
    assert "leaf-oversubscribed" not in got
    told = {f.subject for f in selene.findings if f.check == "leaf-uplinks-missing" and "oversubscribed" in f.message}
    assert told == oversubscribed
    # MLG01-05's record: 14 port lines to MSPINE4-01 and its aggregation node, no host.
    assert got["leaf-hostless"] == {"MLG01-05"}
    assert set(got) == {"leaf-uplinks-missing", "switch-uplinks-missing", "leaf-hostless"}


def test_ufm_lab_loopbacks_are_apart_and_links_at_their_hardware_best_are_not_degraded() -> None:
    result = audit_fabric(parse_ibnetdiscover(UFM.read_text(), str(UFM)))
    # Raw: r-ufm-sw226 (SX6036, devid 0xc738: FDR at most) ports 25<->26 (FDR10) and 28<->29 (FDR);
    # every other link runs at the most its slower end supports (EDR ConnectX-5 on the HDR switch,
    # FDR on the SX6036, HDR aggregation node, FDR between the two switches).
    assert [(f.check, f.severity, f.subject) for f in result.findings] == [
        ("switch-loopback", "info", "r-ufm-sw226")]
    assert result.status == "OK"


@pytest.mark.parametrize("capture", ["dgx-superpod-ndr.out", "ufm-lab-small-hdr-fdr.out"])
def test_every_finding_names_a_listed_check(capture: str) -> None:
    path = FIXTURES / capture
    result = audit_fabric(parse_ibnetdiscover(path.read_text(), str(path)))
    assert result.findings and {f.check for f in result.findings} <= CHECK_IDS
