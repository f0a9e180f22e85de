"""How many GPUs this node must have, from the node itself: slurm.conf/gres.conf and the PCI bus.

No Slurm command: a Prolog that asks slurmctld loads the controller at every job start and stalls
every job when the controller is slow (Slurm's prolog guidance), so only local files are read.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# Where slurmd finds its config: SLURM_CONF, the usual /etc paths, and configless slurmd's cache
# (`SlurmdSpoolDir/conf-cache`; Slurm >= 23.02 also links it under /run/slurm/conf).
DEFAULT_CONF_DIRS = ("/etc/slurm", "/usr/local/etc/slurm", "/etc/slurm-llnl",
                     "/var/spool/slurmd/conf-cache", "/var/spool/slurm/d/conf-cache", "/run/slurm/conf")

NVIDIA_VENDOR = "0x10de"
# PCI class 0x0300xx (VGA controller) and 0x0302xx (3D controller: every datacenter GPU).
# NVSwitches are vendor 0x10de too but class 0x0680 (bridge), so they are not counted.
GPU_CLASS_PREFIXES = ("0x0300", "0x0302")


@dataclass(frozen=True)
class ConfiguredGpus:
    count: int
    source: str  # the file (and line) it came from


def pci_nvidia_gpus(sysfs_root: str | os.PathLike[str]) -> list[str] | None:
    """Bus ids of NVIDIA GPUs under <root>/sys/bus/pci/devices; None when that directory is missing."""
    devices = Path(sysfs_root) / "sys/bus/pci/devices"
    try:
        entries = sorted(devices.iterdir())
    except OSError:
        return None
    found: list[str] = []
    for entry in entries:
        try:
            vendor = (entry / "vendor").read_text().strip().lower()
            if vendor != NVIDIA_VENDOR:
                continue
            pci_class = (entry / "class").read_text().strip().lower()
        except OSError:
            continue
        if pci_class.startswith(GPU_CLASS_PREFIXES):
            found.append(entry.name)
    return found


def expand_hostlist(expression: str) -> list[str]:
    """Slurm hostlist `gpu[001-003,010],cpu1` -> names (bracket ranges keep their zero padding)."""
    names: list[str] = []
    for part in _split_top_level(expression.strip()):
        names.extend(_expand_one(part))
    return names


def _split_top_level(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        depth += (char == "[") - (char == "]")
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p for p in parts if p]


def _expand_one(text: str) -> list[str]:
    match = re.match(r"([^\[]*)\[([^\]]*)\](.*)$", text)
    if not match:
        return [text]
    prefix, ranges, rest = match.groups()
    result: list[str] = []
    for item in ranges.split(","):
        low, _, high = item.partition("-")
        if not low.isdigit() or (high and not high.isdigit()):
            return [text]
        width = len(low)
        for value in range(int(low), int(high or low) + 1):
            result.extend(f"{prefix}{value:0{width}d}{tail}" for tail in _expand_one(rest))
    return result


def _config_lines(path: Path) -> list[str]:
    """Lines without comments, continuation lines joined."""
    text = path.read_text(errors="replace")
    joined = re.sub(r"\\\n", " ", text)
    return [line.split("#", 1)[0].strip() for line in joined.splitlines() if line.split("#", 1)[0].strip()]


def _pairs(line: str) -> dict[str, str]:
    return {key.lower(): value for key, value in re.findall(r"(\w+)=(\S+)", line)}


def gres_gpu_count(gres: str) -> int | None:
    """'gpu:a100:8(S:0-1),nic:2' -> 8; 'gpu:2,gpu:v100:1' -> 3; None without a gpu gres."""
    total, found = 0, False
    for item in _split_top_level(gres):
        fields = item.split("(")[0].split(":")
        if fields[0].removeprefix("gres/") != "gpu" or len(fields) < 2:
            continue
        count = fields[-1]
        multiplier = {"k": 1024, "m": 1024**2}.get(count[-1:].lower(), 1)
        digits = count[:-1] if multiplier != 1 else count
        if digits.isdigit():
            total += int(digits) * multiplier
            found = True
    return total if found else None


def slurm_conf_gpus(node: str, path: Path) -> int | None:
    """The node's gpu gres from slurm.conf (`NodeName=... Gres=gpu:8`, honouring NodeName=DEFAULT)."""
    default: str | None = None
    for line in _config_lines(path):
        pairs = _pairs(line)
        names = pairs.get("nodename")
        if names is None:
            continue
        if names.upper() == "DEFAULT":
            default = pairs.get("gres", default)
            continue
        if node in expand_hostlist(names):
            gres = pairs.get("gres", default)
            return gres_gpu_count(gres) if gres else None
    return None


def gres_conf_gpus(node: str, path: Path) -> int | None:
    """GPUs gres.conf gives this node (`Name=gpu File=/dev/nvidia[0-7]` or `Count=`); None if none."""
    total, found = 0, False
    for line in _config_lines(path):
        pairs = _pairs(line)
        if pairs.get("name") != "gpu":
            continue
        if "nodename" in pairs and node not in expand_hostlist(pairs["nodename"]):
            continue
        if "count" in pairs and pairs["count"].isdigit():
            total += int(pairs["count"])
        elif "file" in pairs:
            total += len(expand_hostlist(pairs["file"]))
        else:
            continue
        found = True
    return total if found else None


def conf_dirs(env: Mapping[str, str], configured: Sequence[str] | None) -> list[Path]:
    """Directories to look in: SLURM_CONF's directory first, then the configured (or default) ones."""
    dirs: list[Path] = []
    if env.get("SLURM_CONF"):
        dirs.append(Path(env["SLURM_CONF"]).parent)
    dirs.extend(Path(d) for d in (configured if configured is not None else DEFAULT_CONF_DIRS))
    return dirs


def configured_gpus(node: str, dirs: Sequence[Path]) -> ConfiguredGpus | None:
    """The first slurm.conf (then gres.conf) that names this node's GPUs."""
    for directory in dirs:
        for name, reader in (("slurm.conf", slurm_conf_gpus), ("gres.conf", gres_conf_gpus)):
            path = directory / name
            try:
                count = reader(node, path)
            except OSError:
                continue
            if count is not None:
                return ConfiguredGpus(count, str(path))
    return None


def job_gpus_on_node(env: Mapping[str, str]) -> int | None:
    """SLURM_GPUS_ON_NODE (set for the job by slurmd), when it is a number."""
    value = env.get("SLURM_GPUS_ON_NODE", "").strip()
    return int(value) if value.isdigit() else None
