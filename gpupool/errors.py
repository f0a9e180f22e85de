"""Expected failures and their exit codes (see docs/contract.md)."""

from __future__ import annotations

EXIT_OK = 0
EXIT_INFEASIBLE = 1
EXIT_USAGE = 2
EXIT_ENVIRONMENT = 3
EXIT_INPUT = 4

# Monitoring exit codes used by `fabric audit` and `node check`.
MON_OK = 0
MON_WARNING = 1
MON_CRITICAL = 2
MON_UNKNOWN = 3


class GpupoolError(Exception):
    """An expected failure: printed as one `gpupool: error:` line, never a traceback."""

    exit_code: int = EXIT_INPUT

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.__class__.__name__


class InfeasibleError(GpupoolError):
    """The request cannot be satisfied (exit 1)."""

    exit_code = EXIT_INFEASIBLE


class UsageError(GpupoolError):
    """Bad option or argument (exit 2)."""

    exit_code = EXIT_USAGE


class EnvError(GpupoolError):
    """Slurm or a required tool is unreachable or missing (exit 3)."""

    exit_code = EXIT_ENVIRONMENT


class InputError(GpupoolError):
    """Malformed file, unknown host or inconsistent fabric (exit 4)."""

    exit_code = EXIT_INPUT


def located(path: str, line: int | None, message: str) -> str:
    """Format `file:line: message` the way compilers do, so editors can jump to it."""
    return f"{path}:{line}: {message}" if line else f"{path}: {message}"
