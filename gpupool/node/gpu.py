"""GPU facts through NVML (the real pynvml), behind the small `GpuSource` protocol."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from gpupool.node.deadline import DeadlineResult, Progress, call_with_deadline
from gpupool.node.facts import FABRIC_STATES, CollectError, GpuFabric, GpuFacts, GpuInventory

T = TypeVar("T")

NVML_LIBRARY_ENV = "GPUPOOL_NVML_LIBRARY"


class GpuSource(Protocol):
    def inventory(self, wanted: set[int] | None, topology: bool, progress: Progress) -> GpuInventory:
        """Count all GPUs; fill details for `wanted` indices (None: all); topology if asked."""
        ...


class NvmlUnavailable(Exception):
    """NVML cannot be used on this node (no library, driver not loaded)."""


class NvmlGpuSource:
    """Reads GPUs through pynvml; `library` points pynvml at a specific libnvidia-ml.so."""

    def __init__(self, library: str | None = None) -> None:
        self.library = library or os.environ.get(NVML_LIBRARY_ENV) or None

    def _load(self) -> Any:
        import pynvml

        if self.library and pynvml.nvmlLib is None:
            import ctypes

            try:
                pynvml.nvmlLib = ctypes.CDLL(self.library)
            except OSError as exc:
                raise NvmlUnavailable(f"cannot load {self.library}: {exc}") from None
        return pynvml

    def inventory(self, wanted: set[int] | None, topology: bool, progress: Progress) -> GpuInventory:
        nvml = self._load()
        progress.at("nvmlInit")
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as exc:
            raise NvmlUnavailable(f"NVML init failed: {exc}") from None
        try:
            inventory = GpuInventory()
            progress.at("nvmlSystemGetDriverVersion")
            inventory.driver_version = _text(nvml.nvmlSystemGetDriverVersion())
            progress.at("nvmlDeviceGetCount")
            inventory.count = int(nvml.nvmlDeviceGetCount())
            handles: dict[int, Any] = {}
            for index in range(inventory.count):
                if wanted is not None and index not in wanted:
                    _bus_id_only(nvml, index, inventory, progress)
                    continue
                progress.at(f"nvmlDeviceGetHandleByIndex({index})")
                try:
                    handles[index] = nvml.nvmlDeviceGetHandleByIndex(index)
                except nvml.NVMLError as exc:
                    inventory.gpus.append(GpuFacts(index=index, errors={"handle": str(exc)}))
                    continue
                inventory.gpus.append(_read_gpu(nvml, index, handles[index], progress))
                if inventory.gpus[-1].bus_id:
                    inventory.bus_ids[index] = inventory.gpus[-1].bus_id
            if topology:
                indices = sorted(handles)
                for pos, a in enumerate(indices):
                    for b in indices[pos + 1:]:
                        progress.at(f"nvmlDeviceGetTopologyCommonAncestor({a},{b})")
                        try:
                            level = nvml.nvmlDeviceGetTopologyCommonAncestor(handles[a], handles[b])
                        except nvml.NVMLError:
                            continue
                        inventory.common_ancestor[(a, b)] = int(level)
            return inventory
        finally:
            with contextlib.suppress(nvml.NVMLError):
                nvml.nvmlShutdown()


def _bus_id_only(nvml: Any, index: int, inventory: GpuInventory, progress: Progress) -> None:
    progress.at(f"pci of gpu{index}")
    try:
        pci = nvml.nvmlDeviceGetPciInfo(nvml.nvmlDeviceGetHandleByIndex(index))
    except nvml.NVMLError:
        return
    inventory.bus_ids[index] = normalise_bus_id(_text(pci.busId))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _read_gpu(nvml: Any, index: int, handle: Any, progress: Progress) -> GpuFacts:
    gpu = GpuFacts(index=index)

    def query(field: str, call: Callable[[], T]) -> T | None:
        progress.at(f"{field} of gpu{index}")
        try:
            return call()
        except nvml.NVMLError as exc:
            if exc.value not in (nvml.NVML_ERROR_NOT_SUPPORTED, nvml.NVML_ERROR_FUNCTION_NOT_FOUND):
                gpu.errors[field] = str(exc)
            return None

    gpu.name = _text(query("name", lambda: nvml.nvmlDeviceGetName(handle)) or "")
    gpu.uuid = _text(query("uuid", lambda: nvml.nvmlDeviceGetUUID(handle)) or "")
    pci = query("pci", lambda: nvml.nvmlDeviceGetPciInfo(handle))
    if pci is not None:
        gpu.bus_id = normalise_bus_id(_text(pci.busId))
    gpu.minor = query("minor", lambda: nvml.nvmlDeviceGetMinorNumber(handle))
    gpu.ecc_uncorrected_volatile = query("ecc", lambda: nvml.nvmlDeviceGetTotalEccErrors(
        handle, nvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED, nvml.NVML_VOLATILE_ECC))
    remap = query("remapped_rows", lambda: nvml.nvmlDeviceGetRemappedRows(handle))
    if remap is not None:
        gpu.remap_pending, gpu.remap_failure = bool(remap[2]), bool(remap[3])
    pending = query("retired_pages", lambda: nvml.nvmlDeviceGetRetiredPagesPendingStatus(handle))
    gpu.retired_pages_pending = None if pending is None else bool(pending)
    gpu.temperature_c = query("temperature", lambda: nvml.nvmlDeviceGetTemperature(
        handle, nvml.NVML_TEMPERATURE_GPU))
    gpu.slowdown_c = query("slowdown", lambda: nvml.nvmlDeviceGetTemperatureThreshold(
        handle, nvml.NVML_TEMPERATURE_THRESHOLD_SLOWDOWN))
    gpu.throttle_reasons = query("throttle", lambda: _throttle_reasons(nvml, handle))
    gpu.nvlink_active = _nvlink_states(nvml, handle, gpu, progress)
    gpu.pcie_width = query("pcie_width", lambda: nvml.nvmlDeviceGetCurrPcieLinkWidth(handle))
    gpu.pcie_max_width = query("pcie_max_width", lambda: nvml.nvmlDeviceGetMaxPcieLinkWidth(handle))
    gpu.pcie_gen = query("pcie_gen", lambda: nvml.nvmlDeviceGetCurrPcieLinkGeneration(handle))
    gpu.pcie_max_gen = query("pcie_max_gen", lambda: nvml.nvmlDeviceGetMaxPcieLinkGeneration(handle))
    gpu.pcie_replay = query("pcie_replay", lambda: nvml.nvmlDeviceGetPcieReplayCounter(handle))
    if gpu.nvlink_active:
        gpu.nvlink_errors = _nvlink_errors(nvml, handle, len(gpu.nvlink_active), gpu, progress)
    gpu.nvlink_fabric = query("nvlink_fabric", lambda: _fabric_info(nvml, handle))
    processes = query("processes", lambda: _compute_processes(nvml, handle)) or []
    gpu.compute_pids = sorted(int(p.pid) for p in processes)
    return gpu


def _fabric_info(nvml: Any, handle: Any) -> GpuFabric | None:
    """nvmlDeviceGetGpuFabricInfoV with nvmlGpuFabricInfo_v2_t (nvml.h, R550+: version, clusterUuid[16],
    status, cliqueId, state, healthMask), else nvmlDeviceGetGpuFabricInfo with nvmlGpuFabricInfo_t
    (R525+: clusterUuid[16], status, cliqueId, state). NVML_ERROR_NOT_SUPPORTED (PCIe and HGX systems,
    `query` drops it) and NVML_GPU_FABRIC_STATE_NOT_SUPPORTED both mean: in no NVLink domain."""
    import ctypes

    try:
        info: Any = nvml.c_nvmlGpuFabricInfoV_t()  # sets version = nvmlGpuFabricInfo_v2
        nvml.nvmlDeviceGetGpuFabricInfoV(handle, ctypes.byref(info))
        health: int | None = int(info.healthMask)
    except (AttributeError, nvml.NVMLError_FunctionNotFound):
        if not hasattr(nvml, "c_nvmlGpuFabricInfo_t"):  # a pynvml older than fabric info: nothing to ask
            return None
        info = nvml.c_nvmlGpuFabricInfo_t()
        nvml.nvmlDeviceGetGpuFabricInfo(handle, ctypes.byref(info))
        health = None
    state = int(info.state)
    if state == 0:
        return None
    raw = bytes(info.clusterUuid).hex()
    uuid = f"{raw[:8]}-{raw[8:12]}-{raw[12:16]}-{raw[16:20]}-{raw[20:]}"
    return GpuFabric(cluster_uuid=uuid, clique_id=int(info.cliqueId), state=FABRIC_STATES.get(state, f"unknown({state})"),
                     status=int(info.status), health_mask=health)


def _throttle_reasons(nvml: Any, handle: Any) -> int:
    # Drivers >= 535 renamed "throttle" to "event" reasons; older ones only have the old symbol.
    try:
        return int(nvml.nvmlDeviceGetCurrentClocksEventReasons(handle))
    except nvml.NVMLError_FunctionNotFound:
        return int(nvml.nvmlDeviceGetCurrentClocksThrottleReasons(handle))


def _compute_processes(nvml: Any, handle: Any) -> list[Any]:
    try:
        return list(nvml.nvmlDeviceGetComputeRunningProcesses(handle))
    except (nvml.NVMLError_FunctionNotFound, nvml.NVMLLibraryMismatchError):
        return list(nvml.nvmlDeviceGetComputeRunningProcesses_v2(handle))


def _nvlink_states(nvml: Any, handle: Any, gpu: GpuFacts, progress: Progress) -> list[bool]:
    states: list[bool] = []
    for link in range(nvml.NVML_NVLINK_MAX_LINKS):
        progress.at(f"nvlink {link} of gpu{gpu.index}")
        try:
            states.append(bool(nvml.nvmlDeviceGetNvLinkState(handle, link)))
        except nvml.NVMLError as exc:
            # NOT_SUPPORTED: no NVLink at all; INVALID_ARGUMENT: past the last link.
            if exc.value not in (nvml.NVML_ERROR_NOT_SUPPORTED, nvml.NVML_ERROR_INVALID_ARGUMENT,
                                 nvml.NVML_ERROR_FUNCTION_NOT_FOUND):
                gpu.errors["nvlink"] = str(exc)
            break
    return states


NVLINK_ERROR_COUNTERS = {"replay": 0, "recovery": 1, "crc_flit": 2, "crc_data": 3}  # nvmlNvLinkErrorCounter_t


def _nvlink_errors(nvml: Any, handle: Any, links: int, gpu: GpuFacts, progress: Progress) -> dict[str, int]:
    """nvmlDeviceGetNvLinkErrorCounter summed over the GPU's links (counts since driver load)."""
    totals: dict[str, int] = {}
    for name, counter in NVLINK_ERROR_COUNTERS.items():
        for link in range(links):
            progress.at(f"nvlink {link} {name} errors of gpu{gpu.index}")
            try:
                value = int(nvml.nvmlDeviceGetNvLinkErrorCounter(handle, link, counter))
            except nvml.NVMLError as exc:
                if exc.value not in (nvml.NVML_ERROR_NOT_SUPPORTED, nvml.NVML_ERROR_INVALID_ARGUMENT,
                                     nvml.NVML_ERROR_FUNCTION_NOT_FOUND):
                    gpu.errors["nvlink_errors"] = str(exc)
                break
            totals[name] = totals.get(name, 0) + value
    return totals


def normalise_bus_id(bus_id: str) -> str:
    """NVML says 00000000:1B:00.0, sysfs says 0000:1b:00.0: use the sysfs form."""
    text = bus_id.strip().lower()
    if text.count(":") == 2:
        domain, rest = text.split(":", 1)
        return f"{int(domain, 16):04x}:{rest}"
    return text


def collect_gpus(source: GpuSource, wanted: set[int] | None, topology: bool,
                 timeout: float) -> tuple[GpuInventory | None, CollectError | None]:
    """Inventory with a hard deadline; failures come back as a CollectError, never an exception."""
    return gpu_outcome(call_with_deadline(lambda progress: source.inventory(wanted, topology, progress), timeout),
                       timeout)


def gpu_outcome(result: DeadlineResult[GpuInventory],
                timeout: float) -> tuple[GpuInventory | None, CollectError | None]:
    if result.timed_out:
        return None, CollectError("nvml", f"NVML did not answer within {timeout:g} s "
                                          f"(stuck in {result.step})", timed_out=True)
    if result.error is not None:
        if isinstance(result.error, NvmlUnavailable):
            return None, CollectError("nvml", str(result.error))
        if isinstance(result.error, ImportError):
            return None, CollectError("nvml", f"pynvml not importable: {result.error}")
        raise result.error
    return result.value, None
