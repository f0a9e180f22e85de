"""The compiled-fabric cache: one file, loaded by memory map, never a correctness dependency.

Layout: MAGIC, a little-endian u32 header length, a JSON header (format, the fabric file's content
digest and stat, the fabric's other fields: names, kind, meta..., and per array: dtype, shape, offset), then each array's bytes at a
64-byte-aligned offset. Arrays come back as copy-on-write views of a private mapping (writeable,
never written back), so loading a 16,384-host fabric reads a header and maps the rest.

The cache sits beside the fabric file (`.NAME.gpupool-cache.bin`), or, when that directory is not
writable, in `${XDG_CACHE_HOME:-~/.cache}/gpupool/fabric/DIGEST.bin`. It is keyed by the content
digest; the file's (size, mtime_ns, inode, device) stands in for hashing only when the fabric file
was already older than 2 s when the cache recorded it (so a rewrite within the same clock tick can
never pass as unchanged). Damage of any kind is reported by `CacheDamaged` and the caller rebuilds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import mmap
import os
import struct
import tempfile
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from gpupool.fabric.compiled_fabric import CompiledFabric

MAGIC = b"GPUPOOL-FABRIC\x00\x01"
FORMAT = 5
ALIGN = 64
TRUST_STAT_AFTER_NS = 2_000_000_000  # racy-file rule: a file this old when recorded keeps its stat honest


class CacheDamaged(Exception):
    """The cache file exists but cannot be what it claims (truncated, garbage, wrong shapes)."""


def path_beside(fabric_path: str) -> str:
    directory, name = os.path.split(os.path.abspath(fabric_path))
    return os.path.join(directory, f".{name}.gpupool-cache.bin")


def path_in_user_cache(digest: str) -> str:
    home = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(home, "gpupool", "fabric", f"{digest}.bin")


def stat_key(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev]


def read(cache: str, st: os.stat_result, digest: Callable[[], str], array_fields: tuple[str, ...],
         fabric_type: type[CompiledFabric], compiled_format: int) -> tuple[CompiledFabric | None, bool]:
    """(the cached fabric or None when missing/stale, whether its stat may be recorded as trusted).
    Raises CacheDamaged when the file is there but broken."""
    try:
        handle = open(cache, "rb")  # noqa: SIM115 - closed below; the mapping outlives it
    except FileNotFoundError:
        return None, False
    except IsADirectoryError:
        return None, False
    with handle:
        head = handle.read(len(MAGIC) + 4)
        if len(head) < len(MAGIC) + 4 or head[:len(MAGIC)] != MAGIC:
            raise CacheDamaged("not a gpupool fabric cache")
        (length,) = struct.unpack("<I", head[len(MAGIC):])
        raw = handle.read(length)
        if len(raw) != length:
            raise CacheDamaged("truncated header")
        try:
            header = json.loads(raw)
        except ValueError:
            raise CacheDamaged("unreadable header") from None
        if not isinstance(header, dict) or header.get("format") != FORMAT \
                or header.get("compiled_format") != compiled_format:
            return None, False  # another gpupool version's cache: rebuilt quietly
        trusted = bool(header.get("stat_trusted")) and header.get("stat") == stat_key(st)
        if not trusted and header.get("digest") != digest():
            return None, False  # the fabric file changed
        size = os.fstat(handle.fileno()).st_size
        mapping = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_COPY) if size else None
    try:
        arrays: dict[str, np.ndarray] = {}
        for name in array_fields:
            dtype, shape, offset = header["arrays"][name]
            dt = np.dtype(dtype)
            count = int(np.prod(shape, dtype=np.int64))
            if offset % ALIGN or offset + count * dt.itemsize > size or mapping is None:
                raise CacheDamaged(f"array {name} outside the file")
            arrays[name] = np.frombuffer(mapping, dtype=dt, count=count, offset=offset).reshape(shape) if count \
                else np.zeros(shape, dtype=dt)
        fields = header["fields"]
        if not isinstance(fields, dict) or set(fields) & set(arrays):
            raise CacheDamaged("bad field table")
        values: dict[str, Any] = {**fields, **arrays}  # field types as the file's header says: checked by the class
        compiled = fabric_type(**values)
    except CacheDamaged:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise CacheDamaged(f"{type(exc).__name__} in the header") from None
    if compiled.hop.ndim != 2 or compiled.hop.shape[0] != compiled.hop.shape[1] \
            or compiled.hop.shape[0] != len(compiled.switch_names) \
            or compiled.host_leaf_ptr.size != len(compiled.host_names) + 1:
        raise CacheDamaged("arrays do not match the names")
    old_enough = time.time_ns() - st.st_mtime_ns > TRUST_STAT_AFTER_NS
    return compiled, not trusted and old_enough


def write(cache: str, compiled: CompiledFabric, digest: str, st: os.stat_result | None,
          array_fields: tuple[str, ...], compiled_format: int) -> bool:
    """Write atomically (temp file, fsync, rename); False when the directory is not writable."""
    arrays = {k: np.ascontiguousarray(getattr(compiled, k)) for k in array_fields}
    trusted = st is not None and time.time_ns() - st.st_mtime_ns > TRUST_STAT_AFTER_NS
    table: dict[str, Any] = {}
    # Every other field (names, kind, flags, meta) is plain JSON data.
    fields = {f.name: getattr(compiled, f.name) for f in dataclasses.fields(compiled) if f.name not in arrays}
    header = {"format": FORMAT, "compiled_format": compiled_format, "digest": digest,
              "stat": stat_key(st) if st is not None else None, "stat_trusted": trusted, "fields": fields,
              "arrays": table}
    # Offsets depend on the header's length, which depends on the offsets: lay out twice.
    for _ in range(2):
        raw = json.dumps(header, separators=(",", ":")).encode()
        offset = _aligned(len(MAGIC) + 4 + len(raw) + 256)  # room for the offsets' digits to grow
        for name, array in arrays.items():
            table[name] = [array.dtype.str, list(array.shape), offset]
            offset = _aligned(offset + array.nbytes)
    raw = json.dumps(header, separators=(",", ":")).encode()
    if arrays and len(MAGIC) + 4 + len(raw) > min(entry[2] for entry in table.values()):
        return False  # cannot happen with the slack above; never write a cache that overlaps itself
    directory = os.path.dirname(cache)
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".gpupool-cache.", suffix=".tmp", dir=directory)
    except OSError:
        return False
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(MAGIC + struct.pack("<I", len(raw)) + raw)
            for name, array in arrays.items():
                out.write(b"\0" * (table[name][2] - out.tell()))
                if array.nbytes:
                    out.write(array.data.cast("B"))  # no copy of a big hop matrix
            out.flush()
            os.fsync(out.fileno())  # a crash never leaves a renamed-but-empty cache
        os.replace(tmp, cache)
        return True
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        return False


def _aligned(offset: int) -> int:
    return (offset + ALIGN - 1) // ALIGN * ALIGN
