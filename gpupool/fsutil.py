"""Atomic file writes: an existing file is never left half-written."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import IO, Any

from gpupool.errors import BadInput


def atomic_write_text(path: str | os.PathLike[str], text: str, *, backup: bool = False, mode: int | None = None) -> None:
    """Write `text` to `path` through a temporary file in the same directory, then rename."""
    atomic_write_bytes(path, text.encode(), backup=backup, mode=mode)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, backup: bool = False, mode: int | None = None) -> None:
    """Temp file + fsync + rename; `backup` keeps the old file as PATH.bak, itself replaced
    atomically (never a truncated backup). Any OS failure (full disk, read-only directory) is one
    BadInput naming the file, and leaves the old file and the old backup as they were. A missing
    directory is an BadInput naming it: never created silently (`/etc/slrum/` must not succeed)."""
    target = Path(path)
    directory = check_output_path(target)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise BadInput(f"{target}: cannot write ({exc.strerror or exc})") from None
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
        if backup and target.is_file():
            _atomic_backup(target)
        os.replace(tmp_name, target)
        _fsync_directory(directory)
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise BadInput(f"{target}: cannot write ({exc.strerror or exc}); the old file is unchanged") from None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def check_output_path(path: str | os.PathLike[str]) -> Path:
    """The directory `path` will be written into; a missing one is an BadInput naming it (checked
    before long work too, so a typo like /etc/slrum/ fails at once and nothing is created)."""
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        what = "is not a directory" if directory.exists() else "does not exist"
        raise BadInput(f"{target}: cannot write: directory {directory} {what} (gpupool does not create it)")
    return directory


def _atomic_backup(target: Path) -> None:
    """PATH -> PATH.bak without a moment where PATH.bak is partial: a hard link needs no space;
    where links are not supported, a fsync'd copy renamed into place."""
    backup = target.with_name(target.name + ".bak")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{backup.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        os.unlink(tmp_name)
        try:
            os.link(target, tmp_name)
        except OSError:
            shutil.copy2(target, tmp_name)
            with open(tmp_name, "rb+") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp_name, backup)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def _fsync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def read_input_bytes(path: str | os.PathLike[str], what: str) -> bytes:
    """Read a user-named input file; every way it can fail is one input error naming the file."""
    with open_input(path, what, "rb") as handle:
        return handle.read()


def open_input(path: str | os.PathLike[str], what: str, mode: str = "r", **kwargs: Any) -> IO[Any]:
    """Open a user-named input file (for streaming); a failure is one input error naming the file."""
    try:
        return open(path, mode, **kwargs)  # noqa: SIM115 - the caller closes it
    except FileNotFoundError:
        raise BadInput(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise BadInput(f"{path}: {what} is a directory") from None
    except PermissionError:
        raise BadInput(f"{path}: cannot read {what} (permission denied)") from None
    except OSError as exc:
        raise BadInput(f"{path}: cannot read {what} ({exc.strerror})") from None
