"""Kernels without start-up cost: `@njit` that imports Numba only when a kernel really needs it.

Numba is the kernel language, but importing it (~0.4 s) and its first dispatch (~0.5 s, even from the
on-disk cache) cost more than a whole `gpupool plan` should. So a kernel is a `LazyKernel`:
  1. when `python -m gpupool.warm` (run by scripts/bootstrap) has compiled the kernels ahead of time
     with Numba's AOT compiler for the argument types they were called with, and the kernel sources
     are byte-for-byte the ones it compiled, a call with exactly those types runs the AOT code
     (a plain extension module: no Numba import at all);
  2. any other call (other types, read-only or non-contiguous arrays, no AOT build, stale sources)
     imports Numba and runs the ordinary `numba.njit(cache=True)` dispatcher, as before.
The AOT build is never a correctness dependency: every argument is type-checked before the AOT
function sees it (AOT wrappers do not check and would read memory wrongly), and anything it cannot
prove falls back to Numba. `GPUPOOL_AOT=0` turns the AOT path off.

This module imports nothing first-party and neither Numba nor NumPy at import time.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar, overload

MANIFEST = "kernels.json"
MANIFEST_FORMAT = 1
PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))

_REGISTRY: list[LazyKernel] = []
_AOT: dict[str, dict[str, Callable[..., Any]]] | None = None
_AOT_ENABLED = os.environ.get("GPUPOOL_AOT", "1") != "0"
_TYPED = False


class LazyKernel:
    """A Numba kernel that is only handed to Numba when an AOT-compiled variant cannot serve the call."""

    def __init__(self, py_func: Callable[..., Any], options: dict[str, Any]) -> None:
        self.py_func = py_func
        # A parallel kernel is AOT-compiled serially (pycc cannot parallelise) and runs that way only
        # when serial_aot_if(*args) says the input is small enough; bigger inputs go to Numba's threads.
        self.serial_aot_if: Callable[..., bool] | None = options.pop("serial_aot_if", None)
        self.options = options
        self.kernel_id = f"{py_func.__module__}:{py_func.__qualname__}"
        self._dispatcher: Any = None
        self._aot: dict[str, Callable[..., Any]] | None = None
        self.__name__ = py_func.__name__
        self.__qualname__ = py_func.__qualname__
        self.__doc__ = py_func.__doc__
        self.__module__ = py_func.__module__
        self.__wrapped__ = py_func
        _REGISTRY.append(self)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not kwargs:
            table = self._aot
            if table is None:
                table = self._aot = aot_table().get(self.kernel_id, {}) if _AOT_ENABLED else {}
            if table:
                aot = table.get(type_key(args))  # type: ignore[arg-type]
                if aot is not None and (self.serial_aot_if is None or self.serial_aot_if(*args)):
                    return aot(*args)
        return self.dispatcher(*args, **kwargs)

    @property
    def dispatcher(self) -> Any:
        """The Numba dispatcher (imports Numba on first use)."""
        if self._dispatcher is None:
            materialize_all()
        return self._dispatcher

    @property
    def signatures(self) -> list[Any]:
        return list(self._dispatcher.signatures) if self._dispatcher is not None else []

    def __repr__(self) -> str:
        return f"<LazyKernel {self.kernel_id}>"


# A kernel keeps its Python signature for the type checker: callers call it like the function it wraps
# (the LazyKernel's own attributes are reached through `registry()`, typed as LazyKernel).
KernelFunc = TypeVar("KernelFunc", bound=Callable[..., Any])


@overload
def njit(func: KernelFunc, /) -> KernelFunc: ...


@overload
def njit(**options: Any) -> Callable[[KernelFunc], KernelFunc]: ...


def njit(*args: Any, **options: Any) -> Any:
    """Drop-in for `numba.njit` as a decorator: `@njit`, `@njit(cache=True)`, `@njit(cache=True, parallel=True)`."""
    if args and callable(args[0]) and not options:
        return LazyKernel(args[0], {})
    if args:
        raise TypeError("gpupool.jit.njit takes no explicit signatures: types come from the calls")
    return lambda func: LazyKernel(func, dict(options))


def prange(*args: int) -> range:
    """`numba.prange` outside Numba (inside a kernel Numba resolves the global to its own prange)."""
    return range(*args)


def registry() -> list[LazyKernel]:
    return list(_REGISTRY)


def materialize_all() -> None:
    """Give every registered kernel its Numba dispatcher; teach Numba that a LazyKernel a kernel calls
    is its dispatcher (module globals stay LazyKernels, so Python callers keep the AOT path)."""
    import numba
    from numba.core import types
    from numba.core.typing.typeof import typeof_impl

    global _TYPED
    if not _TYPED:
        @typeof_impl.register(LazyKernel)
        def _typeof_lazy_kernel(value: LazyKernel, _context: Any) -> Any:
            return types.Dispatcher(value.dispatcher)

        _TYPED = True
    for kernel in _REGISTRY:
        if kernel._dispatcher is None:
            kernel._dispatcher = numba.njit(**kernel.options)(kernel.py_func)
    for kernel in _REGISTRY:
        module_globals = kernel.py_func.__globals__
        for name, value in list(module_globals.items()):
            if value is prange:
                module_globals[name] = numba.prange


def set_aot_enabled(enabled: bool) -> None:
    """Turn the AOT path on or off for this process (the warm step records Numba's own signatures)."""
    global _AOT_ENABLED
    _AOT_ENABLED = enabled
    for kernel in _REGISTRY:
        kernel._aot = None


# ---------------------------------------------------------------------------
# Type keys: the exact argument types an AOT export accepts
# ---------------------------------------------------------------------------

def type_key(args: tuple[Any, ...]) -> str | None:
    """A key naming the argument types, or None when some argument may not go to AOT code."""
    import numpy as np

    parts = []
    for a in args:
        if isinstance(a, np.ndarray):
            flags = a.flags
            # AOT exports take writeable, aligned, C-contiguous arrays of one exact dtype.
            if not (flags.c_contiguous and flags.writeable and flags.aligned) or a.dtype.byteorder not in "=|":
                return None
            parts.append(f"{a.dtype.char}{a.ndim}")
        elif isinstance(a, (bool, np.bool_)):
            parts.append("?")
        elif isinstance(a, (int, np.integer)):
            if not -(1 << 63) <= int(a) < (1 << 63):
                return None
            parts.append("i")
        elif isinstance(a, (float, np.floating)):
            parts.append("f")
        else:
            return None
    return ",".join(parts)


def signature_key(arg_types: tuple[Any, ...]) -> str | None:
    """The type key of a Numba signature's arguments, or None when it cannot be exported."""
    import numpy as np
    from numba.core import types

    parts = []
    for t in arg_types:
        if isinstance(t, types.Array):
            if t.layout != "C" or not t.mutable or not t.aligned:
                return None
            parts.append(f"{np.dtype(str(t.dtype)).char}{t.ndim}")
        elif isinstance(t, types.Boolean):
            parts.append("?")
        # numba's own annotations type Integer as a number-like class without these attributes
        elif isinstance(t, types.Integer) and t.bitwidth == 64 and t.signed:  # type: ignore[attr-defined]
            parts.append("i")
        elif isinstance(t, types.Float) and t.bitwidth == 64:
            parts.append("f")
        else:
            return None
    return ",".join(parts)


# ---------------------------------------------------------------------------
# Finding and checking the AOT build
# ---------------------------------------------------------------------------

def aot_dirs() -> list[str]:
    """Where the warm step writes (first writable) and where calls look (in this order)."""
    dirs = []
    if os.environ.get("GPUPOOL_KERNEL_DIR"):
        dirs.append(os.environ["GPUPOOL_KERNEL_DIR"])
    dirs.append(os.path.join(PACKAGE_DIR, "_kernels"))
    cache_home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    dirs.append(os.path.join(cache_home, "gpupool", "kernels"))
    return dirs


def source_hash(sources: list[str]) -> str:
    """sha256 over the kernel modules' files (paths relative to the package), in the given order."""
    digest = hashlib.sha256()
    for rel in sources:
        digest.update(rel.encode())
        with open(os.path.join(PACKAGE_DIR, rel), "rb") as handle:
            digest.update(handle.read())
    return digest.hexdigest()


def build_tag() -> dict[str, str]:
    """What an AOT build depends on besides the sources: Python's ABI and NumPy's version."""
    import numpy as np

    return {"python": sys.implementation.cache_tag or "", "numpy": np.__version__, "platform": sys.platform}


def read_manifest(directory: str) -> dict[str, Any] | None:
    """The manifest of an AOT build in `directory` when it matches these sources and this Python/NumPy."""
    try:
        with open(os.path.join(directory, MANIFEST), encoding="utf-8") as handle:
            manifest = json.load(handle)
        if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
            return None
        if manifest.get("build") != build_tag():
            return None
        if source_hash(list(manifest["sources"])) != manifest["source_hash"]:
            return None  # a kernel source changed since the build: Numba compiles it instead
        return manifest
    except (OSError, ValueError, KeyError, TypeError):
        return None


def aot_table() -> dict[str, dict[str, Callable[..., Any]]]:
    """kernel id -> {type key: AOT function}, from the first current build found; {} when none."""
    global _AOT
    if _AOT is None:
        _AOT = {}
        for directory in aot_dirs():
            manifest = read_manifest(directory)
            if manifest is None:
                continue
            try:
                path = os.path.join(directory, manifest["file"])
                spec = importlib.util.spec_from_file_location(manifest["module"], path)
                if spec is None or spec.loader is None:
                    continue
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                _AOT = {kid: {key: getattr(module, name) for key, name in table.items()}
                        for kid, table in manifest["kernels"].items()}
            except (ImportError, OSError, AttributeError, KeyError, TypeError):
                _AOT = {}
                continue
            break
    return _AOT
