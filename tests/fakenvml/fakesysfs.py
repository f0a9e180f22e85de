"""Build fake sysfs trees (PCI hierarchy, /sys/class/infiniband) under a tmp directory."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path


def add_pci_device(root: Path, host_bridge: str, chain: Sequence[str], *, vendor: str = "0x15b3",
                   pci_class: str = "0x020700", numa: int = 0) -> Path:
    """Create /sys/devices/<host_bridge>/<chain...> and the /sys/bus/pci/devices symlink.

    `chain` lists bus ids from the root port down to the device itself.
    """
    device = root / "sys/devices" / host_bridge
    for bus_id in chain:
        device = device / bus_id
        device.mkdir(parents=True, exist_ok=True)
        (device / "numa_node").write_text(f"{numa}\n")
    (device / "vendor").write_text(f"{vendor}\n")
    (device / "class").write_text(f"{pci_class}\n")
    bus_dir = root / "sys/bus/pci/devices"
    bus_dir.mkdir(parents=True, exist_ok=True)
    link = bus_dir / chain[-1]
    if not link.exists():
        link.symlink_to(os.path.relpath(device, bus_dir))
    return device


def add_gpu(root: Path, host_bridge: str, chain: Sequence[str], numa: int = 0) -> Path:
    return add_pci_device(root, host_bridge, chain, vendor="0x10de", pci_class="0x030200", numa=numa)


def add_hca(root: Path, name: str, device: Path | None, ports: dict[int, tuple[str, str, str]],
            link_layer: str = "InfiniBand", counters: dict[str, int] | None = None, node_guid: str = "") -> Path:
    """/sys/class/infiniband/<name>/ports/<n>/{state,phys_state,rate,link_layer,counters/*} (+ device link)."""
    hca = root / "sys/class/infiniband" / name
    hca.mkdir(parents=True, exist_ok=True)
    if node_guid:  # as the kernel prints it: 946d:ae03:00a1:b2c3
        (hca / "node_guid").write_text(f"{node_guid}\n")
    if device is not None:
        (hca / "device").symlink_to(os.path.relpath(device, hca))
    for port, (state, phys_state, rate) in ports.items():
        port_dir = hca / "ports" / str(port)
        port_dir.mkdir(parents=True, exist_ok=True)
        (port_dir / "state").write_text(f"{state}\n")
        (port_dir / "phys_state").write_text(f"{phys_state}\n")
        (port_dir / "rate").write_text(f"{rate}\n")
        (port_dir / "link_layer").write_text(f"{link_layer}\n")
        set_counters(root, name, port, {"link_downed": 0, "link_error_recovery": 0, "symbol_error": 0,
                                        "port_rcv_errors": 0, **(counters or {})})
    return hca


def set_counters(root: Path, hca: str, port: int, counters: dict[str, int]) -> None:
    """ports/<n>/counters/<name>: one decimal number per file, as the kernel prints them."""
    directory = root / "sys/class/infiniband" / hca / "ports" / str(port) / "counters"
    directory.mkdir(parents=True, exist_ok=True)
    for counter, value in counters.items():
        (directory / counter).write_text(f"{value}\n")


ACTIVE = ("4: ACTIVE", "5: LinkUp", "400 Gb/sec (4X NDR)")
DOWN = ("1: DOWN", "2: Polling", "10 Gb/sec (4X SDR)")


def dgx_like(root: Path) -> None:
    """Two sockets; per socket two PCIe switches, each with two GPUs and one HCA (mlx5_0..3).

    GPU i (bus 0000:1{i}:00.0 pattern below) sits under switch i//2, whose HCA is mlx5_{i//2}.
    """
    gpu_bus = ["0000:18:00.0", "0000:19:00.0", "0000:2a:00.0", "0000:2b:00.0",
               "0000:98:00.0", "0000:99:00.0", "0000:aa:00.0", "0000:ab:00.0"]
    hca_bus = ["0000:1c:00.0", "0000:2c:00.0", "0000:9c:00.0", "0000:ac:00.0"]
    for switch in range(4):
        numa = switch // 2
        bridge = "pci0000:10" if numa == 0 else "pci0000:90"
        root_port = f"0000:{0x10 + 0x80 * numa:02x}:{0x01 + switch % 2:02x}.0"
        upstream = f"0000:{0x11 + 0x80 * numa + 0x10 * (switch % 2):02x}:00.0"
        for k in range(2):
            down = f"0000:{0x12 + 0x80 * numa + 0x10 * (switch % 2):02x}:{k:02x}.0"
            add_gpu(root, bridge, [root_port, upstream, down, gpu_bus[2 * switch + k]], numa=numa)
        down = f"0000:{0x12 + 0x80 * numa + 0x10 * (switch % 2):02x}:02.0"
        device = add_pci_device(root, bridge, [root_port, upstream, down, hca_bus[switch]], numa=numa)
        add_hca(root, f"mlx5_{switch}", device, {1: ACTIVE})
