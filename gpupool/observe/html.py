"""One self-contained HTML page: the fabric drawn as inline SVG, fragmentation, pools' lending, audit findings.

No scripts, no external fetches: styles are inline and every drawing is inline SVG. The markup is the
Jinja2 template gpupool/templates/observe_report.html (autoescaped); every figure, colour and drawing
coordinate is computed here and handed to it as plain values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jinja2 import Template

    from gpupool.fabric.compiled import CompiledFabric
    from gpupool.observe.fragmentation import Fragmentation, LeafFree
    from gpupool.observe.lending import LendingData, LendingReport, LendingSeries, PoolLending

# A blue scale for free GPUs keeps orange and red free for health (the leaf's border).
FREE_COLOURS = (("none free", "#8c8c8c"), ("< 25 % free", "#deebf7"), ("< 50 % free", "#9ecae1"),
                ("< 75 % free", "#4292c6"), (">= 75 % free", "#08519c"))
DARK_FILLS = frozenset({"#4292c6", "#08519c"})
HEALTH_COLOURS = {"ok": "#2b2b2b", "warning": "#e67e00", "critical": "#c00000"}
LEAF_W, LEAF_H, GAP, LEVEL_H = 96, 44, 10, 90


def free_colour(free: int, capacity: int) -> str:
    """Same bands as the terminal heat map of `gpupool status`."""
    if free <= 0 or capacity <= 0:
        return FREE_COLOURS[0][1]
    share = free / capacity
    for limit, (_, colour) in zip((0.25, 0.5, 0.75), FREE_COLOURS[1:4], strict=True):
        if share < limit:
            return colour
    return FREE_COLOURS[4][1]


def tree_health(compiled: CompiledFabric, findings: list[Any]) -> dict[int, str]:
    """Worst severity per logical tree node, from findings whose subject names a switch or a host."""
    switch_at = {name: i for i, name in enumerate(compiled.switch_names)}
    host_at = compiled.host_index()
    rank = {"ok": 0, "warning": 1, "critical": 2}
    health: dict[int, str] = {}
    for finding in findings:
        subject = re.split(r"[/\[\s:]", str(finding.subject))[0]  # "leaf01/3", "gpu001 mlx5_0" -> the device
        nodes: list[int] = []
        if subject in switch_at:
            nodes.append(int(compiled.switch_tree_node[switch_at[subject]]))
        elif subject in host_at:
            nodes.append(int(compiled.host_tree_leaf[host_at[subject]]))
        severity = finding.severity if finding.severity in rank else "warning"
        for t in nodes:
            if t >= 0 and rank[severity] > rank[health.get(t, "ok")]:
                health[t] = severity
    return health


@dataclass(frozen=True)
class SwitchBox:
    """A switch (a logical tree node above the leaves) as drawn: centre x, top y, box width."""

    name: str
    level: int
    health: str
    x: float
    y: int
    width: int
    continued: bool = False  # a repeat of a switch whose leaves wrapped onto several blocks
    stroke: str = ""
    stroke_width: int = 1


@dataclass(frozen=True)
class LeafBox:
    """A leaf as drawn, with its figures and colours (fill by free GPUs, border by health)."""

    name: str
    pod: str
    free: int
    capacity: int
    whole_free_hosts: int
    hosts: int
    health: str
    x: float
    y: int
    width: int
    fill: str
    ink: str
    stroke: str
    stroke_width: int


@dataclass(frozen=True)
class Drawing:
    """One SVG of the fabric: boxes and the lines from each child to its parent."""

    width: int
    height: int
    switches: list[SwitchBox]
    leaves: list[LeafBox]
    lines: list[tuple[float, int, float, int]]
    svg_id: str | None = None
    label: str = "fabric drawing"


@dataclass(frozen=True)
class FabricView:
    """The fabric section: one tree when it fits the page, else rows that wrap (upper levels, then blocks)."""

    tree: Drawing | None  # the whole tree, when it is at most MAX_TREE_WIDTH wide
    upper: list[tuple[int, list[Drawing]]]  # wrapped: (level, one small drawing per switch), top level first
    blocks: list[Drawing]  # wrapped: a switch and at most a block's worth of its leaves each
    summary: str


# Widest tree drawn in one piece: wider fabrics wrap into blocks instead of being scaled down until
# their names cannot be read (issue #27: Selene's 25 leaves).
MAX_TREE_WIDTH = 1100
BLOCK_LEVEL_H = 60  # a wrapped block has one switch level above its leaves: less height between them


def _switch_box(name: str, level: int, state: str, x: float, y: int, width: int, *, continued: bool = False
                ) -> SwitchBox:
    return SwitchBox(name, level, state, x, y, width, continued, HEALTH_COLOURS[state], 3 if state != "ok" else 1)


def _leaf_box(leaf: LeafFree, state: str, x: float, y: int, width: int) -> LeafBox:
    fill = free_colour(leaf.free_gpus, leaf.capacity_gpus)
    return LeafBox(leaf.name, leaf.pod, leaf.free_gpus, leaf.capacity_gpus, leaf.whole_free_hosts, leaf.hosts, state,
                   x, y, width, fill, "#ffffff" if fill in DARK_FILLS else "#1d2430", HEALTH_COLOURS[state],
                   4 if state != "ok" else 1)


def fabric_view(compiled: CompiledFabric, figures: Fragmentation, health: dict[int, str]) -> FabricView | None:
    """Leaves coloured by free GPUs under their switches; border colour = health. None: no leaf with hosts."""
    parent = compiled.tree_parent
    level = compiled.tree_level
    names = compiled.tree_names
    by_name = {leaf.name: leaf for leaf in figures.leaves}
    leaves = [t for t in range(parent.size) if int(level[t]) == 1 and names[t] in by_name]
    if not leaves:
        return None
    top = int(level.max())

    # Order leaves by their path from the root so siblings sit together.
    def path(t: int) -> list[str]:
        chain = []
        while t >= 0:
            chain.append(names[t])
            t = int(parent[t])
        return chain[::-1]

    leaves.sort(key=path)
    # Boxes as wide as the longest name (about 6.5 px per character at 11 px).
    longest = max(len(names[t]) for t in range(parent.size))
    leaf_w = max(LEAF_W, int(longest * 6.5) + 14)
    children: dict[int, list[int]] = {}
    for t in range(parent.size):
        if int(parent[t]) >= 0:
            children.setdefault(int(parent[t]), []).append(t)
    width = GAP + len(leaves) * (leaf_w + GAP)
    summary = f"{len(leaves)} leaves"
    if width <= MAX_TREE_WIDTH:
        return FabricView(_tree(leaves, children, top, leaf_w, compiled, by_name, health, "fabric"), [], [], summary)
    # Wrapped: every leaf's parent (its switch group) heads blocks of at most `per_block` leaves, side by
    # side as the page allows; the levels above the groups are listed level by level.
    per_block = max(1, (MAX_TREE_WIDTH - GAP) // (leaf_w + GAP))
    groups: dict[int, list[int]] = {}
    for t in leaves:
        groups.setdefault(int(parent[t]), []).append(t)
    blocks: list[Drawing] = []
    for group, members in groups.items():
        chunks = -(-len(members) // per_block)
        base, extra = divmod(len(members), chunks)  # balanced: 25 leaves in blocks of 9, 8, 8 rather than 10, 10, 5
        start = 0
        for i in range(chunks):
            part = members[start:start + base + (1 if i < extra else 0)]
            label = f"{names[group]}: leaves {start + 1}-{start + len(part)} of {len(members)}" if group >= 0 \
                else "leaves without a switch above"
            start += len(part)
            blocks.append(_tree(part, {group: part}, 1 if group < 0 else int(level[group]), leaf_w, compiled,
                                by_name, health, None, label, continued=i > 0, level_h=BLOCK_LEVEL_H))
    upper_levels: dict[int, list[int]] = {}
    seen = set(groups)
    for group in groups:
        t = int(parent[group]) if group >= 0 else -1
        while t >= 0 and t not in seen:
            seen.add(t)
            upper_levels.setdefault(int(level[t]), []).append(t)
            t = int(parent[t])
    upper = [(lv, [Drawing(leaf_w + 2 * GAP, 34, [_switch_box(names[t], lv, health.get(t, "ok"), GAP + leaf_w / 2,
                                                             2, leaf_w)], [], [], label=f"switch {names[t]}")
                   for t in sorted(upper_levels[lv], key=path)])
             for lv in sorted(upper_levels, reverse=True)]
    summary += (f" under {len([g for g in groups if g >= 0])} switch groups, drawn in {len(blocks)} blocks that "
                f"wrap to the page (one tree would be {width} px wide)")
    return FabricView(None, upper, blocks, summary)


def _tree(leaves: list[int], children: dict[int, list[int]], top: int, leaf_w: int, compiled: CompiledFabric,
          by_name: dict[str, LeafFree], health: dict[int, str], svg_id: str | None, label: str = "fabric drawing", *,
          continued: bool = False, level_h: int = LEVEL_H) -> Drawing:
    """`leaves` along the bottom and every switch of `children` above them (centred over its children)."""
    parent = compiled.tree_parent
    level = compiled.tree_level
    names = compiled.tree_names
    x: dict[int, float] = {t: GAP + i * (leaf_w + GAP) + leaf_w / 2 for i, t in enumerate(leaves)}
    lowest = min(int(level[t]) for t in leaves)
    y_of = {lv: 20 + (top - lv) * level_h for lv in range(lowest, top + 1)}
    for lv in range(lowest + 1, top + 1):
        for t in sorted(children):
            if t >= 0 and int(level[t]) == lv:
                xs = [x[c] for c in children.get(t, []) if c in x]
                if xs:
                    x[t] = sum(xs) / len(xs)
    width = GAP + len(leaves) * (leaf_w + GAP)
    height = y_of[lowest] + LEAF_H + 20
    lines = [(x[t], y_of[int(level[t])], x[int(parent[t])], y_of[int(level[int(parent[t])])] + 30)
             for t in range(parent.size) if int(parent[t]) >= 0 and t in x and int(parent[t]) in x]
    switches = [_switch_box(names[t], int(level[t]), health.get(t, "ok"), x[t], y_of[int(level[t])], leaf_w,
                            continued=continued)
                for t in sorted(x) if int(level[t]) != 1]
    boxes = [_leaf_box(by_name[names[t]], health.get(t, "ok"), x[t], y_of[1], leaf_w) for t in leaves]
    return Drawing(width, height, switches, boxes, lines, svg_id, label)


@dataclass(frozen=True)
class SeriesBar:
    x: int
    owner_y: float
    owner_h: float
    lent_y: float
    lent_h: float
    title: str


@dataclass(frozen=True)
class SeriesRow:
    name: str
    label_y: int
    base: int
    bars: list[SeriesBar]


@dataclass(frozen=True)
class SeriesView:
    width: int
    height: int
    label_w: int
    bar_w: int
    rows: list[SeriesRow]
    axis_y: int
    start: str
    end: str


def series_view(series: LendingSeries, capacity: dict[str, int]) -> SeriesView:
    """Per pool, one bar per time bucket: owners' use (blue) under lent (orange), full height = every GPU busy."""
    buckets = len(series.edges) - 1
    bar, gap, row_h, label_w = 22, 3, 70, 120
    bucket_hours = (series.edges[1] - series.edges[0]).total_seconds() / 3600.0 if buckets else 0.0
    width = label_w + buckets * (bar + gap) + 20
    rows: list[SeriesRow] = []
    y = 8
    for name in series.owner:
        full = max(capacity.get(name, 0) * bucket_hours, 1e-9)
        base = y + row_h - 18
        bars = []
        for b in range(buckets):
            owner_h = min(1.0, series.owner[name][b] / full) * (row_h - 24)
            lent_h = min(1.0, series.lent[name][b] / full) * (row_h - 24)
            bars.append(SeriesBar(label_w + b * (bar + gap), base - owner_h, owner_h, base - owner_h - lent_h, lent_h,
                                  f"{series.edges[b]:%m-%d %H:%M}: owners {series.owner[name][b]:.2f}, "
                                  f"lent {series.lent[name][b]:.2f} GPU-h"))
        rows.append(SeriesRow(name, base - 20, base, bars))
        y += row_h
    return SeriesView(width, len(series.owner) * row_h + 30, label_w, bar, rows, y + 12,
                      f"{series.edges[0]:%Y-%m-%d %H:%M}", f"{series.edges[-1]:%Y-%m-%d %H:%M}")


@dataclass(frozen=True)
class LendingRow:
    pool: PoolLending
    y: int
    owner: float
    lent: float
    idle: float
    borrowed: float


@dataclass(frozen=True)
class LendingView:
    width: int
    height: int
    label_w: int
    bar_w: int
    row_h: int
    rows: list[LendingRow]


def lending_view(report: LendingReport) -> LendingView:
    """Per pool, one bar of its available GPU-hours split into owners' use, lent and idle; borrowed beside it."""
    pools = report.pools
    bar_w, row_h, label_w = 520, 34, 120
    scale = max([p.available_gpu_hours for p in pools] + [p.borrowed_gpu_hours for p in pools] + [1e-9])
    rows = []
    y = 10
    for p in pools:
        rows.append(LendingRow(p, y, p.owner_gpu_hours / scale * bar_w, p.lent_gpu_hours / scale * bar_w,
                               max(0.0, p.available_gpu_hours - p.used_gpu_hours) / scale * bar_w,
                               p.borrowed_gpu_hours / scale * bar_w))
        y += row_h * 2
    return LendingView(label_w + bar_w + 340, 30 + len(pools) * row_h * 2, label_w, bar_w, row_h, rows)


@dataclass
class ReportInputs:
    compiled: CompiledFabric
    figures: Fragmentation
    audit_status: str | None
    findings: list[Any]
    lending: LendingData | None
    notes: dict[str, str]  # section -> why it is missing
    generated: datetime


def _plain(value: Any) -> str:
    """The text of a value as the page shows it: a str subclass (an enum of strings) by its own characters."""
    return str.__str__(value) if isinstance(value, str) else str(value)


def _page_template(name: str) -> Template:
    """A page template shipped in gpupool/templates, autoescaped; Jinja2 is imported only to render a page."""
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(loader=PackageLoader("gpupool", "templates"), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    return env.get_template(name)


def render_html(inputs: ReportInputs) -> str:
    compiled, figures = inputs.compiled, inputs.figures
    health = tree_health(compiled, inputs.findings)
    scopes = figures.largest
    cards = [("free GPUs", figures.free_gpus, "free-gpus"), ("largest job in one leaf", scopes["leaf"], "largest-leaf"),
             ("largest job in one pod", scopes["pod"], "largest-pod"),
             ("largest job anywhere", scopes["anywhere"], "largest-anywhere"),
             ("stranded GPUs", figures.stranded_gpus, "stranded"),
             ("fabric audit", inputs.audit_status or "not run", "audit-status")]
    shapes = [[str(f.shape.gpus), _plain(f.shape.kind), *("yes" if f.fits[s] else "no" for s in ("leaf", "pod", "anywhere")),
               str(f.jobs_within_leaf), str(f.stranded_gpus)] for f in figures.shapes]
    lending = None
    if inputs.lending is not None:
        report = inputs.lending.report
        series = inputs.lending.series
        lending = {
            "period": f"{report.since:%Y-%m-%d %H:%M:%S} .. {report.until:%Y-%m-%d %H:%M:%S} ({report.hours:.2f} h), "
                      f"{report.runs} job runs from sacct",
            "bars": lending_view(report),
            "series": None if series is None else series_view(series, {p.name: p.gpus for p in report.pools}),
            "pools": [[p.name, ",".join(p.owners) or "(shared)", f"{p.available_gpu_hours:.2f}",
                       f"{p.owner_gpu_hours:.2f}", f"{p.lent_gpu_hours:.2f}", f"{p.borrowed_gpu_hours:.2f}",
                       str(p.jobs_preempted), f"{p.lost_gpu_hours:.2f}",
                       "-" if p.owner_wait_seconds_mean is None else f"{p.owner_wait_seconds_mean:.0f}"]
                      for p in report.pools],
            "accounts": [[a.name, f"{a.gpu_hours:.2f}", "-" if a.usage_share is None else f"{a.usage_share:.1%}",
                          "-" if a.norm_shares is None else f"{a.norm_shares:.1%}",
                          "-" if a.fairshare is None else f"{a.fairshare:.3f}"] for a in report.accounts],
        }
    return str(_page_template("observe_report.html").render(
        generated=inputs.generated.strftime("%Y-%m-%d %H:%M:%S"), title_time=inputs.generated.strftime("%Y-%m-%d %H:%M"),
        kind=_plain(compiled.kind), hosts=compiled.n_hosts, switches=compiled.n_switches, leaves=len(figures.leaves),
        gpus_per_node=figures.gpus_per_node,
        cards=[(label, _plain(value), key) for label, value, key in cards], free_colours=FREE_COLOURS,
        health_colours=[(s, c) for s, c in HEALTH_COLOURS.items() if s != "ok"],
        fabric=fabric_view(compiled, figures, health), shapes=shapes, lending=lending,
        lending_note=inputs.notes.get("lending", "not requested"), audit_status=inputs.audit_status,
        audit_note=inputs.notes.get("audit", "not requested"),
        findings=[[_plain(f.severity), _plain(f.check), _plain(f.subject), _plain(f.message)] for f in inputs.findings]))
