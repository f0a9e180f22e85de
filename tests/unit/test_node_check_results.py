"""Every node check's recorded result (value, threshold, status), finding and message, written by hand.

tests/unit/test_node_checks.py asks which checks fire; these tables pin what each one measured,
against what, the exact message an operator reads, the boundaries (a value at its maximum is OK,
one above is not), and the "could not check" notes. They run in-process on plain facts (no NVML,
no subprocess), so mutation testing (scripts/mutation.py gpupool/node/checks.py) sees them.
"""

from __future__ import annotations

from typing import Any

import pytest

from gpupool.node.checks import (
    CheckResult,
    GpuContext,
    Judge,
    check_gpu,
    check_hca_ports,
    check_processes,
    collect_error_finding,
    counter_delta,
    current_counters,
    drain_reason,
    evaluate,
    gpu_counter_key,
    gpu_evidence,
    hca_counter_key,
    judge_dcgm,
    judge_gpu,
    judge_gpu_count,
    judge_hca_ports,
    judge_nvlink_fabric,
    judge_processes,
    judge_xid,
    known_check,
    node_checks,
    run_checks,
    select_gpus,
)
from gpupool.node.dcgm import DcgmResult, DcgmTest
from gpupool.node.facts import (
    CollectError,
    Finding,
    GpuFabric,
    GpuFacts,
    GpuInventory,
    HcaPort,
    NodeFacts,
)
from gpupool.node.settings import NodeSettings, settings_from_table
from gpupool.node.xid import XidEvent

Row = tuple[str, str, Any, Any, str]


def rows(judge: Judge) -> list[Row]:
    return [(r.check, r.subject, r.value, r.threshold, r.status) for r in judge.results]


def said(judge: Judge) -> list[tuple[str, str, str, str]]:
    return [(f.check, f.severity, f.subject, f.message) for f in judge.findings]


def gpu(index: int = 0, **changes: Any) -> GpuFacts:
    """A GPU with nothing to say: every field set and healthy."""
    facts = GpuFacts(index=index, bus_id=f"0000:{0x10 + index:02x}:00.0", ecc_uncorrected_volatile=0,
                     remap_pending=False, remap_failure=False, retired_pages_pending=False,
                     temperature_c=40, slowdown_c=90, throttle_reasons=0, nvlink_active=[True, True],
                     pcie_width=16, pcie_max_width=16, pcie_gen=5, pcie_max_gen=5)
    for key, value in changes.items():
        setattr(facts, key, value)
    return facts


def only(table: dict[str, Any] | None = None, *checks: str) -> NodeSettings:
    """Settings with every check off except `checks` (so one check's results stand alone)."""
    every = sorted(node_checks().names())
    return settings_from_table({**(table or {}), "disabled_checks": [c for c in every if c not in checks],
                                "enabled_checks": list(checks)})


def per_gpu(check: str, facts: GpuFacts, table: dict[str, Any] | None = None,
            previous: dict[str, int] | None = None) -> Judge:
    judge = Judge(only(table, check))
    judge_gpu(judge, facts, previous)
    return judge


# ---------------------------------------------------------------------------------------------- Judge


def test_judge_records_ok_warning_and_critical_by_the_checks_severity() -> None:
    judge = Judge(NodeSettings())
    judge.judge("temperature", "gpu0", 50, 80, False, "not said")
    judge.judge("temperature", "gpu1", 85, 80, True, "hot")
    judge.judge("ecc-uncorrected", "gpu2", 3, 0, True, "ecc", details={"k": 1})
    judge.judge("ecc-uncorrected", "gpu3", 3, 0, True, "demoted", severity="warning")
    judge.judge("temperature", "gpu4", 85, 80, True, "promoted", severity="critical")
    assert rows(judge) == [("temperature", "gpu0", 50, 80, "OK"), ("temperature", "gpu1", 85, 80, "WARNING"),
                           ("ecc-uncorrected", "gpu2", 3, 0, "CRITICAL"), ("ecc-uncorrected", "gpu3", 3, 0, "WARNING"),
                           ("temperature", "gpu4", 85, 80, "CRITICAL")]
    assert said(judge) == [("temperature", "warning", "gpu1", "hot"), ("ecc-uncorrected", "critical", "gpu2", "ecc"),
                           ("ecc-uncorrected", "warning", "gpu3", "demoted"),
                           ("temperature", "critical", "gpu4", "promoted")]
    assert [f.details for f in judge.findings] == [{}, {"k": 1}, {}, {}]
    assert judge.unknown == []


def test_judge_severity_follows_the_settings_override() -> None:
    judge = Judge(settings_from_table({"severity": {"temperature": "critical", "ecc-uncorrected": "warning"}}))
    judge.judge("temperature", "gpu0", 85, 80, True, "hot")
    judge.judge("ecc-uncorrected", "gpu0", 1, 0, True, "ecc")
    assert [r[4] for r in rows(judge)] == ["CRITICAL", "WARNING"]
    assert [f.severity for f in judge.findings] == ["critical", "warning"]


def test_cannot_notes_name_the_subject_unless_it_is_the_check() -> None:
    judge = Judge(NodeSettings())
    judge.cannot("nvml", "nvml", "no driver")
    judge.cannot("hca-port-state", "mlx5_0/1", "port state unreadable")
    assert rows(judge) == [("nvml", "nvml", None, None, "UNKNOWN"),
                           ("hca-port-state", "mlx5_0/1", None, None, "UNKNOWN")]
    assert judge.unknown == ["nvml: no driver", "mlx5_0/1 hca-port-state: port state unreadable"]
    assert judge.findings == []


def test_results_carry_registered_ids_only() -> None:
    judge = Judge(NodeSettings())
    with pytest.raises(KeyError, match="node check 'temprature' is not registered in gpupool.node.catalog"):
        judge.judge("temprature", "gpu0", 1, 0, True, "typo")
    with pytest.raises(KeyError, match="'ecc' is not registered"):
        judge.cannot("ecc", "gpu0", "typo")
    assert judge.results == [] and judge.findings == [] and judge.unknown == []


def test_judge_on_reads_the_settings() -> None:
    judge = Judge(settings_from_table({"disabled_checks": ["temperature"]}))
    assert judge.on("ecc-uncorrected") is True
    assert judge.on("temperature") is False
    assert judge.on("pcie-gen") is False  # opt-in


def test_check_result_json_keys() -> None:
    assert CheckResult("xid", "gpu1", 2, 0, "WARNING").to_json() == {
        "check": "xid", "subject": "gpu1", "value": 2, "threshold": 0, "status": "WARNING"}


def test_known_check_takes_both_spellings() -> None:
    assert known_check("ecc_uncorrected") == "ecc-uncorrected"
    assert known_check(" ecc-uncorrected ") == "ecc-uncorrected"
    assert known_check("ecc") is None
    assert "nvlink-fabric" in node_checks()


# ----------------------------------------------------------------------------------- counters, keys


def test_counter_keys() -> None:
    assert gpu_counter_key(gpu(3), "pcie_replay") == "gpu:0000:13:00.0:pcie_replay"
    assert gpu_counter_key(gpu(3, bus_id=""), "pcie_replay") == "gpu:3:pcie_replay"
    assert hca_counter_key(HcaPort("mlx5_2", 1, "ACTIVE", "LinkUp", 400.0), "symbol_error") == \
        "hca:mlx5_2/1:symbol_error"


@pytest.mark.parametrize(("current", "previous", "expected"), [
    (7, None, (7, "since the counter was last reset")),  # no state file
    (7, {"other": 2}, (7, "since the counter was last reset")),  # first run for this counter
    (7, {"k": 2}, (5, "since the last check")),
    (7, {"k": 7}, (0, "since the last check")),  # unchanged
    (3, {"k": 7}, (3, "since the counter was last reset")),  # went down: the driver reset it
])
def test_counter_delta(current: int, previous: dict[str, int] | None, expected: tuple[int, str]) -> None:
    assert counter_delta("k", current, previous) == expected


def test_current_counters_lists_every_counter_a_delta_reads() -> None:
    gpus = GpuInventory(count=2, gpus=[gpu(0, nvlink_errors={"replay": 4, "crc_flit": 1}, pcie_replay=9),
                                       gpu(1, bus_id="", pcie_replay=None)])
    ports = [HcaPort("mlx5_0", 1, "ACTIVE", "LinkUp", 400.0, counters={"link_downed": 2, "symbol_error": 0})]
    assert current_counters(NodeFacts(gpus=gpus, hca_ports=ports)) == {
        "gpu:0000:10:00.0:nvlink_replay": 4, "gpu:0000:10:00.0:nvlink_crc_flit": 1,
        "gpu:0000:10:00.0:pcie_replay": 9,
        "hca:mlx5_0/1:link_downed": 2, "hca:mlx5_0/1:symbol_error": 0}
    assert current_counters(NodeFacts()) == {}
    assert current_counters(NodeFacts(gpus=GpuInventory(count=1, gpus=[gpu(0, pcie_replay=0)]))) == {
        "gpu:0000:10:00.0:pcie_replay": 0}


# --------------------------------------------------------------------------------- per-GPU checks

BUS = " (0000:10:00.0)"


@pytest.mark.parametrize(("check", "changes", "table", "row", "message"), [
    ("ecc-uncorrected", {}, None, ("gpu0", 0, 0, "OK"), None),
    ("ecc-uncorrected", {"ecc_uncorrected_volatile": 1}, None, ("gpu0", 1, 0, "CRITICAL"),
     "1 volatile uncorrectable ECC error(s)" + BUS),
    ("ecc-uncorrected", {"ecc_uncorrected_volatile": 5}, {"ecc_uncorrected_max": 5}, ("gpu0", 5, 5, "OK"), None),
    ("ecc-uncorrected", {"ecc_uncorrected_volatile": 6}, {"ecc_uncorrected_max": 5}, ("gpu0", 6, 5, "CRITICAL"),
     "6 volatile uncorrectable ECC error(s)" + BUS),
    ("ecc-uncorrected", {"ecc_uncorrected_volatile": 2, "bus_id": ""}, None, ("gpu0", 2, 0, "CRITICAL"),
     "2 volatile uncorrectable ECC error(s)"),
    ("remapped-rows-failure", {}, None, ("gpu0", False, False, "OK"), None),
    ("remapped-rows-failure", {"remap_failure": True}, None, ("gpu0", True, False, "CRITICAL"),
     "row remapping failed: the GPU needs service" + BUS),
    ("remapped-rows-pending", {}, None, ("gpu0", False, False, "OK"), None),
    ("remapped-rows-pending", {"remap_pending": True}, None, ("gpu0", True, False, "WARNING"),
     "row remapping pending: reset the GPU" + BUS),
    ("retired-pages-pending", {}, None, ("gpu0", False, False, "OK"), None),
    ("retired-pages-pending", {"retired_pages_pending": True}, None, ("gpu0", True, False, "WARNING"),
     "page retirement pending: reset the GPU" + BUS),
    ("temperature", {"temperature_c": 89}, None, ("gpu0", 89, 90, "OK"), None),
    ("temperature", {"temperature_c": 90}, None, ("gpu0", 90, 90, "WARNING"),
     "temperature 90 C >= 90 C (slowdown at 90 C)"),
    ("temperature", {"temperature_c": 84}, {"temperature_margin_c": 5}, ("gpu0", 84, 85, "OK"), None),
    ("temperature", {"temperature_c": 85}, {"temperature_margin_c": 5}, ("gpu0", 85, 85, "WARNING"),
     "temperature 85 C >= 85 C (slowdown at 90 C)"),
    ("throttle", {}, None, ("gpu0", "0x0", "mask 0xe8", "OK"), None),
    # Idle (0x1) and SW power cap (0x4) are not in the default mask 0x08|0x20|0x40|0x80.
    ("throttle", {"throttle_reasons": 0x05}, None, ("gpu0", "0x5", "mask 0xe8", "OK"), None),
    ("throttle", {"throttle_reasons": 0xC4}, None, ("gpu0", "0xc4", "mask 0xe8", "WARNING"),
     "clocks throttled: HW thermal slowdown, HW power brake"),
    ("throttle", {"throttle_reasons": 0x28}, None, ("gpu0", "0x28", "mask 0xe8", "WARNING"),
     "clocks throttled: HW slowdown, SW thermal slowdown"),
    # A reason bit without a name: the bits themselves.
    ("throttle", {"throttle_reasons": 0x1000}, {"throttle_mask": 0x1000}, ("gpu0", "0x1000", "mask 0x1000",
                                                                            "WARNING"),
     "clocks throttled: 0x1000"),
    ("throttle", {"throttle_reasons": 0x610}, {"throttle_mask": 0xFFFF}, ("gpu0", "0x610", "mask 0xffff", "WARNING"),
     "clocks throttled: sync boost, board limit, reliability"),
    ("nvlink-down", {"nvlink_active": [True, True, True]}, None, ("gpu0", 0, 0, "OK"), None),
    ("nvlink-down", {"nvlink_active": [True, False, True, False]}, None, ("gpu0", 2, 0, "CRITICAL"),
     "NVLink link(s) 1,3 inactive (2 of 4)"),
    ("nvlink-down", {"nvlink_active": [False]}, None, ("gpu0", 1, 0, "CRITICAL"),
     "NVLink link(s) 0 inactive (1 of 1)"),
    ("pcie-width", {}, None, ("gpu0", 16, 16, "OK"), None),
    ("pcie-width", {"pcie_width": 8}, None, ("gpu0", 8, 16, "WARNING"), "PCIe link x8, expected x16" + BUS),
    ("pcie-width", {"pcie_width": 32}, None, ("gpu0", 32, 16, "OK"), None),
    ("pcie-gen", {}, None, ("gpu0", 5, 5, "OK"), None),
    ("pcie-gen", {"pcie_gen": 4}, None, ("gpu0", 4, 5, "WARNING"), "PCIe gen 4, maximum gen 5" + BUS),
    ("pcie-replay", {"pcie_replay": 100}, None, ("gpu0", 100, 100, "OK"), None),
    ("pcie-replay", {"pcie_replay": 101}, None, ("gpu0", 101, 100, "WARNING"),
     "101 PCIe replay(s) since the counter was last reset (more than 100)" + BUS),
    ("pcie-replay", {"pcie_replay": 3}, {"pcie_replay_max": 2}, ("gpu0", 3, 2, "WARNING"),
     "3 PCIe replay(s) since the counter was last reset (more than 2)" + BUS),
])
def test_per_gpu_check_results(check: str, changes: dict[str, Any], table: dict[str, Any] | None,
                               row: tuple[Any, ...], message: str | None) -> None:
    judge = per_gpu(check, gpu(0, **changes), table)
    assert rows(judge) == [(check, *row)]
    severity = {"CRITICAL": "critical", "WARNING": "warning"}.get(row[-1])
    assert said(judge) == ([] if message is None else [(check, severity, "gpu0", message)])
    assert judge.unknown == []


@pytest.mark.parametrize(("check", "changes"), [
    ("ecc-uncorrected", {"ecc_uncorrected_volatile": None}),
    ("remapped-rows-failure", {"remap_failure": None}),
    ("remapped-rows-pending", {"remap_pending": None}),
    ("retired-pages-pending", {"retired_pages_pending": None}),
    ("temperature", {"temperature_c": None}),
    ("temperature", {"slowdown_c": None, "temperature_c": 200}),  # no slowdown threshold reported
    ("temperature", {"slowdown_c": 0, "temperature_c": 200}),
    ("throttle", {"throttle_reasons": None}),
    ("nvlink-down", {"nvlink_active": []}),  # no NVLink (PCIe card)
    ("nvlink-errors", {"nvlink_errors": {}}),
    ("nvlink-errors", {"nvlink_errors": {"err_link": 5}}),  # no counter of the three kinds
    ("pcie-width", {"pcie_width": None, "pcie_max_width": 16}),
    ("pcie-width", {"pcie_width": 0, "pcie_max_width": 16}),
    ("pcie-width", {"pcie_width": 8, "pcie_max_width": None}),
    ("pcie-width", {"pcie_width": 8, "pcie_max_width": 0}),
    ("pcie-gen", {"pcie_gen": None}),
    ("pcie-gen", {"pcie_gen": 0}),
    ("pcie-gen", {"pcie_gen": 1, "pcie_max_gen": None}),
    ("pcie-gen", {"pcie_gen": 1, "pcie_max_gen": 0}),
    ("pcie-replay", {"pcie_replay": None}),
])
def test_per_gpu_check_skips_what_the_gpu_does_not_report(check: str, changes: dict[str, Any]) -> None:
    judge = per_gpu(check, gpu(0, **changes))
    assert (judge.results, judge.findings, judge.unknown) == ([], [], [])


def test_per_gpu_checks_that_are_off_record_nothing() -> None:
    sick = gpu(2, ecc_uncorrected_volatile=9, remap_failure=True, remap_pending=True, retired_pages_pending=True,
               temperature_c=120, throttle_reasons=0xFF, nvlink_active=[False], nvlink_errors={"replay": 999},
               pcie_width=1, pcie_gen=1, pcie_replay=999, compute_pids=[5])
    every = sorted(node_checks().names())
    judge = Judge(settings_from_table({"disabled_checks": every}))
    judge_gpu(judge, sick, None, "prolog")
    assert (judge.results, judge.findings, judge.unknown) == ([], [], [])
    judge = Judge(NodeSettings())
    judge_gpu(judge, sick, None, "prolog")
    # Everything but the opt-in pcie-gen, in registration order.
    assert [r[0] for r in rows(judge)] == [
        "ecc-uncorrected", "remapped-rows-failure", "remapped-rows-pending", "retired-pages-pending", "temperature",
        "throttle", "nvlink-down", "nvlink-errors", "pcie-width", "pcie-replay", "gpu-processes"]
    assert {r[4] for r in rows(judge)} == {"WARNING", "CRITICAL"}
    assert check_gpu(sick, settings_from_table({"disabled_checks": every})) == []


def test_pcie_replay_delta_since_the_last_check() -> None:
    judge = per_gpu("pcie-replay", gpu(0, pcie_replay=700), previous={"gpu:0000:10:00.0:pcie_replay": 530})
    assert rows(judge) == [("pcie-replay", "gpu0", 170, 100, "WARNING")]
    assert said(judge) == [("pcie-replay", "warning", "gpu0",
                            "170 PCIe replay(s) since the last check (more than 100)" + BUS)]
    assert judge.findings[0].details == {"basis": "since the last check"}
    judge = per_gpu("pcie-replay", gpu(0, pcie_replay=630), previous={"gpu:0000:10:00.0:pcie_replay": 530})
    assert rows(judge) == [("pcie-replay", "gpu0", 100, 100, "OK")]


def nvlink(errors: dict[str, int], table: dict[str, Any] | None = None,
           previous: dict[str, int] | None = None) -> Judge:
    return per_gpu("nvlink-errors", gpu(1, nvlink_errors=errors), table, previous)


def test_nvlink_errors_per_kind_with_crc_summed() -> None:
    judge = nvlink({"replay": 100, "recovery": 1, "crc_flit": 60, "crc_data": 41})
    assert rows(judge) == [("nvlink-errors", "gpu1:replay", 100, 100, "OK"),
                           ("nvlink-errors", "gpu1:recovery", 1, 0, "WARNING"),
                           ("nvlink-errors", "gpu1:crc", 101, 100, "WARNING")]
    assert said(judge) == [
        ("nvlink-errors", "warning", "gpu1:recovery",
         "1 NVLink recovery error(s) since the counter was last reset (more than 0) (0000:11:00.0)"),
        ("nvlink-errors", "warning", "gpu1:crc",
         "101 NVLink crc error(s) since the counter was last reset (more than 100) (0000:11:00.0)")]
    assert [f.details for f in judge.findings] == [
        {"counter": "recovery", "basis": "since the counter was last reset"},
        {"counter": "crc", "basis": "since the counter was last reset"}]


def test_nvlink_errors_limits_and_single_crc_counter() -> None:
    judge = nvlink({"replay": 11, "recovery": 3, "crc_data": 8},
                   {"nvlink_replay_max": 10, "nvlink_recovery_max": 3, "nvlink_crc_max": 7})
    assert rows(judge) == [("nvlink-errors", "gpu1:replay", 11, 10, "WARNING"),
                           ("nvlink-errors", "gpu1:recovery", 3, 3, "OK"),
                           ("nvlink-errors", "gpu1:crc", 8, 7, "WARNING")]
    judge = nvlink({"crc_flit": 5})
    assert rows(judge) == [("nvlink-errors", "gpu1:crc", 5, 100, "OK")]


def test_nvlink_errors_since_the_last_check() -> None:
    key = "gpu:0000:11:00.0:nvlink_"
    judge = nvlink({"replay": 250, "crc_flit": 300, "crc_data": 10},
                   previous={key + "replay": 200, key + "crc_flit": 150})
    # crc: flit rose by 150 since the last check; data has no previous value: all 10 count.
    assert rows(judge) == [("nvlink-errors", "gpu1:replay", 50, 100, "OK"),
                           ("nvlink-errors", "gpu1:crc", 160, 100, "WARNING")]
    assert said(judge) == [("nvlink-errors", "warning", "gpu1:crc",
                            "160 NVLink crc error(s) since the last check (more than 100) (0000:11:00.0)")]


def test_processes_in_prolog_and_epilog() -> None:
    busy = gpu(2, compute_pids=[11, 22])
    idle = gpu(3)
    judge = Judge(NodeSettings())
    for mode in ("prolog", "epilog", "manual"):
        judge_processes(judge, busy, mode)
    judge_processes(judge, idle, "prolog")
    judge_processes(judge, idle, "epilog")
    assert rows(judge) == [("gpu-processes", "gpu2", [11, 22], [], "CRITICAL"),
                           ("leftover-processes", "gpu2", [11, 22], [], "CRITICAL"),
                           ("gpu-processes", "gpu3", [], [], "OK"), ("leftover-processes", "gpu3", [], [], "OK")]
    assert [f.message for f in judge.findings] == ["compute process(es) 11,22 already running before the job",
                                                   "compute process(es) 11,22 left behind after the job"]
    assert check_processes(busy, settings_from_table({"disabled_checks": ["gpu-processes"]}), "prolog") == []
    assert [f.check for f in check_processes(busy, settings_from_table({"disabled_checks": ["gpu-processes"]}),
                                             "epilog")] == ["leftover-processes"]


def test_processes_are_judged_only_in_a_prolog_or_epilog_run() -> None:
    busy = gpu(0, compute_pids=[7])
    for mode, expected in ((None, []), ("prolog", ["gpu-processes"]), ("epilog", ["leftover-processes"])):
        judge = Judge(only(None, "gpu-processes", "leftover-processes"))
        judge_gpu(judge, busy, None, mode)
        assert [r[0] for r in rows(judge)] == expected, mode
    assert GpuContext() == GpuContext(None, None)


# ------------------------------------------------------------------------------- node-wide checks


def test_gpu_count_against_config_pci_bus_and_job() -> None:
    inventory = GpuInventory(count=3, gpus=[gpu(0), gpu(1), gpu(3)])
    judge = Judge(NodeSettings())
    judge_gpu_count(judge, inventory, NodeFacts(expected_gpus=4, pci_gpus=["a", "b", "c", "d"], job_gpus=[1, 2, 4]))
    assert rows(judge) == [("gpu-count", "gpus", 3, 4, "CRITICAL"), ("gpu-count", "pci", 3, 4, "CRITICAL"),
                           ("gpu-count", "job", 1, 3, "CRITICAL")]
    assert [f.message for f in judge.findings] == [
        "3 GPU(s) visible to NVML, node is configured with 4",
        "3 GPU(s) visible to NVML, 4 NVIDIA GPU(s) on the PCI bus",
        "job GPU(s) 2,4 not visible to NVML"]
    judge = Judge(NodeSettings())
    judge_gpu_count(judge, inventory, NodeFacts(expected_gpus=3, pci_gpus=["a", "b", "c"], job_gpus=[0, 3]))
    assert rows(judge) == [("gpu-count", "gpus", 3, 3, "OK"), ("gpu-count", "pci", 3, 3, "OK"),
                           ("gpu-count", "job", 2, 2, "OK")]
    judge = Judge(NodeSettings())
    judge_gpu_count(judge, inventory, NodeFacts(expected_gpus=2, pci_gpus=[], job_gpus=[]))
    assert rows(judge) == [("gpu-count", "gpus", 3, 2, "OK"), ("gpu-count", "pci", 3, 0, "OK")]
    judge = Judge(NodeSettings())
    judge_gpu_count(judge, inventory, NodeFacts())
    assert rows(judge) == []
    judge = Judge(settings_from_table({"disabled_checks": ["gpu-count"]}))
    judge_gpu_count(judge, inventory, NodeFacts(expected_gpus=8, pci_gpus=["a"] * 8, job_gpus=[7]))
    assert rows(judge) == []


def test_gpu_evidence_names_each_reason() -> None:
    assert gpu_evidence(NodeFacts()) == []
    assert gpu_evidence(NodeFacts(expected_gpus=0, pci_gpus=[], job_gpus=[], job_gpus_on_node=0)) == []
    assert gpu_evidence(NodeFacts(expected_gpus=8, expected_source="gres.conf", pci_gpus=["a", "b"],
                                  job_gpus=[0])) == [
        "8 GPU(s) configured (gres.conf)", "2 NVIDIA GPU(s) on the PCI bus", "the job was given GPU(s) on this node"]
    assert gpu_evidence(NodeFacts(job_gpus_on_node=2)) == ["the job was given GPU(s) on this node"]


def test_select_gpus() -> None:
    inventory = GpuInventory(count=3, gpus=[gpu(0), gpu(1), gpu(2)])
    assert [g.index for g in select_gpus(inventory, None)] == [0, 1, 2]
    assert [g.index for g in select_gpus(inventory, [2, 0, 9])] == [0, 2]
    assert select_gpus(inventory, []) == []
    chosen = select_gpus(inventory, None)
    chosen.pop()
    assert len(inventory.gpus) == 3  # a copy: the caller may trim it


MISSING = CollectError("nvml", "NVML init failed: Driver Not Loaded")
HUNG = CollectError("nvml", "NVML did not answer within 5 s", timed_out=True)
NVML_CHECK_OFF = {"disabled_checks": ["nvml"]}


@pytest.mark.parametrize(("facts", "table", "row", "finding", "unknown"), [
    (NodeFacts(), None, None, None, []),
    (NodeFacts(gpu_error=MISSING, expected_gpus=8, expected_source="slurm.conf"), None,
     ("nvml", "nvml", "unusable", "usable", "CRITICAL"),
     ("critical", "NVML init failed: Driver Not Loaded; but 8 GPU(s) configured (slurm.conf)"), []),
    (NodeFacts(gpu_error=MISSING, pci_gpus=["0000:10:00.0"], job_gpus=[0]), None,
     ("nvml", "nvml", "unusable", "usable", "CRITICAL"),
     ("critical", "NVML init failed: Driver Not Loaded; but 1 NVIDIA GPU(s) on the PCI bus; "
                  "the job was given GPU(s) on this node"), []),
    (NodeFacts(gpu_error=MISSING, expected_gpus=8), NVML_CHECK_OFF, ("nvml", "nvml", None, None, "UNKNOWN"), None,
     ["nvml: NVML init failed: Driver Not Loaded"]),
    (NodeFacts(gpu_error=MISSING, pci_gpus=[]), None, ("nvml", "nvml", "no NVIDIA GPUs", "not needed", "OK"), None,
     []),
    (NodeFacts(gpu_error=MISSING), None, ("nvml", "nvml", None, None, "UNKNOWN"), None,
     ["nvml: NVML init failed: Driver Not Loaded; no GPU count configured and the PCI bus is unreadable, so a "
      "missing GPU driver cannot be ruled out"]),
    (NodeFacts(gpu_error=HUNG), None, ("nvml", "nvml", "timeout", "answer", "CRITICAL"),
     ("critical", "NVML did not answer within 5 s"), []),
    # Hung NVML on a node that must have GPUs: still the timeout's verdict, not "unusable".
    (NodeFacts(gpu_error=HUNG, expected_gpus=4), None, ("nvml", "nvml", "timeout", "answer", "CRITICAL"),
     ("critical", "NVML did not answer within 5 s"), []),
    (NodeFacts(gpu_error=HUNG, expected_gpus=4), {"nvml_timeout_status": "unknown"},
     ("nvml", "nvml", None, None, "UNKNOWN"), None, ["nvml: NVML did not answer within 5 s"]),
    (NodeFacts(gpu_error=HUNG), NVML_CHECK_OFF, ("nvml", "nvml", None, None, "UNKNOWN"), None,
     ["nvml: NVML did not answer within 5 s"]),
    # The severity of a hung NVML is the timeout's own (critical), whatever [node.severity] says.
    (NodeFacts(gpu_error=HUNG), {"severity": {"nvml": "warning"}}, ("nvml", "nvml", "timeout", "answer", "CRITICAL"),
     ("critical", "NVML did not answer within 5 s"), []),
    (NodeFacts(gpu_error=MISSING, expected_gpus=2, expected_source="gres.conf"), {"severity": {"nvml": "warning"}},
     ("nvml", "nvml", "unusable", "usable", "WARNING"),
     ("warning", "NVML init failed: Driver Not Loaded; but 2 GPU(s) configured (gres.conf)"), []),
])
def test_nvml_verdicts(facts: NodeFacts, table: dict[str, Any] | None, row: Row | None,
                       finding: tuple[str, str] | None, unknown: list[str]) -> None:
    judge = evaluate(facts, settings_from_table(table or {}))
    assert [r for r in rows(judge) if r[0] == "nvml"] == ([] if row is None else [row])
    assert [(f.severity, f.message) for f in judge.findings if f.check == "nvml"] == \
        ([] if finding is None else [finding])
    assert judge.unknown == unknown


def test_collect_error_finding_only_for_a_hung_nvml_set_critical() -> None:
    critical = NodeSettings()
    lenient = settings_from_table({"nvml_timeout_status": "unknown"})
    assert collect_error_finding(HUNG, critical, "nvml") == Finding("nvml", "critical", "nvml", HUNG.message)
    assert collect_error_finding(HUNG, lenient, "nvml") is None
    assert collect_error_finding(MISSING, critical, "nvml") is None
    assert collect_error_finding(CollectError("x", "slow", timed_out=True), critical, "xid") is None


# ------------------------------------------------------------------------------- NVLink fabric


def fabric(state: str = "completed", status: int = 0, health: int | None = None, clique: int = 7,
           cluster: str = "aaaaaaaa-0000-0000-0000-000000000001") -> GpuFabric:
    return GpuFabric(cluster, clique, state, status, health)


def test_nvlink_fabric_healthy_domain() -> None:
    judge = Judge(NodeSettings())
    judge_nvlink_fabric(judge, [gpu(0, nvlink_fabric=fabric()), gpu(1, nvlink_fabric=fabric(health=0))])
    assert rows(judge) == [("nvlink-fabric", "gpu0", "completed", "completed", "OK"),
                           ("nvlink-fabric", "gpu1", "completed", "completed", "OK")]
    assert judge.findings == []


def test_nvlink_fabric_no_report_no_check() -> None:
    judge = Judge(NodeSettings())
    judge_nvlink_fabric(judge, [gpu(0), gpu(1)])
    judge_nvlink_fabric(judge, [])
    assert judge.results == []
    judge = Judge(settings_from_table({"disabled_checks": ["nvlink-fabric"]}))
    judge_nvlink_fabric(judge, [gpu(0, nvlink_fabric=fabric("in_progress")), gpu(1)])
    assert judge.results == []


def test_nvlink_fabric_faults_per_gpu() -> None:
    gpus = [gpu(0), gpu(1, nvlink_fabric=fabric("in_progress")), gpu(2, nvlink_fabric=fabric(status=3)),
            # bandwidth degraded: bits 0-1 = 1; route unhealthy: bits 4-5 = 1.
            gpu(3, nvlink_fabric=fabric(health=0x11)), gpu(4, nvlink_fabric=fabric(status=5, health=2 << 14))]
    judge = Judge(NodeSettings())
    judge_nvlink_fabric(judge, gpus)
    assert rows(judge) == [
        ("nvlink-fabric", "gpu0", None, "completed", "WARNING"),
        ("nvlink-fabric", "gpu1", "in_progress", "completed", "WARNING"),
        ("nvlink-fabric", "gpu2", "registration failed (NVML status 3)", "completed", "WARNING"),
        ("nvlink-fabric", "gpu3", "bandwidth degraded; route unhealthy", "completed", "WARNING"),
        ("nvlink-fabric", "gpu4", "registration failed (NVML status 5); global fabric manager disconnected",
         "completed", "WARNING")]
    assert [f.message for f in judge.findings] == [
        "no NVLink fabric info while other GPUs of the node have one",
        "NVLink fabric registration not complete (in_progress)",
        "NVLink fabric: registration failed (NVML status 3)",
        "NVLink fabric: bandwidth degraded; route unhealthy",
        "NVLink fabric: registration failed (NVML status 5); global fabric manager disconnected"]


def test_nvlink_fabric_gpus_in_two_domains() -> None:
    gpus = [gpu(0, nvlink_fabric=fabric(clique=1)), gpu(1, nvlink_fabric=fabric(clique=2)),
            gpu(2, nvlink_fabric=fabric(clique=2))]
    judge = Judge(settings_from_table({"severity": {"nvlink-fabric": "critical"}}))
    judge_nvlink_fabric(judge, gpus)
    assert rows(judge)[-1] == ("nvlink-fabric", "node", 2, 1, "CRITICAL")
    assert [r[4] for r in rows(judge)[:3]] == ["OK", "OK", "OK"]
    assert said(judge) == [("nvlink-fabric", "critical", "node",
                            "the node's GPUs are in 2 NVLink domains (cluster/clique differ)")]


def test_nvlink_fabric_checks_only_the_jobs_gpus() -> None:
    inventory = GpuInventory(count=2, gpus=[gpu(0, nvlink_fabric=fabric(clique=1)),
                                            gpu(1, nvlink_fabric=fabric(clique=2))])
    judge = evaluate(NodeFacts(gpus=inventory, job_gpus=[1]), only(None, "nvlink-fabric"))
    assert rows(judge) == [("nvlink-fabric", "gpu1", "completed", "completed", "OK")]
    judge = evaluate(NodeFacts(gpus=inventory), only(None, "nvlink-fabric"))
    assert rows(judge)[-1] == ("nvlink-fabric", "node", 2, 1, "WARNING")


# ------------------------------------------------------------------------------------- HCA ports


def port(hca: str = "mlx5_0", number: int = 1, state: str | None = "ACTIVE", phys: str | None = "LinkUp",
         rate: float | None = 400.0, layer: str = "InfiniBand", counters: dict[str, int] | None = None) -> HcaPort:
    return HcaPort(hca, number, state, phys, rate, layer, counters or {})


def hca_judge(ports: list[HcaPort], table: dict[str, Any] | None = None, *checks: str,
              previous: dict[str, int] | None = None, fabric_rates: dict[str, float] | None = None) -> Judge:
    judge = Judge(only(table, *checks) if checks else settings_from_table(table or {}))
    judge_hca_ports(judge, ports, previous, fabric_rates)
    return judge


def test_hca_missing_by_name_and_by_port_count() -> None:
    judge = hca_judge([port("mlx5_0"), port("mlx5_1", layer="Ethernet"), port("mlx5_3")],
                      {"hcas": ["mlx5_0", "mlx5_1", "mlx5_2"], "expected_hca_ports": 3}, "hca-missing")
    # mlx5_1 is there (an Ethernet port), so not missing; only its InfiniBand port counts; mlx5_3 is not named.
    assert rows(judge) == [("hca-missing", "mlx5_0", True, True, "OK"), ("hca-missing", "mlx5_1", True, True, "OK"),
                           ("hca-missing", "mlx5_2", False, True, "CRITICAL"), ("hca-missing", "hcas", 1, 3, "CRITICAL")]
    assert [f.message for f in judge.findings] == ["HCA mlx5_2 not found", "1 HCA port(s) found, expected 3"]
    judge = hca_judge([port("mlx5_0"), port("mlx5_1")], {"expected_hca_ports": 2}, "hca-missing")
    assert rows(judge) == [("hca-missing", "hcas", 2, 2, "OK")]
    assert hca_judge([], None, "hca-missing").results == []
    judge = hca_judge([], {"hcas": ["mlx5_0"], "expected_hca_ports": 1, "disabled_checks": ["hca-missing"]})
    assert [r[0] for r in rows(judge)] == []


def test_hca_link_layers_select_ports() -> None:
    ports = [port("mlx5_0"), port("mlx5_1", state="DOWN", layer="Ethernet")]
    judge = hca_judge(ports, None, "hca-port-state")
    assert rows(judge) == [("hca-port-state", "mlx5_0/1", "ACTIVE", "ACTIVE", "OK")]
    judge = hca_judge(ports, {"link_layers": []}, "hca-port-state")
    assert rows(judge) == [("hca-port-state", "mlx5_0/1", "ACTIVE", "ACTIVE", "OK"),
                           ("hca-port-state", "mlx5_1/1", "DOWN", "ACTIVE", "CRITICAL")]
    judge = hca_judge(ports, {"link_layers": [], "hcas": ["mlx5_1"]}, "hca-port-state")
    assert [r[1] for r in rows(judge)] == ["mlx5_1/1"]


def test_hca_port_and_physical_state() -> None:
    ports = [port("mlx5_0", state="active", phys="linkup"), port("mlx5_1", state="DOWN", phys="Polling"),
             port("mlx5_2", state="", phys=""), port("mlx5_3", state=None, phys=None)]
    judge = hca_judge(ports, None, "hca-port-state", "hca-phys-state")
    assert rows(judge) == [
        ("hca-port-state", "mlx5_0/1", "active", "ACTIVE", "OK"), ("hca-phys-state", "mlx5_0/1", "linkup", "LinkUp", "OK"),
        ("hca-port-state", "mlx5_1/1", "DOWN", "ACTIVE", "CRITICAL"),
        ("hca-phys-state", "mlx5_1/1", "Polling", "LinkUp", "CRITICAL"),
        ("hca-port-state", "mlx5_2/1", "", "ACTIVE", "CRITICAL"), ("hca-phys-state", "mlx5_2/1", "", "LinkUp", "CRITICAL"),
        ("hca-port-state", "mlx5_3/1", None, None, "UNKNOWN"), ("hca-phys-state", "mlx5_3/1", None, None, "UNKNOWN")]
    assert [f.message for f in judge.findings] == [
        "port state DOWN, expected ACTIVE", "physical state Polling, expected LinkUp",
        "port state (empty), expected ACTIVE", "physical state (empty), expected LinkUp"]
    assert judge.unknown == ["mlx5_3/1 hca-port-state: port state unreadable",
                             "mlx5_3/1 hca-phys-state: physical state unreadable"]
    judge = hca_judge([port("mlx5_0", state="ARMED", phys="LinkUp")],
                      {"expected_hca_state": "armed", "expected_hca_phys_state": "LINKUP"},
                      "hca-port-state", "hca-phys-state")
    assert rows(judge) == [("hca-port-state", "mlx5_0/1", "ARMED", "armed", "OK"),
                           ("hca-phys-state", "mlx5_0/1", "LinkUp", "LINKUP", "OK")]


def test_hca_rate_expected_per_hca_then_for_all() -> None:
    ports = [port("mlx5_0", rate=400.0), port("mlx5_1", rate=200.0), port("mlx5_2", rate=100.0),
             port("mlx5_3", rate=None)]
    judge = hca_judge(ports, {"expected_hca_rate": 400, "expected_hca_rates": {"mlx5_2": 100}}, "hca-rate")
    assert rows(judge) == [("hca-rate", "mlx5_0/1", 400.0, 400.0, "OK"), ("hca-rate", "mlx5_1/1", 200.0, 400.0, "WARNING"),
                           ("hca-rate", "mlx5_2/1", 100.0, 100.0, "OK")]
    assert [f.message for f in judge.findings] == ["rate 200 Gb/s, expected 400 Gb/s"]
    judge = hca_judge([port("mlx5_0", rate=25.78125)], {"expected_hca_rates": {"mlx5_0": 53.125}}, "hca-rate")
    assert [f.message for f in judge.findings] == ["rate 25.7812 Gb/s, expected 53.125 Gb/s"]
    assert hca_judge(ports, None, "hca-rate").results == []  # nothing expected
    judge = hca_judge(ports, {"expected_hca_rate": 400, "disabled_checks": ["hca-rate"]})
    assert [r for r in rows(judge) if r[0] == "hca-rate"] == []


def test_hca_rate_against_the_fabric_models_cable() -> None:
    # 4x EDR: 103.125 Gb/s signalling; sysfs says 100. 95% of 103.125 is 97.96875.
    ports = [port("mlx5_0", rate=100.0), port("mlx5_1", rate=97.96875), port("mlx5_2", rate=97.9),
             port("mlx5_3", rate=50.0)]
    model = {"mlx5_0/1": 103.125, "mlx5_1/1": 103.125, "mlx5_2/1": 103.125, "mlx5_4/1": 1.0}
    judge = hca_judge(ports, {"expected_hca_rate": 400}, "hca-rate", fabric_rates=model)
    # The model wins where it knows the port; mlx5_3 falls back to expected_hca_rate.
    assert rows(judge) == [("hca-rate", "mlx5_0/1", 100.0, 103.125, "OK"),
                           ("hca-rate", "mlx5_1/1", 97.96875, 103.125, "OK"),
                           ("hca-rate", "mlx5_2/1", 97.9, 103.125, "WARNING"),
                           ("hca-rate", "mlx5_3/1", 50.0, 400.0, "WARNING")]
    assert [f.message for f in judge.findings] == [
        "rate 97.9 Gb/s, the fabric model has a 103.125 Gb/s cable here", "rate 50 Gb/s, expected 400 Gb/s"]
    judge = hca_judge([port("mlx5_0", rate=26.0)], None, "hca-rate", fabric_rates={"mlx5_0/1": 26.5625 + 1e-7})
    assert rows(judge) == [("hca-rate", "mlx5_0/1", 26.0, 26.563, "OK")]  # the threshold shown rounded
    judge = hca_judge([port("mlx5_0", rate=None)], None, "hca-rate", fabric_rates={"mlx5_0/1": 100.0})
    assert judge.results == []


def test_hca_link_downed_and_error_counters() -> None:
    counters = {"link_downed": 1, "symbol_error": 10, "port_rcv_errors": 11, "link_error_recovery": 0, "other": 99}
    judge = hca_judge([port("mlx5_0", counters=counters)], None, "hca-link-downed", "hca-errors")
    assert rows(judge) == [("hca-link-downed", "mlx5_0/1", 1, 0, "WARNING"),
                           ("hca-errors", "mlx5_0/1:symbol_error", 10, 10, "OK"),
                           ("hca-errors", "mlx5_0/1:port_rcv_errors", 11, 10, "WARNING"),
                           ("hca-errors", "mlx5_0/1:link_error_recovery", 0, 0, "OK")]
    assert [f.message for f in judge.findings] == [
        "link went down 1 time(s) since the counter was last reset (link_downed; more than 0 is a flapping link)",
        "port_rcv_errors 11 since the counter was last reset (more than 10)"]
    assert [f.details for f in judge.findings] == [{"basis": "since the counter was last reset"}] * 2
    previous = {"hca:mlx5_0/1:link_downed": 1, "hca:mlx5_0/1:port_rcv_errors": 5, "hca:mlx5_0/1:symbol_error": 1}
    table = {"hca_link_downed_max": 1, "hca_symbol_error_max": 8, "hca_rcv_errors_max": 5,
             "hca_link_recovery_max": 2}
    counters = {"link_downed": 3, "symbol_error": 9, "port_rcv_errors": 10, "link_error_recovery": 3}
    judge = hca_judge([port("mlx5_0", counters=counters)], table, "hca-link-downed", "hca-errors", previous=previous)
    assert rows(judge) == [("hca-link-downed", "mlx5_0/1", 2, 1, "WARNING"),
                           ("hca-errors", "mlx5_0/1:symbol_error", 8, 8, "OK"),
                           ("hca-errors", "mlx5_0/1:port_rcv_errors", 5, 5, "OK"),
                           ("hca-errors", "mlx5_0/1:link_error_recovery", 3, 2, "WARNING")]
    assert [f.message for f in judge.findings] == [
        "link went down 2 time(s) since the last check (link_downed; more than 1 is a flapping link)",
        "link_error_recovery 3 since the counter was last reset (more than 2)"]
    assert [f.details for f in judge.findings] == [{"basis": "since the last check"},
                                                   {"basis": "since the counter was last reset"}]
    judge = hca_judge([port("mlx5_0", counters={"symbol_error": 1})], None, "hca-link-downed", "hca-errors")
    assert rows(judge) == [("hca-errors", "mlx5_0/1:symbol_error", 1, 10, "OK")]


def test_check_hca_ports_without_previous_counters() -> None:
    ports = [port("mlx5_0", counters={"link_downed": 2})]
    assert [(f.check, f.subject) for f in check_hca_ports(ports, NodeSettings())] == [
        ("hca-link-downed", "mlx5_0/1")]


def test_hca_error_is_a_note_and_ports_still_checked() -> None:
    facts = NodeFacts(hca_error=CollectError("ibstat", "timed out after 3 s"), hca_ports=[port("mlx5_0", state="DOWN")])
    judge = evaluate(facts, only(None, "hca-port-state"))
    assert judge.unknown == ["ibstat: timed out after 3 s"]
    assert rows(judge) == [("hca-port-state", "mlx5_0/1", "DOWN", "ACTIVE", "CRITICAL")]
    facts = NodeFacts(hca_ports=[port("mlx5_0", rate=50.0)], hca_fabric_rates={"mlx5_0/1": 100.0},
                      previous_counters=None)
    judge = evaluate(facts, only(None, "hca-rate"))
    assert rows(judge) == [("hca-rate", "mlx5_0/1", 50.0, 100.0, "WARNING")]
    facts = NodeFacts(hca_ports=[port("mlx5_0", counters={"link_downed": 5})],
                      previous_counters={"hca:mlx5_0/1:link_downed": 5})
    judge = evaluate(facts, only(None, "hca-link-downed"))
    assert rows(judge) == [("hca-link-downed", "mlx5_0/1", 0, 0, "OK")]


# -------------------------------------------------------------------------------------------- XID


def xid(seq: int, pci: str, code: int, text: str = "") -> XidEvent:
    return XidEvent(seq, pci, code, text or f"NVRM: Xid (PCI:{pci}): {code}, pid=1")


def xid_judge(facts: NodeFacts, table: dict[str, Any] | None = None) -> Judge:
    judge = Judge(settings_from_table(table or {}))
    judge_xid(judge, facts)
    return judge


def test_xid_groups_by_gpu_and_code_fatal_first_by_subject() -> None:
    inventory = GpuInventory(count=2, gpus=[gpu(0)], bus_ids={0: "0000:10:00.0", 1: "0000:11:00.0"})
    events = [xid(1, "0000:11:00", 13, "first 13"), xid(2, "0000:11:00", 13, "second 13"),
              xid(3, "0000:10:00", 79, "off the bus"), xid(4, "0000:99:00", 31, "fault")]
    judge = xid_judge(NodeFacts(gpus=inventory, xid_events=events))
    # Sorted by (subject, code); gpu1 is named through bus_ids although it is not checked.
    assert rows(judge) == [("xid-fatal", "gpu0", 1, 0, "CRITICAL"), ("xid", "gpu1", 2, 0, "WARNING"),
                           ("xid", "pci:0000:99:00", 1, 0, "WARNING")]
    assert said(judge) == [
        ("xid-fatal", "critical", "gpu0", "Xid 79 (GPU has fallen off the bus) x1 since boot: off the bus"),
        ("xid", "warning", "gpu1", "Xid 13 (Graphics Engine Exception) x2 since boot: second 13"),
        ("xid", "warning", "pci:0000:99:00", "Xid 31 (GPU memory page fault) x1 since boot: fault")]
    assert [f.details for f in judge.findings] == [{"xid": 79, "pci": "0000:10:00", "count": 1},
                                                   {"xid": 13, "pci": "0000:11:00", "count": 2},
                                                   {"xid": 31, "pci": "0000:99:00", "count": 1}]


def test_xid_site_lists_window_and_long_text() -> None:
    events = [xid(1, "0000:10:00", 13), xid(2, "0000:10:00", 79), xid(3, "0000:10:00", 48, "x" * 400)]
    judge = xid_judge(NodeFacts(xid_events=events, xid_since_last_check=True),
                      {"xid_ignore": [79], "xid_critical": [13]})
    assert [r[:3] for r in rows(judge)] == [("xid-fatal", "pci:0000:10:00", 1), ("xid", "pci:0000:10:00", 1)]
    messages = [f.message for f in judge.findings]
    assert messages[0] == "Xid 13 (Graphics Engine Exception) x1 since the last check: NVRM: Xid (PCI:0000:10:00): 13, pid=1"
    head = "Xid 48 (Double Bit ECC Error) x1 since the last check: "
    assert messages[1] == (head + "x" * 400)[:300] and len(messages[1]) == 300


def test_xid_quiet_log_and_checks_turned_off() -> None:
    judge = xid_judge(NodeFacts(xid_events=[]))
    assert rows(judge) == [("xid", "kernel log", 0, 0, "OK")] and judge.findings == []
    judge = xid_judge(NodeFacts(xid_events=[xid(1, "0000:10:00", 13)]), {"xid_ignore": [13]})
    assert rows(judge) == [("xid", "kernel log", 0, 0, "OK")]
    assert xid_judge(NodeFacts(xid_events=None)).results == []
    events = [xid(1, "0000:10:00", 13), xid(2, "0000:10:00", 79)]
    judge = xid_judge(NodeFacts(xid_events=events), {"disabled_checks": ["xid"]})
    assert [r[0] for r in rows(judge)] == ["xid-fatal"]
    judge = xid_judge(NodeFacts(xid_events=events), {"disabled_checks": ["xid-fatal"]})
    assert [r[0] for r in rows(judge)] == ["xid"]


@pytest.mark.parametrize(("disabled", "unknown"), [
    ([], ["kernel log xid: /dev/kmsg: permission denied"]),
    (["xid"], ["kernel log xid: /dev/kmsg: permission denied"]),
    (["xid-fatal"], ["kernel log xid: /dev/kmsg: permission denied"]),
    (["xid", "xid-fatal"], []),
])
def test_unreadable_kernel_log(disabled: list[str], unknown: list[str]) -> None:
    facts = NodeFacts(xid_error=CollectError("kmsg", "/dev/kmsg: permission denied"),
                      xid_events=[xid(1, "0000:10:00", 79)])
    judge = xid_judge(facts, {"disabled_checks": disabled})
    assert judge.unknown == unknown and judge.findings == []
    assert rows(judge) == ([("xid", "kernel log", None, None, "UNKNOWN")] if unknown else [])


# ------------------------------------------------------------------------------------------- DCGM


def test_dcgm_results() -> None:
    tests = [DcgmTest("software", "node", "pass"), DcgmTest("memory", "gpu1", "fail", "ECC errors"),
             DcgmTest("pcie", "gpu0", "warn", "120 replays"), DcgmTest("inforom", "node", "skip"),
             DcgmTest("diag", "gpu2", "fail")]
    judge = Judge(NodeSettings())
    judge_dcgm(judge, NodeFacts(dcgm=DcgmResult(2, tests)))
    assert rows(judge) == [("dcgm-diag", "node", "pass", "pass", "OK"), ("dcgm-diag", "gpu1", "fail", "pass", "CRITICAL"),
                           ("dcgm-diag", "gpu0", "warn", "pass", "WARNING"), ("dcgm-diag", "node", "skip", "pass", "OK"),
                           ("dcgm-diag", "gpu2", "fail", "pass", "CRITICAL")]
    assert said(judge) == [("dcgm-diag", "critical", "gpu1", "dcgmi diag -r 2: memory FAIL: ECC errors"),
                           ("dcgm-diag", "warning", "gpu0", "dcgmi diag -r 2: pcie WARN: 120 replays"),
                           ("dcgm-diag", "critical", "gpu2", "dcgmi diag -r 2: diag FAIL")]
    assert [f.details for f in judge.findings] == [{"test": "memory"}, {"test": "pcie"}, {"test": "diag"}]


def test_dcgm_not_run_unreadable_or_off() -> None:
    error = CollectError("dcgmi", "dcgmi: not found")
    judge = Judge(NodeSettings())
    judge_dcgm(judge, NodeFacts(dcgm_error=error, dcgm=DcgmResult(1, [DcgmTest("x", "node", "fail")])))
    assert rows(judge) == [("dcgm-diag", "dcgmi", None, None, "UNKNOWN")]
    assert judge.unknown == ["dcgmi dcgm-diag: dcgmi: not found"] and judge.findings == []
    judge = Judge(NodeSettings())
    judge_dcgm(judge, NodeFacts())
    assert judge.results == [] and judge.unknown == []
    judge = Judge(settings_from_table({"disabled_checks": ["dcgm-diag"]}))
    judge_dcgm(judge, NodeFacts(dcgm_error=error))
    judge_dcgm(judge, NodeFacts(dcgm=DcgmResult(1, [DcgmTest("x", "node", "fail")])))
    assert judge.results == [] and judge.unknown == []


# ---------------------------------------------------------------------------------------- evaluate


def test_evaluate_runs_every_check_in_registration_order() -> None:
    inventory = GpuInventory(count=2, gpus=[gpu(0, nvlink_fabric=fabric()), gpu(1, ecc_uncorrected_volatile=1)],
                             bus_ids={0: "0000:10:00.0", 1: "0000:11:00.0"})
    inventory.gpus[1].errors = {"temperature": "GPU is lost", "clocks": "Unknown Error"}
    facts = NodeFacts(gpus=inventory, expected_gpus=2, xid_events=[], hca_ports=[port("mlx5_0")],
                      dcgm=DcgmResult(1, [DcgmTest("software", "node", "pass")]))
    judge = evaluate(facts, NodeSettings())
    checks = [r[0] for r in rows(judge)]
    per_gpu_ids = ["ecc-uncorrected", "remapped-rows-failure", "remapped-rows-pending", "retired-pages-pending",
                   "temperature", "throttle", "nvlink-down", "pcie-width"]
    assert checks == ["gpu-count", *per_gpu_ids, *per_gpu_ids, "nvlink-fabric", "nvlink-fabric", "xid",
                      "hca-port-state", "hca-phys-state", "dcgm-diag"]
    assert [r[1] for r in rows(judge) if r[0] == "ecc-uncorrected"] == ["gpu0", "gpu1"]
    assert said(judge) == [("ecc-uncorrected", "critical", "gpu1", "1 volatile uncorrectable ECC error(s) (0000:11:00.0)"),
                           ("nvlink-fabric", "warning", "gpu1", "no NVLink fabric info while other GPUs of the node have one")]
    assert judge.unknown == ["gpu1 clocks: Unknown Error", "gpu1 temperature: GPU is lost"]


def test_evaluate_checks_only_the_jobs_gpus_with_the_runs_counters_and_mode() -> None:
    inventory = GpuInventory(count=3, gpus=[gpu(0, pcie_replay=500, compute_pids=[1]),
                                            gpu(1, pcie_replay=500, compute_pids=[2], errors={"x": "y"}),
                                            gpu(2, pcie_replay=500)])
    facts = NodeFacts(gpus=inventory, job_gpus=[1, 2], mode="epilog",
                      previous_counters={"gpu:0000:11:00.0:pcie_replay": 450, "gpu:0000:12:00.0:pcie_replay": 300})
    judge = evaluate(facts, only(None, "pcie-replay", "leftover-processes"))
    assert rows(judge) == [("pcie-replay", "gpu1", 50, 100, "OK"), ("leftover-processes", "gpu1", [2], [], "CRITICAL"),
                           ("pcie-replay", "gpu2", 200, 100, "WARNING"), ("leftover-processes", "gpu2", [], [], "OK")]
    assert judge.unknown == ["gpu1 x: y"]
    findings, unknown = run_checks(facts, only(None, "pcie-replay", "leftover-processes"))
    assert [(f.check, f.subject) for f in findings] == [("leftover-processes", "gpu1"), ("pcie-replay", "gpu2")]
    assert unknown == ["gpu1 x: y"]


def test_evaluate_without_gpus() -> None:
    judge = evaluate(NodeFacts(gpu_error=MISSING, pci_gpus=[]), NodeSettings())
    assert rows(judge) == [("nvml", "nvml", "no NVIDIA GPUs", "not needed", "OK")]
    judge = evaluate(NodeFacts(), NodeSettings())
    assert (judge.results, judge.findings, judge.unknown) == ([], [], [])


# ------------------------------------------------------------------------------------ drain reason


def test_drain_reason_wording() -> None:
    assert drain_reason([]) == "gpupool: node check failed"
    findings = [Finding("pcie-width", "warning", "gpu0", "x8"), Finding("nvml", "critical", "nvml", "gone"),
                Finding("temperature", "warning", "gpu1", "hot\nvery"),
                Finding("ecc-uncorrected", "critical", "gpu3", 'a "b"')]
    # Critical first, each group in its given order; a finding about the check itself names it once.
    assert drain_reason(findings) == ("gpupool: nvml: gone; gpu3 ecc-uncorrected: a 'b'; gpu0 pcie-width: x8; "
                                      "gpu1 temperature: hot very")


def test_drain_reason_length_limit() -> None:
    text = "gpupool: gpu0 xid: " + "a" * 11  # 30 characters
    finding = Finding("xid", "warning", "gpu0", "a" * 11)
    assert drain_reason([finding], limit=30) == text
    assert drain_reason([finding], limit=29) == text[:26] + "..."
    long = Finding("xid", "warning", "gpu0", "b" * 500)
    assert drain_reason([long]) == ("gpupool: gpu0 xid: " + "b" * 500)[:177] + "..."
    assert len(drain_reason([long])) == 180


def test_check_gpu_takes_the_last_runs_counters() -> None:
    rising = gpu(0, pcie_replay=150)
    assert check_gpu(rising, NodeSettings(), {"gpu:0000:10:00.0:pcie_replay": 100}) == []  # 50 since the last run
    assert [f.message for f in check_gpu(rising, NodeSettings())] == [
        "150 PCIe replay(s) since the counter was last reset (more than 100)" + BUS]


def test_hca_checks_that_are_off_record_nothing() -> None:
    sick = port("mlx5_0", rate=10.0, counters={"link_downed": 9, "symbol_error": 99, "port_rcv_errors": 99,
                                               "link_error_recovery": 9})
    judge = hca_judge([sick], {"expected_hca_rate": 400}, "hca-port-state", fabric_rates={"mlx5_0/1": 100.0})
    assert rows(judge) == [("hca-port-state", "mlx5_0/1", "ACTIVE", "ACTIVE", "OK")]
    judge = hca_judge([sick], {"expected_hca_rate": 400}, "hca-port-state")
    assert rows(judge) == [("hca-port-state", "mlx5_0/1", "ACTIVE", "ACTIVE", "OK")]


def test_hca_errors_reads_each_counter_the_port_has() -> None:
    judge = hca_judge([port("mlx5_0", counters={"port_rcv_errors": 11, "link_error_recovery": 1})], None,
                      "hca-errors")
    assert rows(judge) == [("hca-errors", "mlx5_0/1:port_rcv_errors", 11, 10, "WARNING"),
                           ("hca-errors", "mlx5_0/1:link_error_recovery", 1, 0, "WARNING")]
