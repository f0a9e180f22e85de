"""What InfiniBand hardware can do, by the `devid` ibnetdiscover prints before each node record:
the fastest link speed of common Mellanox/NVIDIA switch ASICs and HCAs. A link is only as fast as
the slower end, so a link checker must not expect more than both ends support."""

from __future__ import annotations

from gpupool.fabric.model import SPEED_GBPS

# devid -> (model family, fastest speed). Switch ASIC ids are the chip numbers (0xc738 = 51000 for
# SwitchX...); HCA ids are their PCI device ids (15b3:1017 = ConnectX-5...).
DEVICES: dict[int, tuple[str, str]] = {
    # switches
    0xBD36: ("InfiniScale IV (IS5xxx, Grid Director 4xxx)", "QDR"),
    0xC738: ("SwitchX / SwitchX-2 (SX6036, SX6xxx)", "FDR"),
    0xCB20: ("Switch-IB (SB7700, SB7790)", "EDR"),
    0xCF08: ("Switch-IB 2 (SB7800, SB7890, CS7500 ASICs)", "EDR"),
    0xD2F0: ("Quantum (MQM8700, MQM8790, CS8500 ASICs)", "HDR"),
    0xD2F2: ("Quantum-2 (MQM9700, MQM9790, MQM9701)", "NDR"),
    0xD2F4: ("Quantum-3 (Q3400)", "XDR"),
    # HCAs
    0x673C: ("ConnectX-2", "QDR"),
    0x1003: ("ConnectX-3", "FDR"),
    0x1007: ("ConnectX-3 Pro", "FDR"),
    0x1011: ("Connect-IB", "FDR"),
    0x1013: ("ConnectX-4", "EDR"),
    0x1017: ("ConnectX-5", "EDR"),
    0x1019: ("ConnectX-5 Ex", "EDR"),
    0x101B: ("ConnectX-6", "HDR"),
    0x1021: ("ConnectX-7", "NDR"),
    0x1023: ("ConnectX-8", "XDR"),
}


def parse_devid(text: str | None) -> int | None:
    if not text:
        return None
    try:
        return int(text, 16)
    except ValueError:
        return None


def max_speed(devid: str | None) -> str | None:
    """Fastest speed this device runs, None when the device is not in the table."""
    known = DEVICES.get(parse_devid(devid) or -1)
    return known[1] if known else None


def model(devid: str | None) -> str | None:
    known = DEVICES.get(parse_devid(devid) or -1)
    return known[0] if known else None


def speed_cap(*devids: str | None) -> float | None:
    """Lane rate (Gb/s) of the fastest speed every given device supports; None when none is known."""
    caps = [SPEED_GBPS[s] for s in (max_speed(d) for d in devids) if s is not None]
    return min(caps) if caps else None
