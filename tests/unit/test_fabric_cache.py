"""The memory-mapped compiled-fabric cache: same arrays as a fresh compile, private copies, invalidated
by content, a user-cache fallback, and never trusted over a change."""

from __future__ import annotations

import mmap
import os
import time
from pathlib import Path

import numpy as np
import pytest

from gpupool.fabric import cache
from gpupool.fabric.compiled import (
    _ARRAY_FIELDS,
    cache_path_for,
    compile_fabric,
    load_compiled,
    store_compiled,
)
from gpupool.fabric.generate import fat_tree
from gpupool.fabric.model import save_fabric


def _same(a: object, b: object) -> None:
    for name in _ARRAY_FIELDS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y), name
    for name in ("host_names", "switch_names", "tree_names", "kind", "ultrametric", "meta"):
        assert getattr(a, name) == getattr(b, name), name


def test_cached_fabric_equals_a_fresh_compile_and_is_a_private_copy(tmp_path: Path) -> None:
    fabric = fat_tree(4, 3, 2, pods=2, cores=2)
    path = str(tmp_path / "f.json")
    save_fabric(fabric, path)
    fresh = compile_fabric(fabric)
    store_compiled(path, fresh)
    cache_file = Path(cache_path_for(path))
    before = cache_file.read_bytes()
    loaded = load_compiled(path)
    _same(loaded, fresh)
    base = loaded.hop
    while isinstance(base, np.ndarray):
        base = base.base
    if isinstance(base, memoryview):
        base = base.obj
    assert isinstance(base, mmap.mmap)  # mapped, not read into memory
    assert loaded.hop.flags.writeable and loaded.hop.flags.c_contiguous
    loaded.hop[0, 0] = 99  # copy-on-write: the file never changes
    assert cache_file.read_bytes() == before
    _same(load_compiled(path), fresh)


def test_a_changed_fabric_file_is_recompiled(tmp_path: Path) -> None:
    path = str(tmp_path / "f.json")
    save_fabric(fat_tree(2, 2, 1), path)
    first = load_compiled(path)
    old = time.time() - 60
    os.utime(path, (old, old))
    load_compiled(path)  # hashed, old enough: the cache records the file's stat
    save_fabric(fat_tree(3, 2, 1), path)
    second = load_compiled(path)
    assert len(first.host_names) == 4 and len(second.host_names) == 6


def test_unwritable_directory_falls_back_to_the_user_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = str(tmp_path / "f.json")
    save_fabric(fat_tree(2, 2, 1), path)
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    monkeypatch.setattr(cache, "path_beside", lambda _p: str(blocker / "cache.bin"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    first = load_compiled(path)
    written = list((tmp_path / "xdg" / "gpupool" / "fabric").iterdir())
    assert len(written) == 1
    os.utime(written[0], (0, 0))  # a second load reads it (a recompile would rewrite it)
    _same(load_compiled(path), first)
    assert os.stat(written[0]).st_mtime == 0


def test_header_from_another_format_is_rebuilt_quietly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(tmp_path / "f.json")
    save_fabric(fat_tree(2, 2, 1), path)
    load_compiled(path)
    cache_file = Path(cache_path_for(path))
    data = cache_file.read_bytes()
    cache_file.write_bytes(data.replace(b'"format":5', b'"format":9', 1))
    assert len(load_compiled(path).host_names) == 4
    assert "damaged" not in capsys.readouterr().err
