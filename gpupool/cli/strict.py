"""A single-value option given twice is a usage error (exit 2), never silently the last one.

click keeps the last value of a repeated option that is not `multiple=True`; `fabric discover
--ibnetdiscover A --ibnetdiscover B` once read only B. Options that may be repeated say so with
`multiple=True`; every other value option refuses a second occurrence. Flags and counters may repeat."""

from __future__ import annotations

from collections import Counter
from typing import Any

import click


def _repeated(command: click.Command, ctx: click.Context, args: list[str]) -> None:
    try:
        _opts, _rest, order = command.make_parser(ctx).parse_args(args=list(args))
    except click.ClickException:
        return  # click reports a bad command line itself, in its own words
    counts = Counter(id(p) for p in order if isinstance(p, click.Option))
    for param in order:
        if not isinstance(param, click.Option) or counts[id(param)] < 2:
            continue
        if param.multiple or param.count or param.is_flag:
            continue
        names = "/".join(param.opts)
        raise click.UsageError(f"option {names} was given {counts[id(param)]} times; it takes one value "
                               "(a repeated option is never silently dropped)", ctx)


def reject_repeated_options(command: click.Command) -> click.Command:
    """Wrap COMMAND's (and its subcommands') argument parsing with the repeated-option check."""
    if getattr(command, "_gpupool_strict", False):
        return command
    original = command.parse_args

    def parse_args(ctx: click.Context, args: list[str]) -> Any:
        if not ctx.resilient_parsing:
            _repeated(command, ctx, args)
        return original(ctx, args)

    command.parse_args = parse_args  # type: ignore[method-assign]
    command._gpupool_strict = True  # type: ignore[attr-defined]
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            reject_repeated_options(sub)
    return command
