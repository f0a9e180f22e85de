"""Typed domain errors and the exit codes of docs/contract.md.

Domain packages raise these: each class says what kind of thing went wrong and carries the data,
never a command-line flag or an exit code. A message refers to a request parameter with
`param("gpus_per_node")`; the CLI maps every class to its exit code and spells each parameter as
the flag that sets it, in one place (`gpupool.cli.errors`, installed with `parameter_spelling`
around a command). Elsewhere (a library caller) `message` shows a parameter by its plain name.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

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

# A parameter reference inside a message: ⟨name⟩ (characters no gpupool message otherwise uses).
_PARAM_RE = re.compile("\u27e8([a-z][a-z0-9_]*)\u27e9")


# How `GpupoolError.message` spells a parameter: its plain name, unless a caller (the CLI) says otherwise.
_SPELLING: ContextVar[Callable[[str], str] | None] = ContextVar("gpupool_parameter_spelling", default=None)


@contextmanager
def parameter_spelling(spell: Callable[[str], str]) -> Iterator[None]:
    """Within the block, every error message spells a parameter with `spell` (the CLI: as its flag),
    including messages the use cases copy into notes or wrap into other errors."""
    token = _SPELLING.set(spell)
    try:
        yield
    finally:
        _SPELLING.reset(token)


def param(name: str) -> str:
    """A reference to request parameter `name` (a keyword of the domain call, e.g. "gpus_per_node")
    inside an error message: the CLI shows the flag that sets it, a library caller the plain name."""
    return f"\u27e8{name}\u27e9"


class GpupoolError(Exception):
    """An expected failure: printed as one `gpupool: error:` line, never a traceback."""

    def __init__(self, message: str) -> None:
        super().__init__(message)

    @property
    def template(self) -> str:
        """The message with its parameter references still marked (see `param`)."""
        return str(self.args[0]) if self.args else self.__class__.__name__

    @property
    def parameters(self) -> tuple[str, ...]:
        """The request parameters the message refers to, in order."""
        return tuple(_PARAM_RE.findall(self.template))

    def render(self, spell: Callable[[str], str]) -> str:
        """The message with every parameter reference spelled by `spell` (the CLI: its flag)."""
        return _PARAM_RE.sub(lambda m: spell(m.group(1)), self.template)

    @property
    def message(self) -> str:
        """The message, each parameter spelled as `parameter_spelling` says (by default its plain name)."""
        return self.render(_SPELLING.get() or (lambda name: name))

    def __str__(self) -> str:
        return self.message


class BadInput(GpupoolError):
    """A file, host name, fabric or answer from a tool is malformed, unknown or inconsistent."""


class BadRequest(GpupoolError):
    """The parameters of a request are invalid or contradict each other."""


class Unsatisfiable(GpupoolError):
    """A valid request that cannot be met (no placement, not enough GPUs)."""


class Unreachable(GpupoolError):
    """Slurm or a required tool is missing, unreachable or too slow."""


class Refused(GpupoolError):
    """Slurm (or a tool) ran and refused the request: what it said is the message."""


# The names before the domain hierarchy, kept so code written against them (other branches,
# scripts) keeps working; domain packages use the names above (tests/unit/test_layers.py checks).
InputError = BadInput
UsageError = BadRequest
InfeasibleError = Unsatisfiable
EnvError = Unreachable


def located(path: str, line: int | None, message: str) -> str:
    """Format `file:line: message` the way compilers do, so editors can jump to it."""
    return f"{path}:{line}: {message}" if line else f"{path}: {message}"
