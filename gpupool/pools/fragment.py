"""The slurm.conf fragment holding the partitions gpupool created, so they survive a restart.

Its `PartitionName=` lines are also gpupool's record of which partitions it owns: a partition
that is not in the fragment was made by someone else and is never changed or deleted.

Intent journal (`<fragment>.journal`, JSON, written with fsync before Slurm is changed): the
partitions `pool apply` is about to create. If apply is killed, times out while slurmctld still
acts, or crashes before the fragment is rewritten, the next run reads the journal and adopts the
partitions it names that exist in Slurm, then completes; a run that finishes without error
removes the journal. QOS and accounts need no journal: gpupool marks them when it creates them.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from gpupool.errors import BadInput

DEFAULT_FRAGMENT_NAME = "gpupool-partitions.conf"
HEADER = ("# Written by `gpupool pool apply`: partitions gpupool manages. Do not edit; it is rewritten.\n"
          "# slurm.conf must include this file so the partitions survive a slurmctld restart:\n"
          "#   include {path}\n")


@dataclass(frozen=True)
class Fragment:
    path: str
    text: str = ""
    lines: dict[str, str] = field(default_factory=dict)  # partition -> its PartitionName= line
    intended: dict[str, str] = field(default_factory=dict)  # journal: partitions an earlier run was creating

    @property
    def owned(self) -> set[str]:
        return set(self.lines) | set(self.intended)


JOURNAL_VERSION = 1


def journal_path(path: str) -> str:
    return f"{path}.journal"


def write_intent(fragment: Fragment, partitions: dict[str, str]) -> None:
    """Record (fsync'd, atomically) the partitions about to be created, before Slurm is touched."""
    import json

    from gpupool.fsutil import atomic_write_text

    merged = {**fragment.intended, **partitions}
    doc = {"version": JOURNAL_VERSION, "fragment": fragment.path, "create_partitions": merged}
    atomic_write_text(journal_path(fragment.path), json.dumps(doc, indent=1, sort_keys=True) + "\n", mode=0o644)


def clear_intent(fragment: Fragment) -> None:
    import contextlib

    with contextlib.suppress(FileNotFoundError):
        os.unlink(journal_path(fragment.path))


def _read_intent(path: str) -> dict[str, str]:
    from gpupool.fsutil import read_input_bytes
    from gpupool.validate import SLURM_NAME_RE, load_json_text

    journal = journal_path(path)
    if not os.path.exists(journal):
        return {}
    raw = read_input_bytes(journal, "pool apply journal")
    try:
        doc = load_json_text(raw.decode("utf-8"), journal)
    except UnicodeDecodeError:
        doc = None
    partitions = doc.get("create_partitions") if isinstance(doc, dict) else None
    if not isinstance(partitions, dict) or not all(
            isinstance(k, str) and SLURM_NAME_RE.fullmatch(k) and isinstance(v, str) and "\n" not in v
            for k, v in partitions.items()):
        raise BadInput(f"{journal}: damaged pool apply journal; if no apply was interrupted, remove it")
    return partitions


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
        return Fragment(path, intended=_read_intent(path))
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: cannot read the partition fragment: {exc}") from None
    lines: dict[str, str] = {}
    for line in text.splitlines():
        match = re.match(r"\s*PartitionName=(\S+)", line)
        if match:
            lines[match.group(1)] = line.strip()
    return Fragment(path, text, lines, _read_intent(path))


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
