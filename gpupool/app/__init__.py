"""Use cases: each composes the domain packages (fabric, placement, slurm, pools, audit, node)
for one command, so `gpupool.cli` only parses options, calls one function here and renders.

- `plan`: free state (file or Slurm) -> `plan_placement` (the one planning step) -> JSON document.
- `submit`: prepare the sbatch request -> plan on Slurm's free state -> sbatch -> verify -> re-plan.
- `jobs`: running jobs with their cost, and why a pending job waits.
"""
