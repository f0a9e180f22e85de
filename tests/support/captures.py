"""ibnetdiscover text written from hand-listed cables, for tests that need a fabric of a given
shape: `ibnetdiscover_text` numbers each node's ports in cable order; `director_site` builds
director-chassis sites on it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def ibnetdiscover_text(cables: Iterable[tuple[str, str]], desc: Mapping[str, str], *, switch_ports: int = 36,
                       nodes: Iterable[str] | None = None, image: Mapping[str, str] | None = None,
                       enhanced: bool = False) -> str:
    """ibnetdiscover text for CABLES between node ids (switches `S-<guid>`, HCAs `H-<guid>`), each
    described by DESC. A node's ports are numbered 1, 2, ... in the order its cables are listed.
    NODES: the order of the node blocks (default: first cabled first); IMAGE: node -> the
    `sysimgguid=` line before it; ENHANCED: switches say `enhanced port 0 lid 1 lmc 0`."""
    ports: dict[str, list[tuple[int, str, int]]] = {}
    for a, b in cables:
        pa, pb = len(ports.get(a, [])) + 1, len(ports.get(b, [])) + 1
        ports.setdefault(a, []).append((pa, b, pb))
        ports.setdefault(b, []).append((pb, a, pa))
    image = image or {}
    out = []
    for node in (ports if nodes is None else nodes):
        switch = node.startswith("S-")
        if node in image:
            out.append(f"sysimgguid={image[node]}")
        out.append(f'{"Switch" if switch else "Ca"}\t{switch_ports if switch else 1} "{node}"\t\t# "{desc[node]}"'
                   + (" enhanced port 0 lid 1 lmc 0" if switch and enhanced else ""))
        out += [f'[{p}]\t"{r}"[{rp}]\t\t# "{desc[r]}" lid 1 4xHDR' for p, r, rp in ports[node]]
        out.append("")
    return "\n".join(out)


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
    return ibnetdiscover_text(cables, desc, switch_ports=64, nodes=desc, image=image, enhanced=True)
