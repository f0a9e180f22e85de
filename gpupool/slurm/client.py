"""Choosing a Slurm backend: `make_client()` -> `SlurmClient` (the port, `gpupool.slurm.port`).

The chooser knows backends only by module name: it imports each module in `BACKEND_MODULES`,
which registers itself (`gpupool.slurm.port.register`), then picks from the registry.
`GPUPOOL_SLURM_BACKEND=auto|commands|pyslurm` (default auto: the most preferred usable one,
pyslurm when importable and matching the running Slurm, else the commands);
`GPUPOOL_SLURM_TIMEOUT` sets the per-call timeout in seconds.

To add a backend: a module that implements `SlurmClient`, calls `register(Backend(...))` at
import time, and is listed in `BACKEND_MODULES` under its name.
"""

from __future__ import annotations

import importlib
import os

from gpupool.errors import BadRequest, Unreachable
from gpupool.slurm.invoke import DEFAULT_TIMEOUT
from gpupool.slurm.port import BACKENDS, BackendUnavailable, SlurmClient

# Backend name -> the module that registers it (imported only when needed).
BACKEND_MODULES = {"commands": "gpupool.slurm.commands", "pyslurm": "gpupool.slurm.pyslurm_backend"}

__all__ = ["BACKEND_MODULES", "SlurmClient", "make_client"]


def load_backends(names: tuple[str, ...] | None = None) -> None:
    """Import backend modules (each registers itself); a broken module is a loud ImportError."""
    for name in names if names is not None else tuple(BACKEND_MODULES):
        if name in BACKEND_MODULES:
            importlib.import_module(BACKEND_MODULES[name])


def make_client(timeout: float | None = None, backend: str | None = None) -> SlurmClient:
    """The client of `backend` (default `$GPUPOOL_SLURM_BACKEND`, else auto)."""
    if timeout is None:
        try:
            timeout = float(os.environ.get("GPUPOOL_SLURM_TIMEOUT", DEFAULT_TIMEOUT))
        except ValueError:
            timeout = DEFAULT_TIMEOUT
    choice = (backend or os.environ.get("GPUPOOL_SLURM_BACKEND", "auto")).lower()
    load_backends(None if choice == "auto" else (choice,))
    if choice != "auto":
        if choice not in BACKENDS:
            raise BadRequest(f"unknown Slurm backend {choice!r} (known: auto, {', '.join(sorted(BACKENDS))})")
        try:
            return BACKENDS[choice].create(timeout)
        except BackendUnavailable as exc:
            raise Unreachable(f"{choice} backend requested but unusable: {exc}") from None
    reasons = []
    for candidate in sorted(BACKENDS.values(), key=lambda b: -b.preference):
        try:
            return candidate.create(timeout)
        except BackendUnavailable as exc:
            reasons.append(f"{candidate.name}: {exc}")
    raise Unreachable("no usable Slurm backend (" + "; ".join(reasons) + ")")
