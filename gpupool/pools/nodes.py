"""Pool node specs -> host names: Slurm hostlists, or fabric selectors resolved on the fabric model.

Selectors: `leaf:NAME` (hosts cabled to leaf switch NAME, or in logical leaf group NAME),
`switch:NAME` (every host below switch NAME in the logical tree), `group:N` (dragonfly group N).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from gpupool.errors import BadInput, GpupoolError, param
from gpupool.fabric.model import natural_key
from gpupool.hostlist import expand
from gpupool.hostlist import fold as fold_hostlist

if TYPE_CHECKING:
    from gpupool.fabric.compiled import CompiledFabric

SELECTOR_KINDS = ("leaf", "switch", "group")
FabricLoader = Callable[[], "CompiledFabric"]


def is_selector(text: str) -> bool:
    kind, sep, _ = text.partition(":")
    return bool(sep) and kind in SELECTOR_KINDS


def expand_hostlist(text: str) -> list[str]:
    """Slurm hostlist -> host names; ValueError when it does not parse or expands too far."""
    try:
        return expand(text)
    except BadInput as exc:  # pools report bad entries as ValueError, with the pool's name added
        raise ValueError(exc.message) from None


__all__ = ["expand_hostlist", "fold_hostlist", "is_selector", "resolve_nodes"]


def resolve_selector(text: str, compiled: CompiledFabric) -> list[str]:
    """One fabric selector -> host names in fabric order; ValueError naming what is unknown."""
    kind, _, name = text.partition(":")
    if kind == "group":
        if not (name.isascii() and name.isdigit() and len(name) <= 9):
            raise ValueError(f"{text!r}: group selectors take a dragonfly group number (group:0)")
        group = int(name)
        hosts = [h for i, h in enumerate(compiled.host_names)
                 if any(int(compiled.switch_group[s]) == group for s in compiled.leaves_of(i))]
        if not hosts:
            raise ValueError(f"{text!r}: the fabric has no dragonfly group {group}")
        return hosts
    switch_index = {n: i for i, n in enumerate(compiled.switch_names)}
    tree_index = {n: i for i, n in enumerate(compiled.tree_names)}
    if kind == "leaf":
        if name in switch_index:
            s = switch_index[name]
            hosts = [h for i, h in enumerate(compiled.host_names) if s in set(int(x) for x in compiled.leaves_of(i))]
        elif name in tree_index and int(compiled.tree_level[tree_index[name]]) == 1:
            t = tree_index[name]
            hosts = [h for i, h in enumerate(compiled.host_names) if int(compiled.host_tree_leaf[i]) == t]
        else:
            raise ValueError(f"{text!r}: the fabric has no leaf switch named {name!r}")
        if not hosts:
            raise ValueError(f"{text!r}: switch {name!r} has no hosts (not a leaf switch)")
        return hosts
    # switch: every host whose logical tree path passes through the node NAME belongs to.
    if name in switch_index:
        target = int(compiled.switch_tree_node[switch_index[name]])
    elif name in tree_index:
        target = tree_index[name]
    else:
        raise ValueError(f"{text!r}: the fabric has no switch named {name!r}")
    if target < 0:
        raise ValueError(f"{text!r}: switch {name!r} is not part of the fabric's switch tree")
    hosts = []
    for i, host in enumerate(compiled.host_names):
        node = int(compiled.host_tree_leaf[i])
        while node >= 0:
            if node == target:
                hosts.append(host)
                break
            node = int(compiled.tree_parent[node])
    if not hosts:
        raise ValueError(f"{text!r}: no hosts below switch {name!r}")
    return hosts


def resolve_nodes(items: tuple[str, ...], fabric: FabricLoader | None) -> list[str]:
    """A pool's `nodes` entries -> unique host names in natural order (ValueError on a bad entry)."""
    hosts: set[str] = set()
    compiled = None
    for item in items:
        if is_selector(item):
            if fabric is None:
                raise ValueError(f"{item!r}: fabric selectors need a fabric file ({param('fabric')} or $GPUPOOL_FABRIC)")
            if compiled is None:
                try:
                    compiled = fabric()
                except GpupoolError as exc:
                    raise ValueError(f"{item!r}: {exc.message}") from None
            hosts.update(resolve_selector(item, compiled))
        else:
            hosts.update(expand_hostlist(item))
    return sorted(hosts, key=natural_key)
