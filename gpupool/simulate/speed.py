"""Job-speed model: how a multi-host job's runtime grows with a placement worse than its minimum.

runtime = duration x (1 + per_extra_leaf x extra_leaves + per_extra_group x extra_groups)

That is the whole `isolated` model. The `contention` model (simulate.contention) keeps this factor as
the job's latency/hop part and, on top, slows the communication share (`comm_fraction`) of the job by
the bandwidth it gets on the uplinks it shares with other jobs.

extra_leaves: leaf switches (logical leaf groups) used beyond the fewest that could hold the job on
the empty fabric; extra_groups: the same for pods of a 3-level fat-tree or dragonfly groups (one
spine / global-link crossing more). Trace durations are taken as runtimes at the minimum placement.
Factors are per job class; calibrate them from a site's own nccl-tests all-reduce bandwidths with
`calibrate_from_nccl` (docs/simulate.md gives the file format and the derivation).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from gpupool.errors import BadInput, located
from gpupool.fsutil import read_input_bytes

DEFAULT_COMM_FRACTION = 0.2  # ASSUMED: share of a job's runtime in cross-host collectives (contention model)
SPEED_MODELS = ("isolated", "contention")


@dataclass(frozen=True)
class ClassFactors:
    per_extra_leaf: float
    per_extra_group: float
    comm_fraction: float = DEFAULT_COMM_FRACTION  # contention model: runtime share that runs at the link share

    def to_json(self) -> dict[str, float]:
        return {"per_extra_leaf": self.per_extra_leaf, "per_extra_group": self.per_extra_group,
                "comm_fraction": self.comm_fraction}


# ASSUMED defaults (docs/simulate.md): a few percent per extra leaf, about twice that per extra spine or
# group crossing, and three times both for communication-heavy (all-reduce bound) training; a fifth of
# the runtime in communication by default, half for communication-heavy jobs.
DEFAULT_CLASSES = {
    "default": ClassFactors(per_extra_leaf=0.02, per_extra_group=0.05, comm_fraction=0.2),
    "comm-heavy": ClassFactors(per_extra_leaf=0.06, per_extra_group=0.15, comm_fraction=0.5),
}


@dataclass
class SpeedModel:
    classes: dict[str, ClassFactors] = field(default_factory=lambda: dict(DEFAULT_CLASSES))
    partitions: dict[str, str] = field(default_factory=dict)  # partition -> class, for traces without classes
    model: str = "isolated"  # "isolated": the factor alone; "contention": plus shared-uplink bandwidth

    def factors(self, job_class: str, partition: str) -> ClassFactors:
        name = self.partitions.get(partition, job_class)
        return self.classes.get(name) or self.classes.get("default") or DEFAULT_CLASSES["default"]

    def slowdown(self, job_class: str, partition: str, extra_leaves: int, extra_groups: int) -> float:
        f = self.factors(job_class, partition)
        return 1.0 + f.per_extra_leaf * max(extra_leaves, 0) + f.per_extra_group * max(extra_groups, 0)

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"model": self.model, "classes": {k: v.to_json() for k, v in self.classes.items()},
                               "partitions": dict(self.partitions)}
        if self.model == "contention":
            from gpupool.simulate.contention import CONTENTION_ASSUMPTIONS

            doc["contention"] = dict(CONTENTION_ASSUMPTIONS)
        return doc


def _fraction(path: str, name: str, value: Any, default: float) -> float:
    """classes.<name>.comm_fraction: a number in [0, 1]."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise BadInput(f"{path}: classes.{name}.comm_fraction must be a number from 0 to 1, got {value!r}")
    return float(value)


def load_speed_model(path: str) -> SpeedModel:
    """{"classes": {"name": {"per_extra_leaf": f, "per_extra_group": g, "comm_fraction": c}},
    "partitions": {"p": "name"}}; a class that leaves comm_fraction out keeps the built-in class's
    (0.5 for comm-heavy) or 0.2."""
    try:
        doc = json.loads(read_input_bytes(path, "speed model"))
    except json.JSONDecodeError as exc:
        raise BadInput(located(path, exc.lineno, f"not valid JSON: {exc.msg}")) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("classes", {}), dict):
        raise BadInput(f"{path}: speed model must be an object with a \"classes\" object")
    model = SpeedModel()
    for name, value in doc.get("classes", {}).items():
        if not isinstance(value, dict):
            raise BadInput(f"{path}: classes.{name} must be an object")
        try:
            leaf = float(value.get("per_extra_leaf", 0.0))
            group = float(value.get("per_extra_group", 0.0))
        except (TypeError, ValueError):
            raise BadInput(f"{path}: classes.{name}: factors must be numbers") from None
        if leaf < 0 or group < 0:
            raise BadInput(f"{path}: classes.{name}: factors must not be negative")
        builtin = DEFAULT_CLASSES.get(str(name))
        comm = _fraction(path, str(name), value.get("comm_fraction"),
                         builtin.comm_fraction if builtin else DEFAULT_COMM_FRACTION)
        model.classes[str(name)] = ClassFactors(leaf, group, comm)
    partitions = doc.get("partitions", {})
    if not isinstance(partitions, dict):
        raise BadInput(f"{path}: \"partitions\" must map partition names to class names")
    model.partitions = {str(k): str(v) for k, v in partitions.items()}
    return model


@dataclass(frozen=True)
class NcclPoint:
    leaves: int
    groups: int
    busbw: float


def read_nccl_points(path: str) -> list[NcclPoint]:
    """Lines `leaf_switches groups busbw_GBps` (groups may be left out: 1); `#` starts a comment."""
    text = read_input_bytes(path, "nccl-tests figures").decode("utf-8", errors="replace")
    points: list[NcclPoint] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].replace(",", " ").split()
        if not line:
            continue
        if len(line) not in (2, 3):
            raise BadInput(located(path, number, "expected `leaf_switches [groups] busbw_GBps`"))
        try:
            leaves = int(line[0])
            groups = int(line[1]) if len(line) == 3 else 1
            busbw = float(line[-1])
        except ValueError:
            raise BadInput(located(path, number, "leaf_switches and groups must be integers, busbw a number")) \
                from None
        if leaves < 1 or groups < 1 or busbw <= 0:
            raise BadInput(located(path, number, "leaf_switches and groups must be >= 1 and busbw > 0"))
        points.append(NcclPoint(leaves, groups, busbw))
    if len(points) < 2:
        raise BadInput(f"{path}: need at least two measurements (the minimum placement and a wider one)")
    return points


def calibrate_from_nccl(points: list[NcclPoint], comm_fraction: float) -> ClassFactors:
    """Factors from all-reduce bus bandwidths at several placements of the same job size.

    The class keeps `comm_fraction` for the contention model. A job spending `comm_fraction` of its
    best-placement runtime in all-reduce runs
    (1 - c) + c x busbw_min / busbw_p times as long on placement p. The leaf factor is the
    least-squares slope (through the origin) of that slowdown minus 1 against the extra leaves of
    the points in the fewest groups; the group factor is what remains per extra group elsewhere.
    """
    if not 0 < comm_fraction <= 1:
        raise BadInput(f"communication fraction must be in (0, 1], got {comm_fraction}")
    base = min(points, key=lambda p: (p.groups, p.leaves))
    slow = [(p, comm_fraction * (base.busbw / p.busbw - 1.0)) for p in points]
    same = [(p.leaves - base.leaves, s) for p, s in slow if p.groups == base.groups and p.leaves > base.leaves]
    num = sum(x * s for x, s in same)
    den = sum(x * x for x, _ in same)
    per_leaf = max(num / den, 0.0) if den else 0.0
    other = [(p.groups - base.groups, s - per_leaf * max(p.leaves - base.leaves, 0)) for p, s in slow
             if p.groups > base.groups]
    num = sum(x * s for x, s in other)
    den = sum(x * x for x, _ in other)
    per_group = max(num / den, 0.0) if den else 0.0
    return ClassFactors(per_extra_leaf=round(per_leaf, 6), per_extra_group=round(per_group, 6),
                        comm_fraction=comm_fraction)
