"""Man pages generated from the click definitions (checked in under man/, drift-tested)."""

from __future__ import annotations

import inspect
import os

import click

from gpupool import __version__
from gpupool.fsutil import atomic_write_text

EXIT_STATUS = [
    ("0", "success"),
    ("1", "the request cannot be satisfied (e.g. no placement exists)"),
    ("2", "usage error (bad option or argument)"),
    ("3", "environment error (Slurm or a required tool unreachable or missing)"),
    ("4", "input data error (malformed file, unknown host, inconsistent fabric)"),
]
MONITORING_STATUS = [("0", "OK"), ("1", "WARNING"), ("2", "CRITICAL"), ("3", "UNKNOWN (could not check)")]


def _esc(text: str) -> str:
    text = text.replace("\\", "\\\\").replace("-", "\\-")
    lines = []
    for line in text.splitlines():
        lines.append("\\&" + line if line.startswith((".", "'")) else line)
    return "\n".join(lines)


def _help(cmd: click.Command) -> str:
    return inspect.cleandoc((cmd.help or cmd.short_help or "").replace("\b\n", ""))


def _description(cmd: click.Command) -> list[str]:
    """The help text as roff paragraphs: each paragraph's source lines joined, so man fills them
    itself (a docstring's indentation and line breaks never reach the page as ragged lines)."""
    out: list[str] = []
    for paragraph in _help(cmd).split("\n\n"):
        words = " ".join(line.strip() for line in paragraph.splitlines() if line.strip())
        if words:
            out += [".PP"] if out else []
            out.append(_esc(words))
    return out


def _options(cmd: click.Command, ctx: click.Context) -> list[str]:
    out: list[str] = []
    records = [param.get_help_record(ctx) for param in cmd.params]
    # click caches each command's help option from the first context it saw; derive it here instead.
    if cmd.add_help_option and ctx.help_option_names:
        records.append((", ".join(ctx.help_option_names), "Show this message and exit."))
    for record in records:
        if record is None:
            continue
        names, help_text = record
        out += [".TP", f"\\fB{_esc(names)}\\fR", _esc(help_text or "")]
    return out


def _usage(cmd: click.Command, ctx: click.Context) -> str:
    return " ".join(cmd.collect_usage_pieces(ctx))


def _subcommands(group: click.Group, ctx: click.Context, path: str) -> list[str]:
    out: list[str] = []
    for name in group.list_commands(ctx):
        sub = group.get_command(ctx, name)
        if sub is None or sub.hidden:
            continue
        sub_ctx = click.Context(sub, info_name=name, parent=ctx, **sub.context_settings)
        full = f"{path} {name}"
        if isinstance(sub, click.Group):
            out += _subcommands(sub, sub_ctx, full)
            continue
        out += [".SS", f"\\fB{_esc(full)}\\fR {_esc(_usage(sub, sub_ctx))}", *_description(sub), ".PP"]
        opts = _options(sub, sub_ctx)
        if opts:
            out += opts
    return out


def render_page(cmd: click.Command, path: str, *, monitoring: bool = False, parent: click.Context | None = None) -> str:
    root = click.Context(cmd, info_name=path.split()[-1], parent=parent, **cmd.context_settings)
    title = path.replace(" ", "-").upper()
    lines = [f'.TH {title} 1 "" "gpupool {__version__}" "gpupool manual"', ".SH NAME",
             f"{_esc(path.replace(' ', '-'))} \\- {_esc((_help(cmd).splitlines() or [''])[0])}", ".SH SYNOPSIS",
             f"\\fB{_esc(path)}\\fR {_esc(_usage(cmd, root))}", ".SH DESCRIPTION", *_description(cmd)]
    opts = _options(cmd, root)
    if opts:
        lines += [".SH OPTIONS", *opts]
    if isinstance(cmd, click.Group):
        lines += [".SH COMMANDS", *_subcommands(cmd, root, path)]
    lines += [".SH EXIT STATUS"]
    for code, meaning in EXIT_STATUS:
        lines += [".TP", code, meaning]
    if monitoring:
        lines += [".PP", "Checks (fabric audit, node check) use monitoring codes instead:"]
        for code, meaning in MONITORING_STATUS:
            lines += [".TP", code, meaning]
    lines += [".SH ENVIRONMENT", ".TP", "GPUPOOL_FABRIC", "default fabric file", ".TP", "GPUPOOL_CONFIG",
              "config file (default /etc/gpupool/config.toml)", ".TP", "NO_COLOR", "disable colour",
              ".SH SEE ALSO", "gpupool(1), sbatch(1), slurm.conf(5), topology.conf(5), ibnetdiscover(8)", ""]
    return "\n".join(lines)


def all_pages() -> dict[str, str]:
    from gpupool.cli.main import cli

    ctx = click.Context(cli, info_name="gpupool", **cli.context_settings)
    pages = {"gpupool.1": render_page(cli, "gpupool")}
    for name in cli.list_commands(ctx):
        cmd = cli.get_command(ctx, name)
        if cmd is None:
            continue
        pages[f"gpupool-{name}.1"] = render_page(cmd, f"gpupool {name}", monitoring=name in ("fabric", "node"), parent=ctx)
    return pages


def write_pages(directory: str) -> list[str]:
    written = []
    for name, text in all_pages().items():
        path = os.path.join(directory, name)
        atomic_write_text(path, text)
        written.append(path)
    return written
