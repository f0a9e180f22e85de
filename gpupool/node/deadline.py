"""Run a blocking collector with a hard deadline (a hung driver call must not hang the Prolog)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")
ValueT = TypeVar("ValueT", covariant=True)  # a result of a narrower value is a result of a wider one (read-only use)


class Progress:
    """What the worker is doing right now, so a timeout can name the hung call."""

    def __init__(self) -> None:
        self.step = "starting"

    def at(self, step: str) -> None:
        self.step = step


class DeadlineResult(Generic[ValueT]):
    def __init__(self, value: ValueT | None, error: BaseException | None, timed_out: bool, step: str) -> None:
        self.value = value
        self.error = error
        self.timed_out = timed_out
        self.step = step


class Pending(Generic[T]):
    """A collector running in its own thread; `result()` waits at most until its deadline."""

    def __init__(self, work: Callable[[Progress], T], timeout: float) -> None:
        self.progress = Progress()
        self.box: dict[str, object] = {}
        self.deadline = time.monotonic() + timeout

        def runner() -> None:
            try:
                self.box["value"] = work(self.progress)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller, which decides
                self.box["error"] = exc

        self.thread = threading.Thread(target=runner, name="gpupool-collect", daemon=True)
        self.thread.start()

    def result(self) -> DeadlineResult[T]:
        self.thread.join(max(0.0, self.deadline - time.monotonic()))
        if self.thread.is_alive():
            return DeadlineResult(None, None, True, self.progress.step)
        error = self.box.get("error")
        return DeadlineResult(self.box.get("value"),  # type: ignore[arg-type]
                              error if isinstance(error, BaseException) else None, False, self.progress.step)


def start_with_deadline(work: Callable[[Progress], T], timeout: float) -> Pending[T]:
    """Start work(progress) now, so several sources run side by side, each with its own deadline."""
    return Pending(work, timeout)


def call_with_deadline(work: Callable[[Progress], T], timeout: float) -> DeadlineResult[T]:
    """Run work(progress) in a daemon thread; give up after `timeout` seconds.

    A C call that never returns cannot be interrupted, so the thread is abandoned: being a daemon
    thread it does not keep the process alive, and the caller exits normally.
    """
    return start_with_deadline(work, timeout).result()
