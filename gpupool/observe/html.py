"""One self-contained HTML page: the fabric drawn as inline SVG, fragmentation, pools' lending, audit findings.

No scripts, no external fetches: styles are inline and every drawing is SVG generated here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gpupool.fabric.compiled import CompiledFabric
    from gpupool.observe.fragmentation import Fragmentation
    from gpupool.observe.lending import LendingData, LendingReport, LendingSeries

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


def fabric_svg(compiled: CompiledFabric, figures: Fragmentation, health: dict[int, str]) -> str:
    """Leaves along the bottom coloured by free GPUs, upper levels above them; border colour = health."""
    parent = compiled.tree_parent
    level = compiled.tree_level
    by_name = {leaf.name: leaf for leaf in figures.leaves}
    leaves = [t for t in range(parent.size) if int(level[t]) == 1 and compiled.tree_names[t] in by_name]
    if not leaves:
        return "<p>No leaves with hosts in the fabric.</p>"
    top = int(level.max())
    # Order leaves by their path from the root so siblings sit together.
    def path(t: int) -> list[str]:
        chain = []
        while t >= 0:
            chain.append(compiled.tree_names[t])
            t = int(parent[t])
        return chain[::-1]

    leaves.sort(key=path)
    # Boxes as wide as the longest name (about 6.5 px per character at 11 px).
    longest = max(len(compiled.tree_names[t]) for t in range(parent.size))
    leaf_w = max(LEAF_W, int(longest * 6.5) + 14)
    x: dict[int, float] = {t: GAP + i * (leaf_w + GAP) + leaf_w / 2 for i, t in enumerate(leaves)}
    y_of = {lv: 20 + (top - lv) * LEVEL_H for lv in range(1, top + 1)}
    children: dict[int, list[int]] = {}
    for t in range(parent.size):
        if int(parent[t]) >= 0:
            children.setdefault(int(parent[t]), []).append(t)
    for lv in range(2, top + 1):
        for t in range(parent.size):
            if int(level[t]) == lv:
                xs = [x[c] for c in children.get(t, []) if c in x]
                if xs:
                    x[t] = sum(xs) / len(xs)
    width = GAP + len(leaves) * (leaf_w + GAP)
    height = y_of[1] + LEAF_H + 20
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" id="fabric" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="fabric drawing">']
    for t, parent_t in enumerate(parent):
        if int(parent_t) >= 0 and t in x and int(parent_t) in x:
            y1 = y_of[int(level[t])]
            y2 = y_of[int(level[int(parent_t)])] + 30
            parts.append(f'<line x1="{x[t]:.1f}" y1="{y1}" x2="{x[int(parent_t)]:.1f}" y2="{y2}" '
                         'stroke="#9aa5b1" stroke-width="1"/>')
    for t in sorted(x):
        lv = int(level[t])
        if lv == 1:
            continue
        state = health.get(t, "ok")
        name = escape(compiled.tree_names[t])
        parts.append(f'<g class="switch" data-name="{name}" data-level="{lv}" data-health="{state}">'
                     f'<rect x="{x[t] - leaf_w / 2:.1f}" y="{y_of[lv]}" width="{leaf_w}" height="30" rx="4" fill="#dde6ef" '
                     f'stroke="{HEALTH_COLOURS[state]}" stroke-width="{3 if state != "ok" else 1}"/>'
                     f'<text x="{x[t]:.1f}" y="{y_of[lv] + 19}" font-size="11" text-anchor="middle">{name}</text></g>')
    for t in leaves:
        leaf = by_name[compiled.tree_names[t]]
        state = health.get(t, "ok")
        name = escape(leaf.name)
        left = x[t] - leaf_w / 2
        y = y_of[1]
        fill = free_colour(leaf.free_gpus, leaf.capacity_gpus)
        ink = "#ffffff" if fill in DARK_FILLS else "#1d2430"
        parts.append(
            f'<g class="leaf" data-name="{name}" data-pod="{escape(leaf.pod)}" data-free="{leaf.free_gpus}" '
            f'data-capacity="{leaf.capacity_gpus}" data-health="{state}">'
            f'<title>{name}: {leaf.free_gpus} of {leaf.capacity_gpus} GPUs free, {leaf.whole_free_hosts} whole-free '
            f'hosts of {leaf.hosts}; health {state}</title>'
            f'<rect x="{left:.1f}" y="{y}" width="{leaf_w}" height="{LEAF_H}" rx="4" '
            f'fill="{fill}" stroke="{HEALTH_COLOURS[state]}" stroke-width="{4 if state != "ok" else 1}"/>'
            f'<text x="{x[t]:.1f}" y="{y + 17}" font-size="11" fill="{ink}" text-anchor="middle">{name}</text>'
            f'<text x="{x[t]:.1f}" y="{y + 34}" font-size="13" font-weight="bold" fill="{ink}" text-anchor="middle">'
            f'{leaf.free_gpus}/{leaf.capacity_gpus}</text></g>')
    parts.append("</svg>")
    return "".join(parts)


def series_svg(series: LendingSeries, capacity: dict[str, int]) -> str:
    """Per pool, one bar per time bucket: owners' use (blue) under lent (orange), full height = every GPU busy."""
    buckets = len(series.edges) - 1
    bar, gap, row_h, label_w = 22, 3, 70, 120
    bucket_hours = (series.edges[1] - series.edges[0]).total_seconds() / 3600.0 if buckets else 0.0
    width = label_w + buckets * (bar + gap) + 20
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" id="lending-series" width="{width}" '
             f'height="{len(series.owner) * row_h + 30}" role="img" aria-label="lending over time">']
    y = 8
    for name in series.owner:
        full = max(capacity.get(name, 0) * bucket_hours, 1e-9)
        base = y + row_h - 18
        parts.append(f'<g class="pool-series" data-name="{escape(name)}">'
                     f'<text x="0" y="{base - 20}" font-size="13">{escape(name)}</text>'
                     f'<line x1="{label_w}" y1="{base}" x2="{width - 20}" y2="{base}" stroke="#9aa5b1"/>')
        for b in range(buckets):
            owner_h = min(1.0, series.owner[name][b] / full) * (row_h - 24)
            lent_h = min(1.0, series.lent[name][b] / full) * (row_h - 24)
            x = label_w + b * (bar + gap)
            parts.append(f'<rect x="{x}" y="{base - owner_h:.1f}" width="{bar}" height="{owner_h:.1f}" fill="#3b7dd8"/>'
                         f'<rect x="{x}" y="{base - owner_h - lent_h:.1f}" width="{bar}" height="{lent_h:.1f}" '
                         f'fill="#f0ad4e"><title>{series.edges[b]:%m-%d %H:%M}: owners {series.owner[name][b]:.2f}, '
                         f'lent {series.lent[name][b]:.2f} GPU-h</title></rect>')
        parts.append("</g>")
        y += row_h
    parts.append(f'<text x="{label_w}" y="{y + 12}" font-size="11">{series.edges[0]:%Y-%m-%d %H:%M}</text>'
                 f'<text x="{width - 20}" y="{y + 12}" font-size="11" text-anchor="end">'
                 f'{series.edges[-1]:%Y-%m-%d %H:%M}</text></svg>')
    return "".join(parts)


def lending_svg(report: LendingReport) -> str:
    """Per pool, one bar of its available GPU-hours split into owners' use, lent and idle; borrowed beside it."""
    rows = report.pools
    bar_w, row_h, label_w = 520, 34, 120
    scale = max([p.available_gpu_hours for p in rows] + [p.borrowed_gpu_hours for p in rows] + [1e-9])
    height = 30 + len(rows) * row_h * 2
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" id="lending" width="{label_w + bar_w + 340}" '
             f'height="{height}" role="img" aria-label="pool lending">']
    y = 10
    for p in rows:
        owner = p.owner_gpu_hours / scale * bar_w
        lent = p.lent_gpu_hours / scale * bar_w
        idle = max(0.0, p.available_gpu_hours - p.used_gpu_hours) / scale * bar_w
        borrowed = p.borrowed_gpu_hours / scale * bar_w
        name = escape(p.name)
        parts.append(f'<g class="pool" data-name="{name}" data-owner="{p.owner_gpu_hours:.3f}" '
                     f'data-lent="{p.lent_gpu_hours:.3f}" data-borrowed="{p.borrowed_gpu_hours:.3f}">'
                     f'<text x="0" y="{y + 16}" font-size="13">{name}</text>'
                     f'<rect x="{label_w}" y="{y}" width="{owner:.1f}" height="22" fill="#3b7dd8"/>'
                     f'<rect x="{label_w + owner:.1f}" y="{y}" width="{lent:.1f}" height="22" fill="#f0ad4e"/>'
                     f'<rect x="{label_w + owner + lent:.1f}" y="{y}" width="{idle:.1f}" height="22" fill="#d5d9de"/>'
                     f'<text x="{label_w + bar_w + 8}" y="{y + 16}" font-size="12">owners {p.owner_gpu_hours:.2f} · '
                     f'lent {p.lent_gpu_hours:.2f} of {p.available_gpu_hours:.2f} GPU-h</text>'
                     f'<rect x="{label_w}" y="{y + row_h - 8}" width="{borrowed:.1f}" height="12" fill="#8e44ad"/>'
                     f'<text x="{label_w + bar_w + 8}" y="{y + row_h + 2}" font-size="12">borrowed '
                     f'{p.borrowed_gpu_hours:.2f} GPU-h</text></g>')
        y += row_h * 2
    parts.append("</svg>")
    return "".join(parts)


@dataclass
class ReportInputs:
    compiled: CompiledFabric
    figures: Fragmentation
    audit_status: str | None
    findings: list[Any]
    lending: LendingData | None
    notes: dict[str, str]  # section -> why it is missing
    generated: datetime


def _table(headers: list[str], rows: list[list[str]], css: str = "") -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px;color:#1d2430;background:#fafbfc}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d0d7de}
.meta{color:#57606a;font-size:13px} .figures{display:flex;gap:14px;flex-wrap:wrap}
.figure{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:10px 14px;min-width:120px}
.figure .v{font-size:24px;font-weight:700} .figure .k{font-size:12px;color:#57606a}
table{border-collapse:collapse;font-size:13px;background:#fff} th,td{border:1px solid #d0d7de;padding:4px 8px}
th{background:#eef1f4;text-align:left} td{text-align:right} td:first-child{text-align:left}
.scroll{overflow-x:auto;background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:8px}
svg#fabric{max-width:100%;height:auto}
.legend span{display:inline-block;margin-right:14px;font-size:12px}
.legend i{display:inline-block;width:14px;height:14px;vertical-align:middle;margin-right:4px;border-radius:3px}
.note{color:#8a6d3b;font-size:13px} .critical{color:#c00000;font-weight:600} .warning{color:#b35c00}
"""


def render_html(inputs: ReportInputs) -> str:
    compiled, figures = inputs.compiled, inputs.figures
    health = tree_health(compiled, inputs.findings)
    out = ['<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
           '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; style-src \'unsafe-inline\'; '
           'img-src data:">',
           f"<title>gpupool report {inputs.generated:%Y-%m-%d %H:%M}</title><style>{STYLE}</style></head><body>",
           "<h1>gpupool: the pooled cluster</h1>",
           f'<p class="meta">Generated {inputs.generated:%Y-%m-%d %H:%M:%S} · {escape(compiled.kind)} fabric, '
           f"{compiled.n_hosts} hosts, {compiled.n_switches} switches, {len(figures.leaves)} leaves · "
           f"{figures.gpus_per_node} GPUs per whole node</p>"]
    scopes = figures.largest
    cards = [("free GPUs", figures.free_gpus, "free-gpus"), ("largest job in one leaf", scopes["leaf"], "largest-leaf"),
             ("largest job in one pod", scopes["pod"], "largest-pod"),
             ("largest job anywhere", scopes["anywhere"], "largest-anywhere"),
             ("stranded GPUs", figures.stranded_gpus, "stranded"),
             ("fabric audit", inputs.audit_status or "not run", "audit-status")]
    out.append('<div class="figures">' + "".join(
        f'<div class="figure" id="{key}"><div class="v">{escape(str(value))}</div><div class="k">{escape(label)}</div></div>'
        for label, value, key in cards) + "</div>")

    out.append("<h2>Fabric: free GPUs and health per leaf</h2>")
    legend = "".join(f'<span><i style="background:{c}"></i>{escape(label)}</span>' for label, c in FREE_COLOURS)
    legend += "".join(f'<span><i style="background:#fff;border:3px solid {c}"></i>{escape(s)}</span>'
                      for s, c in HEALTH_COLOURS.items() if s != "ok")
    out.append(f'<div class="legend">{legend}</div>')
    out.append(f'<div class="scroll">{fabric_svg(compiled, figures, health)}</div>')

    out.append("<h2>Job shapes</h2>")
    out.append(_table(["GPUs", "kind", "fits in a leaf", "fits in a pod", "fits anywhere", "jobs within leaves",
                       "stranded GPUs"],
                      [[str(f.shape.gpus), f.shape.kind, *("yes" if f.fits[s] else "no" for s in ("leaf", "pod", "anywhere")),
                        str(f.jobs_within_leaf), str(f.stranded_gpus)] for f in figures.shapes], "shapes"))

    out.append("<h2>Pools: lending over the period</h2>")
    if inputs.lending is not None:
        lending = inputs.lending.report
        out.append(f'<p class="meta">{lending.since:%Y-%m-%d %H:%M:%S} .. {lending.until:%Y-%m-%d %H:%M:%S} '
                   f"({lending.hours:.2f} h), {lending.runs} job runs from sacct</p>")
        out.append('<div class="legend"><span><i style="background:#3b7dd8"></i>used by owners</span>'
                   '<span><i style="background:#f0ad4e"></i>lent to others</span>'
                   '<span><i style="background:#d5d9de"></i>idle</span>'
                   '<span><i style="background:#8e44ad"></i>borrowed from others</span></div>')
        out.append(f'<div class="scroll">{lending_svg(lending)}</div>')
        if inputs.lending.series is not None:
            out.append('<p class="meta">Over time: owners\' use (blue) and lent (orange) per time slice; a full bar '
                       "is every GPU of the pool busy.</p>")
            out.append(f'<div class="scroll">{series_svg(inputs.lending.series, {p.name: p.gpus for p in lending.pools})}'
                       "</div>")
        out.append(_table(["pool", "owners", "available GPU-h", "owners GPU-h", "lent GPU-h", "borrowed GPU-h",
                           "preempted jobs", "lost to requeue GPU-h", "owner wait mean s"],
                          [[p.name, ",".join(p.owners) or "(shared)", f"{p.available_gpu_hours:.2f}",
                            f"{p.owner_gpu_hours:.2f}", f"{p.lent_gpu_hours:.2f}", f"{p.borrowed_gpu_hours:.2f}",
                            str(p.jobs_preempted), f"{p.lost_gpu_hours:.2f}",
                            "-" if p.owner_wait_seconds_mean is None else f"{p.owner_wait_seconds_mean:.0f}"]
                           for p in lending.pools], "pools"))
        out.append(_table(["account", "GPU-hours", "share of use", "norm shares", "fair-share"],
                          [[a.name, f"{a.gpu_hours:.2f}", "-" if a.usage_share is None else f"{a.usage_share:.1%}",
                            "-" if a.norm_shares is None else f"{a.norm_shares:.1%}",
                            "-" if a.fairshare is None else f"{a.fairshare:.3f}"] for a in lending.accounts],
                          "accounts"))
    else:
        out.append(f'<p class="note">Not available: {escape(inputs.notes.get("lending", "not requested"))}</p>')

    out.append("<h2>Fabric audit findings</h2>")
    if inputs.audit_status is None:
        out.append(f'<p class="note">Not available: {escape(inputs.notes.get("audit", "not requested"))}</p>')
    elif not inputs.findings:
        out.append(f"<p>Status <b>{escape(inputs.audit_status)}</b>: no findings.</p>")
    else:
        rows = "".join(f'<tr><td class="{escape(f.severity)}">{escape(f.severity)}</td><td>{escape(f.check)}</td>'
                       f"<td>{escape(f.subject)}</td><td style=\"text-align:left\">{escape(f.message)}</td></tr>"
                       for f in inputs.findings)
        out.append(f"<p>Status <b>{escape(inputs.audit_status)}</b>, {len(inputs.findings)} finding(s).</p>"
                   '<table class="findings"><thead><tr><th>severity</th><th>check</th><th>subject</th><th>message</th>'
                   f"</tr></thead><tbody>{rows}</tbody></table>")
    out.append("</body></html>\n")
    return "".join(out)
