"""Pure node checks: facts in, findings and status out."""

from __future__ import annotations

import pytest

from gpupool.errors import InputError
from gpupool.node.check_run import CheckReport, exit_code, should_drain
from gpupool.node.checks import (
    check_gpu,
    check_hca_ports,
    check_processes,
    drain_reason,
    overall_status,
    run_checks,
)
from gpupool.node.facts import CollectError, Finding, GpuFacts, GpuInventory, HcaPort, NodeFacts
from gpupool.node.settings import NodeSettings, settings_from_table


def healthy_gpu(index: int = 0, **changes: object) -> GpuFacts:
    gpu = GpuFacts(index=index, bus_id=f"0000:{0x10 + index:02x}:00.0", ecc_uncorrected_volatile=0,
                   remap_pending=False, remap_failure=False, retired_pages_pending=False,
                   temperature_c=40, slowdown_c=90, throttle_reasons=0, nvlink_active=[True] * 18,
                   pcie_width=16, pcie_max_width=16, pcie_gen=5, pcie_max_gen=5)
    for key, value in changes.items():
        setattr(gpu, key, value)
    return gpu


def checks_of(findings: list[Finding]) -> list[tuple[str, str, str]]:
    return [(f.check, f.severity, f.subject) for f in findings]


def test_healthy_gpu_has_no_findings() -> None:
    assert list(check_gpu(healthy_gpu(), NodeSettings())) == []


@pytest.mark.parametrize(("changes", "expected"), [
    ({"ecc_uncorrected_volatile": 2}, ("ecc-uncorrected", "critical")),
    ({"remap_failure": True}, ("remapped-rows-failure", "critical")),
    ({"remap_pending": True}, ("remapped-rows-pending", "warning")),
    ({"retired_pages_pending": True}, ("retired-pages-pending", "warning")),
    ({"temperature_c": 91}, ("temperature", "warning")),
    ({"throttle_reasons": 0x40}, ("throttle", "warning")),
    ({"nvlink_active": [True, False, True]}, ("nvlink-down", "critical")),
    ({"pcie_width": 8}, ("pcie-width", "warning")),
])
def test_each_fault_gives_its_finding(changes: dict[str, object], expected: tuple[str, str]) -> None:
    findings = list(check_gpu(healthy_gpu(3, **changes), NodeSettings()))
    assert checks_of(findings) == [(expected[0], expected[1], "gpu3")]


def test_thresholds_and_masks_come_from_settings() -> None:
    settings = settings_from_table({"ecc_uncorrected_max": 5, "temperature_margin_c": 10,
                                    "throttle_mask": 0x04})
    assert list(check_gpu(healthy_gpu(ecc_uncorrected_volatile=5), settings)) == []
    assert checks_of(list(check_gpu(healthy_gpu(ecc_uncorrected_volatile=6), settings)))[0][0] == "ecc-uncorrected"
    assert checks_of(list(check_gpu(healthy_gpu(temperature_c=80), settings))) == [("temperature", "warning", "gpu0")]
    # HW thermal (0x40) is not in the configured mask, SW power cap (0x04) is.
    assert list(check_gpu(healthy_gpu(throttle_reasons=0x40), settings)) == []
    assert [f.message for f in check_gpu(healthy_gpu(throttle_reasons=0x44), settings)] == [
        "clocks throttled: SW power cap"]


def test_idle_gpu_on_lower_pcie_gen_is_fine_unless_enabled() -> None:
    slow = healthy_gpu(pcie_gen=1)
    assert list(check_gpu(slow, NodeSettings())) == []
    enabled = settings_from_table({"enabled_checks": ["pcie_gen"]})
    assert checks_of(list(check_gpu(slow, enabled))) == [("pcie-gen", "warning", "gpu0")]


def test_disabled_checks_and_severity_overrides() -> None:
    settings = settings_from_table({"disabled_checks": ["ecc_uncorrected"],
                                    "severity": {"remapped-rows-pending": "critical"}})
    gpu = healthy_gpu(ecc_uncorrected_volatile=9, remap_pending=True)
    assert checks_of(list(check_gpu(gpu, settings))) == [("remapped-rows-pending", "critical", "gpu0")]


def test_processes_matter_only_in_prolog_and_epilog() -> None:
    gpu = healthy_gpu(compute_pids=[11, 22])
    settings = NodeSettings()
    assert list(check_processes(gpu, settings, "manual")) == []
    prolog = list(check_processes(gpu, settings, "prolog"))
    epilog = list(check_processes(gpu, settings, "epilog"))
    assert checks_of(prolog) == [("gpu-processes", "critical", "gpu0")]
    assert checks_of(epilog) == [("leftover-processes", "critical", "gpu0")]
    assert "11,22" in epilog[0].message


def test_only_the_jobs_gpus_are_checked_and_missing_ones_reported() -> None:
    inventory = GpuInventory(count=4, gpus=[healthy_gpu(i) for i in range(4)])
    inventory.gpus[0].ecc_uncorrected_volatile = 7  # not the job's GPU: ignored
    inventory.gpus[2].remap_failure = True
    facts = NodeFacts(gpus=inventory, job_gpus=[2, 3], expected_gpus=4, mode="prolog")
    findings, unknown = run_checks(facts, NodeSettings())
    assert checks_of(findings) == [("remapped-rows-failure", "critical", "gpu2")]
    assert unknown == []
    facts.job_gpus = [3, 5]
    findings, _ = run_checks(facts, NodeSettings())
    assert [(f.check, f.message) for f in findings] == [("gpu-count", "job GPU(s) 5 not visible to NVML")]


def test_gpu_count_below_gres_is_critical() -> None:
    inventory = GpuInventory(count=7, gpus=[healthy_gpu(i) for i in range(7)])
    findings, _ = run_checks(NodeFacts(gpus=inventory, expected_gpus=8), NodeSettings())
    assert checks_of(findings) == [("gpu-count", "critical", "gpus")]
    findings, _ = run_checks(NodeFacts(gpus=inventory, expected_gpus=7), NodeSettings())
    assert findings == []


def test_nvml_failures() -> None:
    missing = CollectError("nvml", "NVML init failed: Driver Not Loaded")
    # A CPU-only node (no GPUs expected, none on the PCI bus): nothing to say.
    assert run_checks(NodeFacts(gpu_error=missing, pci_gpus=[]), NodeSettings()) == ([], [])
    findings, _ = run_checks(NodeFacts(gpu_error=missing, expected_gpus=8), NodeSettings())
    assert checks_of(findings) == [("nvml", "critical", "nvml")]
    hung = CollectError("nvml", "NVML did not answer within 5 s", timed_out=True)
    findings, unknown = run_checks(NodeFacts(gpu_error=hung), NodeSettings())
    assert checks_of(findings) == [("nvml", "critical", "nvml")] and unknown == []
    lenient = settings_from_table({"nvml_timeout_status": "unknown"})
    findings, unknown = run_checks(NodeFacts(gpu_error=hung), lenient)
    assert findings == [] and unknown == ["nvml: NVML did not answer within 5 s"]
    assert overall_status(findings, unknown) == "UNKNOWN"


def port(hca: str, number: int, state: str = "ACTIVE", phys: str = "LinkUp", rate: float | None = 400.0,
         layer: str = "InfiniBand") -> HcaPort:
    return HcaPort(hca, number, state, phys, rate, layer)


def test_hca_port_checks_name_hca_and_port() -> None:
    settings = settings_from_table({"expected_hca_rate": 400})
    ports = [port("mlx5_0", 1), port("mlx5_1", 1, "DOWN", "Polling"), port("mlx5_2", 1, rate=200.0),
             port("mlx5_3", 1, "DOWN", "Disabled", layer="Ethernet")]
    findings = list(check_hca_ports(ports, settings))
    assert checks_of(findings) == [
        ("hca-port-state", "critical", "mlx5_1/1"),
        ("hca-phys-state", "critical", "mlx5_1/1"),
        ("hca-rate", "warning", "mlx5_2/1"),
    ]


def test_expected_hcas_missing() -> None:
    settings = settings_from_table({"hcas": ["mlx5_0", "mlx5_4"], "expected_hca_ports": 2})
    findings = list(check_hca_ports([port("mlx5_0", 1)], settings))
    assert [(f.check, f.subject) for f in findings] == [("hca-missing", "mlx5_4"), ("hca-missing", "hcas")]


def test_status_order_and_exit_codes() -> None:
    warning = Finding("pcie-width", "warning", "gpu0", "x8")
    critical = Finding("ecc-uncorrected", "critical", "gpu1", "3")
    assert overall_status([], []) == "OK"
    assert overall_status([warning], []) == "WARNING"
    assert overall_status([warning], ["nvml: x"]) == "UNKNOWN"
    assert overall_status([warning, critical], ["nvml: x"]) == "CRITICAL"
    expectations = {  # (status, mode, strict) -> exit code
        ("WARNING", "manual", False): 1, ("CRITICAL", "manual", False): 2,
        ("UNKNOWN", "manual", False): 3, ("WARNING", "prolog", False): 0,
        ("CRITICAL", "prolog", False): 2, ("UNKNOWN", "prolog", False): 0,
        ("UNKNOWN", "prolog", True): 3, ("CRITICAL", "epilog", False): 2,
    }
    for (status, mode, strict), code in expectations.items():
        report = CheckReport(status=status, mode=mode, node="n1")
        assert exit_code(report, strict) == code, (status, mode, strict)
        assert should_drain(report, strict) == (mode != "manual" and code != 0)


def test_drain_reason_puts_critical_first_and_fits_scontrol() -> None:
    findings = [Finding("pcie-width", "warning", "gpu0", "x8"),
                Finding("ecc-uncorrected", "critical", "gpu1", 'say "hi"' + "x" * 300)]
    reason = drain_reason(findings)
    assert reason.startswith("gpupool: gpu1 ecc-uncorrected: say 'hi'")
    assert len(reason) == 180 and reason.endswith("...") and '"' not in reason


def test_bad_config_is_an_input_error() -> None:
    with pytest.raises(InputError, match="unknown check"):
        settings_from_table({"disabled_checks": ["ecc"]})
    with pytest.raises(InputError, match="unknown key"):
        settings_from_table({"nvml_timout": 3})
    with pytest.raises(InputError, match="must be float"):
        settings_from_table({"nvml_timeout": "soon"})
    with pytest.raises(InputError, match="warning' or 'critical"):
        settings_from_table({"severity": {"temperature": "fatal"}})
