"""HCA readers: a fake sysfs tree and `ibstat` text."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpupool.node.hca import (
    HcaUnavailable,
    IbstatHcaSource,
    SysfsHcaSource,
    choose_source,
    parse_ibstat,
    parse_rate,
)
from tests.fakenvml.fakesysfs import ACTIVE, DOWN, add_hca

IBSTAT_TWO_CAS = """\
CA 'mlx5_0'
	CA type: MT4129
	Number of ports: 1
	Firmware version: 28.39.1002
	Hardware version: 0
	Node GUID: 0x946dae0300a1b2c3
	System image GUID: 0x946dae0300a1b2c3
	Port 1:
		State: Active
		Physical state: LinkUp
		Rate: 400
		Base lid: 17
		LMC: 0
		SM lid: 1
		Capability mask: 0xa651e848
		Port GUID: 0x946dae0300a1b2c3
		Link layer: InfiniBand
CA 'mlx5_1'
	CA type: MT4129
	Number of ports: 2
	Port 1:
		State: Down
		Physical state: Polling
		Rate: 10
		Link layer: IB
	Port 2:
		State: Active
		Physical state: LinkUp
		Rate: 100
		Link layer: ETH
"""


def test_parse_ibstat_reads_every_port() -> None:
    ports = parse_ibstat(IBSTAT_TWO_CAS)
    assert [(p.subject, p.state, p.phys_state, p.rate_gbps, p.link_layer) for p in ports] == [
        ("mlx5_0/1", "ACTIVE", "LinkUp", 400.0, "InfiniBand"),
        ("mlx5_1/1", "DOWN", "Polling", 10.0, "InfiniBand"),
        ("mlx5_1/2", "ACTIVE", "LinkUp", 100.0, "Ethernet"),
    ]
    assert parse_ibstat("") == []


def test_parse_rate() -> None:
    assert parse_rate("200 Gb/sec (4X HDR)") == 200.0
    assert parse_rate("2.5 Gb/sec (1X SDR)") == 2.5
    assert parse_rate("") is None


def test_sysfs_reader_on_fake_tree(tmp_path: Path) -> None:
    add_hca(tmp_path, "mlx5_0", None, {1: ACTIVE})
    add_hca(tmp_path, "mlx5_1", None, {1: DOWN, 2: ACTIVE})
    ports = SysfsHcaSource(tmp_path).ports()
    assert [(p.subject, p.state, p.phys_state, p.rate_gbps) for p in ports] == [
        ("mlx5_0/1", "ACTIVE", "LinkUp", 400.0),
        ("mlx5_1/1", "DOWN", "Polling", 10.0),
        ("mlx5_1/2", "ACTIVE", "LinkUp", 400.0),
    ]


def test_sysfs_reader_without_devices(tmp_path: Path) -> None:
    source = SysfsHcaSource(tmp_path)
    assert not source.available()
    with pytest.raises(HcaUnavailable, match="does not exist"):
        source.ports()


def test_ibstat_source_runs_the_command_with_a_timeout(tmp_path: Path) -> None:
    fake = tmp_path / "ibstat"
    fake.write_text("#!/bin/sh\ncat <<'EOF'\n" + IBSTAT_TWO_CAS + "EOF\n")
    fake.chmod(0o755)
    assert len(IbstatHcaSource(command=str(fake)).ports()) == 3
    hung = tmp_path / "ibstat-hung"
    hung.write_text("#!/bin/sh\nexec sleep 30\n")
    hung.chmod(0o755)
    with pytest.raises(HcaUnavailable, match="did not answer within 0.3 s"):
        IbstatHcaSource(timeout=0.3, command=str(hung)).ports()
    failing = tmp_path / "ibstat-fail"
    failing.write_text("#!/bin/sh\necho 'ibpanic: no devices' >&2\nexit 1\n")
    failing.chmod(0o755)
    with pytest.raises(HcaUnavailable, match="exit 1.*no devices"):
        IbstatHcaSource(command=str(failing)).ports()


def test_auto_prefers_sysfs_when_it_lists_devices(tmp_path: Path) -> None:
    assert choose_source("none", str(tmp_path)) is None
    add_hca(tmp_path, "mlx5_0", None, {1: ACTIVE})
    assert choose_source("auto", str(tmp_path)).name == "sysfs"
    assert choose_source("ibstat", str(tmp_path)).name == "ibstat"


def test_node_guid_from_ibstat_and_sysfs_spelling() -> None:
    from gpupool.node.hca import normalise_guid

    ports = parse_ibstat(IBSTAT_TWO_CAS)
    assert ports[0].node_guid == "0x946dae0300a1b2c3"
    assert normalise_guid("946d:ae03:00a1:b2c3") == "0x946dae0300a1b2c3"
    assert normalise_guid("") == "" and normalise_guid("garbage") == ""
