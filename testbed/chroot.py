"""Debian chroots that carry newer Slurm releases than the host's, built with debootstrap and cached.

A chroot is keyed by its suite, its package list and BUILD_VERSION, lives outside the clone
(/var/cache/gpupool-testbed/chroot-<suite>-<key>, or $GPUPOOL_TESTBED_CACHE) and is built once,
atomically (into a temporary directory, renamed when complete), under a lock so that two testbeds
never build the same one at once. Commands run inside it through `unshare --mount` + `chroot`, so
the bind mounts (/proc, /dev, /sys, the state dir, the repo) vanish with the process: nothing to
undo on the host, even after a crash.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import os
import pwd
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from testbed.config import CHROOT_SUITES, CLIENT_VAR, HOST_VIEW, REPO
from testbed.errors import EXIT_DOWN, EXIT_ENV, TestbedError

# Bump when the build steps change, so cached chroots made by older steps are not reused.
BUILD_VERSION = "1"
# What the testbed runs inside: munge, MariaDB and every Slurm daemon and client.
CHROOT_PACKAGES = ("slurmctld", "slurmd", "slurmdbd", "slurm-client", "munge", "mariadb-server",
                   "mariadb-client")
# The Slurm release each Debian suite ships (trixie: 24.11.5, sid: 26.05.x at the time of writing).
SUITES = CHROOT_SUITES
DEFAULT_CACHE = Path("/var/cache/gpupool-testbed")
APT_CONF = 'Acquire::Check-Valid-Until "false";\nAPT::Install-Recommends "false";\n'


def cache_root() -> Path:
    return Path(os.environ.get("GPUPOOL_TESTBED_CACHE") or DEFAULT_CACHE)


def host_mirror(sources: Sequence[Path] | None = None) -> str:
    """The Debian archive the host's apt uses (deb822 or one-line sources), security suites aside;
    $GPUPOOL_TESTBED_MIRROR overrides it."""
    if sources is None and os.environ.get("GPUPOOL_TESTBED_MIRROR"):
        return os.environ["GPUPOOL_TESTBED_MIRROR"].rstrip("/")
    paths = list(sources) if sources is not None else sorted(
        [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*.sources"),
         *Path("/etc/apt/sources.list.d").glob("*.list")])
    for path in paths:
        try:
            text = path.read_text()
        except OSError:
            continue
        if path.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields = dict(re.findall(r"^(\w[\w-]*):\s*(.*)$", stanza, re.M))
                suites = fields.get("Suites", "").split()
                if fields.get("URIs") and suites and not all(s.endswith("-security") for s in suites):
                    return fields["URIs"].split()[0].rstrip("/")
        else:
            for line in text.splitlines():
                words = re.sub(r"\[[^]]*\]", "", line).split()
                if len(words) >= 3 and words[0] == "deb" and not words[2].endswith("-security"):
                    return words[1].rstrip("/")
    raise TestbedError("cannot find the host's Debian mirror in /etc/apt/sources.list*", EXIT_ENV)


@dataclasses.dataclass(frozen=True)
class Chroot:
    release: str
    suite: str
    mirror: str
    root: Path

    @property
    def key(self) -> str:
        return self.root.name.rsplit("-", 1)[-1]


def chroot_key(suite: str, mirror: str) -> str:
    text = "\n".join([BUILD_VERSION, suite, mirror, *sorted(CHROOT_PACKAGES), APT_CONF])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def chroot_for(release: str, mirror: str | None = None) -> Chroot:
    if release not in SUITES:
        raise TestbedError(f"no chroot for Slurm {release} (known: {', '.join(SUITES)})", EXIT_ENV)
    suite = SUITES[release]
    mirror = mirror or host_mirror()
    return Chroot(release, suite, mirror, cache_root() / f"chroot-{suite}-{chroot_key(suite, mirror)}")


def _home_dirs() -> list[Path]:
    """The runner's home and every regular account's (the password database), never `/`."""
    homes = {Path.home(), *(Path(e.pw_dir) for e in pwd.getpwall() if 1000 <= e.pw_uid < 65534)}
    return sorted(h for h in homes if h.is_dir() and h != Path(h.anchor))


def host_binds(state_dir: Path) -> list[Path]:
    """Host paths a chroot release sees at the same path: /tmp (job scripts, pytest's tmp dirs),
    home directories (where users keep job scripts), the testbed's state dir and the repository
    (prolog scripts, fabric files)."""
    binds: list[Path] = []
    homes = _home_dirs()
    for path in (Path("/tmp"), *homes, state_dir, REPO):
        if not any(path == b or b in path.parents for b in binds):
            binds.append(path)
    return binds


def write_wrappers(chroot: Chroot, directory: Path, state_dir: Path,
                   commands: Sequence[str]) -> None:
    """One shell wrapper per client command, running the chroot's own binary (SLURM_CONF and the
    rest of the environment pass through; the working directory too when it is bound inside)."""
    directory.mkdir(parents=True, exist_ok=True)
    binds = host_binds(state_dir)
    for name in commands:
        line = shlex.join(inside_argv(chroot.root, [name], binds))
        path = directory / name
        path.write_text(f"#!/bin/sh\n# Generated by gpupool scripts/testbed: {name} of the Slurm "
                        f"{chroot.release} chroot {chroot.root.name}.\n"
                        f"export {CLIENT_VAR}={shlex.quote(str(state_dir))}\nexec {line} \"$@\"\n")
        path.chmod(0o755)


def prepare(chroot: Chroot) -> None:
    """Runtime files a chroot needs whatever built it: debootstrap leaves no /etc/hosts, and the
    testbed's configs name localhost."""
    hosts = chroot.root / "etc" / "hosts"
    if not hosts.exists():
        hosts.write_text("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")


def is_built(chroot: Chroot) -> bool:
    return (chroot.root / ".gpupool-built").is_file()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run_logged(argv: Sequence[str], log: Path, what: str, timeout: float) -> None:
    with open(log, "ab") as out:
        out.write(f"\n$ {' '.join(argv)}\n".encode())
        out.flush()
        try:
            proc = subprocess.run(list(argv), stdin=subprocess.DEVNULL, stdout=out,
                                  stderr=subprocess.STDOUT, timeout=timeout,
                                  env={**os.environ, "DEBIAN_FRONTEND": "noninteractive",
                                       "LC_ALL": "C"})
        except FileNotFoundError as exc:
            raise TestbedError(f"{argv[0]} not found (scripts/bootstrap installs it)", EXIT_ENV) from exc
        except subprocess.TimeoutExpired as exc:
            raise TestbedError(f"{what} timed out after {timeout:.0f}s (log {log})", EXIT_ENV) from exc
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
        raise TestbedError(f"{what} failed (exit {proc.returncode}; log {log})", EXIT_ENV, tail)


def inside_argv(root: Path, argv: Sequence[str], binds: Sequence[Path] = (),
                host_view: bool = False) -> list[str]:
    """argv run inside root in a private mount namespace with /proc, /dev, /sys and binds mounted
    at their own paths (and, with host_view, the host's whole mount tree at HOST_VIEW, for the
    job scripts a slurmd runs there); the process keeps its pid through unshare, sh and chroot."""
    script = ['set -e', 'PATH="/usr/sbin:/usr/bin:/sbin:/bin:$PATH"', 'r="$1"; shift', 'n="$1"; shift']
    if host_view:  # first, so the copy holds the host's mounts and not the chroot's own
        script += [f'mkdir -p "$r{HOST_VIEW}"', f'mount --rbind / "$r{HOST_VIEW}"']
    script += [
        'mount -t proc proc "$r/proc"', 'mount --rbind /dev "$r/dev"',
        'mount --rbind /sys "$r/sys"',
        'i=0; while [ "$i" -lt "$n" ]; do mkdir -p "$r$1"; mount --bind "$1" "$r$1"; '
        'shift; i=$((i+1)); done',
        # Keep the caller's working directory where it is bound inside, else /.
        'd="$(pwd)"',
        # The chroot's own PATH: the host's could lead back to our wrappers (bound via /tmp).
        'exec chroot "$r" /usr/bin/env PATH=/usr/sbin:/usr/bin:/sbin:/bin '
        '/bin/sh -c \'cd "$1" 2>/dev/null || cd /; shift; exec "$@"\' '
        'sh "$d" "$@"']
    return [shutil.which("unshare") or "/usr/bin/unshare", "--mount", "--propagation", "private", "sh", "-c", "\n".join(script),
            "sh", str(root), str(len(binds)), *[str(b) for b in binds], *argv]


def build(chroot: Chroot, log_to: Path | None = None) -> float:
    """Build chroot unless it is cached; returns the seconds spent (0 when it was cached)."""
    if is_built(chroot):
        return 0.0
    if os.geteuid() != 0:
        raise TestbedError(f"building the Slurm {chroot.release} chroot needs root", EXIT_ENV)
    if not shutil.which("debootstrap"):
        raise TestbedError("debootstrap not found; run scripts/bootstrap", EXIT_ENV)
    root = chroot.root
    with _locked(root.with_name(root.name + ".lock")):
        if is_built(chroot):
            return 0.0
        started = time.monotonic()
        log = log_to or root.with_name(root.name + ".build.log")
        log.write_text("")
        tmp = root.with_name(f".{root.name}.tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        print(f"testbed: building the Slurm {chroot.release} chroot ({chroot.suite} from "
              f"{chroot.mirror}) in {root}; log {log}", file=sys.stderr)
        try:
            _run_logged(["debootstrap", "--variant=minbase", "--components=main", chroot.suite,
                         str(tmp), chroot.mirror], log, f"debootstrap {chroot.suite}", 1800)
            (tmp / "etc/apt/apt.conf.d/99gpupool-testbed").write_text(APT_CONF)
            # Packages' own services never start inside: the testbed runs every daemon itself.
            policy = tmp / "usr/sbin/policy-rc.d"
            policy.write_text("#!/bin/sh\nexit 101\n")
            policy.chmod(0o755)
            _run_logged(inside_argv(tmp, ["apt-get", "update", "-q"]), log,
                        f"apt-get update in the {chroot.suite} chroot", 600)
            _run_logged(inside_argv(tmp, ["apt-get", "install", "-y", "-q", *CHROOT_PACKAGES]),
                        log, f"installing Slurm in the {chroot.suite} chroot", 1800)
            _run_logged(inside_argv(tmp, ["apt-get", "clean"]), log, "apt-get clean", 120)
            prepare(Chroot(chroot.release, chroot.suite, chroot.mirror, tmp))
            version = slurm_version_of(tmp)
            if not version.startswith(chroot.release + "."):
                raise TestbedError(f"the {chroot.suite} chroot has Slurm {version}, not "
                                   f"{chroot.release}", EXIT_ENV)
            elapsed = time.monotonic() - started
            (tmp / ".gpupool-built").write_text(
                f"suite {chroot.suite}\nmirror {chroot.mirror}\nslurm {version}\n"
                f"packages {' '.join(CHROOT_PACKAGES)}\nbuild_seconds {elapsed:.0f}\n")
            os.replace(tmp, root)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    print(f"testbed: built the Slurm {chroot.release} chroot in {elapsed:.0f}s", file=sys.stderr)
    return elapsed


def slurm_version_of(root: Path) -> str:
    proc = subprocess.run(["chroot", str(root), "slurmctld", "-V"], capture_output=True, text=True)
    match = re.search(r"slurm[^\d]*(\d+\.\d+\.\d+)", proc.stdout + proc.stderr)
    if proc.returncode != 0 or not match:
        raise TestbedError(f"slurmctld -V failed in {root}: {(proc.stderr or proc.stdout).strip()}",
                           EXIT_DOWN)
    return match.group(1)


def main(argv: Sequence[str]) -> int:
    """`python -m testbed.chroot RELEASE...`: build (or find cached) chroots; prints timings."""
    for release in argv or list(SUITES):
        chroot = chroot_for(release)
        started = time.monotonic()
        try:
            spent = build(chroot)
        except TestbedError as exc:
            print(f"testbed: error: {exc.message}", file=sys.stderr)
            if exc.detail:
                print(exc.detail, file=sys.stderr)
            return exc.exit_code
        print(f"{release} {chroot.suite} {chroot.root} "
              f"{'built' if spent else 'cached'} {time.monotonic() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
