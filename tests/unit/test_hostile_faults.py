"""Issue 19 items 9-10: damaged caches, failing disks and odd paths fail safe (exit 4, or a
warning and a rebuild), never exit 70/130 and never a truncated file or backup."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from gpupool.cli.main import main
from gpupool.errors import InputError
from gpupool.fabric.compiled import cache_path_for
from gpupool.fabric.generate import fat_tree
from gpupool.fabric.model import save_fabric
from gpupool.fsutil import atomic_write_text


@pytest.fixture
def fabric(tmp_path: Path) -> str:
    path = tmp_path / "tree.json"
    save_fabric(fat_tree(2, 2, 1), str(path))
    return str(path)


def _plan(fabric: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict, str]:
    free = Path(fabric).with_name("free.json")
    free.write_text('{"gpu001": 4, "gpu002": 4}')
    code = main(["plan", "--fabric", fabric, "--free", str(free), "--gpus", "8", "--json"])
    captured = capsys.readouterr()
    return code, json.loads(captured.out) if captured.out else {}, captured.err


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage", "directory"])
def test_damaged_cache_is_ignored_and_rebuilt(damage: str, fabric: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, good, _ = _plan(fabric, capsys)  # writes the cache
    cache = Path(cache_path_for(fabric))
    assert code == 0 and cache.is_file()
    data = cache.read_bytes()
    if damage == "directory":
        cache.unlink()
        cache.mkdir()
    else:
        cache.write_bytes({"empty": b"", "truncated": data[: len(data) // 2], "garbage": b"PK\x03\x04junk"}[damage])
    code, doc, err = _plan(fabric, capsys)
    assert code == 0 and doc["allocation"] == good["allocation"]
    assert "Traceback" not in err
    if damage != "directory":
        assert "damaged fabric cache" in err
        code, _, err = _plan(fabric, capsys)  # rebuilt: the next run is quiet
        assert code == 0 and "damaged" not in err


def test_backup_is_never_truncated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "topology.conf"
    atomic_write_text(target, "version 1\n")
    atomic_write_text(target, "version 2\n", backup=True)
    assert (tmp_path / "topology.conf.bak").read_text() == "version 1\n"
    real_fsync = os.fsync

    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(InputError, match="No space left"):
        atomic_write_text(target, "version 3\n" * 1000, backup=True)
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert target.read_text() == "version 2\n"
    assert (tmp_path / "topology.conf.bak").read_text() == "version 1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["topology.conf", "topology.conf.bak"]


def test_read_only_output_directory_is_exit_4(fabric: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if os.geteuid() == 0:
        # root ignores directory modes: a path under a regular file fails the same way for everyone
        out = tmp_path / "tree.json" / "topo.conf"
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        out = locked / "topo.conf"
    code = main(["fabric", "export", "--fabric", fabric, "--format", "slurm-tree", "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 4 and err.startswith("gpupool: error:") and "Traceback" not in err


def test_diff_against_a_binary_is_exit_4(fabric: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    binary = tmp_path / "ls"
    binary.write_bytes(b"\x7fELF\x02\x01\x01\x00\xff\xfe" * 100)
    code = main(["fabric", "export", "--fabric", fabric, "--format", "slurm-tree", "--diff", str(binary)])
    err = capsys.readouterr().err
    assert code == 4 and "not a text file" in err
    code = main(["fabric", "export", "--fabric", fabric, "--format", "slurm-tree", "--diff", str(tmp_path)])
    assert code == 4
