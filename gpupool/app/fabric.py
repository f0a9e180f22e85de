"""The `fabric` use cases: discover, generate, show, export, diff and merge NVLink reports.

Each reads or writes the fabric file and its compiled cache as one step, so `cli/fabric.py` only
parses options and renders what these return.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from gpupool.fabric.export import (
    EXPORT_FORMATS,  # the export registry: `fabric export --format` names and help
)
from gpupool.fabric.model import Fabric, load_fabric, restrict_hosts, save_fabric

if TYPE_CHECKING:
    from gpupool.fabric.compiled import CompiledFabric
    from gpupool.fabric.diff import FabricDiff

# Designs with this many hosts or more report each phase (they take seconds to a minute).
PROGRESS_HOSTS = 10_000

Progress = Callable[[str], None]


def _quiet(_message: str) -> None:
    return None


def discover_fabric(*, capture_files: Sequence[str] = (), live: bool = False, node_name_map: str | None = None,
                    hosts: list[str] | None = None, timeout: float = 120.0,
                    service_hosts: tuple[str, ...] = ()) -> Fabric:
    """The fabric from captures (one per subnet) or a live ibnetdiscover."""
    from gpupool.fabric.discover import discover

    return discover(capture_files=tuple(capture_files), live=live, node_name_map=node_name_map, hosts=hosts,
                    timeout=timeout, service_hosts=service_hosts)


def generate_fat_tree(leaves: int, hosts_per_leaf: int, spines: int, *, pods: int = 1, cores: int = 0,
                      rails: int = 1, uplinks: int = 1, prefix: str = "gpu", speed: str = "QDR", width: str = "4x",
                      progress: Progress = _quiet) -> Fabric:
    """A fat-tree design (sizes checked before anything is built)."""
    from gpupool.fabric.generate import MAX_GENERATED_HOSTS, fat_tree, fat_tree_size

    hosts, _switches = fat_tree_size(leaves, hosts_per_leaf, spines, pods, cores, rails)
    if PROGRESS_HOSTS <= hosts <= MAX_GENERATED_HOSTS:
        progress(f"generating {hosts:,} hosts ...")
    return fat_tree(leaves, hosts_per_leaf, spines, pods=pods, cores=cores, rails=rails, uplinks=uplinks,
                    prefix=prefix, speed=speed, width=width)


def generate_dragonfly(groups: int, routers_per_group: int, hosts_per_router: int, global_links_per_router: int, *,
                       prefix: str = "gpu", speed: str = "QDR", width: str = "4x",
                       progress: Progress = _quiet) -> Fabric:
    """A dragonfly design (sizes checked before anything is built)."""
    from gpupool.fabric.generate import MAX_GENERATED_HOSTS, dragonfly, dragonfly_size

    hosts, _switches = dragonfly_size(groups, routers_per_group, hosts_per_router)
    if PROGRESS_HOSTS <= hosts <= MAX_GENERATED_HOSTS:
        progress(f"generating {hosts:,} hosts ...")
    return dragonfly(groups, routers_per_group, hosts_per_router, global_links_per_router, prefix=prefix, speed=speed,
                     width=width)


def save_with_summary(fab: Fabric, output: str, *, backup: bool = False, nvlink_domain_hosts: int | None = None,
                      progress: Progress | None = None) -> dict[str, Any]:
    """Cut NVLink domains when asked, compile (validates the model), write the fabric file, seed its
    cache; the summary document `fabric show` prints, with `output`."""
    from gpupool.fabric.compiled import compile_fabric, store_compiled
    from gpupool.fabric.export import summary

    if nvlink_domain_hosts is not None:
        from gpupool.fabric.generate import add_generated_domains

        add_generated_domains(fab, int(nvlink_domain_hosts))
    if progress is not None:
        progress(f"compiling {len(fab.nodes):,} nodes and {len(fab.links):,} links ...")
    compiled = compile_fabric(fab)
    if progress is not None:
        progress(f"writing {output} ...")
    save_fabric(fab, output, backup=backup)
    store_compiled(output, compiled)
    doc = summary(fab, compiled)
    doc["output"] = output
    return doc


def show_fabric(path: str, *, with_set_apart: bool = False) -> tuple[dict[str, Any], Fabric, CompiledFabric]:
    """The fabric's summary document (and what discovery set apart), the fabric and its compiled form."""
    from gpupool.fabric.compiled import load_compiled
    from gpupool.fabric.export import summary
    from gpupool.fabric.setapart import set_apart

    fab = load_fabric(path)
    compiled = load_compiled(path)
    doc = summary(fab, compiled)
    if with_set_apart:
        doc["set_apart"] = set_apart(fab, compiled)
    return doc, fab, compiled


def export_fabric(path: str, fmt: str, *, hosts: list[str] | None = None, clamp_speed: bool = False) -> str:
    """The fabric in an export format (`hosts`: only these, the others set apart)."""
    from gpupool.fabric.compiled import load_compiled
    from gpupool.fabric.export import export

    fab = load_fabric(path)
    compiled = None
    if hosts is not None:
        restrict_hosts(fab, hosts)
    else:
        entry = EXPORT_FORMATS.get(fmt)  # an unknown name: export() refuses it below
        compiled = load_compiled(path) if entry is not None and entry.needs_compiled else None
    return export(fab, fmt, compiled=compiled, clamp_speed=clamp_speed)


def diff_fabric_files(old_path: str, new_path: str) -> FabricDiff:
    """What changed between two fabric files or captures."""
    from gpupool.fabric.diff import diff_fabrics, load_side

    return diff_fabrics(load_side(old_path), load_side(new_path))


def merge_nvlink_reports(path: str, reports: list[str], output: str, *, backup: bool = False) -> dict[str, Any]:
    """The fabric's NVLink domains from the nodes' reports, written to `output`; the merge's document."""
    from gpupool.fabric.nvlink_reports import merge_into_fabric

    return merge_into_fabric(path, reports, output, backup=backup)
