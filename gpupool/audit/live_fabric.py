"""Live data for the audit: ibnetdiscover, port counters and ibtracert routes, run in parallel
with bounded time per call (through gpupool.ibtools, so $GPUPOOL_IBDIAG_WRAPPER applies)."""

from __future__ import annotations

import os
import random
import re
import tempfile
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol

from gpupool.audit.counters import PortCounters, parse_ibqueryerrors, parse_perfquery
from gpupool.audit.rollup import WARNING, Finding
from gpupool.audit.topology import Topo
from gpupool.errors import Unreachable
from gpupool.fabric.model import ROLE_HCA, Fabric, natural_key

Progress = Callable[[str, int, int], None]  # (phase, done, total)


class ToolRunner(Protocol):
    """Runs one infiniband-diags tool and returns its stdout; raises Unreachable on failure/time-out."""

    def __call__(self, name: str, args: list[str], timeout: float) -> str: ...


def run_ibdiag(name: str, args: list[str], timeout: float) -> str:
    """The real runner: umad2sim clients drop ./sys-<pid> dirs, so each call runs in a scratch dir."""
    import subprocess

    from gpupool.ibtools import tool_argv

    argv = tool_argv(name, args)
    with tempfile.TemporaryDirectory(prefix="gpupool-ibdiag-") as scratch:
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False,
                                  stdin=subprocess.DEVNULL, cwd=scratch)
        except subprocess.TimeoutExpired:
            raise Unreachable(f"{name} {' '.join(args)} did not finish within {timeout:g} s") from None
        except OSError as exc:
            raise Unreachable(f"cannot run {name}: {exc.strerror}") from None
    if proc.returncode != 0:
        errors = [ln for ln in proc.stderr.splitlines() if ln.strip() and "sim_connect" not in ln]
        raise Unreachable(f"{name} {' '.join(args)} failed (exit {proc.returncode}): "
                       f"{errors[-1] if errors else 'no output'}")
    return proc.stdout


@dataclass
class LiveSettings:
    discover_timeout: float = 120.0
    tool_timeout: float = 10.0
    workers: int = 4
    counters_tool: str = "auto"  # perfquery per port, ibqueryerrors once, or auto
    route_samples: int = 16
    seed: int = 0


@dataclass
class Collected:
    samples: list[PortCounters] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def discover_text(runner: ToolRunner, settings: LiveSettings) -> str:
    text = runner("ibnetdiscover", [], settings.discover_timeout)
    if not text.strip():
        raise Unreachable("ibnetdiscover printed nothing")
    return text


def counter_targets(fabric: Fabric) -> list[tuple[int, int, int]]:
    """(node, lid, port) for every cabled port of every node with a LID (switch ports share the switch LID)."""
    targets = []
    for link in fabric.links:
        for node, port in ((link.a, link.a_port), (link.b, link.b_port)):
            lid = fabric.nodes[node].lid
            if lid:
                targets.append((node, lid, port))
    return sorted(set(targets))


def collect_counters(runner: ToolRunner, fabric: Fabric, settings: LiveSettings,
                     progress: Progress | None = None) -> Collected:
    tool = settings.counters_tool
    if tool == "auto":
        # ibqueryerrors needs a running SA; the simulated testbed sweeps once and has none.
        simulated = os.environ.get("IBSIM_SOCKNAME") or "ibsim" in os.environ.get("GPUPOOL_IBDIAG_WRAPPER", "")
        tool = "perfquery" if simulated else "ibqueryerrors"
    out = Collected()
    if tool == "ibqueryerrors":
        if progress:
            progress("error counters (ibqueryerrors)", 0, 1)
        try:
            out.samples = parse_ibqueryerrors(runner("ibqueryerrors", ["--skip-sl"], settings.discover_timeout))
        except Unreachable as exc:
            out.failures.append(str(exc))
        if progress:
            progress("error counters (ibqueryerrors)", 1, 1)
        return out
    targets = counter_targets(fabric)

    def one(target: tuple[int, int, int]) -> list[PortCounters] | str:
        _node, lid, port = target
        try:
            return parse_perfquery(runner("perfquery", [str(lid), str(port)], settings.tool_timeout), "perfquery")
        except Unreachable as exc:
            return str(exc)

    done = 0
    with ThreadPoolExecutor(max_workers=max(1, settings.workers)) as pool:
        for result in pool.map(one, targets):
            done += 1
            if isinstance(result, str):
                out.failures.append(result)
            else:
                out.samples.extend(result)
            if progress:
                progress("error counters (perfquery)", done, len(targets))
    return out


# ---------------------------------------------------------------------------------------------
# Routes
# ---------------------------------------------------------------------------------------------

_HOP = re.compile(r"^\[\d+\]\s*->")


def route_length(ibtracert_text: str) -> int:
    """Number of cables on an `ibtracert` route (its `[port] -> ...` lines)."""
    return sum(1 for line in ibtracert_text.splitlines() if _HOP.match(line.strip()))


def shortest_cables(fabric: Fabric, adj: list[list[tuple[int, int]]], src: int, dst: int) -> int | None:
    """Fewest cables between two nodes, never passing through a CA (HCAs do not forward)."""
    if src == dst:
        return 0
    dist = {src: 0}
    queue = deque([src])
    while queue:
        v = queue.popleft()
        for w, _li in adj[v]:
            if w in dist:
                continue
            dist[w] = dist[v] + 1
            if w == dst:
                return dist[w]
            if fabric.nodes[w].type == "switch":
                queue.append(w)
    return None


def sample_pairs(fabric: Fabric, count: int, seed: int) -> list[tuple[int, int]]:
    hcas = [i for i, n in enumerate(fabric.nodes) if n.type == "ca" and n.role == ROLE_HCA and n.lid]
    if len(hcas) < 2 or count <= 0:
        return []
    rng = random.Random(seed)
    pairs: set[tuple[int, int]] = set()
    limit = len(hcas) * (len(hcas) - 1) // 2
    while len(pairs) < min(count, limit):
        a, b = rng.sample(hcas, 2)
        if fabric.nodes[a].host != fabric.nodes[b].host:
            pairs.add((min(a, b), max(a, b)))
        elif limit <= count:
            break
    return sorted(pairs)


def check_routes(runner: ToolRunner, topo: Topo, settings: LiveSettings,
                 progress: Progress | None = None) -> tuple[list[Finding], list[str], int]:
    """route-longer: sampled HCA pairs whose ibtracert route has more cables than their shortest path."""
    fabric = topo.fabric
    pairs = sample_pairs(fabric, settings.route_samples, settings.seed)

    def one(pair: tuple[int, int]) -> tuple[tuple[int, int], int | str]:
        a, b = pair
        try:
            text = runner("ibtracert", [str(fabric.nodes[a].lid), str(fabric.nodes[b].lid)], settings.tool_timeout)
            return pair, route_length(text)
        except Unreachable as exc:
            return pair, str(exc)

    findings: list[Finding] = []
    failures: list[str] = []
    done = 0
    with ThreadPoolExecutor(max_workers=max(1, settings.workers)) as pool:
        for (a, b), result in pool.map(one, pairs):
            done += 1
            if progress:
                progress("routes (ibtracert)", done, len(pairs))
            if isinstance(result, str):
                failures.append(result)
                continue
            best = shortest_cables(fabric, topo.adj, a, b)
            if best is not None and result > best:
                subject = " -> ".join(sorted((topo.label(a), topo.label(b)), key=natural_key))
                findings.append(Finding("route-longer", WARNING, subject,
                                        f"route {subject} takes {result} cables, the shortest path has {best}: "
                                        "the subnet manager's routes are not minimal (routing engine or root "
                                        "choice, or routes around a faulty link)",
                                        {"route": result, "shortest": best}))
    return findings, failures, len(pairs) - len(failures)


def fold_failures(failures: Iterable[str], what: str) -> str | None:
    failures = list(failures)
    if not failures:
        return None
    return f"{what}: {len(failures)} queries failed (first: {failures[0]})"

