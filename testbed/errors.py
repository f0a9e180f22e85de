"""The testbed's one error type and its exit codes."""

from __future__ import annotations

EXIT_OK, EXIT_DOWN, EXIT_USAGE, EXIT_ENV = 0, 1, 2, 3


class TestbedError(Exception):
    """An expected failure: one line for stderr, plus an exit code and optional log tail."""

    __test__ = False  # not a pytest test class despite the name

    def __init__(self, message: str, exit_code: int = EXIT_DOWN, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.detail = detail
