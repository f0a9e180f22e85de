"""What the last Prolog/Epilog check saw (counter values, kernel log position), for deltas between runs."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STATE_FILE = "node-check-state.json"
BOOT_ID = "/proc/sys/kernel/random/boot_id"


@dataclass
class NodeState:
    boot_id: str = ""
    kmsg_seq: int | None = None
    counters: dict[str, int] = field(default_factory=dict)
    written_at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"boot_id": self.boot_id, "kmsg_seq": self.kmsg_seq, "counters": self.counters,
                "written_at": self.written_at}


def current_boot_id(path: str = BOOT_ID) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


def load_state(state_dir: str, boot_id: str) -> NodeState | None:
    """The previous state of this boot; None when absent, unreadable or from an earlier boot."""
    try:
        raw = json.loads((Path(state_dir) / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(raw, dict) or raw.get("boot_id") != boot_id:
        return None  # counters and kernel log restart at boot
    counters = raw.get("counters")
    seq = raw.get("kmsg_seq")
    return NodeState(boot_id=boot_id, kmsg_seq=seq if isinstance(seq, int) else None,
                     counters={k: v for k, v in counters.items() if isinstance(v, int)}
                     if isinstance(counters, dict) else {},
                     written_at=float(raw.get("written_at") or 0.0))


def save_state(state_dir: str, state: NodeState) -> None:
    """Replace the state file by rename (raises OSError; the caller reports it).

    No fsync: it would make every job start wait on the disk, and a state file lost in a crash
    only means the next run compares counters with their value since boot.
    """
    directory = Path(state_dir)
    directory.mkdir(parents=True, exist_ok=True)
    state.written_at = time.time()
    target = directory / STATE_FILE
    partial = directory / f".{STATE_FILE}.{os.getpid()}.tmp"
    try:
        partial.write_text(json.dumps(state.to_json(), sort_keys=True) + "\n")
        os.replace(partial, target)
    except OSError:
        partial.unlink(missing_ok=True)
        raise
