"""Fabric discovery: from saved or live `ibnetdiscover` output, optionally restricted to a host set."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence

from gpupool.errors import BadInput, Unreachable, param
from gpupool.fabric.captures import parse_capture
from gpupool.fabric.ibnetdiscover import MAX_INPUT_BYTES, parse_ibnetdiscover, read_node_name_map
from gpupool.fabric.model import Fabric, restrict_hosts
from gpupool.fabric.subnets import merge_subnets
from gpupool.fsutil import read_input_bytes


def read_text_file(path: str, what: str = "file") -> str:
    with contextlib.suppress(OSError):  # a missing file is reported by the read below
        size = os.path.getsize(path)
        if size > MAX_INPUT_BYTES:
            raise BadInput(f"{path}: {what} is {size} bytes, larger than the {MAX_INPUT_BYTES} byte limit")
    raw = read_input_bytes(path, what)
    if b"\x00" in raw[:65536]:
        raise BadInput(f"{path}: binary data, not {what}")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def run_ibnetdiscover(timeout: float = 120.0, extra_args: list[str] | None = None) -> str:
    """Run `ibnetdiscover` now (through $GPUPOOL_IBDIAG_WRAPPER, e.g. ibsim-run on the testbed)."""
    from gpupool.ibtools import run_tool

    proc = run_tool("ibnetdiscover", extra_args or [], timeout=timeout)
    if not proc.stdout.strip():
        raise Unreachable("ibnetdiscover printed nothing")
    return proc.stdout


def discover(*, ibnetdiscover_file: str | None = None, capture_files: Sequence[str] = (), live: bool = False,
             node_name_map: str | None = None, hosts: list[str] | None = None, timeout: float = 120.0,
             service_hosts: tuple[str, ...] = ()) -> Fabric:
    """The fabric model from a live ibnetdiscover or from saved captures (any format
    fabric.captures reads; several files = one per subnet, joined by host name)."""
    name_map = read_node_name_map(node_name_map) if node_name_map else None
    files = [*capture_files, *([ibnetdiscover_file] if ibnetdiscover_file else [])]
    if live:
        text, source = run_ibnetdiscover(timeout), "ibnetdiscover"
        fabric = parse_ibnetdiscover(text, source, node_name_map=name_map, hosts=hosts, service_hosts=service_hosts)
        fabric.meta.update({"source": "live", "input": source})
    elif len(files) == 1:
        source = files[0]
        fabric = parse_capture(read_text_file(source, "fabric capture"), source, node_name_map=name_map,
                               hosts=hosts, service_hosts=service_hosts)
        fabric.meta.update({"source": "ibnetdiscover", "input": source})
    elif files:
        fabrics = [parse_capture(read_text_file(f, "fabric capture"), f, node_name_map=name_map,
                                 service_hosts=service_hosts) for f in files]
        fabric = merge_subnets(fabrics, files)
        fabric.meta["input"] = ",".join(files)
        if hosts is not None:
            restrict_hosts(fabric, hosts)
    else:
        raise BadInput(f"give {param('ibnetdiscover')} FILE or {param('live')}")
    if hosts is not None:
        fabric.meta["host_filter"] = len(hosts)
    return fabric
