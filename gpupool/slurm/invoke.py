"""Run one Slurm command with a bounded timeout and classify its failures.

Failure classes (exit codes from CONTRACT.md):

- `Unreachable` (exit 3): the command is missing, it did not finish within the
  timeout, or its output says slurmctld/slurmdbd cannot be reached.
- `SlurmCommandError` (exit 4 by default): Slurm ran and refused the request
  (e.g. sbatch "Invalid partition name specified", "Invalid account"). These are
  input errors: the user's request names something Slurm does not accept. The
  full stderr is kept on `.stderr` so callers can look for specific reasons
  (e.g. a node in `--nodelist` became unavailable) and retry.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence

from gpupool.errors import Refused, Unreachable
from gpupool.validate import SLURM_DECODE_ERRORS

DEFAULT_TIMEOUT = 10.0

# Messages Slurm prints when its daemons are down or unreachable.
UNREACHABLE_PATTERNS = re.compile(
    r"Unable to contact slurm controller"
    r"|Unable to establish connection"
    r"|Connection refused"
    r"|Connection timed out"
    r"|slurmdbd: Connection"
    r"|Problem talking to the database"
    r"|Slurm backup controller in standby mode"
    r"|Socket timed out on send/recv operation"
    r"|Zero Bytes were transmitted or received"
    r"|Unable to contact slurmdbd"
    r"|Communication connection failure"
    r"|Unable to resolve .* controller"
    r"|Could not establish a configuration source"
    r"|No such file or directory.*slurm\.conf"
    r"|Munge encode failed|Munged communication error|Invalid authentication credential",
    re.IGNORECASE,
)


class SlurmCommandError(Refused):
    """Slurm ran but rejected the request (bad input: the CLI exits 4).

    `.argv`, `.returncode`, `.stdout`, `.stderr` hold the details.
    """

    def __init__(
        self,
        message: str,
        *,
        argv: Sequence[str] = (),
        returncode: int = 1,
        stdout: str = "",
        stderr: str = "",
    ) -> None:
        super().__init__(message)
        self.argv = list(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr


def first_line(text: str) -> str:
    """The first non-empty line of `text`, stripped (Slurm repeats itself a lot)."""
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


def is_unreachable(text: str) -> bool:
    """True when Slurm's output says a daemon (slurmctld/slurmdbd) cannot be reached."""
    return bool(UNREACHABLE_PATTERNS.search(text))


def run(
    argv: list[str],
    *,
    timeout: float = DEFAULT_TIMEOUT,
    input: str | None = None,  # noqa: A002 - mirrors subprocess.run
    env: Mapping[str, str] | None = None,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run a Slurm command; return the finished process (text mode).

    Raises `Unreachable` when the command is missing, times out or reports an
    unreachable daemon, and `SlurmCommandError` for any other non-zero exit
    when `check` is true. `env` entries are added to the current environment.
    """
    if not argv:
        raise ValueError("run() needs a command")
    program = argv[0]
    if os.sep not in program and shutil.which(program) is None:
        raise Unreachable(f"Slurm command not found: {program} (is Slurm installed and on PATH?)")
    full_env = None
    if env is not None:
        full_env = dict(os.environ)
        full_env.update(env)
    try:
        proc = subprocess.run(
            argv,
            input=input,
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors=SLURM_DECODE_ERRORS,  # user text (job names, comments) may be any bytes
            timeout=timeout,
            env=full_env,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
    except FileNotFoundError as exc:
        raise Unreachable(f"Slurm command not found: {program}") from exc
    except PermissionError as exc:
        raise Unreachable(f"cannot execute Slurm command {program}: {exc}") from exc
    except subprocess.TimeoutExpired as exc:
        raise Unreachable(
            f"{program} did not answer within {timeout:g}s (slurmctld down or overloaded?)"
        ) from exc
    if proc.returncode != 0:
        combined = f"{proc.stderr}\n{proc.stdout}"
        if is_unreachable(combined):
            raise Unreachable(f"{program}: Slurm unreachable: {first_line(proc.stderr or proc.stdout)}")
        if check:
            detail = first_line(proc.stderr) or first_line(proc.stdout) or f"exit {proc.returncode}"
            raise SlurmCommandError(
                f"{program}: {detail}",
                argv=argv,
                returncode=proc.returncode,
                stdout=proc.stdout,
                stderr=proc.stderr,
            )
    return proc
