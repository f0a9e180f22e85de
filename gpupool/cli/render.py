"""Output helpers: JSON on stdout, rich on terminals, plain text otherwise; NO_COLOR honoured."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from rich.console import Console


def _want_color(stream: Any) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    return bool(getattr(stream, "isatty", lambda: False)())


def _plain_width() -> int:
    # Not a terminal: never crop trees and tables; $COLUMNS still wins when set.
    try:
        return int(os.environ.get("COLUMNS", "200"))
    except ValueError:
        return 200


def stdout_console() -> Console:
    color = _want_color(sys.stdout)
    tty = bool(getattr(sys.stdout, "isatty", lambda: False)())
    return Console(file=sys.stdout, no_color=not color, force_terminal=color or None,
                   color_system="auto" if color else None, highlight=False,
                   width=None if tty else _plain_width())


def stderr_console() -> Console:
    color = _want_color(sys.stderr)
    return Console(file=sys.stderr, no_color=not color, force_terminal=color or None,
                   color_system="auto" if color else None, highlight=False, soft_wrap=True)


def emit_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2, sort_keys=False, default=_json_default))
    sys.stdout.write("\n")
    sys.stdout.flush()


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def warn(message: str) -> None:
    sys.stderr.write(f"gpupool: warning: {message}\n")


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """`1 GPU`, `2 GPUs`, `1 switch`, `3 switches`: never "1 GPUs"."""
    if count == 1:
        return f"{count} {noun}"
    return f"{count} {plural or (noun + 'es' if noun.endswith(('s', 'sh', 'ch', 'x')) else noun + 's')}"
