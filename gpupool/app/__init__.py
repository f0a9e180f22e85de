"""Use cases: each composes the domain packages (fabric, placement, slurm, pools, audit, node)
for one command, so `gpupool.cli` only parses options, calls one function here and renders.

- `plan`: free state (file or Slurm) -> `plan_placement` (the one planning step) -> JSON document.
- `submit`: prepare the sbatch request -> plan on Slurm's free state -> sbatch -> verify -> re-plan.
- `jobs`: running jobs with their cost, and why a pending job waits.
- `pools`: `pool apply` / `pool status`: pools file + config + fabric selectors + Slurm's state.
- `lock`: the per-user submit lock.

`fabric audit` and `node check` call `gpupool.audit.run.run_audit` and `gpupool.node.runner.check_node`:
each composes only its own package (plus the Slurm port it is handed), so it needs no use case here.
"""
