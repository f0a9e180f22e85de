"""`gpupool jobs --report JOBID`: the per-job topology report (leaves spanned, optimum at its start, hint)."""

from __future__ import annotations

from typing import Any

from gpupool.app import observe as observe_app
from gpupool.cli.context import app
from gpupool.cli.render import emit_json, stdout_console


def report_job(job_id: str, fabric_path: str | None) -> None:
    doc = observe_app.job_report(app().command_runner(), app().config(), fabric_path, job_id).as_json()
    if app().json:
        emit_json(doc)
        return
    console = stdout_console()
    cost: dict[str, Any] = doc["cost"]
    console.print(f"job {doc['job_id']} ({doc['state']}), started {doc['start']}: {doc['gpus']} GPUs on "
                  f"{doc['nodelist']}")
    console.print(f"  spanned [bold]{doc['leaves']}[/] leaves; pair_hops_sum {cost['pair_hops_sum']}, "
                  f"mean_hops {cost['mean_hops']:.3f}, max_hops {cost['max_hops']}")
    optimum = doc["optimum"]
    if optimum is None:
        console.print(f"  optimum: {doc['optimum_note']}")
    else:
        best = optimum["cost"]
        diff = doc["difference"]
        console.print(f"  optimum at its start: {optimum['nodelist']}: {optimum['leaves']} leaves, pair_hops_sum "
                      f"{best['pair_hops_sum']}, mean_hops {best['mean_hops']:.3f}")
        console.print(f"  difference: {diff['leaves']:+d} leaves, pair_hops_sum {diff['pair_hops_sum']:+d}, "
                      f"mean_hops {diff['mean_hops']:+.3f}")
    for hint in doc["hints"]:
        console.print(f"  hint: {hint}")
