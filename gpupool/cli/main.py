"""Entry point: the `gpupool` click group with lazily imported command groups."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from gpupool import __version__
from gpupool.cli.context import AppContext, debug_option, debug_traceback
from gpupool.cli.errors import exit_code_for, flag_spelling, message_for
from gpupool.cli.strict import reject_repeated_options
from gpupool.errors import EXIT_USAGE, GpupoolError

# Subcommands are imported on first use so `gpupool --help` never loads numba or Slurm clients.
LAZY_COMMANDS: dict[str, tuple[str, str, str]] = {
    "fabric": ("gpupool.cli.fabric", "fabric", "Discover, generate, show, export and audit the InfiniBand fabric."),
    "plan": ("gpupool.cli.plan", "plan", "Compute a minimal-hop GPU allocation."),
    "submit": ("gpupool.cli.submit", "submit", "Plan, then submit a batch job on the planned nodes."),
    "jobs": ("gpupool.cli.jobs", "jobs", "Running jobs with their placement cost."),
    "explain": ("gpupool.cli.jobs", "explain", "Why a pending job waits, and the best placement now."),
    "pool": ("gpupool.cli.pool", "pool", "Declarative GPU pools and fair-share queues."),
    "node": ("gpupool.cli.node", "node", "Node-side health checks and GPU<->HCA affinity."),
    "metrics": ("gpupool.cli.metrics", "metrics", "Fragmentation, pool GPUs and audit status for Prometheus."),
    "report": ("gpupool.cli.report", "report", "One self-contained HTML page: fabric, fragmentation, lending, audit."),
    "status": ("gpupool.cli.status", "status", "Fragmentation: largest job per leaf, pod and fabric; stranded GPUs."),
    "simulate": ("gpupool.cli.simulate", "simulate", "Replay a workload under several policies, side by side."),
}


class CommandLoadError(RuntimeError):
    """A command's own module (or a first-party module it imports) failed to import: a broken install."""


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(LAZY_COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in LAZY_COMMANDS:
            module_name, attr, _help = LAZY_COMMANDS[cmd_name]
            try:
                module = importlib.import_module(module_name)
            except ImportError as exc:  # never "No such command": the command exists, its code is broken
                raise CommandLoadError(f"command {cmd_name!r} cannot be loaded ({module_name}: {exc}); "
                                       "the gpupool installation is broken") from exc
            return reject_repeated_options(with_debug_option(getattr(module, attr)))
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Short help comes from the table above, so listing commands imports nothing.
        rows = [(name, LAZY_COMMANDS[name][2]) for name in sorted(LAZY_COMMANDS)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="gpupool")
@click.option("--debug", is_flag=True,
              help="Add the traceback to an error on stderr (the exit code stays the same; accepted anywhere).")
@click.option("--json", "json_flag", is_flag=True, help="JSON output for every command.")
@click.option("--config", "config_path", metavar="PATH", envvar="GPUPOOL_CONFIG",
              help="Config file (default $GPUPOOL_CONFIG, else /etc/gpupool/config.toml).")
@click.pass_context
def cli(ctx: click.Context, debug: bool, json_flag: bool, config_path: str | None) -> None:
    """gpupool: topology-aware GPU pooling for Slurm clusters on InfiniBand fabrics."""
    obj = ctx.ensure_object(AppContext)
    obj.debug = obj.debug or debug
    obj.json = obj.json or json_flag
    obj.config_path = config_path


reject_repeated_options(cli)


def with_debug_option(command: click.Command) -> click.Command:
    """`--debug` on `command` and every subcommand, so it is accepted anywhere on the command line."""
    if not any(isinstance(p, click.Option) and "--debug" in p.opts for p in command.params):
        command.params.append(debug_option())
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            with_debug_option(sub)
    return command


# sbatch's spellings, for the hint on an unknown option (`gpupool status -N 4`: did you mean --nodes?).
SBATCH_SPELLINGS = {"-N": "--nodes", "-G": "--gpus", "-p": "--partition", "-x": "--exclude",
                    "-w": "--nodelist", "-n": "--ntasks"}
SBATCH_HINT = ("gpupool plan and submit take sbatch's spellings: -N/--nodes, -G/--gpus, --gpus-per-node, "
               "--gres=gpu[:type]:K, -p/--partition, --ntasks-per-node, -x/--exclude")


def usage_line(exc: click.UsageError) -> str:
    """click's usage error as one line: where, what, a hint, and where help is."""
    message = " ".join(exc.format_message().split())
    command = exc.ctx.command_path if exc.ctx is not None else "gpupool"
    where = command.removeprefix("gpupool").strip()
    hints: list[str] = []
    if isinstance(exc, click.NoSuchOption):
        long_name = SBATCH_SPELLINGS.get(exc.option_name.split("=", 1)[0])
        if long_name and exc.ctx is not None and any(long_name in p.opts for p in exc.ctx.command.params
                                                     if isinstance(p, click.Option)):
            message = message.rstrip(".") + f"; did you mean {long_name}?"
        if where.split(" ")[0] in ("plan", "submit"):
            hints.append(SBATCH_HINT)
    hints.append(f"see '{command} --help'")
    message = message.rstrip(".")
    return f"{where + ': ' if where else ''}{message} ({'; '.join(hints)})"


def report_failure(context: AppContext, message: str) -> None:
    """The one error path: the traceback first when --debug asked for it, then one error line."""
    debug_traceback(context)
    sys.stderr.write(f"gpupool: error: {message}\n")


def main(argv: list[str] | None = None, obj: AppContext | None = None) -> int:
    """Run the CLI in-process and return its exit code (tests call this directly).

    The exit code never depends on --debug: it only adds the traceback on stderr."""
    args = list(sys.argv[1:] if argv is None else argv)
    context = obj or AppContext()
    with flag_spelling():  # every message names the flag where a request parameter is involved
        return _main(args, context)


def _main(args: list[str], context: AppContext) -> int:
    try:
        result = cli.main(args=args, prog_name="gpupool", standalone_mode=False, obj=context)
        return int(result) if isinstance(result, int) else 0
    except GpupoolError as exc:  # the domain's typed errors: message and exit code from cli.errors
        report_failure(context, message_for(exc))
        return exit_code_for(exc)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.UsageError as exc:
        sys.stderr.write(f"gpupool: error: {usage_line(exc)}\n")
        return exc.exit_code if exc.exit_code is not None else EXIT_USAGE
    except click.ClickException as exc:
        report_failure(context, " ".join(exc.format_message().split()))
        return exc.exit_code if exc.exit_code is not None else EXIT_USAGE
    except click.exceptions.Abort:
        sys.stderr.write("gpupool: error: aborted\n")
        return 130
    except KeyboardInterrupt:
        sys.stderr.write("gpupool: error: interrupted\n")
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # noqa: BLE001 - last line of defence: one line (and the traceback with --debug)
        hint = "" if context.debug else " (rerun with --debug)"
        report_failure(context, f"internal error: {type(exc).__name__}: {exc}{hint}")
        return 70


def run() -> Any:
    sys.exit(main())


if __name__ == "__main__":
    run()
