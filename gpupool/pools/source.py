"""Pools files are read by the one YAML loader of `gpupool.validate` (also the job_submit.lua
generator's), which remembers the line of every key so errors read `file:line: key: message`."""

from __future__ import annotations

from gpupool.validate import MAX_POOLS_FILE_BYTES, Path, Source, load_source, parse_source

__all__ = ["MAX_POOLS_FILE_BYTES", "Path", "Source", "load_source", "parse_source"]
