"""Slurm releases the testbed runs from a host prefix built from source (no Debian package, no chroot).

25.11 is in no Debian suite; scripts/build-slurm-25.11 builds the vendored Slurm 25.11.7 (and
pyslurm 25.11.2) into a cache outside the clone, keyed by the tarball's hash, and prints the prefix.
The testbed runs that prefix's slurmctld, slurmd and slurmdbd with the host's munged and MariaDB,
and puts links to its client commands first on PATH (<state>/bin), as it does a chroot's wrappers.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from testbed.config import REPO
from testbed.errors import EXIT_ENV, TestbedError

# Release -> the script that builds it (prints the prefix; `--print`: where, without building).
BUILD_SCRIPTS = {"25.11": REPO / "scripts" / "build-slurm-25.11"}
# The Slurm daemons run from the prefix; munged, MariaDB and ibsim stay the host's.
PREFIX_DAEMONS = ("slurmctld", "slurmd", "slurmdbd")


def is_prefix_release(release: str) -> bool:
    return release in BUILD_SCRIPTS


def _script(release: str) -> Path:
    if release not in BUILD_SCRIPTS:
        raise TestbedError(f"Slurm {release} is not built from source (known: {', '.join(BUILD_SCRIPTS)})",
                           EXIT_ENV)
    return BUILD_SCRIPTS[release]


def _printed(release: str) -> list[Path]:
    """What `BUILD_SCRIPT --print` says, without building: the prefix, then pyslurm's directory."""
    proc = subprocess.run([str(_script(release)), "--print"], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0 or not proc.stdout.split():
        raise TestbedError(f"{_script(release).name} --print failed (exit {proc.returncode})", EXIT_ENV,
                           proc.stderr.strip())
    return [Path(word) for word in proc.stdout.split()]


def prefix_of(release: str) -> Path:
    """Where the release is (or will be) installed, without building it."""
    return _printed(release)[0]


def client_env(release: str, environ: dict[str, str]) -> dict[str, str]:
    """PYTHONPATH with the pyslurm built against the release first, so that gpupool run in the
    testbed's environment finds it (and, in auto mode, reads Slurm through it); {} for a release
    built without one or not yet built."""
    printed = _printed(release)
    if len(printed) < 2 or not (printed[1] / ".complete").is_file():
        return {}
    rest = [p for p in environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != str(printed[1])]
    return {"PYTHONPATH": os.pathsep.join([str(printed[1]), *rest])}


def build(release: str) -> Path:
    """Build the release unless its prefix is complete (a cold build takes about an hour on two
    cores); a build that fails is an environment error, never a fallback to another release."""
    prefix = prefix_of(release)
    if (prefix / ".complete").is_file():
        return prefix
    print(f"testbed: building Slurm {release} from source into {prefix} ({_script(release).name})",
          file=sys.stderr)
    proc = subprocess.run([str(_script(release))], stdin=subprocess.DEVNULL, capture_output=True,
                          text=True)
    if proc.returncode != 0 or not (prefix / ".complete").is_file():
        raise TestbedError(f"cannot build Slurm {release} ({_script(release).name} exit {proc.returncode})",
                           EXIT_ENV, proc.stderr.strip())
    return prefix


def daemon_argv(prefix: Path, argv: Sequence[str]) -> list[str]:
    """argv with a Slurm daemon taken from the prefix, in a mount namespace of its own (unshare
    execs: same pid); anything else (munged, mariadbd) as is. slurmstepd detaches from slurmd and
    drops the testbed's marker, but stays in slurmd's namespace, where `down` finds it and its job
    (testbed.daemons.marked_processes), as for a chroot release."""
    if argv and argv[0] in PREFIX_DAEMONS:
        unshare = shutil.which("unshare") or "/usr/bin/unshare"
        return [unshare, "--mount", "--propagation", "private", str(prefix / "sbin" / argv[0]), *argv[1:]]
    return list(argv)


def link_clients(prefix: Path, directory: Path, commands: Sequence[str]) -> None:
    """<state>/bin/<command> -> the prefix's client, for each one it has (mariadb stays the host's)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in commands:
        target, link = prefix / "bin" / name, directory / name
        if link.is_symlink() or link.exists():
            link.unlink()
        if target.is_file():
            link.symlink_to(target)
