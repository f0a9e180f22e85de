"""HCA port facts from sysfs, `ibstat` or pyverbs, behind the small `HcaSource` protocol."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Protocol

from gpupool.node.facts import CollectError, HcaPort

# Physical port states as numbered by the IB spec (sysfs prints "5: LinkUp").
PHYS_STATES = {1: "Sleep", 2: "Polling", 3: "Disabled", 4: "PortConfigurationTraining",
               5: "LinkUp", 6: "LinkErrorRecovery", 7: "PhyTest"}
PORT_STATES = {1: "DOWN", 2: "INIT", 3: "ARMED", 4: "ACTIVE", 5: "ACTIVE_DEFER"}


class HcaUnavailable(Exception):
    """The HCA source cannot be read (tool missing, failed or timed out)."""


class HcaSource(Protocol):
    name: str

    def ports(self) -> list[HcaPort]:
        ...


def normalise_link_layer(text: str) -> str:
    """ibstat says "IB" or "InfiniBand", "ETH" or "Ethernet": use the sysfs spelling."""
    value = text.strip()
    return {"ib": "InfiniBand", "infiniband": "InfiniBand", "eth": "Ethernet",
            "ethernet": "Ethernet", "": "InfiniBand"}.get(value.lower(), value)


def _strip_number(text: str) -> str:
    """'4: ACTIVE' -> 'ACTIVE'."""
    return text.split(":", 1)[1].strip() if ":" in text else text.strip()


def normalise_guid(text: str) -> str:
    """sysfs '946d:ae03:00a1:b2c3' or ibstat '0x946dae0300a1b2c3' -> '0x946dae0300a1b2c3'."""
    digits = text.strip().lower().removeprefix("0x").replace(":", "")
    return f"0x{int(digits, 16):016x}" if digits and all(c in "0123456789abcdef" for c in digits) else ""


def parse_rate(text: str) -> float | None:
    """'200 Gb/sec (4X HDR)' or '200' -> 200.0."""
    match = re.match(r"\s*([0-9]+(?:\.[0-9]+)?)", text)
    return float(match.group(1)) if match else None


class SysfsHcaSource:
    """/sys/class/infiniband/<hca>/ports/<n>/{state,phys_state,rate,link_layer} under `root`."""

    name = "sysfs"

    def __init__(self, root: str | os.PathLike[str] = "/") -> None:
        self.base = Path(root) / "sys/class/infiniband"

    def available(self) -> bool:
        return self.base.is_dir() and any(self.base.iterdir())

    def ports(self) -> list[HcaPort]:
        if not self.base.is_dir():
            raise HcaUnavailable(f"{self.base} does not exist (no RDMA devices or driver not loaded)")
        found: list[HcaPort] = []
        for hca_dir in sorted(self.base.iterdir()):
            ports_dir = hca_dir / "ports"
            if not ports_dir.is_dir():
                continue
            for port_dir in sorted(ports_dir.iterdir(), key=lambda p: int(p.name) if p.name.isdigit() else 0):
                if not port_dir.name.isdigit():
                    continue
                state = read_sysfs(port_dir / "state")
                phys_state = read_sysfs(port_dir / "phys_state")
                found.append(HcaPort(
                    hca=hca_dir.name,
                    port=int(port_dir.name),
                    # An unreadable attribute is "could not check" (UNKNOWN), never a down port.
                    state=None if state is None else _strip_number(state).upper(),
                    phys_state=None if phys_state is None else _strip_number(phys_state),
                    rate_gbps=parse_rate(read_sysfs(port_dir / "rate") or ""),
                    link_layer=normalise_link_layer(read_sysfs(port_dir / "link_layer") or ""),
                    counters=read_counters(port_dir / "counters"),
                    node_guid=normalise_guid(read_sysfs(hca_dir / "node_guid") or ""),
                ))
        return found


# Error counters worth a look (IB spec PortCounters; sysfs names). Deltas between runs are checked.
HCA_COUNTERS = ("link_downed", "link_error_recovery", "symbol_error", "port_rcv_errors")


def read_counters(directory: Path) -> dict[str, int]:
    """The HCA_COUNTERS present and readable under ports/<n>/counters (mlx5 has them all)."""
    values: dict[str, int] = {}
    for name in HCA_COUNTERS:
        text = read_sysfs(directory / name)
        if text is not None and text.isdigit():
            values[name] = int(text)
    return values


def read_sysfs(path: Path) -> str | None:
    """A sysfs attribute, stripped; "" when absent, None when present but unreadable."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return ""
    except OSError:
        return None


def parse_ibstat(text: str) -> list[HcaPort]:
    """Ports from `ibstat` output (blocks `CA 'name'` ... `Port N:` ... `State: Active`)."""
    found: list[HcaPort] = []
    hca = ""
    port: int | None = None
    values: dict[str, str] = {}
    guid = ""

    def flush() -> None:
        if hca and port is not None:
            found.append(HcaPort(
                hca=hca, port=port,
                state=values.get("state", "").upper(),
                phys_state=values.get("physical state", ""),
                rate_gbps=parse_rate(values.get("rate", "")),
                link_layer=normalise_link_layer(values.get("link layer", "")),
                node_guid=guid,
            ))

    for raw in text.splitlines():
        line = raw.strip()
        ca = re.match(r"CA '([^']+)'", line)
        if ca:
            flush()
            hca, port, values, guid = ca.group(1), None, {}, ""
            continue
        port_match = re.match(r"Port (\d+):$", line)
        if port_match:
            flush()
            port, values = int(port_match.group(1)), {}
            continue
        if port is None and line.lower().startswith("node guid:"):
            guid = normalise_guid(line.split(":", 1)[1])
        if port is not None and ":" in line:
            key, value = line.split(":", 1)
            values[key.strip().lower()] = value.strip()
    flush()
    return found


class IbstatHcaSource:
    """Runs `ibstat` (honours LD_PRELOAD, so it also works under ibsim-run) with a timeout."""

    name = "ibstat"

    def __init__(self, timeout: float = 3.0, command: str = "ibstat") -> None:
        self.timeout = timeout
        self.command = command

    def available(self) -> bool:
        return shutil.which(self.command) is not None

    def ports(self) -> list[HcaPort]:
        try:
            done = subprocess.run([self.command], capture_output=True, text=True,
                                  timeout=self.timeout, stdin=subprocess.DEVNULL)
        except FileNotFoundError:
            raise HcaUnavailable(f"{self.command} not found") from None
        except subprocess.TimeoutExpired:
            raise HcaUnavailable(f"{self.command} did not answer within {self.timeout:g} s") from None
        if done.returncode != 0:
            detail = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise HcaUnavailable(f"{self.command} failed (exit {done.returncode}): {detail}")
        return parse_ibstat(done.stdout)


class PyverbsHcaSource:
    """rdma-core's Python bindings, where installed (`pip install gpupool[verbs]`)."""

    name = "pyverbs"

    # ibv_port_attr active_speed codes -> Gb/s per lane; width codes -> lanes.
    _SPEED = {1: 2.5, 2: 5.0, 4: 10.0, 8: 10.0, 16: 14.0, 32: 25.0, 64: 50.0, 128: 100.0}
    _WIDTH = {1: 1, 2: 4, 4: 8, 8: 12, 16: 2}

    def available(self) -> bool:
        try:
            import pyverbs.device  # noqa: F401
        except ImportError:
            return False
        return True

    def ports(self) -> list[HcaPort]:
        import pyverbs.device as verbs_device

        found: list[HcaPort] = []
        for device in verbs_device.get_device_list():
            name = device.name.decode() if isinstance(device.name, bytes) else str(device.name)
            with verbs_device.Context(name=name) as context:
                for port in range(1, context.query_device().phys_port_cnt + 1):
                    attr = context.query_port(port)
                    rate = self._SPEED.get(attr.active_speed, 0.0) * self._WIDTH.get(attr.active_width, 0)
                    found.append(HcaPort(
                        hca=name, port=port, state=PORT_STATES.get(attr.state, str(attr.state)),
                        phys_state=PHYS_STATES.get(attr.phys_state, str(attr.phys_state)),
                        rate_gbps=rate or None,
                        link_layer="Ethernet" if attr.link_layer == 2 else "InfiniBand",
                    ))
        return found


def choose_source(kind: str, sysfs_root: str = "/", ibstat_timeout: float = 3.0) -> HcaSource | None:
    """`auto`: sysfs if it lists devices, else ibstat if installed, else pyverbs, else none."""
    sysfs = SysfsHcaSource(sysfs_root)
    ibstat = IbstatHcaSource(ibstat_timeout)
    if kind == "sysfs":
        return sysfs
    if kind == "ibstat":
        return ibstat
    if kind == "pyverbs":
        return PyverbsHcaSource()
    if kind == "none":
        return None
    if sysfs.available():
        return sysfs
    if ibstat.available():
        return ibstat
    verbs = PyverbsHcaSource()
    return verbs if verbs.available() else None


def collect_hca_ports(source: HcaSource | None) -> tuple[list[HcaPort] | None, CollectError | None]:
    if source is None:
        return None, None
    try:
        return source.ports(), None
    except HcaUnavailable as exc:
        return None, CollectError(source.name, str(exc))
