"""The one place domain errors meet the command line (as ClusterShell's CLI/Error.py): each error
class -> its exit code (docs/contract.md), each parameter a message refers to -> the flag that sets it."""

from __future__ import annotations

from contextlib import AbstractContextManager

from gpupool.errors import (
    EXIT_ENVIRONMENT,
    EXIT_INFEASIBLE,
    EXIT_INPUT,
    EXIT_USAGE,
    BadInput,
    BadRequest,
    GpupoolError,
    Refused,
    Unreachable,
    Unsatisfiable,
    parameter_spelling,
)


class CliError(GpupoolError):
    """An error only the command line has (a monitoring command's bad option): it names its own exit code."""

    exit_code: int = EXIT_USAGE


# Most specific first: a subclass of two of these takes the first that matches.
EXIT_CODES: tuple[tuple[type[GpupoolError], int], ...] = (
    (Unsatisfiable, EXIT_INFEASIBLE),
    (BadRequest, EXIT_USAGE),
    (Unreachable, EXIT_ENVIRONMENT),
    (BadInput, EXIT_INPUT),
    (Refused, EXIT_INPUT),  # Slurm said no: the request was bad input for it
)

# Parameters whose flag is not `--` + the name with dashes (a domain keyword -> gpupool's option).
FLAGS: dict[str, str] = {
    "hosts_per_domain": "--nvlink-domain-hosts",  # fabric.generate.add_generated_domains
}


def flag(parameter: str) -> str:
    """The command-line flag that sets `parameter`."""
    return FLAGS.get(parameter, "--" + parameter.replace("_", "-"))


def exit_code_for(error: GpupoolError) -> int:
    """The documented exit code of `error` (an unclassified GpupoolError is bad input, 4)."""
    if isinstance(error, CliError):
        return error.exit_code
    return next((code for kind, code in EXIT_CODES if isinstance(error, kind)), EXIT_INPUT)


def message_for(error: GpupoolError) -> str:
    """The one-line message, each parameter reference spelled as its flag."""
    return error.render(flag)


def flag_spelling() -> AbstractContextManager[None]:
    """Around a command: messages name flags, also where a use case copies one into a note or a document."""
    return parameter_spelling(flag)
