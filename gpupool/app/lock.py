"""The per-user submit lock: one user's concurrent `gpupool submit` calls plan one at a time.

What it protects: two submits of the same user (a script looping over `gpupool submit &`) would
otherwise read the same free state and plan onto the same GPUs. Under the lock each submit sees
the GPUs the previous one took (its pending job's `gpupool:` comment is subtracted from the free
state).

What it does not protect: other users' submits, and plain `sbatch`. Those race as any two Slurm
clients do; `gpupool submit` covers them after the fact: it verifies that the job started on the
planned nodes and, when a node was taken meanwhile, cancels its own job, re-plans and resubmits once.
A lock shared by all users would be a file any local user could hold forever (blocking everyone's
submits) for no gain over that check, so the lock lives where only its user can write:

    $GPUPOOL_LOCK_DIR, else $XDG_RUNTIME_DIR/gpupool, else ~/.cache/gpupool, else /tmp/gpupool-$UID

The directory is created 0700 and must be a real directory owned by the user with no group or
other access; anything else is an `Unreachable` (exit 3) rather than a lock another user controls.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import stat
import time
from collections.abc import Callable, Iterator

from gpupool.errors import Unreachable


def _candidates() -> list[str]:
    found = []
    if os.environ.get("GPUPOOL_LOCK_DIR"):
        return [os.environ["GPUPOOL_LOCK_DIR"]]
    if os.environ.get("XDG_RUNTIME_DIR"):
        found.append(os.path.join(os.environ["XDG_RUNTIME_DIR"], "gpupool"))
    home = os.path.expanduser("~")
    if home and home != "~" and os.path.isdir(home):
        found.append(os.path.join(home, ".cache", "gpupool"))
    found.append(f"/tmp/gpupool-{os.getuid()}")
    return found


def private_dir(path: str) -> str:
    """`path` as a directory only this user can enter (created 0700); Unreachable when it is not."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise Unreachable(f"cannot create lock directory {path}: {exc.strerror}") from None
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode):
        raise Unreachable(f"lock directory {path} is not a directory (a symlink or file put there?)")
    if info.st_uid != os.getuid():
        raise Unreachable(f"lock directory {path} belongs to uid {info.st_uid}, not to you (uid {os.getuid()})")
    if info.st_mode & 0o077:
        raise Unreachable(f"lock directory {path} is open to other users (mode {stat.S_IMODE(info.st_mode):o}); "
                       "chmod 700 it")
    return path


def default_lock_path() -> str:
    """This user's lock for this cluster (keyed by SLURM_CONF), in the first usable private directory."""
    conf = os.environ.get("SLURM_CONF", "/etc/slurm/slurm.conf")
    key = hashlib.sha256(os.path.realpath(conf).encode()).hexdigest()[:12]
    candidates = _candidates()
    for index, directory in enumerate(candidates):
        try:
            return os.path.join(private_dir(directory), f"submit-{key}.lock")
        except Unreachable:
            if index == len(candidates) - 1:
                raise
    raise AssertionError("unreachable: the last candidate returns or raises")  # pragma: no cover


def _open_private(path: str) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise Unreachable(f"cannot open submit lock {path}: {exc.strerror}") from None


@contextlib.contextmanager
def submit_lock(path: str, timeout: float, sleep: Callable[[float], None] = time.sleep) -> Iterator[None]:
    """Exclusive flock on `path` (created 0600), waiting at most `timeout` seconds (Unreachable after that)."""
    fd = _open_private(path)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise Unreachable(f"cannot lock {path}: {exc.strerror}") from None
                if time.monotonic() >= deadline:
                    raise Unreachable(f"another gpupool submit of yours held {path} for more than {timeout:g}s") from None
                sleep(0.05)
        yield
    finally:
        os.close(fd)  # closing releases the flock
