"""Use cases: each composes the domain packages (fabric, placement, slurm, pools, audit, node)
for one command, so `gpupool.cli` only parses options, calls one function here and renders.

- `plan`: free state (file or Slurm) -> `plan_placement` (the one planning step) -> JSON document.
- `submit`: prepare the sbatch request -> plan on Slurm's free state -> sbatch -> verify -> re-plan.
- `jobs`: running jobs with their cost, and why a pending job waits.
- `pools`: `pool apply` / `pool status` / `pool lua`: pools file + config + fabric selectors + Slurm's state.
- `fabric`: `fabric discover|generate|show|export|diff|nvlink`: the fabric file and its compiled cache.
- `audit`: `fabric audit`: load or discover the fabric, checks, counters, routes, Slurm drift, drain.
- `node`: `node check` / `node topo` (import-light: Slurm's Prolog): sources, exit policy, drain.
- `simulate`, `simulate_seeds`: the simulation request from the options, replicates, statistics.
- `observe`: status, metrics, the HTML report, pool and job reports.
- `lock`: the per-user submit lock.
"""
