"""NVIDIA Selene's compute fabric (tests/fixtures/ibnetdiscover/selene-compute-hdr.out): the model's
levels, kind and host counts against numbers derived by hand from the raw capture.

How the literals were derived (shell over the raw file, not gpupool):
- `grep -c '^Switch'` = 666; the names in `# "MF0;NAME:MQM8700/U1"` with their trailing digits
  and dashes cut (`sed 's/[0-9-]*$//' | sort | uniq -c`): 200 LG, 4 MLG, 320 CSPINE, 140 CCORE, 2 MSPINE.
- port lines between switch records, by name prefix of both ends: LG--CSPINE 3987 cables,
  CSPINE--CCORE 4464, MLG--MSPINE 28, MSPINE--CCORE 28, MLG--CSPINE 4; no LG--LG, CSPINE--CSPINE,
  CCORE--CCORE or LG--CCORE cable. So the Clos is LG/MLG (1) - CSPINE/MSPINE (2) - CCORE (3).
- `MLG01-05`'s record has 14 port lines to `MSPINE4-01` and one to its aggregation node, nothing else:
  a leaf with no host (not a level-5 switch).
- `grep '^Ca' | grep -v 'Aggregation Node'` = 3675 HCAs; their first words give 469 hosts:
  458 `luna-*` with 8 HCAs each and 11 `selene-*` (cache, login, slurm, swift, ufm) with one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gpupool.fabric.compiled import compile_fabric
from gpupool.fabric.export import summary
from gpupool.fabric.ibnetdiscover import parse_ibnetdiscover

SELENE = Path(__file__).resolve().parents[1] / "fixtures" / "ibnetdiscover" / "selene-compute-hdr.out"
PREFIX_LEVEL = {"LG": 1, "MLG": 1, "CSPINE": 2, "MSPINE": 2, "CCORE": 3}


@pytest.fixture(scope="module")
def model():  # type: ignore[no-untyped-def]
    fabric = parse_ibnetdiscover(SELENE.read_text(), str(SELENE))
    return fabric, compile_fabric(fabric)


def test_selene_levels_kind_and_counts(model) -> None:  # type: ignore[no-untyped-def]
    fabric, compiled = model
    doc = summary(fabric, compiled)
    assert doc["kind"] == "fat-tree"
    assert doc["switches"] == 666
    assert doc["hosts"] == 469
    assert doc["links"] == 3987 + 4464 + 28 + 28 + 4 + 3675 + 666  # switch cables + HCA cables + SHARP nodes
    assert doc["levels"] == {"1": 204, "2": 322, "3": 140}


def test_every_selene_switch_sits_at_the_level_of_its_name(model) -> None:  # type: ignore[no-untyped-def]
    fabric, compiled = model
    wrong = []
    for s, node in enumerate(compiled.switch_node.tolist()):
        name = fabric.nodes[node].name
        prefix = name.rstrip("0123456789-")
        if PREFIX_LEVEL[prefix] != int(compiled.switch_level[s]):
            wrong.append((name, int(compiled.switch_level[s])))
    assert wrong == []


def test_selene_service_hosts_are_the_eleven_single_hca_hosts(model) -> None:  # type: ignore[no-untyped-def]
    fabric, compiled = model
    service = sorted({n.host for n in fabric.nodes if n.role == "service"})
    # The 11 `selene-*` hosts of the raw file (first words of the Ca descriptions), each with one HCA
    # on a management leaf MLG01-01/02/04 whose other hosts are single-HCA too.
    assert service == ["selene-cache-01", "selene-cache-02", "selene-cache-03", "selene-cache-04",
                       "selene-login-01", "selene-login-02", "selene-slurm-01", "selene-slurm-02",
                       "selene-swift-01", "selene-ufm-c-01", "selene-ufm-c-02"]
    assert compiled.n_hosts == 458
    assert all(h.startswith("luna-") for h in compiled.host_names)
