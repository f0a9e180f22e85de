"""NVIDIA XID errors from the kernel log (/dev/kmsg records, or dmesg/journal text lines).

The driver logs `NVRM: Xid (PCI:0000:3b:00): 79, pid=1234, name=python, GPU has fallen off the bus.`
(older drivers omit `PCI:`). Meanings and recommended actions: NVIDIA's "XID Errors" catalogue,
https://docs.nvidia.com/deploy/xid-errors/ (the source of the table below).
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Iterable
from dataclasses import dataclass

# XID -> (what NVIDIA's catalogue calls it, fatal). Fatal ones mean the GPU (or its memory, NVLink,
# GSP firmware) needs a reset or service: CRITICAL. Every other XID seen is a WARNING.
# Override per site with `xid_critical` / `xid_ignore` in the [node] config table.
XID_TABLE: dict[int, tuple[str, bool]] = {
    13: ("Graphics Engine Exception", False),
    31: ("GPU memory page fault", False),
    32: ("Invalid or corrupted push buffer stream", False),
    43: ("GPU stopped processing", False),
    45: ("Preemptive cleanup, due to previous errors", False),
    48: ("Double Bit ECC Error", True),
    61: ("Internal micro-controller breakpoint/warning", False),
    62: ("Internal micro-controller halt", False),
    63: ("ECC page retirement or row remapping recording event", True),
    64: ("ECC page retirement or row remapper recording failure", True),
    68: ("NVDEC0 Exception", False),
    69: ("Graphics Engine class error", False),
    74: ("NVLink Error", True),
    79: ("GPU has fallen off the bus", True),
    92: ("High single-bit ECC error rate", True),
    94: ("Contained ECC error", True),
    95: ("Uncontained ECC error", True),
    109: ("Context Switch Timeout Error", False),
    119: ("GSP RPC Timeout", True),
    120: ("GSP Error", True),
    121: ("C2C Link corrected error", False),
}
FATAL_XIDS = frozenset(code for code, (_name, fatal) in XID_TABLE.items() if fatal)

_XID = re.compile(r"NVRM: Xid \((?:PCI:)?([0-9a-fA-F]{4,8}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2})(?:\.[0-7])?\): "
                  r"(\d+)\b,?\s*(.*)")
# Newer drivers may say it in several lines without an Xid: "NVRM: The NVIDIA GPU 0000:b3:00.0 ..."
# then "NVRM: fallen off the bus and is not responding to commands." -> counted as Xid 79.
_GPU_LINE = re.compile(r"NVRM: The NVIDIA GPU ([0-9a-fA-F]{4,8}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2})")
_KMSG = re.compile(r"^(\d+),(\d+),(\d+),[^;]*;(.*)$")


@dataclass(frozen=True)
class XidEvent:
    seq: int  # /dev/kmsg sequence number, or the line number for a text log
    pci: str  # "0000:3b:00" (domain:bus:device, as the driver prints it)
    code: int
    text: str

    @property
    def name(self) -> str:
        return XID_TABLE.get(self.code, ("see NVIDIA's XID catalogue", False))[0]


@dataclass
class KernelLog:
    events: list[XidEvent]
    last_seq: int  # highest record number read (the "since last check" mark for the next run)


def parse_records(records: Iterable[tuple[int, str]]) -> list[XidEvent]:
    """XID events from (sequence number, message) records."""
    events: list[XidEvent] = []
    pending_gpu: tuple[int, str] | None = None
    for seq, message in records:
        if "NVRM" not in message:
            continue
        match = _XID.search(message)
        if match:
            pci = _short_pci(match.group(1))
            events.append(XidEvent(seq, pci, int(match.group(2)), match.group(3).strip()))
            continue
        gpu = _GPU_LINE.search(message)
        if gpu:
            pending_gpu = (seq, _short_pci(gpu.group(1)))
        elif pending_gpu and "fallen off the bus" in message and seq - pending_gpu[0] <= 3:
            events.append(XidEvent(seq, pending_gpu[1], 79, "GPU has fallen off the bus (no Xid line)"))
            pending_gpu = None
    return events


def _short_pci(text: str) -> str:
    domain, bus, device = text.lower().split(":")
    return f"{int(domain, 16):04x}:{bus}:{device}"


def text_records(text: str) -> list[tuple[int, str]]:
    """Lines of a /dev/kmsg dump (`6,1234,5678,-;message`), dmesg or journalctl -k output."""
    return [_record(number, line) for number, line in enumerate(text.splitlines(), start=1)]


def _record(number: int, line: str) -> tuple[int, str]:
    kmsg = _KMSG.match(line)
    return (int(kmsg.group(2)), kmsg.group(4)) if kmsg else (number, line)


def read_kernel_log(path: str, after_seq: int | None = None) -> KernelLog:
    """XID events in `path` (/dev/kmsg, or a saved log file) with a record number above `after_seq`."""
    if stat.S_ISCHR(os.stat(path).st_mode):
        records, last = _read_kmsg(path)
    else:
        with open(path, encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
        # Only driver lines are parsed (a busy ring buffer holds thousands of other lines).
        records = [_record(number, line) for number, line in enumerate(lines, start=1) if "NVRM" in line]
        last = _record(len(lines), lines[-1])[0] if lines else 0
    last = last or after_seq or 0  # an empty log keeps the previous mark
    if after_seq is not None and last >= after_seq:
        records = [(seq, message) for seq, message in records if seq > after_seq]
    return KernelLog(parse_records(records), last)


def _read_kmsg(path: str) -> tuple[list[tuple[int, str]], int]:
    """Driver records of the kernel ring buffer and the last record number, without blocking.

    One read() returns one record (`prio,seq,usec,flags;message`).
    """
    records: list[tuple[int, str]] = []
    last = 0
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        while True:
            try:
                chunk = os.read(fd, 16384)
            except OSError as exc:
                if exc.errno == errno.EPIPE:  # the record was overwritten while we read: skip it
                    continue
                if exc.errno == errno.EAGAIN:
                    break
                raise
            if not chunk:
                break
            fields = chunk.split(b",", 2)
            if len(fields) > 1 and fields[1].isdigit():
                last = int(fields[1])
            if b"NVRM" in chunk:
                match = _KMSG.match(chunk.decode("utf-8", "replace").split("\n", 1)[0])
                if match:
                    records.append((int(match.group(2)), match.group(4)))
    finally:
        os.close(fd)
    return records, last
