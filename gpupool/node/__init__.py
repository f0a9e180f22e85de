"""Node side: health checks run from Slurm's Prolog/Epilog and GPU <-> HCA affinity.

Modules here must stay light to import (no numpy/numba): the Prolog runs them on every job start.
"""
