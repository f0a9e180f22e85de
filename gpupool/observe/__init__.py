"""Seeing the pooled cluster: fragmentation, lending accounting, metric families, the HTML report.

Plain functions over plain data (a compiled fabric, a free state, parsed `sacct` records); the CLI
modules `gpupool.cli.status`, `metrics` and `report` only gather inputs and render.
"""
