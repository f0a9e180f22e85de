"""Local Slurm + InfiniBand (ibsim) testbed for gpupool: scripts/testbed is its command line."""
