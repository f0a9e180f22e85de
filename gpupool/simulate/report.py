"""Self-contained HTML report: the comparison table and matplotlib plots embedded as inline SVG.

The markup is the Jinja2 template gpupool/templates/simulate_report.html (autoescaped); the rows, cells and
captions are computed here (shared with the terminal table), and Jinja2 is imported only to render."""

from __future__ import annotations

import io
import json
from typing import Any

from gpupool.errors import Unreachable, param
from gpupool.simulate.policy_metrics import PolicyMetrics
from gpupool.simulate.stats import HIGHER, LOWER


def _svg(fig: Any) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    text = buffer.getvalue()
    return text[text.index("<svg"):]  # drop the XML prologue and DOCTYPE: inline SVG in HTML5


def _plots(results: list[PolicyMetrics]) -> list[tuple[str, str, str]]:
    try:
        import matplotlib
    except ImportError:
        raise Unreachable(f"{param('report')} needs matplotlib: pip install 'gpupool[report]'") from None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: list[tuple[str, str, str]] = []
    for key, attr, title in (("wait-cdf", "wait", "Queue wait"), ("jct-cdf", "jct", "Job completion time")):
        fig, ax = plt.subplots(figsize=(7, 3.6))
        for r in results:
            values, shares = getattr(r, attr).cdf()
            if values.size:
                ax.step(values / 3600.0, shares, where="post", label=r.policy)
        ax.set_xscale("symlog", linthresh=0.01)
        ax.set_xlabel("hours")
        ax.set_ylabel("share of jobs")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend()
        ax.set_title(f"{title} (CDF)")
        out.append((key, _svg(fig), f"{title}: share of jobs at or below each value, per policy."))
        plt.close(fig)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 5.4), sharex=True)
    for r in results:
        hours, busy, idle = r.utilisation_series()
        if hours.size:
            top.plot(hours, busy, label=r.policy, linewidth=1)
            bottom.plot(hours, idle, label=r.policy, linewidth=1)
    top.set_ylabel("GPU utilisation")
    top.set_ylim(0, 1.02)
    top.grid(alpha=0.3)
    top.legend()
    bottom.set_ylabel("idle share while jobs wait")
    bottom.set_xlabel("hours since the first submission")
    bottom.grid(alpha=0.3)
    out.append(("utilisation", _svg(fig), "Busy GPUs and GPUs left idle while jobs waited (fragmentation), per "
                                          "time bin, as shares of all GPUs."))
    plt.close(fig)
    return out


def table_rows(doc: dict[str, Any]) -> list[tuple[str, list[Any]]]:
    """(label, value per policy) rows shared by the terminal table and the HTML report."""
    policies = doc["policies"]

    def col(get: Any) -> list[Any]:
        return [get(p) for p in policies]

    rows: list[tuple[str, list[Any]]] = [
        ("jobs", col(lambda p: p["jobs"])),
        ("multi-node jobs", col(lambda p: p["multi_node_jobs"])),
        ("wait mean (h)", col(lambda p: p["wait_s"]["mean"] / 3600)),
        ("wait p50 (h)", col(lambda p: p["wait_s"]["p50"] / 3600)),
        ("wait p95 (h)", col(lambda p: p["wait_s"]["p95"] / 3600)),
    ]
    sizes: list[str] = []
    for p in policies:
        for name in p["wait_s_by_size"]:
            if name not in sizes:
                sizes.append(name)
    for name in sizes:
        rows.append((f"wait mean {name} (h)",
                     col(lambda p, n=name: p["wait_s_by_size"].get(n, {}).get("mean", 0.0) / 3600)))
    rows += [
        ("JCT mean (h)", col(lambda p: p["jct_s"]["mean"] / 3600)),
        ("JCT p95 (h)", col(lambda p: p["jct_s"]["p95"] / 3600)),
        ("bounded slowdown (mean)", col(lambda p: p["bounded_slowdown_mean"])),
        ("GPU utilisation (submit period)", col(lambda p: p.get("gpu_utilisation_submit_period"))),
        ("GPU utilisation (to last end)", col(lambda p: p["gpu_utilisation"])),
        ("idle GPU-h while jobs waited", col(lambda p: p["idle_gpu_hours_while_waiting"])),
        ("leaf switches / multi-node job", col(lambda p: p["mean_leaf_switches_multi_node"])),
        ("extra leaves / multi-node job", col(lambda p: p["mean_extra_leaf_switches_multi_node"])),
        ("speed factor / multi-node job", col(lambda p: p["mean_speed_factor_multi_node"])),
        ("timeouts (slowed past limit)", col(lambda p: p["timeouts"])),
        ("held for a better placement", col(lambda p: p["held_for_placement"])),
    ]
    if doc.get("speed_model", {}).get("model") == "contention":
        rows += [
            ("contention slowdown / multi-node job", col(lambda p: p["mean_contention_slowdown_multi_node"])),
            ("multi-node jobs slowed by contention", col(lambda p: p["contention_slowed_share_multi_node"])),
        ]
    if any("pools" in p for p in policies):
        rows += [
            ("preemptions (requeued)", col(lambda p: p["preemptions"] if "pools" in p else None)),
            ("GPU-h lost to requeue", col(lambda p: p["gpu_hours_lost_to_requeue"] if "pools" in p else None)),
        ]
        names: list[str] = []
        for p in policies:
            names += [n for n in p.get("pools", {}) if n not in names]
        for name in names:
            for key, label in (("owner_gpu_hours", "used by owners"), ("lent_gpu_hours", "lent"),
                               ("borrowed_gpu_hours", "borrowed"), ("gpu_hours_lost_to_requeue", "lost to requeue")):
                rows.append((f"pool {name}: GPU-h {label}",
                             col(lambda p, n=name, k=key: p.get("pools", {}).get(n, {}).get(k))))
    return rows


# Which direction of a table row is better, for the paired differences' assessment (rows not listed,
# e.g. counts and the pool tallies: neither).
ROW_BETTER: dict[str, str] = {
    "wait mean (h)": LOWER, "wait p50 (h)": LOWER, "wait p95 (h)": LOWER, "JCT mean (h)": LOWER,
    "JCT p95 (h)": LOWER, "bounded slowdown (mean)": LOWER, "GPU utilisation (submit period)": HIGHER,
    "GPU utilisation (to last end)": HIGHER, "idle GPU-h while jobs waited": LOWER,
    "leaf switches / multi-node job": LOWER, "extra leaves / multi-node job": LOWER,
    "speed factor / multi-node job": LOWER, "timeouts (slowed past limit)": LOWER,
    "preemptions (requeued)": LOWER, "GPU-h lost to requeue": LOWER,
    # Rows the contention speed model adds (branch `contention`), named here so they are assessed once merged.
    "contention slowdown / multi-node job": LOWER, "multi-node jobs slowed by contention": LOWER,
}
# The rows a verdict speaks of (label -> its name in the sentence), in the sentence's order.
HEADLINE: dict[str, str] = {
    "wait mean (h)": "mean wait", "wait p95 (h)": "p95 wait", "JCT mean (h)": "mean JCT", "JCT p95 (h)": "p95 JCT",
    "bounded slowdown (mean)": "mean bounded slowdown", "GPU utilisation (submit period)": "GPU utilisation",
    "idle GPU-h while jobs waited": "idle GPU-hours while jobs waited",
    "leaf switches / multi-node job": "leaf switches per multi-node job",
}


def row_better(label: str) -> str | None:
    if label.startswith("wait mean ") and label.endswith("(h)"):
        return LOWER  # the per-size mean waits
    return ROW_BETTER.get(label)


def _number(value: float | None, integer: bool, digits_of: float | None = None) -> str:
    if value is None:
        return "-"
    if integer and digits_of is None and float(value).is_integer():
        return f"{int(value):,}"
    scale = abs(digits_of if digits_of is not None else value)
    return f"{value:,.3f}" if scale < 100 else f"{value:,.0f}"


def summary_table(doc: dict[str, Any]) -> tuple[list[str], int, list[tuple[str, list[tuple[str, bool]]]]]:
    """(column headers, how many of them are per-policy value columns after `metric`, rows of (label,
    cells)) over `statistics`: per policy `mean ± half-width`, then per non-baseline policy its difference
    against the baseline (relative where defined). A cell is (text, faint): faint for differences that
    are not significant (marked `n.s.`) or identical in every replicate (`same`)."""
    stats = doc["statistics"]
    baseline = stats["baseline"]
    names = [p["policy"] for p in doc["policies"]]
    others = [name for name in names if name != baseline]
    header = ["metric", *names, *(f"{name} vs {baseline}" for name in others)]
    rows: list[tuple[str, list[tuple[str, bool]]]] = []
    for metric in stats["metrics"]:
        cells: list[tuple[str, bool]] = []
        for name in names:
            value = metric["policies"][name]
            text = _number(value["mean"], metric["integer"] and value["n"] <= 1)
            if value["ci95_low"] is not None:
                half = (value["ci95_high"] - value["ci95_low"]) / 2
                text += f" ± {_number(half, False, value['mean'])}"
            cells.append((text, False))
        cells += [_difference_cell(metric["differences"][name]) for name in others]
        rows.append((metric["label"], cells))
    return header, len(names), rows


def _difference_cell(diff: dict[str, Any]) -> tuple[str, bool]:
    if diff["mean"] is None:
        return "-", False
    if diff["values"] and all(d == 0 for d in diff["values"]):
        return "same", True  # identical in every seed
    rel = diff["relative_percent"]
    if rel is not None:
        text = f"{rel['mean']:+.1f}%"
        if rel["ci95_low"] is not None:
            text += f" ± {(rel['ci95_high'] - rel['ci95_low']) / 2:.1f}%"
    else:
        text = f"{diff['mean']:+,.3f}"
        if diff["ci95_low"] is not None:
            text += f" ± {(diff['ci95_high'] - diff['ci95_low']) / 2:,.3f}"
    if diff["significant"] is False:
        return text + " n.s.", True
    return text, False


def assumption_lines(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """(name, value) lines of the assumptions block, for the terminal and the report."""
    a = doc["assumptions"]
    seeds = a["seeds"]
    shown = ", ".join(str(s) for s in seeds) if seeds else "-"
    speed = a["speed_model"]
    classes = "; ".join(f"{name}: " + ", ".join(f"{k}={v:g}" if isinstance(v, int | float) else f"{k}={v}"
                                                  for k, v in factors.items())
                        for name, factors in speed.get("classes", {}).items())
    parts = [f"{speed['model']} model"] if isinstance(speed.get("model"), str) else []
    parts += [f"classes {classes}"] if classes else []
    if speed.get("partitions"):
        parts.append("partitions " + json.dumps(speed["partitions"]))
    # Whatever else the speed model states about itself (its kind and parameters), as it states it.
    parts += [f"{k}={json.dumps(v)}" for k, v in speed.items() if k not in ("model", "classes", "partitions")]
    speed_text = "; ".join(parts) or "-"
    return [
        ("speed model", speed_text),
        ("backfill", f"{a['backfill']['model']}, depth {a['backfill']['depth']}"),
        ("replicates", f"{a['replicates']} ({a['replicate_method']}); seeds {shown}"),
        ("comparison", f"paired against {a['baseline']}; {a['confidence'] * 100:g}% Student-t intervals; "
                       f"relative change as a {a['relative_difference']}"),
        ("fabric", a["fabric"]["summary"]),
        ("workload", f"{a['workload']['source']} ({a['workload']['format']})"),
        ("gpupool", f"{a['gpupool_version']}, run {a['date_utc']}"),
    ]


def _first_seed(doc: dict[str, Any]) -> str:
    seeds = doc["assumptions"]["seeds"]
    return f" (seed {seeds[0]})" if seeds else ""


def render_html(doc: dict[str, Any], results: list[PolicyMetrics]) -> str:
    from jinja2 import Environment, PackageLoader, StrictUndefined
    from markupsafe import Markup

    header, _, rows = summary_table(doc)
    fabric = doc["fabric"]
    workload = doc["workload"]
    env = Environment(loader=PackageLoader("gpupool", "templates"), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    return str(env.get_template("simulate_report.html").render(
        fabric_path=str(fabric["path"]), fabric_hosts=fabric["hosts"], fabric_gpus=fabric["gpus_per_host"],
        fabric_kind=f"{fabric['kind']}", workload_source=str(workload["source"]), workload_format=workload["format"],
        workload_jobs=workload["stats"]["jobs"], notes=doc.get("notes", []),
        verdicts=list(doc["statistics"]["verdicts"].values()), header=header[1:], rows=rows,
        first_seed=_first_seed(doc), assumptions=assumption_lines(doc),
        # matplotlib's own SVG: markup gpupool made, inserted as it is (everything else is escaped)
        figures=[(key, Markup(svg), caption) for key, svg, caption in _plots(results)]))
