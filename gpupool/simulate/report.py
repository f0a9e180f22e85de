"""Self-contained HTML report: the comparison table and matplotlib plots embedded as inline SVG."""

from __future__ import annotations

import html
import io
from typing import Any

from gpupool.errors import EnvError
from gpupool.simulate.metrics import PolicyMetrics

_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:4px 10px;text-align:right}
th:first-child,td:first-child{text-align:left}figure{margin:1.5em 0}figcaption{font-size:90%;color:#555}
.note{color:#8a5a00}"""


def _svg(fig: Any) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight")
    text = buffer.getvalue()
    return text[text.index("<svg"):]  # drop the XML prologue and DOCTYPE: inline SVG in HTML5


def _plots(results: list[PolicyMetrics]) -> list[tuple[str, str, str]]:
    try:
        import matplotlib
    except ImportError:
        raise EnvError("--report needs matplotlib: pip install 'gpupool[report]'") from None

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


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 100 else f"{value:,.0f}"
    return html.escape(str(value))


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
        ("GPU utilisation", col(lambda p: p["gpu_utilisation"])),
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


def render_html(doc: dict[str, Any], results: list[PolicyMetrics]) -> str:
    names = [p["policy"] for p in doc["policies"]]
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    body = "".join(f"<tr><td>{html.escape(label)}</td>{''.join(f'<td>{_fmt(v)}</td>' for v in values)}</tr>"
                   for label, values in table_rows(doc))
    notes = "".join(f'<li class="note">{html.escape(n)}</li>' for n in doc.get("notes", []))
    figures = "".join(f'<figure id="plot-{key}">{svg}<figcaption>{html.escape(caption)}</figcaption></figure>'
                      for key, svg, caption in _plots(results))
    fabric = doc["fabric"]
    workload = doc["workload"]
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>gpupool simulate</title>"
            f"<style>{_CSS}</style></head><body><h1>gpupool simulate</h1>"
            f"<p>Fabric <code>{html.escape(str(fabric['path']))}</code>: {fabric['hosts']} hosts x "
            f"{fabric['gpus_per_host']} GPUs ({fabric['kind']}). Workload <code>{html.escape(str(workload['source']))}"
            f"</code> ({html.escape(workload['format'])}): {workload['stats']['jobs']} jobs read.</p>"
            f"<ul>{notes}</ul><table id=\"summary\"><tr><th>metric</th>{head}</tr>{body}</table>{figures}"
            f"<p>What each number means and the limits of the model: docs/simulate.md.</p></body></html>\n")
