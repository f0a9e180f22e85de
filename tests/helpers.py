"""Shared test constants and helpers (import as `tests.helpers`)."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"
DGX_FIXTURE = FIXTURES / "ibnetdiscover" / "dgx-superpod-ndr.out"
TRUNCATED_FIXTURE = FIXTURES / "ibnetdiscover" / "dgx-gb200-truncated.out"
GOLDEN = Path(__file__).resolve().parent / "golden"


def assert_golden(name: str, text: str, *, golden_dir: Path | None = None) -> None:
    """Compare TEXT with tests/golden/NAME. A missing golden file fails the test; only an explicit
    GPUPOOL_UPDATE_GOLDEN=1 writes it (a golden file must never bless the code that produced it)."""
    path = (golden_dir or GOLDEN) / name
    if os.environ.get("GPUPOOL_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    if not path.exists():
        raise AssertionError(f"golden file {path} is missing (GPUPOOL_UPDATE_GOLDEN=1 writes it; "
                             "review the diff before committing)")
    assert text == path.read_text(), f"{name} differs from its golden file (GPUPOOL_UPDATE_GOLDEN=1 to accept)"


def require_tool(*names: str, why: str) -> str:
    """Path of the first of NAMES on PATH. Absent: a skip on a developer's machine (unit tests need
    no Debian packages), a failure in CI (`CI` set), where scripts/bootstrap installs them all."""
    import shutil

    import pytest

    for name in names:
        found = shutil.which(name)
        if found:
            return found
    message = f"{' or '.join(names)} not installed: {why} (scripts/bootstrap installs it)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def director_site(*, dirs: int, lines: int, fabric_asics: int, leaves: int, hosted: int, spread: bool,
                  single_homed: tuple[int, ...] = (), model: str = "MCS8500", plain: bool = False) -> str:
    """`dirs` directors, each line ASIC cabled to each fabric ASIC; `leaves` external leaves, the first
    `hosted` with two hosts; a leaf is cabled to every line ASIC (`spread`) or to line (k-1) % lines + 1,
    of every director (of director 1 only for `single_homed` leaves: missing uplinks). `plain`: ASICs
    described `dirD-asicN` (as a node-name-map may rename them), a shared `sysimgguid=` per director."""
    desc: dict[str, str] = {}
    cables: list[tuple[str, str]] = []
    image: dict[str, str] = {}
    for d in range(1, dirs + 1):
        for x in range(1, lines + 1):
            desc[f"S-d{d}0000000000a{x:03x}"] = f"dir{d}-asic{x}" if plain else f"MF0;dir{d}:{model}/L{x:02d}/U1"
        for y in range(1, fabric_asics + 1):
            desc[f"S-d{d}0000000000b{y:03x}"] = f"dir{d}-asic{lines + y}" if plain else \
                f"MF0;dir{d}:{model}/S{y:02d}/U1"
            cables += [(f"S-d{d}0000000000a{x:03x}", f"S-d{d}0000000000b{y:03x}") for x in range(1, lines + 1)]
        image |= {node: f"0x000000000d{d:04x}00" for node in desc if node.startswith(f"S-d{d}")}
    for k in range(1, leaves + 1):
        leaf = f"S-e00000000000{k:04x}"
        desc[leaf] = f"MF0;leaf-{k:02d}:MQM8700/U1"
        if k <= hosted:
            for h in (1, 2):
                desc[f"H-c000000000{k:02x}{h:04x}"] = f"n{k:02d}{h} mlx5_0"
                cables.append((leaf, f"H-c000000000{k:02x}{h:04x}"))
        for x in (range(1, lines + 1) if spread else [(k - 1) % lines + 1]):
            for d in ([1] if k in single_homed else range(1, dirs + 1)):
                cables.append((leaf, f"S-d{d}0000000000a{x:03x}"))
    ports: dict[str, list[tuple[int, str, int]]] = {}
    for a, b in cables:
        pa, pb = len(ports.get(a, [])) + 1, len(ports.get(b, [])) + 1
        ports.setdefault(a, []).append((pa, b, pb))
        ports.setdefault(b, []).append((pb, a, pa))
    out = []
    for node, text in desc.items():
        switch = node.startswith("S-")
        if node in image:
            out.append(f"sysimgguid={image[node]}")
        out.append(f'{"Switch" if switch else "Ca"}\t{64 if switch else 1} "{node}"\t\t# "{text}"'
                   + (" enhanced port 0 lid 1 lmc 0" if switch else ""))
        out += [f'[{p}]\t"{r}"[{rp}]\t\t# "{desc[r]}" lid 1 4xHDR' for p, r, rp in ports[node]]
        out.append("")
    return "\n".join(out)
