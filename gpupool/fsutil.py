"""Atomic file writes: an existing file is never left half-written."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from gpupool.errors import InputError


def atomic_write_text(path: str | os.PathLike[str], text: str, *, backup: bool = False, mode: int | None = None) -> None:
    """Write `text` to `path` through a temporary file in the same directory, then rename."""
    atomic_write_bytes(path, text.encode(), backup=backup, mode=mode)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, backup: bool = False, mode: int | None = None) -> None:
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(tmp_name, mode)
        elif target.exists():
            os.chmod(tmp_name, target.stat().st_mode & 0o7777)
        else:
            os.chmod(tmp_name, 0o644)
        if backup and target.exists():
            shutil.copy2(target, f"{target}.bak")
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def read_input_bytes(path: str | os.PathLike[str], what: str) -> bytes:
    """Read a user-named input file; every way it can fail is one input error naming the file."""
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise InputError(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise InputError(f"{path}: {what} is a directory") from None
    except PermissionError:
        raise InputError(f"{path}: cannot read {what} (permission denied)") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read {what} ({exc.strerror})") from None
