"""State shared by all commands, passed through click's context (fakes are injected here in tests)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import click


@dataclass
class AppContext:
    debug: bool = False
    json: bool = False
    config_path: str | None = None
    # Factories return the real clients by default; tests swap them for fakes.
    factories: dict[str, Callable[[], Any]] = field(default_factory=dict)

    def make(self, name: str, default: Callable[[], Any]) -> Any:
        return self.factories.get(name, default)()

    def config(self) -> Any:
        from gpupool.config import load_config

        return load_config(self.config_path)


def app(ctx: click.Context | None = None) -> AppContext:
    ctx = ctx or click.get_current_context()
    root = ctx.find_root()
    if root.obj is None:
        root.obj = AppContext()
    return root.obj


def _set_json(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    if value:
        app(ctx).json = True
    return value


def json_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """`--json` on a command: one JSON document on stdout and nothing else there."""
    return click.option(
        "--json", "json_flag", is_flag=True, expose_value=False, callback=_set_json,
        is_eager=True, help="Print one JSON document on stdout instead of human output.",
    )(func)
