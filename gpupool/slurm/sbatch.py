"""sbatch options: read them from the command line and ``#SBATCH`` lines, find the GPU request,
detect conflicts with gpupool's placement, and build the final sbatch command line.

gpupool owns four things on the sbatch command line: the node list, the node count, the GPU
count (in the option family the user used: ``--gres=gpu[:type]:K``, ``--gpus-per-node=K`` or
``--gpus=N``) and the gpupool part of the job comment. Everything else passes through untouched
and in order. Command-line options override ``#SBATCH`` lines (sbatch's own rule), so the
values gpupool appends win over the script's.

Per-node GPU counts: Slurm's ``--gres``/``--gpus-per-node`` are uniform over the job's nodes.
A uniform plan (every host K GPUs) is submitted as ``--nodes=M --nodelist=H --gres=gpu:K``
(or, when the user asked with ``--gpus=N``, ``--gpus=N --gpus-per-node=K``), which pins both the
hosts and the per-host count. An uneven plan (e.g. 8+4 for 12 GPUs) is
submitted as ``--nodes=M --nodelist=H --gpus=N``: Slurm must use exactly those hosts and N GPUs
in total, and it picks the per-host split itself (it equals the plan whenever the plan took every
free GPU of the smaller hosts, the usual case; otherwise `gpupool jobs` reports the live cost).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from gpupool.errors import BadInput, BadRequest, param
from gpupool.fsutil import read_input_bytes
from gpupool.slurm.gres import memory_mb
from gpupool.validate import MAX_COUNT, maybe_int_text

# sbatch options that take a required argument (long name without dashes), and their short forms.
SHORT_WITH_ARG = {
    "a": "array", "A": "account", "b": "begin", "B": "extra-node-info", "c": "cpus-per-task",
    "C": "constraint", "d": "dependency", "D": "chdir", "e": "error", "F": "nodefile",
    "G": "gpus", "i": "input", "J": "job-name", "L": "licenses", "m": "distribution",
    "M": "clusters", "n": "ntasks", "N": "nodes", "o": "output", "p": "partition", "q": "qos",
    "S": "core-spec", "t": "time", "w": "nodelist", "x": "exclude",
}
SHORT_FLAGS = {"h": "help", "H": "hold", "I": "immediate", "k": "no-kill", "O": "overcommit",
               "Q": "quiet", "s": "oversubscribe", "u": "usage", "V": "version", "v": "verbose",
               "W": "wait"}
LONG_WITH_ARG = frozenset({
    "account", "acctg-freq", "array", "batch", "bb", "bbf", "begin", "chdir", "cluster-constraint",
    "clusters", "comment", "constraint", "container", "container-id", "core-spec", "cores-per-socket",
    "cpu-freq", "cpus-per-gpu", "cpus-per-task", "deadline", "delay-boot", "dependency",
    "distribution", "error", "exclude", "export-file", "extra", "extra-node-info", "gid",
    "gpu-bind", "gpu-freq", "gpus", "gpus-per-node", "gpus-per-socket", "gpus-per-task", "gres",
    "gres-flags", "hint", "input", "job-name", "licenses", "mail-type", "mail-user", "mcs-label",
    "mem", "mem-bind", "mem-per-cpu", "mem-per-gpu", "mincpus", "network", "nodefile", "nodelist",
    "nodes", "ntasks", "ntasks-per-core", "ntasks-per-gpu", "ntasks-per-node", "ntasks-per-socket",
    "open-mode", "output", "partition", "power", "prefer", "priority", "profile", "qos",
    "reservation", "resv-ports", "segment", "signal", "sockets-per-node", "switches", "thread-spec",
    "threads-per-core", "time", "time-min", "tmp", "tres-bind", "tres-per-task", "uid",
    "wait-all-nodes", "wckey", "wrap", "export", "x11",
})
# Long options whose argument is optional: only `--opt=value` carries one.
LONG_OPTIONAL_ARG = frozenset({"exclusive", "get-user-env", "kill-on-invalid-dep", "nice",
                               "no-kill", "propagate", "requeue", "mail-type", "x11"})
# Options gpupool cannot combine with a placement it computed.
FORBIDDEN = {
    "nodelist": "gpupool chooses the nodes; drop -w/--nodelist or use sbatch directly",
    "nodefile": "gpupool chooses the nodes; drop -F/--nodefile or use sbatch directly",
    "clusters": "gpupool plans for one cluster; drop -M/--clusters",
    "test-only": "use gpupool's own --dry-run instead of --test-only",
    "immediate": "sbatch has no --immediate",
}
_DIRECTIVE = re.compile(r"^#SBATCH\s+(.*)$")


@dataclass
class Option:
    """One sbatch option occurrence: canonical long name, value (None for flags), original tokens."""

    name: str
    value: str | None
    tokens: list[str]
    source: str  # "command line" or "SCRIPT:LINE"


@dataclass
class SbatchArgs:
    options: list[Option] = field(default_factory=list)
    script: str | None = None
    script_args: list[str] = field(default_factory=list)

    def last(self, *names: str) -> Option | None:
        found = [o for o in self.options if o.name in names]
        return found[-1] if found else None

    def all(self, *names: str) -> list[Option]:
        return [o for o in self.options if o.name in names]


def split_options(args: Sequence[str], source: str = "command line",
                  stop_at_positional: bool = True) -> tuple[list[Option], list[str]]:
    """Split sbatch arguments into options and the rest (script and its arguments)."""
    options: list[Option] = []
    i = 0
    args = list(args)
    while i < len(args):
        token = args[i]
        if token == "--":
            return options, args[i + 1:]
        if token.startswith("--") and len(token) > 2:
            name, eq, value = token[2:].partition("=")
            if eq:
                options.append(Option(name, value, [token], source))
            elif name in LONG_WITH_ARG and name not in LONG_OPTIONAL_ARG:
                if i + 1 >= len(args):
                    raise BadRequest(f"{source}: sbatch option --{name} needs a value")
                options.append(Option(name, args[i + 1], [token, args[i + 1]], source))
                i += 1
            else:
                options.append(Option(name, None, [token], source))
        elif token.startswith("-") and len(token) > 1 and token != "-":
            letter = token[1]
            if letter in SHORT_WITH_ARG:
                name = SHORT_WITH_ARG[letter]
                if len(token) > 2:
                    options.append(Option(name, token[2:].lstrip("="), [token], source))
                else:
                    if i + 1 >= len(args):
                        raise BadRequest(f"{source}: sbatch option -{letter} needs a value")
                    options.append(Option(name, args[i + 1], [token, args[i + 1]], source))
                    i += 1
            elif letter in SHORT_FLAGS:
                # Bundled flags (-Hv) stay one token; record each for conflict checks.
                for flag in token[1:]:
                    options.append(Option(SHORT_FLAGS.get(flag, flag), None, [], source))
                options[-1].tokens = [token]
            else:
                raise BadRequest(f"{source}: unknown sbatch option {token}")
        else:
            if stop_at_positional:
                return options, args[i:]
            raise BadRequest(f"{source}: unexpected argument {token!r}")
        i += 1
    return options, []


def read_directives(script: str) -> list[Option]:
    """Options from the script's ``#SBATCH`` lines (sbatch stops at the first command line)."""
    lines = read_input_bytes(script, "batch script").decode("utf-8", errors="replace").splitlines()
    if not lines or not lines[0].startswith("#!"):
        raise BadInput(f"{script}:1: batch script must start with a #! line (sbatch rejects it otherwise)")
    options: list[Option] = []
    for number, line in enumerate(lines[1:], start=2):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            match = _DIRECTIVE.match(stripped)
            if match:
                try:
                    tokens = shlex.split(match.group(1), comments=True)
                except ValueError as exc:
                    raise BadInput(f"{script}:{number}: cannot parse #SBATCH line ({exc})") from None
                found, rest = split_options(tokens, f"{script}:{number}", stop_at_positional=True)
                if rest:
                    raise BadInput(f"{script}:{number}: unexpected text in #SBATCH line: {' '.join(rest)}")
                options += found
            continue
        break
    return options


@dataclass(frozen=True)
class GpuRequestHints:
    """GPU request as sbatch options state it (None = not stated)."""

    nodes: int | None = None
    nodes_max: int | None = None
    gpus_per_node: int | None = None
    gpus: int | None = None
    gpu_type: str | None = None
    partition: str | None = None
    exclude: tuple[str, ...] = ()
    cpus_per_gpu: int | None = None
    mem_per_gpu_mb: int | None = None
    features: tuple[str, ...] = ()
    families: tuple[str, ...] = ()  # which GPU options were used: "gres", "gpus-per-node", "gpus"
    other_gres: tuple[str, ...] = ()  # non-GPU entries of the last --gres (kept when gpupool re-states it)
    switches: str | None = None
    segment: str | None = None  # the user's --segment (topology/block, Slurm 24.05+), kept as given
    comment: str | None = None
    defers_start: bool = False  # --begin / --dependency / --hold: the job will not start now


def _int(option: Option, what: str) -> int:
    value = (option.value or "").strip()
    number = maybe_int_text(value, 1, MAX_COUNT)  # ASCII digits only: "²".isdigit() is True
    if number is None:
        raise BadRequest(f"{option.source}: --{option.name}={value[:40]!r}: {what} must be a positive "
                         f"integer of at most {MAX_COUNT}")
    return number


def gpu_hints(options: Sequence[Option]) -> GpuRequestHints:
    """What the options (command line after #SBATCH lines; later wins) ask for."""
    last: dict[str, Option] = {}
    for option in options:
        last[option.name] = option
    nodes = nodes_max = gpus_per_node = gpus = None
    gpu_type = None
    families: list[str] = []
    if "nodes" in last:
        text = last["nodes"].value or ""
        match = re.fullmatch(r"([0-9]{1,9})(?:-([0-9]{1,9}))?", text.strip())
        if not match:
            raise BadRequest(f"{last['nodes'].source}: --nodes={text!r}: gpupool needs a node count or MIN-MAX")
        nodes = int(match.group(1))
        nodes_max = int(match.group(2)) if match.group(2) else nodes
    other_gres: list[str] = []
    if "gres" in last:
        for part in (last["gres"].value or "").split(","):
            fields = part.strip().split(":")
            if fields and fields[0] not in {"gpu", "gres/gpu"} and part.strip():
                other_gres.append(part.strip())
            elif fields and fields[0] in {"gpu", "gres/gpu"}:
                families.append("gres")
                if len(fields) == 2 and maybe_int_text(fields[1]) is not None:
                    gpus_per_node = maybe_int_text(fields[1])
                elif len(fields) == 2:
                    gpu_type, gpus_per_node = fields[1], 1
                elif len(fields) >= 3:
                    gpu_type = fields[1]
                    gpus_per_node = maybe_int_text(fields[2])
                else:
                    gpus_per_node = 1
    if "gpus-per-node" in last:
        families.append("gpus-per-node")
        value = last["gpus-per-node"].value or ""
        if ":" in value:
            gpu_type, value = value.rsplit(":", 1)
        gpus_per_node = _int(Option("gpus-per-node", value, [], last["gpus-per-node"].source), "GPUs per node")
    if "gpus" in last:
        families.append("gpus")
        value = last["gpus"].value or ""
        if ":" in value:
            gpu_type, value = value.rsplit(":", 1)
        gpus = _int(Option("gpus", value, [], last["gpus"].source), "GPU count")
    exclude = tuple(o.value or "" for o in options if o.name == "exclude")
    features: tuple[str, ...] = ()
    if "constraint" in last:
        text = last["constraint"].value or ""
        # Plain AND lists ("a&b", "a,b" in old syntax) filter hosts; richer expressions go to Slurm only.
        if re.fullmatch(r"[\w.-]+(&[\w.-]+)*", text):
            features = tuple(text.split("&"))
    cpus_per_gpu = _int(last["cpus-per-gpu"], "CPUs per GPU") if "cpus-per-gpu" in last else None
    mem_per_gpu = None
    if "mem-per-gpu" in last:
        option = last["mem-per-gpu"]
        mem_per_gpu = memory_mb(option.value) or None
        if mem_per_gpu is None and not re.fullmatch(r"\s*0+[KMGTP]?B?\s*", option.value or "", re.IGNORECASE):
            raise BadRequest(f"{option.source}: --mem-per-gpu={(option.value or '')[:40]!r}: memory per GPU must "
                             f"be a positive size such as 16G or 16000M")
    return GpuRequestHints(
        nodes=nodes, nodes_max=nodes_max, gpus_per_node=gpus_per_node, gpus=gpus, gpu_type=gpu_type,
        partition=last["partition"].value if "partition" in last else None,
        exclude=exclude, cpus_per_gpu=cpus_per_gpu, mem_per_gpu_mb=mem_per_gpu, features=features,
        families=tuple(dict.fromkeys(families)), other_gres=tuple(other_gres),
        switches=last["switches"].value if "switches" in last else None,
        segment=last["segment"].value if "segment" in last else None,
        comment=last["comment"].value if "comment" in last else None,
        defers_start=any(n in last for n in ("begin", "dependency", "hold")),
    )


def check_forbidden(options: Sequence[Option]) -> None:
    for option in options:
        if option.name in FORBIDDEN:
            shown = " ".join(option.tokens) or f"--{option.name}"
            raise BadRequest(f"{option.source}: sbatch option {shown} conflicts with gpupool: {FORBIDDEN[option.name]}")


@dataclass(frozen=True)
class Resolved:
    """gpupool's request after merging its own options with the sbatch ones."""

    gpus: int | None
    gpus_per_node: int | None
    nodes: int | None
    partition: str | None
    hints: GpuRequestHints


def merge_request(gpus: int | None, gpus_per_node: int | None, nodes: int | None,
                  partition: str | None, hints: GpuRequestHints) -> Resolved:
    """gpupool options win when sbatch says nothing; the same value twice is fine; different
    values are a usage error naming both."""

    def pick(name: str, mine: int | str | None, theirs: int | str | None, parameter: str) -> int | str | None:
        if mine is not None and theirs is not None and mine != theirs:
            raise BadRequest(f"gpupool {param(parameter)} {mine} conflicts with sbatch --{name}={theirs}; give it once")
        return mine if mine is not None else theirs

    nodes_hint = hints.nodes if hints.nodes == hints.nodes_max else None
    if (nodes is not None and hints.nodes is not None and hints.nodes != hints.nodes_max
            and not hints.nodes <= nodes <= (hints.nodes_max or nodes)):
        raise BadRequest(f"gpupool {param('nodes')} {nodes} is outside sbatch --nodes={hints.nodes}-{hints.nodes_max}")
    return Resolved(
        gpus=pick("gpus", gpus, hints.gpus, "gpus"),  # type: ignore[arg-type]
        gpus_per_node=pick("gres/--gpus-per-node", gpus_per_node, hints.gpus_per_node, "gpus_per_node"),  # type: ignore[arg-type]
        nodes=pick("nodes", nodes, nodes_hint, "nodes"),  # type: ignore[arg-type]
        partition=pick("partition", partition, hints.partition, "partition"),  # type: ignore[arg-type]
        hints=hints,
    )


def check_node_count(hints: GpuRequestHints, planned_nodes: int) -> None:
    """sbatch -N that the plan cannot honour (e.g. -N 4 but the plan uses 2 hosts) is a conflict."""
    if hints.nodes is None:
        return
    low, high = hints.nodes, hints.nodes_max or hints.nodes
    if not low <= planned_nodes <= high:
        want = f"{low}" if low == high else f"{low}-{high}"
        raise BadRequest(f"sbatch -N/--nodes {want} conflicts with gpupool's placement on {planned_nodes} "
                         f"node(s); drop -N or give gpupool {param('nodes')}")


OWNED = frozenset({"nodes", "nodelist", "gres", "gpus", "gpus-per-node", "comment", "switches"})


def build_sbatch_args(passthrough: Sequence[Option], allocation: Mapping[str, int], nodelist: str,
                      hints: GpuRequestHints, comment: str, *, partition: str | None = None,
                      switches: str | None = None, pin_nodes: bool = True,
                      segment: int | None = None, exclude_nodes: str | None = None) -> list[str]:
    """The sbatch options for a planned job: the user's own options (minus those gpupool owns,
    which are re-stated with the plan's values), then gpupool's. `exclude_nodes` pins the job by
    excluding every other node (it then replaces the user's --exclude, whose hosts it holds)."""
    args: list[str] = []
    gres_rest = list(hints.other_gres)
    for option in passthrough:
        if option.name in OWNED or (exclude_nodes and option.name == "exclude"):
            continue
        args += option.tokens
    counts = set(allocation.values())
    total = sum(allocation.values())
    typed = f"{hints.gpu_type}:" if hints.gpu_type else ""
    families = list(hints.families) or (["gres"] if len(counts) == 1 else ["gpus"])
    if len(counts) > 1 and any(f in families for f in ("gres", "gpus-per-node")):
        families = ["gpus"]  # a per-node option cannot express an uneven plan
    if len(counts) == 1 and families == ["gpus"]:
        families.append("gpus-per-node")  # else Slurm may split N unevenly over the pinned nodes
    if partition:
        args.append(f"--partition={partition}")
    if pin_nodes:
        args += [f"--nodes={len(allocation)}", f"--nodelist={nodelist}"]
    else:
        args.append(f"--nodes={len(allocation)}")
    if exclude_nodes:
        args.append(f"--exclude={exclude_nodes}")
    per_node = next(iter(counts)) if len(counts) == 1 else None
    for family in families:
        if family == "gres":
            args.append("--gres=" + ",".join([f"gpu:{typed}{per_node}", *gres_rest]))
            gres_rest = []
        elif family == "gpus-per-node":
            args.append(f"--gpus-per-node={typed}{per_node}")
        elif family == "gpus":
            args.append(f"--gpus={typed}{total}")
    if gres_rest:
        args.append("--gres=" + ",".join(gres_rest))
    if switches:
        args.append(f"--switches={switches}")
    if segment:
        args.append(f"--segment={segment}")
    args.append(f"--comment={comment}")
    return args


def gpu_request_from_spellings(*, gpus: str | None = None, gpus_per_node: str | None = None,
                               gres: str | None = None, nodes: str | None = None,
                               source: str = "plan") -> GpuRequestHints:
    """`plan`'s sbatch spellings (-G/--gpus [TYPE:]N, --gpus-per-node [TYPE:]K, --gres=gpu[:TYPE]:K
    per node, -N/--nodes M) read exactly as sbatch options of `submit` are (`gpu_hints`)."""
    given = (("nodes", nodes), ("gres", gres), ("gpus-per-node", gpus_per_node), ("gpus", gpus))
    for name, value in given:
        if value is not None and re.fullmatch(r"\s*-?[0-9]{1,9}\s*", value) and int(value) <= 0:
            raise BadRequest(f"--{name} must be a positive number, got {int(value)}")
    options = [Option(name, value, [f"--{name}={value}"], source) for name, value in given if value is not None]
    hints = gpu_hints(options)
    if gres is not None:
        gres_hints = gpu_hints([Option("gres", gres, [], source)])
        if "gres" not in gres_hints.families:
            raise BadRequest(f"--gres={gres[:40]!r}: gpupool plans GPUs; give --gres=gpu[:TYPE]:K (K per node)")
        if gres_hints.gpus_per_node is None:
            raise BadRequest(f"--gres={gres[:40]!r}: the GPU count must be a positive integer (gpu[:TYPE]:K)")
        if gpus_per_node is not None and hints.gpus_per_node != gres_hints.gpus_per_node:
            raise BadRequest(f"--gres={gres} and --gpus-per-node={gpus_per_node} ask for different GPUs per node; "
                             "give one")
    if hints.nodes is not None and hints.nodes_max != hints.nodes:
        raise BadRequest(f"--nodes={nodes}: gpupool plans an exact node count, not a MIN-MAX range")
    return hints
