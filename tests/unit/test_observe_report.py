"""`gpupool report --html`: a self-contained page that headless Chromium renders with the drawing and the numbers."""

from __future__ import annotations

import json
import re
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from gpupool.cli.context import AppContext
from gpupool.cli.main import main
from gpupool.fabric.generate import fat_tree
from gpupool.fabric.model import save_fabric
from tests.support.helpers import require_tool
from tests.support.lending_slurm import FakeSlurm

FREE = {"gpu001": 8, "gpu002": 8, "gpu003": 8, "gpu004": 3, "gpu005": 8, "gpu006": 2, "gpu009": 8, "gpu010": 8,
        "gpu013": 1}
POOLS_YAML = """\
pools:
  vision: {nodes: "gpu[001-004]", owners: [vision]}
  llm: {nodes: "gpu[005-008]", owners: [llm]}
accounts:
  vision: {shares: 30}
  llm: {shares: 70}
"""
AUDIT = {"status": "CRITICAL", "findings": [
    {"check": "leaf-uplinks", "severity": "critical", "subject": "pod2-leaf02", "message": "1 of 2 uplinks missing"},
    {"check": "hca", "severity": "warning", "subject": "gpu005 mlx5_1", "message": "port down"}]}


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("report")
    fabric = tmp / "f.json"
    save_fabric(fat_tree(2, 4, 2, pods=2, cores=2), str(fabric))
    (tmp / "free.json").write_text(json.dumps(FREE))
    (tmp / "pools.yaml").write_text(POOLS_YAML)
    (tmp / "audit.json").write_text(json.dumps(AUDIT))
    out = tmp / "report.html"
    code = main(["report", "--html", str(out), "--fabric", str(fabric), "--free", str(tmp / "free.json"),
                 "--pools", str(tmp / "pools.yaml"), "--since", "2026-11-28", "--until", "2026-11-29",
                 "--audit-json", str(tmp / "audit.json")], obj=AppContext(slurm_runner=FakeSlurm()))
    assert code == 0
    return out


def _chromium(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    binary = require_tool("chromium", "chromium-browser", why="the HTML report is checked in headless Chromium")
    return subprocess.run([binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                           "--disable-component-update", "--no-first-run", f"--user-data-dir={tmp / 'profile'}",
                           *args], capture_output=True, text=True, timeout=180)


def test_page_is_self_contained(page: Path) -> None:
    text = page.read_text()
    assert "<script" not in text and "<link" not in text and " src=" not in text and "@import" not in text
    # The only URL is the SVG namespace, which is a name, never fetched.
    assert set(re.findall(r"https?://[^\s\"'<>]+", text)) == {"http://www.w3.org/2000/svg"}


def test_chromium_renders_the_drawing_and_the_numbers(page: Path, tmp_path: Path) -> None:
    proc = _chromium("--dump-dom", page.as_uri(), tmp=tmp_path)
    dom = proc.stdout
    assert proc.returncode == 0 and "<svg" in dom, proc.stderr[-2000:]
    leaves = {m.group(1): (int(m.group(2)), int(m.group(3)), m.group(4)) for m in re.finditer(
        r'<g class="leaf" data-name="([^"]+)" data-pod="[^"]+" data-free="(\d+)" data-capacity="(\d+)" '
        r'data-health="(\w+)"', dom)}
    # Free GPUs per leaf from FREE by hand; the critical finding names pod2-leaf02, the warning a host of pod1-leaf02.
    assert leaves == {"pod1-leaf01": (27, 32, "ok"), "pod1-leaf02": (10, 32, "warning"),
                      "pod2-leaf01": (16, 32, "ok"), "pod2-leaf02": (1, 32, "critical")}
    assert len(re.findall(r'<g class="switch"', dom)) == 3  # two pod spine groups and the core level
    for key, value in (("free-gpus", "54"), ("largest-leaf", "16"), ("largest-pod", "32"), ("stranded", "0"),
                       ("audit-status", "CRITICAL")):
        assert re.search(rf'id="{key}"><div class="v">{value}</div>', dom), key
    pools = dict(re.findall(r'<g class="pool" data-name="(\w+)" data-owner="[\d.]+" data-lent="([\d.]+)"', dom))
    assert pools == {"vision": "32.000", "llm": "6.000"}
    assert "1 of 2 uplinks missing" in dom and "384.00" in dom
    # Hourly slices: llm's borrower held vision's 16 GPUs from 04:00 to 06:00 (recorded sacct in test_observe_lending).
    assert len(re.findall(r'<g class="pool-series"', dom)) == 2
    assert "11-28 04:00: owners 0.00, lent 16.00 GPU-h" in dom and "11-28 05:00: owners 0.00, lent 16.00 GPU-h" in dom


def _png_pixels(path: Path) -> tuple[int, int, set[tuple[int, int, int]]]:
    """A minimal PNG reader (8-bit RGB/RGBA, not interlaced): the set of colours present."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks, header = 8, b"", None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            chunks += body
        pos += 12 + length
    assert header is not None
    width, height, depth, colour_type, _, _, interlace = header
    assert depth == 8 and colour_type in (2, 6) and interlace == 0
    channels = 3 if colour_type == 2 else 4
    raw = zlib.decompress(chunks)
    stride = width * channels
    previous = bytearray(stride)
    colours: set[tuple[int, int, int]] = set()
    offset = 0
    for _ in range(height):
        kind, line = raw[offset], bytearray(raw[offset + 1:offset + 1 + stride])
        offset += 1 + stride
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            corner = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        colours.update(tuple(line[i:i + 3]) for i in range(0, stride, channels))  # type: ignore[misc]
        previous = line
    return width, height, colours


def test_screenshot_shows_the_leaf_colours(page: Path, tmp_path: Path) -> None:
    shot = tmp_path / "shot.png"
    proc = _chromium("--window-size=1000,900", f"--screenshot={shot}", page.as_uri(), tmp=tmp_path)
    assert proc.returncode == 0 and shot.exists(), proc.stderr[-2000:]
    width, height, colours = _png_pixels(shot)
    assert (width, height) == (1000, 900)
    # Leaf fills: 27/32 and 16/32 free (#08519c, #4292c6), 10/32 (#9ecae1), 1/32 (#deebf7); critical border #c00000.
    for hex_colour in ("08519c", "4292c6", "9ecae1", "deebf7", "c00000"):
        rgb = tuple(int(hex_colour[i:i + 2], 16) for i in (0, 2, 4))
        assert rgb in colours, hex_colour


def _wide_page(tmp: Path, fabric_model: object, free: dict[str, int]) -> str:
    fabric = tmp / "wide.json"
    save_fabric(fabric_model, str(fabric))  # type: ignore[arg-type]
    (tmp / "wide-free.json").write_text(json.dumps(free))
    out = tmp / "wide.html"
    assert main(["report", "--html", str(out), "--fabric", str(fabric), "--free", str(tmp / "wide-free.json"),
                 "--no-pools", "--no-audit"]) == 0
    return out.read_text()


def _svgs(page: str) -> list[tuple[int, str]]:
    """(width attribute, body) of every SVG on the page, read with a regex."""
    return [(int(m.group(1)), m.group(2)) for m in re.finditer(r'<svg [^>]*?width="(\d+)"[^>]*>(.*?)</svg>', page, re.S)]


def test_a_wide_fabric_wraps_into_blocks_at_its_own_size(tmp_path: Path) -> None:
    # One pod of 25 leaves x 2 hosts (issue #27: Selene's 25 leaves were cut off, then scaled unreadable).
    free = {f"gpu{i:03d}": i % 9 for i in range(1, 51)}
    page = _wide_page(tmp_path, fat_tree(25, 2, 2), free)
    svgs = _svgs(page)
    # Every drawing fits a 1,100 px page at its own size, and nothing scales them down.
    assert svgs and all(width <= 1100 for width, _ in svgs) and "max-width:100%" not in page
    blocks = [body for _, body in svgs if '<g class="leaf"' in body]
    # 25 leaves of 106 px: at most 10 per block; balanced into 9, 8, 8 (by hand), leaf01..leaf25 in order.
    assert [body.count('<g class="leaf"') for body in blocks] == [9, 8, 8]
    names = re.findall(r'<g class="leaf" data-name="([^"]+)"', page)
    assert names == [f"leaf{i:02d}" for i in range(1, 26)]
    # Each leaf's free GPUs: its 2 hosts gpu(2k-1), gpu(2k), computed here from `free`.
    shown = {m.group(1): int(m.group(2)) for m in re.finditer(r'data-name="([^"]+)" data-pod="[^"]*" '
                                                               r'data-free="(\d+)"', page)}
    assert shown == {f"leaf{k:02d}": free[f"gpu{2 * k - 1:03d}"] + free[f"gpu{2 * k:03d}"] for k in range(1, 26)}
    # The spine group heads every block: drawn once as the switch, then as its continuation.
    assert page.count('<g class="switch" ') == 1 and page.count('<g class="switch continued" ') == 2


def test_a_wide_three_level_fabric_lists_the_core_and_keeps_pods_together(tmp_path: Path) -> None:
    # 4 pods x 7 leaves x 2 hosts under 2 cores: 28 leaves, 2,978 px as one tree.
    page = _wide_page(tmp_path, fat_tree(7, 2, 2, pods=4, cores=2), {"gpu001": 8})
    assert all(width <= 1100 for width, _ in _svgs(page))
    assert re.search(r'<div class="fabric-level"><span class="k">level 3</span>', page)
    blocks = [body for _, body in _svgs(page) if '<g class="leaf"' in body]
    assert len(blocks) == 4
    for body in blocks:  # a pod's leaves stay in one block, under that pod's spine group
        pods = set(re.findall(r'<g class="leaf" data-name="[^"]+" data-pod="([^"]+)"', body))
        (group,) = re.findall(r'<g class="switch" data-name="([^"]+)" data-level="2"', body)
        assert len(pods) == 1 and body.count('<g class="leaf"') == 7 and group == pods.pop()


def test_page_text_is_escaped(tmp_path: Path) -> None:
    fabric = tmp_path / "f.json"
    save_fabric(fat_tree(2, 2, 1), str(fabric))
    (tmp_path / "free.json").write_text(json.dumps({"gpu001": 8}))
    (tmp_path / "audit.json").write_text(json.dumps({"status": "WARNING", "findings": [
        {"check": "x", "severity": "warning", "subject": "leaf01", "message": "<script>alert('x')</script> & more"}]}))
    out = tmp_path / "r.html"
    assert main(["report", "--html", str(out), "--fabric", str(fabric), "--free", str(tmp_path / "free.json"),
                 "--no-pools", "--audit-json", str(tmp_path / "audit.json")]) == 0
    page = out.read_text()
    assert "<script" not in page and "&lt;script&gt;alert(" in page and "&amp; more" in page
