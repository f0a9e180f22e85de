"""gpupool.jit: AOT code only for exactly the types it was built for, Numba for everything else."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gpupool import jit
from gpupool.jit import prange


@jit.njit(cache=False)
def _square_sum(values: np.ndarray) -> int:
    total = 0
    for v in values:
        total += v * v
    return total


@jit.njit(cache=False)
def _twice_square_sum(values: np.ndarray) -> int:
    return 2 * _square_sum(values)  # a kernel calling a kernel through a module global


def _small(values: np.ndarray) -> bool:
    return values.size <= 3


@jit.njit(cache=False, parallel=True, serial_aot_if=_small)
def _parallel_sum(values: np.ndarray) -> int:
    total = 0
    for i in prange(values.size):
        total += values[i]
    return total


def test_type_key_names_exact_types_and_refuses_what_aot_cannot_take() -> None:
    a = np.arange(4, dtype=np.int64)
    assert jit.type_key((a, 3, True, 2.5, np.int32(7))) == f"{a.dtype.char}1,i,?,f,i"
    assert jit.type_key((np.zeros((2, 3), np.int16),)) == f"{np.dtype(np.int16).char}2"
    readonly = a.copy()
    readonly.flags.writeable = False
    assert jit.type_key((readonly,)) is None  # a kernel may write its arguments
    assert jit.type_key((np.arange(8)[::2],)) is None  # not contiguous
    assert jit.type_key((np.zeros((3, 3), order="F")[:, :2],)) is None
    assert jit.type_key((a.astype(">i8"),)) is None  # byte-swapped
    assert jit.type_key(([1, 2],)) is None
    assert jit.type_key((1 << 70,)) is None


def _with_fake_aot(kernel: Any, monkeypatch: pytest.MonkeyPatch, table: dict[str, Any]) -> None:
    monkeypatch.setattr(jit, "_AOT_ENABLED", True)
    monkeypatch.setattr(kernel, "_aot", table)


def test_call_goes_to_aot_only_for_its_exact_types(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    key = f"{np.dtype(np.int64).char}1"
    _with_fake_aot(_square_sum, monkeypatch, {key: lambda values: calls.append(values) or -1})
    assert _square_sum(np.array([1, 2, 3], dtype=np.int64)) == -1 and len(calls) == 1
    # Other dtypes, read-only arrays: Numba computes the answer (1 + 4 + 9).
    assert _square_sum(np.array([1, 2, 3], dtype=np.int32)) == 14
    frozen = np.array([1, 2, 3], dtype=np.int64)
    frozen.flags.writeable = False
    assert _square_sum(frozen) == 14
    assert len(calls) == 1


def test_kernel_calling_a_kernel_compiles_through_numba(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jit, "_AOT_ENABLED", False)
    monkeypatch.setattr(_twice_square_sum, "_aot", None)
    assert _twice_square_sum(np.array([1, 2], dtype=np.int64)) == 10
    assert isinstance(_square_sum, jit.LazyKernel)  # module globals stay lazy (Python callers keep AOT)


def test_parallel_kernel_uses_serial_aot_only_when_small(monkeypatch: pytest.MonkeyPatch) -> None:
    key = f"{np.dtype(np.int64).char}1"
    _with_fake_aot(_parallel_sum, monkeypatch, {key: lambda values: -1})
    assert _parallel_sum(np.arange(3, dtype=np.int64)) == -1
    assert _parallel_sum(np.arange(10, dtype=np.int64)) == 45  # too big for the serial form: Numba


def _manifest(directory: Path, **overrides: Any) -> None:
    sources = ["jit.py"]
    doc = {"format": jit.MANIFEST_FORMAT, "module": "m", "file": "m.so", "sources": sources,
           "source_hash": jit.source_hash(sources), "build": jit.build_tag(), "kernels": {}}
    doc.update(overrides)
    (directory / jit.MANIFEST).write_text(json.dumps(doc))


def test_manifest_is_used_only_for_the_same_sources_python_and_numpy(tmp_path: Path) -> None:
    _manifest(tmp_path)
    assert jit.read_manifest(str(tmp_path)) is not None
    _manifest(tmp_path, source_hash="0" * 64)  # a kernel source changed since the build
    assert jit.read_manifest(str(tmp_path)) is None
    _manifest(tmp_path, build={**jit.build_tag(), "numpy": "0.0"})
    assert jit.read_manifest(str(tmp_path)) is None
    _manifest(tmp_path, format=jit.MANIFEST_FORMAT + 1)
    assert jit.read_manifest(str(tmp_path)) is None
    (tmp_path / jit.MANIFEST).write_text("{not json")
    assert jit.read_manifest(str(tmp_path)) is None
    assert jit.read_manifest(str(tmp_path / "missing")) is None


def test_installed_aot_build_answers_like_numba() -> None:
    from gpupool.placement import cost

    table = jit.aot_table().get(cost.class_pair_cost.kernel_id, {}) if jit._AOT_ENABLED else {}
    rng = np.random.default_rng(26)
    hop = rng.integers(0, 7, size=(9, 9)).astype(np.int16)
    hop = np.minimum(hop, hop.T)
    ptr = np.array([0, 2, 3, 5, 9], dtype=np.int64)
    sw = rng.integers(0, 9, size=9).astype(np.int64)
    gpus = np.array([8, 3, 5, 1], dtype=np.int64)
    squares = np.array([34, 9, 13, 1], dtype=np.int64)
    hosts = np.array([2, 1, 2, 1], dtype=np.int64)
    args = (hop, ptr, sw, gpus, squares, hosts)
    key = jit.type_key(args)
    if key not in table:
        pytest.skip("no current AOT build of class_pair_cost here (python -m gpupool.warm makes one)")
    assert tuple(table[key](*args)) == tuple(cost.class_pair_cost.dispatcher(*args))


def test_warm_check_follows_its_stamp_and_the_aot_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gpupool import warm

    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "numba"))
    assert warm.main(["--check"]) == 1  # never warmed for this cache
    warm._stamp("numba")  # warmed, no AOT possible here: nothing more to do
    assert warm.is_warm()
    warm._stamp("aot")
    monkeypatch.setattr(warm, "current_build", lambda: None)
    assert not warm.is_warm()  # it built AOT kernels, and they are gone or stale: warm again
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "other"))
    assert not warm.is_warm()  # another Numba cache is another warm step
