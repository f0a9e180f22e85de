"""A child process that owns pyslurm: the gpupool process never imports it.

Why a child: `import pyslurm` runs `slurm_init()`, and libslurm calls `fatal()` (exit 1, a line on
stderr) when no Slurm configuration is reachable; and pyslurm holds the GIL through its RPCs, so a
hung slurmctld cannot be timed out from a thread. The child is forked once per `PyslurmChild`, imports
pyslurm, then answers requests over a pipe; every answer has a deadline, and a child that misses it
is killed (and started again on the next request). The child's stderr goes to a temporary file, so
libslurm's messages never reach the user's terminal; its last line is quoted in the error instead.

Requests are named functions registered in `OPERATIONS` (module, *args) -> picklable result, so the
mapping from pyslurm objects to gpupool models runs in the child and only plain data crosses.
"""

from __future__ import annotations

import contextlib
import importlib.util
import multiprocessing
import os
import signal
import tempfile
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

# name -> function(pyslurm module, *args) -> picklable result (filled by the backend module).
OPERATIONS: dict[str, Callable[..., Any]] = {}


class ChildFailed(Exception):
    """The child died, could not import pyslurm, or missed its deadline; `str(exc)` says which."""

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class ChildRPCError(Exception):
    """pyslurm raised `RPCError` in the child: `errno` is Slurm's error number, `str(exc)` its text."""

    def __init__(self, errno: int | None, message: str) -> None:
        super().__init__(message)
        self.errno = errno


def import_pyslurm() -> Any:
    import pyslurm

    return pyslurm


def pyslurm_version_text(module: Any) -> str:
    """pyslurm's version: `pyslurm.__version__` (a `version` module since 24.11, a function before)."""
    version = getattr(module, "__version__", None)
    if version is None:
        attr = getattr(module, "version", None)
        version = getattr(attr, "__version__", None) if attr is not None else None
        if version is None and callable(attr):
            version = attr()
    if version is None:
        raise AttributeError("pyslurm has neither __version__ nor version.__version__")
    return str(version)


def _serve(conn: Connection, loader: Callable[[], Any], stderr_fd: int) -> None:
    """The child's loop: import, say ready (with the version), answer requests until EOF."""
    os.dup2(stderr_fd, 2)
    os.dup2(stderr_fd, 1)  # and stdout: under --json it carries exactly one JSON document
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    try:
        module = loader()
        conn.send(("ready", pyslurm_version_text(module)))
    except BaseException as exc:  # noqa: BLE001 - any import failure is reported, never raised here
        conn.send(("import-error", f"{type(exc).__name__}: {exc}"))
        return
    rpc_error = getattr(module, "RPCError", None)
    while True:
        try:
            name, args = conn.recv()
        except (EOFError, OSError):
            return
        try:
            conn.send(("ok", OPERATIONS[name](module, *args)))
        except BaseException as exc:  # noqa: BLE001 - reported to the parent, which decides
            if rpc_error is not None and isinstance(exc, rpc_error):
                conn.send(("rpc-error", getattr(exc, "errno", None), str(exc)))
            else:
                conn.send(("error", f"{type(exc).__name__}: {exc}"))


class PyslurmChild:
    """One forked pyslurm process; `call(name, *args)` runs `OPERATIONS[name]` there within `timeout`."""

    def __init__(self, timeout: float, loader: Callable[[], Any] = import_pyslurm) -> None:
        self.timeout = timeout
        self.loader = loader
        self.version: str | None = None
        self._proc: Any = None
        self._conn: Connection | None = None
        self._stderr: Any = None

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        try:
            self._stderr.seek(0)
            lines = [ln.strip() for ln in self._stderr.read().decode("utf-8", "replace").splitlines() if ln.strip()]
        except OSError:
            return ""
        return lines[-1] if lines else ""

    def _died(self, what: str) -> ChildFailed:
        tail = self._stderr_tail()
        code = self._proc.exitcode if self._proc is not None else None
        self.close()
        detail = f": {tail}" if tail else (f" (exit {code})" if code is not None else "")
        return ChildFailed(f"pyslurm child {what}{detail}")

    def _receive(self, what: str) -> Any:
        assert self._conn is not None
        try:
            ready = self._conn.poll(self.timeout)
        except (EOFError, OSError):
            ready = True
        if not ready:
            self.close()
            raise ChildFailed(f"pyslurm {what} did not answer within {self.timeout:g}s "
                              "(slurmctld down or overloaded?)", timed_out=True)
        try:
            return self._conn.recv()
        except (EOFError, OSError):
            if self._proc is not None:
                self._proc.join(1)
            raise self._died(f"died during {what}") from None

    def start(self) -> str:
        """Fork the child and wait for its import; returns pyslurm's version text."""
        if self._proc is not None and self._proc.is_alive():
            assert self.version is not None
            return self.version
        self.close()
        if self.loader is import_pyslurm:
            # Cheap answers first, without forking (auto mode asks this on every command).
            if importlib.util.find_spec("pyslurm") is None:
                raise ChildFailed("cannot import pyslurm (ModuleNotFoundError: No module named 'pyslurm')")
            conf = os.environ.get("SLURM_CONF")
            if conf and not os.path.exists(conf):
                # libslurm would go looking for a configless source and hang until the deadline.
                raise ChildFailed(f"cannot import pyslurm (SLURM_CONF={conf} does not exist)")
        ctx = multiprocessing.get_context("fork")
        parent, child = ctx.Pipe()
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the child; close() ends it
        self._proc = ctx.Process(target=_serve, args=(child, self.loader, self._stderr.fileno()), daemon=True)
        self._proc.start()
        child.close()
        self._conn = parent
        answer = self._receive("import")
        if answer[0] != "ready":
            self.close()
            raise ChildFailed(f"cannot import pyslurm ({answer[1]})")
        self.version = str(answer[1])
        return self.version

    def call(self, name: str, *args: Any) -> Any:
        self.start()
        assert self._conn is not None
        try:
            self._conn.send((name, args))
        except (BrokenPipeError, OSError):
            raise self._died(f"died before {name}") from None
        answer = self._receive(name)
        if answer[0] == "ok":
            return answer[1]
        if answer[0] == "rpc-error":
            raise ChildRPCError(answer[1], answer[2])
        raise ChildFailed(f"pyslurm {name} failed in the child ({answer[1]})")

    def close(self) -> None:
        """Stop the child (SIGKILL: libslurm may be stuck in an RPC) and release the pipe."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._proc is not None:
            if self._proc.is_alive():
                self._proc.kill()
            self._proc.join(2)
            self._proc = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown
            self.close()
