"""The slurm.conf fragment holding the partitions gpupool created, so they survive a restart.

Its `PartitionName=` lines are also gpupool's record of which partitions it owns: a partition
that is not in the fragment was made by someone else and is never changed or deleted.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from gpupool.errors import InputError

DEFAULT_FRAGMENT_NAME = "gpupool-partitions.conf"
HEADER = ("# Written by `gpupool pool apply`: partitions gpupool manages. Do not edit; it is rewritten.\n"
          "# slurm.conf must include this file so the partitions survive a slurmctld restart:\n"
          "#   include {path}\n")


@dataclass(frozen=True)
class Fragment:
    path: str
    text: str = ""
    lines: dict[str, str] = field(default_factory=dict)  # partition -> its PartitionName= line

    @property
    def owned(self) -> set[str]:
        return set(self.lines)


def fragment_path(option: str | None, config_value: str | None, slurm_conf: str | None) -> str:
    """--fragment, else config [pools] slurm_conf_fragment, else next to slurm.conf."""
    if option:
        return option
    if config_value:
        return config_value
    conf = slurm_conf or os.environ.get("SLURM_CONF") or "/etc/slurm/slurm.conf"
    return str(Path(conf).parent / DEFAULT_FRAGMENT_NAME)


def read_fragment(path: str) -> Fragment:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return Fragment(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the partition fragment: {exc}") from None
    lines: dict[str, str] = {}
    for line in text.splitlines():
        match = re.match(r"\s*PartitionName=(\S+)", line)
        if match:
            lines[match.group(1)] = line.strip()
    return Fragment(path, text, lines)


def render_fragment(path: str, lines: dict[str, str]) -> str:
    body = "".join(f"{lines[name]}\n" for name in sorted(lines))
    return HEADER.format(path=path) + body


def conf_includes(slurm_conf: str, fragment: str) -> bool | None:
    """Whether slurm.conf has an `include` of the fragment; None when slurm.conf cannot be read."""
    try:
        text = Path(slurm_conf).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    conf_dir = Path(slurm_conf).parent
    target = Path(fragment).resolve()
    for line in text.splitlines():
        match = re.match(r"\s*include\s+(\S+)", line, re.IGNORECASE)
        if not match:
            continue
        named = Path(match.group(1))
        if (named if named.is_absolute() else conf_dir / named).resolve() == target:
            return True
    return False
