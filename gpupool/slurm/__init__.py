"""The Slurm layer: everything gpupool asks Slurm, behind the `SlurmClient` protocol (Slurm I/O
only: it never imports `placement`; use cases that combine both live in `gpupool.app`).

Names other modules use:

- `gpupool.slurm.invoke.run(argv, timeout=10, input=None, env=None)`: one bounded Slurm command;
  `Unreachable` (exit 3: missing, timed out, daemon unreachable), `SlurmCommandError` (exit 4: Slurm
  refused the request; `.stderr` kept).
- `gpupool.slurm.port.SlurmClient`: the port (Protocol) and the backend registry;
  `SlurmClient.node_states() -> list[NodeState]`, `.node_names()`, `.topology_text()`,
  `.jobs(user=None, job_ids=None)`, `.job(id)`, `.partitions()`, `.submit(...)`, `.test_only(...)`,
  `.cancel(id)`, `.node_gres(node)`, `.drain(node, reason)`.
- `gpupool.slurm.client.make_client(timeout=None, backend=None)` -> `SlurmClient`: imports the
  registered backend modules by name (`commands`, `pyslurm`) and picks one.
- `gpupool.slurm.freestate.free_gpus_for_request(states, partition=None, *, cpus_per_gpu=None,
  mem_per_gpu_mb=None, features=(), gpu_type=None, exclude=()) -> dict[str, int]`: free GPUs per
  usable host (what `--free FILE` holds); `capacity_gpus`, `check_partition`, `node_verdict`.
- `gpupool.slurm.submit`: the `gpupool:` job comment, sbatch node rejections, `wait_started`;
  the plan-submit-verify flow is `gpupool.app.submit.submit_planned`.
- `gpupool.slurm.jobs.running_jobs(client, user)`: jobs holding nodes now (costs: `gpupool.app.jobs`).
- `gpupool.slurm.fake.FakeSlurm`: in-memory client for tests.
"""
