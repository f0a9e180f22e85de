"""The checks fleets rely on: XIDs, NVLink/PCIe error counters, HCA counters with deltas, dcgmi diag.

Each fires from real-format input (kernel log lines as the driver prints them, sysfs counter files,
NVML values through the fake libnvidia-ml.so and the real pynvml, dcgmi output) and stays quiet on
healthy input. Expected values are written by hand from the inputs.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gpupool.node.dcgm import parse_dcgm_json, parse_dcgm_text
from gpupool.node.xid import FATAL_XIDS, parse_records, read_kernel_log, text_records
from tests.fakenvml.fakenvml_build import (
    build_fake_nvml,
    fake_nvml_env,
    node_config,
    write_scenario,
)
from tests.fakenvml.fakesysfs import ACTIVE, add_hca, set_counters

GPUPOOL = [sys.executable, "-m", "gpupool"]

# dmesg -T / dmesg text as the NVIDIA driver prints it (fake NVML's gpuN sits at 0000:(10+N):00.0).
DMESG_FAULTY = """\
[    4.120031] nvidia-nvlink: Nvlink Core is being initialized, major device number 508
[    4.417925] NVRM: loading NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 01:15:15 UTC 2023
[ 5120.558211] NVRM: Xid (PCI:0000:12:00): 13, pid=18330, name=python, Graphics SM Warp Exception on (GPC 0, TPC 1, SM 0): Out Of Range Address
[ 5120.558240] NVRM: Xid (PCI:0000:12:00): 13, pid=18330, name=python, Graphics Exception: ESR 0x514648=0x1000e 0x514650=0x20
[ 7311.902114] NVRM: Xid (PCI:0000:15:00): 79, pid=0, name=<unknown>, GPU has fallen off the bus.
[ 7311.902200] NVRM: GPU 0000:15:00.0: GPU has fallen off the bus.
"""
DMESG_HEALTHY = """\
[    4.120031] nvidia-nvlink: Nvlink Core is being initialized, major device number 508
[    4.417925] NVRM: loading NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 01:15:15 UTC 2023
[    9.004512] mlx5_core 0000:ab:00.0 mlx5_5: Port: 1 Link ACTIVE
"""
# /dev/kmsg records (priority,sequence,microseconds,flags;message).
KMSG = """\
6,1200,4417925,-;NVRM: loading NVIDIA UNIX x86_64 Kernel Module  535.104.05
4,1207,583912345678,-;NVRM: Xid (PCI:0000:10:00): 94, pid=3392, name=pt_main_thread, Contained: SM (0x1). RST: No, D-RST: No
4,1302,590000000000,-;NVRM: Xid (PCI:0000:11:00): 48, pid=2210, name=python3, An uncorrectable double bit error (DBE) has been detected on GPU in the framebuffer at partition 6, subpartition 0.
"""
# Newer drivers: no Xid line, the message is split over several records.
FALLEN_MULTILINE = """\
[ 1843.308145] NVRM: The NVIDIA GPU 0000:b3:00.0
               NVRM: (PCI ID: 10de:26b5) installed in this system has
               NVRM: fallen off the bus and is not responding to commands.
[ 1843.439662] NVRM: The NVIDIA probe routine failed for 1 device(s).
"""
OLD_DRIVER = "NVRM: Xid (0000:03:00): 13, 0003 00000000 0000a097 00000e20 00000000 00000040\n"


def test_xid_parser_reads_every_format() -> None:
    events = parse_records(text_records(DMESG_FAULTY))
    assert [(e.pci, e.code) for e in events] == [("0000:12:00", 13), ("0000:12:00", 13), ("0000:15:00", 79)]
    assert events[2].text.endswith("GPU has fallen off the bus.")
    kmsg = parse_records(text_records(KMSG))
    assert [(e.seq, e.pci, e.code) for e in kmsg] == [(1207, "0000:10:00", 94), (1302, "0000:11:00", 48)]
    assert [(e.pci, e.code) for e in parse_records(text_records(FALLEN_MULTILINE))] == [("0000:b3:00", 79)]
    assert [(e.pci, e.code) for e in parse_records(text_records(OLD_DRIVER))] == [("0000:03:00", 13)]
    assert parse_records(text_records(DMESG_HEALTHY)) == []
    assert {48, 63, 64, 74, 79, 92, 94, 95, 119, 120} == FATAL_XIDS


def test_kernel_log_since_last_check(tmp_path: Path) -> None:
    log = tmp_path / "kmsg.txt"
    log.write_text(KMSG)
    whole = read_kernel_log(str(log))
    assert whole.last_seq == 1302 and len(whole.events) == 2
    after = read_kernel_log(str(log), after_seq=1207)
    assert [e.code for e in after.events] == [48] and after.last_seq == 1302


@pytest.fixture(scope="module")
def fake_nvml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_fake_nvml(tmp_path_factory.mktemp("fakenvml"))


class Node:
    def __init__(self, tmp: Path, library: Path) -> None:
        self.tmp = tmp
        self.library = library
        self.kernel_log = tmp / "kernel.log"
        self.sys = tmp / "sysroot"
        (self.sys / "sys/bus/pci/devices").mkdir(parents=True)
        self.config_body = ""

    def check(self, scenario: dict[str, object], *args: str, config: str = "",
              env: dict[str, str] | None = None) -> tuple[int, dict]:
        scenario_file = write_scenario(self.tmp / "scenario.txt", {"count": 4, **scenario})
        hcas = "sysfs" if (self.sys / "sys/class/infiniband").is_dir() else "none"
        (self.tmp / "config.toml").write_text(
            node_config(self.tmp, f'[node]\nhca_source = "{hcas}"\nexpected_gpus = 4\n{config}'))
        run_env = fake_nvml_env(self.library, scenario_file)
        for name in [k for k in run_env if k.startswith(("SLURM", "CUDA_"))]:
            del run_env[name]
        run_env.update({"GPUPOOL_CONFIG": str(self.tmp / "config.toml"), **(env or {})})
        done = subprocess.run([*GPUPOOL, "node", "check", "--json", "--sysfs-root", str(self.sys), *args],
                              env=run_env, capture_output=True, text=True, timeout=120)
        return done.returncode, json.loads(done.stdout)


@pytest.fixture
def node(tmp_path: Path, fake_nvml: Path) -> Node:
    return Node(tmp_path, fake_nvml)


def found(report: dict) -> list[tuple[str, str, str]]:
    return sorted((f["check"], f["severity"], f["subject"]) for f in report["findings"])


def results(report: dict, check: str) -> list[dict]:
    return [r for r in report["checks"] if r["check"] == check]


def test_healthy_node_lists_every_check_with_its_measurement(node: Node) -> None:
    add_hca(node.sys, "mlx5_0", None, {1: ACTIVE})
    node.kernel_log.write_text(DMESG_HEALTHY)
    code, report = node.check({}, config="expected_hca_rate = 400\n")
    assert (code, report["status"], report["findings"]) == (0, "OK", [])
    for entry in report["checks"]:
        assert set(entry) == {"check", "subject", "value", "threshold", "status"} and entry["status"] == "OK"
    ecc = results(report, "ecc-uncorrected")
    assert [(r["subject"], r["value"], r["threshold"]) for r in ecc] == [(f"gpu{i}", 0, 0) for i in range(4)]
    assert [(r["subject"], r["value"], r["threshold"]) for r in results(report, "hca-rate")] == [
        ("mlx5_0/1", 400.0, 400.0)]
    assert {r["subject"] for r in results(report, "nvlink-errors")} == {
        f"gpu{i}:{c}" for i in range(4) for c in ("replay", "recovery", "crc")}
    assert {r["subject"] for r in results(report, "hca-errors")} == {
        "mlx5_0/1:symbol_error", "mlx5_0/1:port_rcv_errors", "mlx5_0/1:link_error_recovery"}
    for check in ("gpu-count", "pcie-replay", "hca-link-downed", "xid", "hca-port-state"):
        assert results(report, check), check


def test_xids_from_the_kernel_log(node: Node) -> None:
    node.kernel_log.write_text(DMESG_FAULTY)
    code, report = node.check({})
    assert code == 2
    # 0000:15:00 would be gpu5, but this node has 4 GPUs: the XID names the PCI address instead.
    assert found(report) == [("xid", "warning", "gpu2"), ("xid-fatal", "critical", "pci:0000:15:00")]
    fatal = next(f for f in report["findings"] if f["check"] == "xid-fatal")
    assert fatal["message"].startswith("Xid 79 (GPU has fallen off the bus) x1 since boot")
    warning = next(f for f in report["findings"] if f["check"] == "xid")
    assert warning["message"].startswith("Xid 13 (Graphics Engine Exception) x2")
    # Site overrides: 13 ignored, 79 demoted to the warning list.
    code, report = node.check({}, config="xid_ignore = [13]\nxid_critical = [48]\n")
    assert (code, found(report)) == (1, [("xid", "warning", "pci:0000:15:00")]), report["unknown"]


def test_xids_only_since_the_last_prolog(node: Node) -> None:
    node.kernel_log.write_text(KMSG)
    job = {"SLURM_JOB_ID": "9", "SLURM_JOB_GPUS": "0"}
    code, report = node.check({}, "--prolog", env=job)
    assert code == 2 and found(report) == [("xid-fatal", "critical", "gpu0"), ("xid-fatal", "critical", "gpu1")]
    code, report = node.check({}, "--prolog", env=job)  # nothing new in the log
    assert (code, report["status"]) == (0, "OK")
    with node.kernel_log.open("a") as log:
        log.write("4,1400,600000000000,-;NVRM: Xid (PCI:0000:13:00): 31, pid=77, name=a.out, "
                  "Ch 0000000a, intr 10000000. MMU Fault: ENGINE GRAPHICS GPCCLIENT_T1_0 faulted @ 0x7f_1000\n")
    code, report = node.check({}, "--prolog", env=job)
    assert (code, found(report)) == (0, [("xid", "warning", "gpu3")])
    assert "since the last check" in report["findings"][0]["message"]


@pytest.mark.parametrize(("scenario", "subject", "value"), [
    ({"gpu.1.nvlink_crc_flit": 150, "gpu.1.nvlink_crc_data": 3}, "gpu1:crc", 153),
    ({"gpu.2.nvlink_replay": 101, "gpu.2.nvlink_err_link": 5}, "gpu2:replay", 101),
    ({"gpu.0.nvlink_recovery": 1}, "gpu0:recovery", 1),
])
def test_nvlink_error_counters(node: Node, scenario: dict[str, object], subject: str, value: int) -> None:
    code, report = node.check(scenario)
    assert (code, found(report)) == (1, [("nvlink-errors", "warning", subject)])
    [entry] = [r for r in results(report, "nvlink-errors") if r["subject"] == subject]
    assert entry["value"] == value and entry["status"] == "WARNING"


def test_pcie_replay_counter_and_its_delta(node: Node) -> None:
    job = {"SLURM_JOB_ID": "3", "SLURM_JOB_GPUS": "3"}
    code, report = node.check({"gpu.3.pcie_replay": 500}, "--epilog", env=job)
    assert code == 0 and found(report) == [("pcie-replay", "warning", "gpu3")]  # WARNING: no drain
    code, report = node.check({"gpu.3.pcie_replay": 530}, "--epilog", env=job)
    assert report["status"] == "OK" and results(report, "pcie-replay")[0]["value"] == 30
    code, report = node.check({"gpu.3.pcie_replay": 700}, "--epilog", env=job)
    assert found(report) == [("pcie-replay", "warning", "gpu3")]
    assert "170 PCIe replay(s) since the last check" in report["findings"][0]["message"]


def test_hca_counters_fire_on_increase_between_runs(node: Node) -> None:
    add_hca(node.sys, "mlx5_0", None, {1: ACTIVE}, counters={"link_downed": 2, "symbol_error": 4})
    code, report = node.check({}, "--prolog")
    assert found(report) == [("hca-link-downed", "warning", "mlx5_0/1")]  # first run: the counter itself
    code, report = node.check({}, "--prolog")
    assert (code, report["status"]) == (0, "OK")
    assert [r["value"] for r in results(report, "hca-link-downed")] == [0]
    set_counters(node.sys, "mlx5_0", 1, {"link_downed": 3, "symbol_error": 40, "port_rcv_errors": 11})
    code, report = node.check({}, "--prolog")
    assert found(report) == [("hca-errors", "warning", "mlx5_0/1:port_rcv_errors"),
                             ("hca-errors", "warning", "mlx5_0/1:symbol_error"),
                             ("hca-link-downed", "warning", "mlx5_0/1")]
    symbol = next(r for r in report["checks"] if r["subject"] == "mlx5_0/1:symbol_error")
    assert (symbol["value"], symbol["threshold"]) == (36, 10)


def test_hca_rate_and_state(node: Node) -> None:
    add_hca(node.sys, "mlx5_0", None, {1: ACTIVE})
    add_hca(node.sys, "mlx5_1", None, {1: ("4: ACTIVE", "5: LinkUp", "200 Gb/sec (4X HDR)")})
    add_hca(node.sys, "mlx5_2", None, {1: ("1: DOWN", "3: Disabled", "10 Gb/sec (4X SDR)")})
    code, report = node.check({}, config="expected_hca_rate = 400\n[node.expected_hca_rates]\nmlx5_2 = 10\n")
    assert code == 2 and found(report) == [("hca-phys-state", "critical", "mlx5_2/1"),
                                           ("hca-port-state", "critical", "mlx5_2/1"),
                                           ("hca-rate", "warning", "mlx5_1/1")]


def test_unreadable_hca_state_is_unknown_not_critical(node: Node) -> None:
    add_hca(node.sys, "mlx5_0", None, {1: ACTIVE})
    state = node.sys / "sys/class/infiniband/mlx5_0/ports/1/state"
    state.unlink()
    state.mkdir()  # reading it fails with an OSError, like an attribute the driver refuses
    code, report = node.check({})
    assert (code, report["status"], report["findings"]) == (3, "UNKNOWN", [])
    assert report["unknown"] == ["mlx5_0/1 hca-port-state: port state unreadable"]


def test_verbose_table(node: Node, fake_nvml: Path) -> None:
    node.kernel_log.write_text(DMESG_HEALTHY)
    scenario_file = write_scenario(node.tmp / "s.txt", {"count": 1})
    (node.tmp / "c.toml").write_text(node_config(node.tmp, '[node]\nhca_source = "none"\n'))
    env = fake_nvml_env(fake_nvml, scenario_file)
    env.update({"GPUPOOL_CONFIG": str(node.tmp / "c.toml"), "NO_COLOR": "1", "COLUMNS": "200"})
    env.pop("SLURM_JOB_ID", None)
    done = subprocess.run([*GPUPOOL, "node", "check", "--verbose", "--sysfs-root", str(node.sys)], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if "ecc-uncorrected" in line]
    assert len(rows) == 1
    assert [cell.strip() for cell in re.split(r"[│┃|]", rows[0]) if cell.strip()] == [
        "OK", "ecc-uncorrected", "gpu0", "0", "0"]


# DCGM 3.x `dcgmi diag -r 1 -j` (shape from DCGM's JsonOutput.cpp), one failure with its warning.
DCGM3_FAIL = """{
  "DCGM GPU Diagnostic" : {
    "test_categories" : [
      {
        "category" : "Deployment",
        "tests" : [
          { "name" : "Denylist", "results" : [ { "gpu_ids" : "0,1", "status" : "Pass" } ] },
          { "name" : "NVML Library", "results" : [ { "gpu_ids" : "0,1", "status" : "Pass" } ] },
          { "name" : "Persistence Mode", "results" : [ { "gpu_ids" : "0,1", "status" : "Pass" } ] },
          { "name" : "Page Retirement/Row Remap", "results" : [
              { "gpu_ids" : "1", "status" : "Fail",
                "warnings" : [ { "warning" : "GPU 1 had uncorrectable memory errors and row remapping failed.",
                                 "error_id" : 82, "error_category" : 4, "error_severity" : 2 } ] } ] },
          { "name" : "Inforom", "results" : [ { "gpu_ids" : "0,1", "status" : "Skip" } ] }
        ]
      }
    ],
    "version" : "3.3.5"
  }
}
"""
DCGM3_PASS = DCGM3_FAIL.replace('"gpu_ids" : "1", "status" : "Fail"', '"gpu_ids" : "0,1", "status" : "Pass"')
# DCGM 4.x shape: tests at the top level, results per entity, lower-case statuses.
DCGM4_WARN = """{
  "version" : "4.2.3",
  "tests" : [
    {"name" : "software", "results" : [{"entity_group" : "GPU", "entity_id" : 0, "status" : "pass"}]},
    {"name" : "pcie", "results" : [
      {"entity_group" : "GPU", "entity_id" : 0, "status" : "pass"},
      {"entity_group" : "GPU", "entity_id" : 1, "status" : "warn",
       "warnings" : [{"msg" : "Found 120 PCIe replays on GPU 1"}]}]}
  ]
}
"""
DCGM_TABLE = """\
Successfully ran diagnostic for group.
+---------------------------+------------------------------------------------+
| Diagnostic                | Result                                         |
+===========================+================================================+
|-----  Metadata  ----------+------------------------------------------------|
| DCGM Version              | 3.1.8                                          |
| Driver Version Detected   | 525.105.17                                     |
|-----  Deployment  --------+------------------------------------------------|
| Denylist                  | Pass                                           |
| NVML Library              | Pass                                           |
| Persistence Mode          | Fail                                           |
| Warning                   | GPU 0 Persistence mode for GPU 0 is disabled.  |
| Environment Variables     | Pass                                           |
+---------------------------+------------------------------------------------+
"""


def test_dcgm_parsers() -> None:
    three = parse_dcgm_json(DCGM3_FAIL, 1)
    assert three.version == "3.3.5"
    assert [(t.name, t.subject, t.status) for t in three.tests if t.status != "pass"] == [
        ("Page Retirement/Row Remap", "gpu1", "fail"), ("Inforom", "node", "skip")]
    assert "row remapping failed" in three.tests[3].message
    four = parse_dcgm_json(DCGM4_WARN, 1)
    assert [(t.name, t.subject, t.status) for t in four.tests] == [
        ("software", "gpu0", "pass"), ("pcie", "gpu0", "pass"), ("pcie", "gpu1", "warn")]
    table = parse_dcgm_text(DCGM_TABLE, 1)
    assert [(t.name, t.status) for t in table.tests] == [
        ("Denylist", "pass"), ("NVML Library", "pass"), ("Persistence Mode", "fail"),
        ("Environment Variables", "pass")]
    assert "Persistence mode for GPU 0 is disabled" in table.tests[2].message


def stand_in_dcgmi(node: Node, output: str, extra: str = "") -> Path:
    """A `dcgmi` on PATH that records its arguments and prints `output`, like the real one."""
    bin_dir = node.tmp / "bin"
    bin_dir.mkdir(exist_ok=True)
    (node.tmp / "dcgm-out.txt").write_text(output)
    tool = bin_dir / "dcgmi"
    tool.write_text(f'#!/bin/sh\necho "$@" > {node.tmp}/dcgm-args.txt\n{extra}cat {node.tmp}/dcgm-out.txt\n')
    tool.chmod(0o755)
    return bin_dir


@pytest.mark.parametrize(("output", "code", "expected"), [
    (DCGM3_PASS, 0, []),
    (DCGM3_FAIL, 2, [("dcgm-diag", "critical", "gpu1")]),
    (DCGM4_WARN, 0, [("dcgm-diag", "warning", "gpu1")]),
    (DCGM_TABLE, 2, [("dcgm-diag", "critical", "node")]),
])
def test_epilog_deep_runs_dcgmi(node: Node, output: str, code: int, expected: list[tuple[str, str, str]]) -> None:
    bin_dir = stand_in_dcgmi(node, output)
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_JOB_ID": "5", "SLURM_JOB_GPUS": "0,1"}
    got_code, report = node.check({}, "--epilog", "--deep", env=env)
    assert (got_code, found(report)) == (code, expected)
    assert (node.tmp / "dcgm-args.txt").read_text().split() == ["diag", "-r", "1", "-j"]
    assert results(report, "dcgm-diag")


def test_dcgmi_over_budget_or_missing_is_unknown(node: Node) -> None:
    bin_dir = stand_in_dcgmi(node, DCGM3_FAIL, extra="sleep 30\n")
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_JOB_ID": "5"}
    code, report = node.check({}, "--epilog", "--deep", config="dcgm_budget = 1.0\n", env=env)
    assert (code, report["status"], report["findings"]) == (0, "UNKNOWN", [])
    assert report["unknown"][0].startswith("dcgmi dcgm-diag:")
    code, report = node.check({}, "--epilog", "--deep", config='dcgmi = "no-such-dcgmi"\n', env=env)
    assert report["status"] == "UNKNOWN" and "not found" in report["unknown"][0]
    code, report = node.check({}, "--epilog", env=env)  # without --deep dcgmi is not run
    assert report["status"] == "OK" and not results(report, "dcgm-diag")


def test_state_file_is_per_boot_and_survives_garbage(tmp_path: Path) -> None:
    from gpupool.node.state import STATE_FILE, NodeState, load_state, save_state

    save_state(str(tmp_path), NodeState(boot_id="boot-a", kmsg_seq=42, counters={"hca:mlx5_0/1:link_downed": 3}))
    loaded = load_state(str(tmp_path), "boot-a")
    assert loaded is not None and (loaded.kmsg_seq, loaded.counters) == (42, {"hca:mlx5_0/1:link_downed": 3})
    assert load_state(str(tmp_path), "boot-b") is None  # counters and the ring buffer restart at boot
    (tmp_path / STATE_FILE).write_text("{not json")
    assert load_state(str(tmp_path), "boot-a") is None
    assert load_state(str(tmp_path / "missing"), "boot-a") is None
    assert [p.name for p in tmp_path.iterdir()] == [STATE_FILE]  # no temporary file left behind


def test_unwritable_state_dir_is_a_note_not_a_failure(tmp_path: Path) -> None:
    from gpupool.node.check_run import check_node
    from gpupool.node.deadline import Progress
    from gpupool.node.facts import GpuFacts, GpuInventory
    from gpupool.node.settings import settings_from_table

    class OneGpu:
        def inventory(self, wanted: set[int] | None, topology: bool, progress: Progress) -> GpuInventory:
            return GpuInventory(count=1, gpus=[GpuFacts(index=0, bus_id="0000:10:00.0", pcie_replay=0)])

    blocker = tmp_path / "a-file"
    blocker.write_text("")
    (tmp_path / "kernel.log").write_text(DMESG_HEALTHY)
    settings = settings_from_table({"state_dir": str(blocker / "state"), "kernel_log": str(tmp_path / "kernel.log"),
                                    "sysfs_root": str(tmp_path)})
    report = check_node(settings, "prolog", {"SLURM_JOB_ID": "1", "SLURM_JOB_GPUS": "0"}, OneGpu(), None)
    assert report.status == "OK" and len(report.notes) == 1 and report.notes[0].startswith("cannot write state")


def test_hca_rate_against_the_fabric_model(node: Node) -> None:
    from gpupool.fabric.ibnetdiscover import parse_ibnetdiscover
    from gpupool.fabric.model import save_fabric

    # ufm-lab-small-hdr-fdr.out: "r-dcs96 HCA-2" (caguid 0xec0d9a03007d7d0b) port 1 is cabled 4xEDR.
    capture = Path(__file__).resolve().parents[1] / "fixtures/ibnetdiscover/ufm-lab-small-hdr-fdr.out"
    save_fabric(parse_ibnetdiscover(capture.read_text()), str(node.tmp / "fabric.json"))
    add_hca(node.sys, "mlx5_0", None, {1: ACTIVE}, node_guid="ec0d:9a03:007d:7d0b")
    rate = node.sys / "sys/class/infiniband/mlx5_0/ports/1/rate"
    rate.write_text("100 Gb/sec (4X EDR)\n")  # what the kernel prints for a healthy EDR link
    fabric = f'fabric = "{node.tmp / "fabric.json"}"\n'
    code, report = node.check({}, config=fabric + "expected_hca_rate = 400\n")  # the model wins
    assert (code, report["status"]) == (0, "OK")
    assert [(r["value"], r["threshold"]) for r in results(report, "hca-rate")] == [(100.0, 103.125)]
    rate.write_text("50 Gb/sec (2X EDR)\n")  # the link trained at half width
    code, report = node.check({}, config=fabric)
    assert (code, found(report)) == (1, [("hca-rate", "warning", "mlx5_0/1")])
    assert "fabric model has a 103.125 Gb/s cable" in report["findings"][0]["message"]
