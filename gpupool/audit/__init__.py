"""Fabric audit: pure checks over plain fabric data, counter/Slurm/route inputs, and a runner."""
