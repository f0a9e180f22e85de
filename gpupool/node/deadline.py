"""Run a blocking collector with a hard deadline (a hung driver call must not hang the Prolog)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Progress:
    """What the worker is doing right now, so a timeout can name the hung call."""

    def __init__(self) -> None:
        self.step = "starting"

    def at(self, step: str) -> None:
        self.step = step


class DeadlineResult(Generic[T]):
    def __init__(self, value: T | None, error: BaseException | None, timed_out: bool, step: str) -> None:
        self.value = value
        self.error = error
        self.timed_out = timed_out
        self.step = step


def call_with_deadline(work: Callable[[Progress], T], timeout: float) -> DeadlineResult[T]:
    """Run work(progress) in a daemon thread; give up after `timeout` seconds.

    A C call that never returns cannot be interrupted, so the thread is abandoned: being a daemon
    thread it does not keep the process alive, and the caller exits normally.
    """
    progress = Progress()
    box: dict[str, object] = {}

    def runner() -> None:
        try:
            box["value"] = work(progress)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, which decides
            box["error"] = exc

    thread = threading.Thread(target=runner, name="gpupool-collect", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        return DeadlineResult(None, None, True, progress.step)
    error = box.get("error")
    return DeadlineResult(box.get("value"), error if isinstance(error, BaseException) else None,  # type: ignore[arg-type]
                          False, progress.step)
