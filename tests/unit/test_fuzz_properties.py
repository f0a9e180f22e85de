"""Correctness properties of the fuzz suite (issue 29): an input gpupool ACCEPTS must also have
been UNDERSTOOD. Each property is checked by something written here or in tests/support/oracles.py, never
by gpupool's own reading of the same data.

- discover -> export (tree, block, yaml) -> a small reader here -> the same host-to-leaf map in all
  three, every host exactly once, each host under a switch its HCAs are cabled to in the raw
  capture (tests/oracles.read_ibnetdiscover);
- any accepted free file -> `plan` uses only free GPUs, the requested count and shape, and its
  pair_hops_sum equals the cost of its allocation on the oracle graph and the brute-force optimum;
- validators: accepted values round-trip; only ASCII digits are numbers.

Examples: the hypothesis profile of tests/conftest.py (`ci` derandomized) and
`GPUPOOL_FUZZ_EXAMPLES` as in test_fuzz_inputs.py.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from gpupool.cli.context import AppContext
from gpupool.cli.main import main
from gpupool.errors import InputError
from gpupool.fabric.generate import fat_tree
from gpupool.fabric.model import save_fabric
from tests.support import oracles
from tests.support.oracles import (
    expand_names,
    host_to_leaf,
    logical_leaf,
    read_topology_yaml,
    read_tree_conf,
)

NIGHTLY = os.environ.get("GPUPOOL_HYPOTHESIS_PROFILE") == "nightly"
EXAMPLES = int(os.environ.get("GPUPOOL_FUZZ_EXAMPLES", "1500" if NIGHTLY else "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much])
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
HOSTILE = FIXTURES / "hostile"
WORK = Path(tempfile.mkdtemp(prefix="gpupool-fuzzprop-"))


def run_cli(args: list[str], ctx: AppContext | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args, obj=ctx or AppContext())
    return code, out.getvalue(), err.getvalue()


def test_reader_expands_by_hand() -> None:
    assert expand_names("gpu[001-003,007],x9,n[8-10]") == ["gpu001", "gpu002", "gpu003", "gpu007", "x9", "n8",
                                                           "n9", "n10"]
    assert read_tree_conf("# c\nSwitchName=l1 Nodes=a[1-2]\nSwitchName=s Switches=l[1-2]\n") == {"l1": ["a1", "a2"]}


# -- discover -> export -> read back ---------------------------------------------------------------

CAPTURES = ["ibsim-fat-tree-2x2x2.default.out", "ufm-lab-small-hdr-fdr.out", "dgx-superpod-ndr.out"]


@st.composite
def mutated_capture(draw: st.DrawFn) -> str:
    lines = (FIXTURES / "ibnetdiscover" / draw(st.sampled_from(CAPTURES[:2]))).read_text().splitlines()
    for _ in range(draw(st.integers(0, 4))):
        if not lines:
            break
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["delete", "duplicate", "rename", "truncate"]))
        if op == "delete":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "rename" and '# "' in lines[i]:
            head, _, tail = lines[i].partition('# "')
            new = draw(st.sampled_from(["gpu009 mlx5_0", "gpu001 mlx5_1", "leafX", "MT4123 ConnectX6",
                                        "gpu[1-2] mlx5_0", "spine09"]))
            lines[i] = head + '# "' + new + '"' + tail.partition('"')[2]
        elif op == "truncate":
            lines = lines[:i]
    return "\n".join(lines) + "\n"


def check_exports_agree(capture_text: str, fabric_path: Path) -> None:
    exports = {}
    for fmt in ("slurm-tree", "slurm-block", "slurm-yaml"):
        code, out, err = run_cli(["fabric", "export", "--fabric", str(fabric_path), "--format", fmt])
        assert code in (0, 4), err
        if code != 0:
            return  # e.g. no leaf switch: refused with one line (test_fuzz_inputs checks its form)
        exports[fmt] = out
    tree = host_to_leaf(read_tree_conf(exports["slurm-tree"]))
    block = host_to_leaf(read_tree_conf(exports["slurm-block"]))
    yaml_tree, yaml_block = read_topology_yaml(exports["slurm-yaml"])
    assert tree == block == host_to_leaf(yaml_tree) == host_to_leaf(yaml_block)
    # Each host under a switch of its logical leaf in the RAW capture (oracle reader): the switches
    # its HCAs are cabled to, joined with every switch that shares a multi-rail host with them
    # (rail leaves joined by multi-rail hosts are one logical leaf, named after one of them).
    graph = oracles.read_ibnetdiscover(capture_text)
    doc = json.loads(fabric_path.read_text())
    name_of = {n["id"]: n.get("name", "") for n in doc["nodes"] if n["type"] == "switch"}
    for host, leaf in tree.items():
        assert host in graph.host_switches, host
        assert leaf in {name_of[s] for s in logical_leaf(graph, host)}, (host, leaf)
    # Every compute host of the oracle graph with a plain name is placed somewhere.
    plain = {h for h in graph.compute().hosts if re.fullmatch(r"[a-z]+[0-9]+", h)}
    assert plain <= set(tree), plain - set(tree)


@pytest.mark.parametrize("capture", CAPTURES)
def test_real_captures_export_back_to_the_oracle_map(capture: str, tmp_path: Path) -> None:
    text = (FIXTURES / "ibnetdiscover" / capture).read_text()
    fabric = tmp_path / "fabric.json"
    code, _, err = run_cli(["fabric", "discover", "--ibnetdiscover", str(FIXTURES / "ibnetdiscover" / capture),
                            "-o", str(fabric)])
    assert code == 0, err
    check_exports_agree(text, fabric)


@FUZZ
@given(text=mutated_capture())
def test_fuzz_discover_export_round_trip(text: str) -> None:
    directory = Path(tempfile.mkdtemp(dir=WORK))
    capture, fabric = directory / "capture.out", directory / "fabric.json"
    capture.write_text(text)
    code, _, _ = run_cli(["fabric", "discover", "--ibnetdiscover", str(capture), "-o", str(fabric)])
    assume(code == 0)
    check_exports_agree(text, fabric)


# -- free file -> plan, against the oracle ---------------------------------------------------------

FABRIC_OBJ = fat_tree(4, 2, 2)
FABRIC = WORK / "fabric.json"
save_fabric(FABRIC_OBJ, str(FABRIC))
GRAPH = oracles.graph_of(FABRIC_OBJ)
HOSTS = FABRIC_OBJ.host_names()


class Request:
    def __init__(self, gpus: int | None, nodes: int | None, gpus_per_node: int | None) -> None:
        self.gpus, self.nodes, self.gpus_per_node, self.max_hops = gpus, nodes, gpus_per_node, None


def oracle_cost(allocation: dict[str, int]) -> int:
    hosts = sorted(allocation)
    return sum(allocation[a] * allocation[b] * (GRAPH.distance(a, b) or 0)
               for i, a in enumerate(hosts) for b in hosts[i + 1:])


@st.composite
def free_and_request(draw: st.DrawFn) -> tuple[dict[str, Any], list[str], Request]:
    free: dict[str, Any] = {h: draw(st.integers(0, 4)) for h in draw(st.lists(st.sampled_from(HOSTS), unique=True))}
    for host in list(free):
        pick = draw(st.integers(0, 11))
        if pick == 0:
            free[host] = float(free[host])  # 3.0 is an integer JSON number too
        elif pick == 1:
            free[host] = free[host] + 0.5  # 2.5 GPUs is not: the file is refused
    if draw(st.booleans()):
        gpus = draw(st.integers(1, 10))
        return free, ["--gpus", str(gpus)], Request(gpus, None, None)
    nodes, per_node = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    return free, ["--nodes", str(nodes), "--gpus-per-node", str(per_node)], Request(None, nodes, per_node)


def check_plan(free: dict[str, Any], args: list[str], request: Request) -> None:
    path = Path(tempfile.mkdtemp(dir=WORK)) / "free.json"
    path.write_text(json.dumps(free))
    code, out, err = run_cli(["plan", "--fabric", str(FABRIC), "--free", str(path), "--json", *args])
    if any(not float(g).is_integer() for g in free.values()):
        assert code == 4 and err.startswith("gpupool: error: ") and err.count("\n") == 1, (code, err)
        return
    best = oracles.brute_force(GRAPH, {h: int(g) for h, g in free.items()}, request)
    if best is None:
        assert code == 1, (code, err)
        return
    assert code == 0, err
    doc = json.loads(out)
    allocation = doc["allocation"]
    assert all(0 < g <= free[h] for h, g in allocation.items()), (allocation, free)  # only free GPUs
    if request.gpus is not None:
        assert sum(allocation.values()) == request.gpus
    else:
        assert len(allocation) == request.nodes and set(allocation.values()) == {request.gpus_per_node}
    assert expand_names(doc["nodelist"]) == sorted(allocation)
    assert doc["cost"]["pair_hops_sum"] == oracle_cost(allocation)
    assert doc["cost"]["leaf_switches"] == GRAPH.leaf_count(allocation)
    assert (doc["cost"]["pair_hops_sum"], doc["cost"]["leaf_switches"]) == best


@pytest.mark.parametrize(("free", "args", "gpus", "nodes", "per_node", "cost"), [
    # By hand: fat_tree(4, 2, 2) has 4 leaves of 2 hosts (gpu001-002 on leaf 1, gpu003-004 on leaf 2)
    # and 2 spines: same leaf = 2 hops (host-leaf-host), leaf 1 to leaf 2 = 4 hops (via a spine).
    ({"gpu001": 4, "gpu002": 2}, ["--gpus", "5"], 5, None, None, 4 * 1 * 2),
    ({"gpu001": 1, "gpu003": 1}, ["--gpus", "2"], 2, None, None, 4),  # leaf 1 - spine - leaf 2
    ({"gpu001": 2, "gpu002": 2, "gpu003": 4}, ["--nodes", "2", "--gpus-per-node", "2"], None, 2, 2, 2 * 2 * 2),
])
def test_plan_cost_by_hand(free: dict[str, int], args: list[str], gpus: int | None, nodes: int | None,
                           per_node: int | None, cost: int) -> None:
    check_plan(free, args, Request(gpus, nodes, per_node))
    assert oracles.brute_force(GRAPH, free, Request(gpus, nodes, per_node))[0] == cost  # type: ignore[index]


@FUZZ
@example(case=({"gpu001": 3.0, "gpu002": 1}, ["--gpus", "4"], Request(4, None, None)))
@example(case=({}, ["--gpus", "1"], Request(1, None, None)))
@example(case=({"gpu001": 2.5, "gpu002": 4}, ["--gpus", "2"], Request(2, None, None)))
@given(case=free_and_request())
def test_fuzz_accepted_free_file_plans_like_the_oracle(case: tuple[dict[str, Any], list[str], Request]) -> None:
    check_plan(*case)


# -- validators: round trip, ASCII digits only ------------------------------------------------------

NON_ASCII_DIGITS = [c for c in map(chr, range(0x80, 0x3000)) if c.isdigit() or c.isdecimal() or c.isnumeric()]


@FUZZ
@given(n=st.integers(0, 10_000_000), pad=st.sampled_from(["", " ", "\t", "\n"]))
def test_fuzz_int_text_round_trips(n: int, pad: str) -> None:
    from gpupool.validate import int_text, maybe_int_text

    assert int_text(pad + str(n) + pad, "n") == n
    assert maybe_int_text(str(n)) == n
    assert int_text(str(int_text(str(n), "n")), "n") == n


@FUZZ
@given(text=st.text(alphabet=st.sampled_from(["0", "1", "9", *NON_ASCII_DIGITS[:60], "_", "+", "-", " ", "."]),
                    min_size=1, max_size=8))
def test_fuzz_only_ascii_digits_are_numbers(text: str) -> None:
    from gpupool.validate import int_text, maybe_int_text

    ascii_number = re.fullmatch(r"[0-9]+", text.strip(" ")) is not None
    if ascii_number and int(text) <= 10_000_000:
        assert int_text(text, "n") == int(text)
    else:
        with pytest.raises(InputError):
            int_text(text, "n")
        assert maybe_int_text(text) is None


@pytest.mark.parametrize("digit", ["\u0663", "\u00b2", "\u0967", "\uff13", "\u2463", "\U0001d7d1"])
def test_unicode_digits_are_not_numbers(digit: str) -> None:
    from gpupool.validate import int_text, maybe_int_text

    for text in (digit, "1" + digit, digit + "0"):
        with pytest.raises(InputError):
            int_text(text, "n")
        assert maybe_int_text(text) is None


@FUZZ
@given(value=st.one_of(st.integers(-5, 20), st.floats(-5, 20, allow_nan=False), st.booleans(), st.none(),
                       st.text(max_size=3)))
def test_fuzz_bounded_int_accepts_exactly_integers_in_range(value: Any) -> None:
    from gpupool.validate import bounded_int

    integral = (isinstance(value, int) and not isinstance(value, bool)) or \
        (isinstance(value, float) and value.is_integer())
    if integral and 0 <= value <= 10:
        result = bounded_int(value, "v", 0, 10)
        assert type(result) is int and result == value
        assert bounded_int(result, "v", 0, 10) == result  # round trip
    else:
        with pytest.raises(InputError):
            bounded_int(value, "v", 0, 10)


@FUZZ
@given(name=st.text(alphabet=st.sampled_from(list("abz09_.-@A ") + ["\u0663", "\n", "\x00", "é"]), max_size=70))
def test_fuzz_names_round_trip_or_are_refused(name: str) -> None:
    from gpupool.validate import host_name, is_host_name, slurm_name

    for check, pattern in ((slurm_name, r"[a-z0-9_][a-z0-9_.-]{0,63}"),):
        try:
            accepted = check(name, "n")
        except InputError:
            assert not re.fullmatch(pattern, name, re.ASCII)
        else:
            assert accepted == name and re.fullmatch(pattern, name, re.ASCII)
            assert check(accepted, "n") == accepted
    if is_host_name(name):
        assert host_name(name, "h") == name
        assert re.fullmatch(r"[A-Za-z0-9_.-]+", name, re.ASCII) and ".." not in name and len(name) <= 253
    else:
        with pytest.raises(InputError):
            host_name(name, "h")
