"""Monitoring commands (`node check`, `fabric audit`) exit 0-3 only: usage errors become UNKNOWN (3)."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from gpupool.cli.errors import CliError
from gpupool.errors import MON_UNKNOWN


class MonitoringUsageError(CliError):
    """A bad option of a monitoring command: reported as one error line, exit 3 (UNKNOWN, not CRITICAL)."""

    exit_code = MON_UNKNOWN


def _wants_json(ctx: click.Context | None, args: list[str]) -> bool:
    root = ctx.find_root() if ctx is not None else None
    return "--json" in args or bool(root is not None and getattr(root.obj, "json", False))


class MonitoringCommand(click.Command):
    """click's usage code 2 would read as CRITICAL to a monitor or a Prolog: map it to 3 (UNKNOWN)."""

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        try:
            return super().make_context(info_name, list(args), parent=parent, **extra)
        except click.UsageError as exc:
            message = exc.format_message()
            if _wants_json(parent, list(args)):
                # Callers parsing --json still get one document with the monitoring status.
                sys.stdout.write(json.dumps({"status": "UNKNOWN", "findings": [],
                                             "error": f"usage: {message}"}) + "\n")
            where = (exc.ctx.command_path if exc.ctx is not None else info_name or self.name or "").removeprefix(
                "gpupool ")
            raise MonitoringUsageError(f"{where}: {message} (UNKNOWN: nothing was checked; see 'gpupool {where} "
                                       "--help')") from None
