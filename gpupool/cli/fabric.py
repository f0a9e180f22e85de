"""`gpupool fabric ...`: discover, generate, show, export (audit lives in fabric_audit)."""

from __future__ import annotations

import sys

import click

from gpupool.cli.context import app, json_option
from gpupool.cli.fabric_audit import audit
from gpupool.cli.fabric_nvlink import nvlink
from gpupool.cli.render import counted, emit_json, stdout_console, warn
from gpupool.config import resolve_fabric_path
from gpupool.errors import InputError, UsageError
from gpupool.fabric.discover import discover as run_discover
from gpupool.fabric.export import EXPORT_FORMATS
from gpupool.fabric.generate import (
    MAX_GENERATED_HOSTS,
    dragonfly,
    dragonfly_size,
    fat_tree,
    fat_tree_size,
)
from gpupool.fabric.model import load_fabric, restrict_hosts, save_fabric
from gpupool.fsutil import atomic_write_text, check_output_path
from gpupool.hostlist import expand, fold

# `--format` choices and help come from the export registry (gpupool.fabric.export.EXPORT_FORMATS).
_FORMAT_HELP = "Output format: " + "; ".join(f"{f.name}: {f.what}" for f in EXPORT_FORMATS.values()) + "."


@click.group()
def fabric() -> None:
    """Discover, generate, show, export and audit the InfiniBand fabric."""


def _fabric_option(func):  # type: ignore[no-untyped-def]
    return click.option("--fabric", "fabric_path", metavar="FILE",
                        help="Fabric file (default $GPUPOOL_FABRIC, else `fabric` in the config file).")(func)


def _write_output(text: str, output: str | None, backup: bool) -> None:
    if output in (None, "-"):
        sys.stdout.write(text)
    else:
        atomic_write_text(output, text, backup=backup)
        stdout_console().print(f"wrote {output}", markup=False, highlight=False)  # as discover and generate


@fabric.command()
@click.option("--ibnetdiscover", "capture_files", metavar="FILE", multiple=True,
              help="Saved capture: ibnetdiscover, ibdiagnet2 .ibnetdiscover/.lst/.db_csv or iblinkinfo output "
                   "(format detected; repeat for several subnets, hosts joined by name).")
@click.option("--live", is_flag=True, help="Run `ibnetdiscover` now.")
@click.option("--node-name-map", metavar="FILE", help="OpenSM node-name-map (0xGUID \"name\") overriding descriptions.")
@click.option("--hosts", "hostlist", metavar="HOSTLIST", help="Keep only these compute hosts (Slurm hostlist).")
@click.option("--slurm", "from_slurm", is_flag=True, help="Keep only the nodes Slurm knows.")
@click.option("--service-hosts", metavar="GLOBS", multiple=True,
              help="Storage/management hosts to keep out of compute (comma-separated globs, e.g. '*-login-*,ufm*'; "
                   "repeatable).")
@click.option("-o", "--output", required=True, metavar="FABRIC", help="Fabric file to write.")
@click.option("--backup", is_flag=True, help="Keep the previous file as FABRIC.bak.")
@click.option("--timeout", default=120.0, show_default=True, help="Seconds to wait for a live ibnetdiscover.")
@json_option
def discover(capture_files: tuple[str, ...], live: bool, node_name_map: str | None, hostlist: str | None,
             from_slurm: bool, service_hosts: tuple[str, ...], output: str, backup: bool, timeout: float) -> None:
    """Build the fabric model from `ibnetdiscover` output or another capture (one per subnet)."""
    if bool(capture_files) == live:
        raise UsageError("give exactly one of --ibnetdiscover FILE and --live")
    if hostlist and from_slurm:
        raise UsageError("give at most one of --hosts and --slurm")
    check_output_path(output)  # before ibnetdiscover runs
    hosts = expand(hostlist) if hostlist else None
    if from_slurm:
        hosts = _slurm_node_names()
    fab = run_discover(capture_files=capture_files, live=live, node_name_map=node_name_map, hosts=hosts,
                       timeout=timeout, service_hosts=tuple(g for globs in service_hosts for g in globs.split(",")))
    for message in fab.warnings:
        warn(message)
    _save_and_report(fab, output, backup)


def _slurm_node_names() -> list[str]:
    return sorted(app().slurm_client().node_names())


def _print_summary(doc: dict) -> None:  # type: ignore[type-arg]
    console = stdout_console()
    parts = [f"{doc['kind']} fabric: {counted(doc['hosts'], 'host')}, {counted(doc['switches'], 'switch')}, "
             f"{counted(doc['links'], 'link')}"]
    if "levels" in doc:
        parts.append("levels " + ", ".join(f"L{k}={v}" for k, v in doc["levels"].items()))
    if "group_count" in doc:
        parts.append(f"{doc['group_count']} groups")
    if "nvlink_domains" in doc:
        nv = doc["nvlink_domains"]
        parts.append(f"{nv['domains']} NVLink domains of {'/'.join(map(str, nv['hosts_per_domain']))} hosts")
    console.print("; ".join(parts))
    if doc.get("chassis"):
        console.print("director chassis: " + ", ".join(
            f"{c['name']} ({c['model'] + ': ' if c['model'] else ''}{c['line_asics']} line + "
            f"{c['fabric_asics']} fabric ASICs)" for c in doc["chassis"]), markup=False)
    if doc.get("kind_reason"):
        console.print(f"not a tree or dragonfly: {doc['kind_reason']}")
    bundles = doc.get("uplink_bundles") or {}
    if bundles:
        console.print("uplink oversubscription (hosts' injection : uplink capacity, worst bundle): "
                      + ", ".join(f"{level} {row['max_oversubscription']:g}:1" for level, row in bundles.items()))
    roles = doc.get("node_roles", {})
    service_hosts = doc.get("host_classes", {}).get("service", 0)
    words = {"aggregation": lambda n: counted(n, "SHARP aggregation node"),
             "service": lambda n: counted(service_hosts, "service host") + (f" ({n} HCAs)" if n != service_hosts else ""),
             "unnamed": lambda n: counted(n, "unnamed HCA"), "excluded": lambda n: counted(n, "excluded HCA")}
    set_apart = [words[k](v) for k, v in roles.items() if k in words and v]
    if set_apart:
        console.print("set apart (not compute hosts): " + ", ".join(set_apart)
                      + " (names: gpupool fabric show --set-apart)")
    if doc.get("output"):
        console.print(f"wrote {doc['output']}")


@fabric.group()
def generate() -> None:
    """Generate a fabric design for planning or for the testbed."""


def _remember(ctx: click.Context, param: click.Parameter, value: object) -> object:
    """Keep a generator option the commands do not take themselves (read by _save_and_report)."""
    ctx.meta[f"gpupool.{param.name}"] = value
    return value


_COMMON_GEN = [
    click.option("--prefix", default="gpu", show_default=True, help="Host name prefix."),
    click.option("--speed", default="QDR", show_default=True,
                 type=click.Choice(["SDR", "DDR", "QDR", "FDR", "EDR", "HDR", "NDR", "XDR"]), help="Link speed."),
    click.option("--width", default="4x", show_default=True, type=click.Choice(["1x", "4x", "8x", "12x"])),
    click.option("-o", "--output", required=True, metavar="FABRIC", help="Fabric file to write."),
    click.option("--backup", is_flag=True, help="Keep the previous file as FABRIC.bak."),
    click.option("--nvlink-domain-hosts", type=int, metavar="N", expose_value=False, callback=_remember,
                 help="Multi-node NVLink domains (GB200/GB300 NVL72: 18) of N consecutive hosts under each leaf."),
    json_option,
]


def _common_gen(func):  # type: ignore[no-untyped-def]
    for decorator in reversed(_COMMON_GEN):
        func = decorator(func)
    return func


# Designs with this many hosts or more report each phase on stderr (they take seconds to a minute).
PROGRESS_HOSTS = 10_000


def _progress(show: bool, message: str) -> None:
    if show:
        sys.stderr.write(f"gpupool: {message}\n")
        sys.stderr.flush()


def _save_and_report(fab, output: str, backup: bool, progress: bool = False) -> None:  # type: ignore[no-untyped-def]
    """Compile (validates the model), write the fabric file and seed its cache, print the summary."""
    _nvlink_domains(fab)
    from gpupool.fabric.compiled import compile_fabric, store_compiled
    from gpupool.fabric.export import summary

    _progress(progress, f"compiling {len(fab.nodes):,} nodes and {len(fab.links):,} links ...")
    compiled = compile_fabric(fab)
    _progress(progress, f"writing {output} ...")
    save_fabric(fab, output, backup=backup)
    store_compiled(output, compiled)
    doc = summary(fab, compiled)
    doc["output"] = output
    if app().json:
        emit_json(doc)
    else:
        _print_summary(doc)


@generate.command("fat-tree")
@click.option("--leaves", type=int, required=True, help="Leaf switches per pod (leaf positions with --rails).")
@click.option("--hosts-per-leaf", type=int, required=True)
@click.option("--spines", type=int, required=True, help="Spine switches per pod.")
@click.option("--pods", type=int, default=1, show_default=True, help="Pods (3-level tree when > 1 or --cores).")
@click.option("--cores", type=int, default=0, show_default=True, help="Core switches (third level).")
@click.option("--rails", type=int, default=1, show_default=True, help="HCAs per host, one rail leaf each.")
@click.option("--uplinks", type=int, default=1, show_default=True,
              help="Parallel cables from each leaf to each spine of its pod: a leaf is oversubscribed "
                   "hosts-per-leaf : spines x uplinks (e.g. 8 hosts, 2 spines, 1 uplink: 4:1).")
@_common_gen
def fat_tree_cmd(leaves: int, hosts_per_leaf: int, spines: int, pods: int, cores: int, rails: int, uplinks: int,
                 prefix: str, speed: str, width: str, output: str, backup: bool) -> None:
    """A 2- or 3-level fat-tree, optionally rail-optimised (at most 100,000 hosts and 20,000 switches)."""
    check_output_path(output)
    hosts, _switches = fat_tree_size(leaves, hosts_per_leaf, spines, pods, cores, rails)
    _progress(PROGRESS_HOSTS <= hosts <= MAX_GENERATED_HOSTS, f"generating {hosts:,} hosts ...")
    fab = fat_tree(leaves, hosts_per_leaf, spines, pods=pods, cores=cores, rails=rails, uplinks=uplinks, prefix=prefix,
                   speed=speed, width=width)
    _save_and_report(fab, output, backup, progress=hosts >= PROGRESS_HOSTS)


@generate.command("dragonfly")
@click.option("--groups", type=int, required=True)
@click.option("--routers-per-group", type=int, required=True)
@click.option("--hosts-per-router", type=int, required=True)
@click.option("--global-links-per-router", type=int, required=True)
@_common_gen
def dragonfly_cmd(groups: int, routers_per_group: int, hosts_per_router: int, global_links_per_router: int,
                  prefix: str, speed: str, width: str, output: str, backup: bool) -> None:
    """A dragonfly: all-to-all routers in each group, consecutive global links between groups
    (at most 100,000 hosts and 20,000 switches)."""
    check_output_path(output)
    hosts, _switches = dragonfly_size(groups, routers_per_group, hosts_per_router)
    _progress(PROGRESS_HOSTS <= hosts <= MAX_GENERATED_HOSTS, f"generating {hosts:,} hosts ...")
    fab = dragonfly(groups, routers_per_group, hosts_per_router, global_links_per_router, prefix=prefix, speed=speed,
                    width=width)
    _save_and_report(fab, output, backup, progress=hosts >= PROGRESS_HOSTS)


@fabric.command()
@_fabric_option
@click.option("--set-apart", "list_set_apart", is_flag=True,
              help="Also list what is not a compute host or tree switch, by name and why (JSON: \"set_apart\").")
@json_option
def show(fabric_path: str | None, list_set_apart: bool) -> None:
    """Summarise the fabric: a tree from the top switches down to the hosts."""
    from gpupool.fabric.compiled import load_compiled
    from gpupool.fabric.export import summary
    from gpupool.fabric.setapart import set_apart

    path = resolve_fabric_path(fabric_path, app().config())
    fab = load_fabric(path)
    compiled = load_compiled(path)
    doc = summary(fab, compiled)
    if list_set_apart:
        doc["set_apart"] = set_apart(fab, compiled)
    if app().json:
        emit_json(doc)
        return
    _print_summary(doc)
    stdout_console().print(_tree(fab, compiled))
    outside = int((compiled.switch_tree_node < 0).sum())
    if outside and not list_set_apart:  # the levels above count them; the tree does not show them
        stdout_console().print(f"{counted(outside, 'switch')} with no compute host below (management or service) "
                               "not shown in the tree: gpupool fabric show --set-apart", markup=False, highlight=False)
    for key, entry in doc.get("set_apart", {}).items():
        shown = ", ".join(entry["names"][:20]) + (f" and {entry['count'] - 20} more" if entry["count"] > 20 else "")
        stdout_console().print(f"set apart: {entry['count']} {key.replace('_', ' ')} ({entry['why']}): {shown}",
                               markup=False, highlight=False)


def _tree(fab, compiled):  # type: ignore[no-untyped-def]
    from rich.tree import Tree

    children: dict[int, list[int]] = {}
    for t, p in enumerate(compiled.tree_parent.tolist()):
        children.setdefault(p, []).append(t)
    hosts: dict[int, list[str]] = {}
    for h, leaf in enumerate(compiled.host_tree_leaf.tolist()):
        hosts.setdefault(leaf, []).append(compiled.host_names[h])
    members: dict[int, list[str]] = {}
    for s, t in enumerate(compiled.switch_tree_node.tolist()):
        if t >= 0:
            members.setdefault(t, []).append(compiled.switch_names[s])
    rates: dict[str, int] = {}
    for link in fab.links:
        key = f"{link.width}{link.speed}"
        rates[key] = rates.get(key, 0) + 1
    root = Tree(f"fabric ({compiled.kind}; links: " + ", ".join(f"{v}x {k}" for k, v in sorted(rates.items())) + ")")

    def add(parent_tree, t: int) -> None:  # type: ignore[no-untyped-def]
        sw = members.get(t, [])
        label = f"L{int(compiled.tree_level[t])} {compiled.tree_names[t]}"
        if len(sw) > 1:
            label += f" ({len(sw)} switches: {fold(sw)})"
        if t in hosts:
            label += f" - {counted(len(hosts[t]), 'host')}"
        node = parent_tree.add(label)
        if t in hosts:
            node.add(fold(hosts[t]))
        for c in sorted(children.get(t, []), key=lambda c: compiled.tree_names[c]):
            add(node, c)

    for t in children.get(-1, []):
        add(root, t)
    return root


@fabric.command()
@_fabric_option
@click.option("--format", "fmt", required=True, type=click.Choice(EXPORT_FORMATS.names()), help=_FORMAT_HELP)
@click.option("-o", "--output", metavar="FILE", help="Write here (atomically) instead of stdout.")
@click.option("--diff", "diff_against", metavar="EXISTING", help="Show what would change in EXISTING; write nothing.")
@click.option("--hosts", "hostlist", metavar="HOSTLIST", help="Export only these hosts (others set apart).")
@click.option("--clamp-speed", is_flag=True, help="ibsim: export links faster than QDR as QDR.")
@click.option("--backup", is_flag=True, help="Keep the previous file as FILE.bak.")
@json_option
def export(fabric_path: str | None, fmt: str, output: str | None, diff_against: str | None, hostlist: str | None,
           clamp_speed: bool, backup: bool) -> int:
    """Export the fabric: Slurm topology.conf (tree/block), topology.yaml, node weights, ibsim, dot or JSON.

    With --json: one document {"format", "fabric", "output", "text"} ("text" only when printed, not
    written with -o); with --diff: {"format", "fabric", "compared_with", "changed", "diff"}.
    """
    import difflib

    from gpupool.fabric.compiled import load_compiled
    from gpupool.fabric.export import export as do_export

    path = resolve_fabric_path(fabric_path, app().config())
    if output not in (None, "-") and not diff_against:
        check_output_path(output)
    fab = load_fabric(path)
    compiled = None
    if hostlist:
        restrict_hosts(fab, expand(hostlist))
    else:
        compiled = load_compiled(path) if EXPORT_FORMATS[fmt].needs_compiled else None
    text = do_export(fab, fmt, compiled=compiled, clamp_speed=clamp_speed)
    if diff_against:
        from gpupool.fsutil import read_input_bytes

        try:
            old = read_input_bytes(diff_against, "file to compare with").decode("utf-8")
        except UnicodeDecodeError:
            raise InputError(f"{diff_against}: not a text file (not UTF-8)") from None
        delta = list(difflib.unified_diff(old.splitlines(keepends=True), text.splitlines(keepends=True),
                                          fromfile=diff_against, tofile=f"{diff_against} (from {path})"))
        if app().json:
            emit_json({"format": fmt, "fabric": path, "compared_with": diff_against, "changed": bool(delta),
                       "diff": "".join(delta)})
        else:
            sys.stdout.writelines(delta)
        return 1 if delta else 0
    if app().json:
        if output not in (None, "-"):
            atomic_write_text(output, text, backup=backup)
        emit_json({"format": fmt, "fabric": path, "output": output if output not in (None, "-") else None,
                   **({"text": text} if output in (None, "-") else {})})
        return 0
    _write_output(text, output, backup)
    return 0


def _nvlink_domains(fab) -> None:  # type: ignore[no-untyped-def]
    """`generate ... --nvlink-domain-hosts N`: cut the generated hosts into NVLink domains."""
    ctx = click.get_current_context(silent=True)
    hosts = ctx.meta.get("gpupool.nvlink_domain_hosts") if ctx is not None else None
    if hosts is not None:
        from gpupool.fabric.nvlink import add_generated_domains

        add_generated_domains(fab, int(hosts))


@fabric.command("diff")
@click.argument("paths", nargs=-1, metavar="[OLD] NEW")
@_fabric_option
@json_option
def diff_cmd(paths: tuple[str, ...], fabric_path: str | None) -> int:
    """What changed between two captures or fabric files (OLD defaults to the saved fabric).

    Exit 0: nothing changed; 1: something changed; 4: bad input."""
    from gpupool.fabric.diff import diff_fabrics, load_side

    if len(paths) not in (1, 2):
        raise UsageError("give OLD and NEW, or NEW alone to compare with the saved fabric")
    if len(paths) == 2 and fabric_path:
        raise UsageError("--fabric names OLD: give it or two paths, not both")
    old_path = paths[0] if len(paths) == 2 else resolve_fabric_path(fabric_path, app().config())
    old, new = load_side(old_path), load_side(paths[-1])
    result = diff_fabrics(old, new)
    if app().json:
        emit_json(result.to_json() | {"old": old_path, "new": paths[-1]})
    else:
        _print_diff(result, old_path, paths[-1])
    return 1 if result.changed else 0


def _end_text(end: dict) -> str:  # type: ignore[type-arg]
    label = f"({end['label']})" if end.get("label") else ""
    return f"{end['node']}[{end['port']}]{label}"


def _print_diff(result, old_path: str, new_path: str) -> None:  # type: ignore[no-untyped-def]
    console = stdout_console()
    if not result.changed:
        console.print(f"no changes between {old_path} and {new_path}", markup=False)
        return
    lines: list[str] = []
    for item in result.hosts_renamed:
        lines.append(f"host renamed: {item['old']} -> {item['new']} ({', '.join(item['guids'])})")
    if result.hosts_added:
        lines.append(f"hosts added ({len(result.hosts_added)}): {fold(result.hosts_added)}")
    if result.hosts_removed:
        lines.append(f"hosts removed ({len(result.hosts_removed)}): {fold(result.hosts_removed)}")
    for item in result.switches_replaced:
        lines.append(f"switch replaced: {item['old']['name']} ({item['old']['guid']}) -> "
                     f"{item['new']['name']} ({item['new']['guid']})")
    for item in result.links_removed:
        lines.append(f"cable removed: {_end_text(item['a'])} - {_end_text(item['b'])} {item['rate']}")
    for item in result.links_added:
        lines.append(f"cable added: {_end_text(item['a'])} - {_end_text(item['b'])} {item['rate']}")
    for item in result.links_changed:
        if item["change"] == "hca-replaced":
            lines.append(f"HCA replaced: {item['old_peer']['node']} on {_end_text(item['end'])} "
                         f"({item['old_peer']['guid']} -> {item['new_peer']['guid']})")
        elif item["change"] == "moved":
            lines.append(f"cable moved: {_end_text(item['end'])} was on {_end_text(item['old_peer'])}, "
                         f"now on {_end_text(item['new_peer'])}")
        else:
            lines.append(f"link rate changed: {_end_text(item['a'])} - {_end_text(item['b'])} "
                         f"{item['old']} -> {item['new']}")
    for item in result.levels_changed:
        lines.append(f"level changed: {item['switch']} L{item['old']} -> L{item['new']}")
    for line in lines:
        console.print(line, markup=False, highlight=False)


fabric.add_command(audit)
fabric.add_command(nvlink)
