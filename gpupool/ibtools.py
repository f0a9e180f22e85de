"""Running infiniband-diags tools (ibnetdiscover, perfquery, ibtracert, ...) with bounded time.

`$GPUPOOL_IBDIAG_WRAPPER` (e.g. `ibsim-run` on the testbed, or `sudo -n`) is prefixed to every tool,
so the same code talks to a real fabric or to ibsim's simulated one.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import tempfile

from gpupool.errors import Unreachable

SBIN_DIRS = ("/usr/sbin", "/sbin", "/usr/bin")


def find_tool(name: str) -> str:
    path = shutil.which(name) or next((os.path.join(d, name) for d in SBIN_DIRS if os.access(os.path.join(d, name), os.X_OK)), None)
    if path is None:
        raise Unreachable(f"{name} not found: install infiniband-diags")
    return path


def tool_argv(name: str, args: list[str]) -> list[str]:
    wrapper = shlex.split(os.environ.get("GPUPOOL_IBDIAG_WRAPPER", ""))
    if wrapper and shutil.which(wrapper[0]) is None:
        raise Unreachable(f"GPUPOOL_IBDIAG_WRAPPER names {wrapper[0]!r}, which is not installed")
    return [*wrapper, find_tool(name), *args]


def run_tool(name: str, args: list[str], *, timeout: float = 60.0, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run an IB diagnostic tool; missing tool, time-out or failure is an environment error (exit 3)."""
    argv = tool_argv(name, args)
    wrapped = bool(os.environ.get("GPUPOOL_IBDIAG_WRAPPER", "").strip())
    try:
        # ibsim-run's umad2sim creates ./sys-<pid>: keep that out of the caller's directory.
        with tempfile.TemporaryDirectory(prefix="gpupool-ib-") as scratch:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False,
                                  stdin=subprocess.DEVNULL, cwd=scratch if wrapped else None)
    except subprocess.TimeoutExpired:
        raise Unreachable(f"{name} did not finish within {timeout:.0f} s") from None
    except OSError as exc:
        raise Unreachable(f"cannot run {name}: {exc.strerror}") from None
    if check and proc.returncode != 0:
        errors = [line for line in proc.stderr.strip().splitlines() if line.strip()]
        raise Unreachable(f"{name} failed (exit {proc.returncode}): {errors[-1] if errors else 'no output'}")
    return proc
