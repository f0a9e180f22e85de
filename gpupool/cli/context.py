"""State shared by all commands, passed through click's context (tests put fakes in its fields)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import click

from gpupool.config import Config, load_config

if TYPE_CHECKING:
    from gpupool.node.gpu import GpuSource
    from gpupool.node.hca import HcaSource
    from gpupool.pools.slurm_state import CommandRunner
    from gpupool.slurm.port import SlurmClient

# (tool name, arguments, timeout seconds) -> stdout: how `fabric audit --live` runs infiniband-diags.
IbdiagRunner = Callable[[str, list[str], float], str]


@dataclass
class AppContext:
    debug: bool = False
    json: bool = False
    config_path: str | None = None
    # Dependencies: None means "the real one, built when a command first needs it"; tests set fakes.
    slurm: SlurmClient | None = None
    slurm_runner: CommandRunner | None = None  # pools: Slurm admin commands, argv -> stdout
    user_exists: Callable[[str], bool] | None = None  # pools apply: is this a Unix user
    ibdiag: IbdiagRunner | None = None
    gpu_source: GpuSource | None = None
    hca_source: HcaSource | None = None

    def slurm_client(self) -> SlurmClient:
        """The Slurm port (`make_client()`'s backend unless a test put a fake here)."""
        if self.slurm is None:
            # Deferred: `gpupool --help` must not load the Slurm layer.
            from gpupool.app.deps import real_slurm_client

            self.slurm = real_slurm_client()
        return self.slurm

    def with_backend(self, document: dict[str, Any]) -> dict[str, Any]:
        """`document` plus `"backend"`: which Slurm backend served the command (when one did)."""
        name = getattr(self.slurm, "name", None) if self.slurm is not None else None
        return {**document, "backend": name} if isinstance(name, str) else document

    def command_runner(self) -> CommandRunner:
        """Slurm commands, argv -> stdout (the real runner unless a test put a fake in `slurm_runner`)."""
        if self.slurm_runner is None:
            from gpupool.app.deps import real_command_runner  # deferred like the Slurm client above

            self.slurm_runner = real_command_runner()
        return self.slurm_runner

    def config(self) -> Config:
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


def _set_debug(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
    if value:
        app(ctx).debug = True
    return value


def debug_option() -> click.Option:
    """`--debug` on a command (main.py adds it to every command): the traceback too, same exit code."""
    return click.Option(["--debug"], is_flag=True, expose_value=False, callback=_set_debug, is_eager=True,
                        help="Add the traceback to an error on stderr (the exit code stays the same).")


def debug_traceback(ctx: AppContext | None = None) -> None:
    """With --debug, the traceback of the exception being handled, on stderr (and nothing else changes)."""
    if (ctx or app()).debug:
        import traceback

        traceback.print_exc(file=sys.stderr)
