/*
 * A fake libnvidia-ml.so.1 for tests: implements the NVML symbols gpupool's node checks call
 * through the real pynvml, with behaviour read from a small key=value file.
 *
 * $FAKENVML_CONFIG names the file. Keys (all optional; `gpu.*.KEY` sets KEY for every GPU,
 * `gpu.N.KEY` for GPU N; later lines win):
 *   count=8                      number of GPUs
 *   driver=535.104.05            driver version string
 *   init=driver_not_loaded       make nvmlInit fail with NVML_ERROR_DRIVER_NOT_LOADED
 *   hang=FUNCTION                FUNCTION sleeps forever (e.g. nvmlDeviceGetTotalEccErrors)
 *   gpu.N.name=...               product name
 *   gpu.N.busid=0000:1b:00.0     PCI bus id (default 0000:(0x10+N):00.0)
 *   gpu.N.ecc_uncorrected=3      volatile uncorrectable ECC count
 *   gpu.N.ecc=unsupported        ECC query returns NOT_SUPPORTED
 *   gpu.N.remap_pending=1 / remap_failure=1
 *   gpu.N.retired_pending=1
 *   gpu.N.temperature=40 / slowdown=90
 *   gpu.N.throttle=0x40          clocks event reasons bitmask
 *   gpu.N.nvlinks=12             number of NVLinks (0 = NVLink not supported)
 *   gpu.N.nvlink_down=3          index of one inactive link (-1 = none)
 *   gpu.N.pcie_width=16 / pcie_max_width=16 / pcie_gen=4 / pcie_max_gen=4
 *   gpu.N.pcie_replay=12         nvmlDeviceGetPcieReplayCounter
 *   gpu.N.nvlink_replay=5 / nvlink_recovery=1 / nvlink_crc_flit=7 / nvlink_crc_data=2
 *                                nvmlDeviceGetNvLinkErrorCounter of link `nvlink_err_link` (default 0)
 *   gpu.N.procs=1234,5678        compute process ids
 *   gpu.N.numa=0 / switch=0      topology: same switch -> SINGLE, same numa -> NODE, else SYSTEM
 *   gpu.N.fabric=unsupported     nvmlDeviceGetGpuFabricInfo[V]: unsupported (default: the call returns
 *                                NVML_ERROR_NOT_SUPPORTED, as on PCIe/HGX systems), state_not_supported,
 *                                not_started, in_progress or completed (NVML_GPU_FABRIC_STATE_*)
 *   gpu.N.fabric_cluster=HEX     clusterUuid: 32 hex digits, dashes ignored
 *   gpu.N.fabric_clique=7        cliqueId
 *   gpu.N.fabric_status=0        registration status (an nvmlReturn_t), reported when completed
 *   gpu.N.fabric_health=0x2      healthMask (v2/v3 structures only)
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_GPUS 64
#define MAX_PROCS 16

typedef int nvmlReturn_t;
enum {
    NVML_SUCCESS = 0,
    NVML_ERROR_UNINITIALIZED = 1,
    NVML_ERROR_INVALID_ARGUMENT = 2,
    NVML_ERROR_NOT_SUPPORTED = 3,
    NVML_ERROR_INSUFFICIENT_SIZE = 7,
    NVML_ERROR_DRIVER_NOT_LOADED = 9,
    NVML_ERROR_ARGUMENT_VERSION_MISMATCH = 25,
    NVML_ERROR_UNKNOWN = 999,
};

struct fake_gpu {
    char name[96];
    char busid[32];
    unsigned long long ecc_uncorrected;
    int ecc_supported;
    unsigned remap_pending, remap_failure, retired_pending;
    unsigned temperature, slowdown;
    unsigned long long throttle;
    unsigned nvlinks;
    int nvlink_down;
    unsigned pcie_width, pcie_max_width, pcie_gen, pcie_max_gen;
    unsigned pcie_replay;
    unsigned long long nvlink_errors[5]; /* indexed by nvmlNvLinkErrorCounter_t */
    unsigned nvlink_err_link;
    unsigned procs[MAX_PROCS];
    unsigned nprocs;
    int numa, pswitch;
    int fabric_state; /* -1: the call is NOT_SUPPORTED; else NVML_GPU_FABRIC_STATE_* */
    unsigned char fabric_cluster[16];
    unsigned fabric_clique, fabric_status, fabric_health;
};

typedef struct fake_gpu *nvmlDevice_t;

typedef struct {
    char busIdLegacy[16];
    unsigned int domain, bus, device, pciDeviceId, pciSubSystemId;
    char busId[32];
} nvmlPciInfo_t;

typedef struct {
    unsigned int pid;
    unsigned long long usedGpuMemory;
    unsigned int gpuInstanceId, computeInstanceId;
} nvmlProcessInfo_t;

static struct fake_gpu gpus[MAX_GPUS];
static unsigned gpu_count = 8;
static char driver_version[80] = "535.104.05";
static char hang_function[128] = "";
static int init_error = NVML_SUCCESS;
static int initialised = 0;

static void default_gpu(struct fake_gpu *g, unsigned index)
{
    memset(g, 0, sizeof(*g));
    snprintf(g->name, sizeof(g->name), "Fake GPU H100 80GB");
    snprintf(g->busid, sizeof(g->busid), "00000000:%02X:00.0", 0x10 + index);
    g->ecc_supported = 1;
    g->temperature = 40;
    g->slowdown = 90;
    g->nvlinks = 18;
    g->nvlink_down = -1;
    g->pcie_width = g->pcie_max_width = 16;
    g->pcie_gen = g->pcie_max_gen = 5;
    g->numa = index < 4 ? 0 : 1;
    g->pswitch = (int)(index / 2);
    g->fabric_state = -1;
}

static void set_uuid(unsigned char *out, const char *hex)
{
    unsigned n = 0;
    memset(out, 0, 16);
    for (const char *p = hex; *p && n < 32; p++) {
        int v;
        if (*p >= '0' && *p <= '9') v = *p - '0';
        else if (*p >= 'a' && *p <= 'f') v = *p - 'a' + 10;
        else if (*p >= 'A' && *p <= 'F') v = *p - 'A' + 10;
        else continue;
        out[n / 2] |= (unsigned char)(n % 2 ? v : v << 4);
        n++;
    }
}

static void set_gpu_key(struct fake_gpu *g, const char *key, const char *value)
{
    if (!strcmp(key, "name")) snprintf(g->name, sizeof(g->name), "%s", value);
    else if (!strcmp(key, "busid")) {
        /* NVML reports an 8-digit domain; accept the 4-digit sysfs form too. */
        if (strlen(value) == 12) snprintf(g->busid, sizeof(g->busid), "0000%s", value);
        else snprintf(g->busid, sizeof(g->busid), "%s", value);
    }
    else if (!strcmp(key, "ecc_uncorrected")) g->ecc_uncorrected = strtoull(value, NULL, 0);
    else if (!strcmp(key, "ecc")) g->ecc_supported = strcmp(value, "unsupported") != 0;
    else if (!strcmp(key, "remap_pending")) g->remap_pending = strtoul(value, NULL, 0);
    else if (!strcmp(key, "remap_failure")) g->remap_failure = strtoul(value, NULL, 0);
    else if (!strcmp(key, "retired_pending")) g->retired_pending = strtoul(value, NULL, 0);
    else if (!strcmp(key, "temperature")) g->temperature = strtoul(value, NULL, 0);
    else if (!strcmp(key, "slowdown")) g->slowdown = strtoul(value, NULL, 0);
    else if (!strcmp(key, "throttle")) g->throttle = strtoull(value, NULL, 0);
    else if (!strcmp(key, "nvlinks")) g->nvlinks = strtoul(value, NULL, 0);
    else if (!strcmp(key, "nvlink_down")) g->nvlink_down = atoi(value);
    else if (!strcmp(key, "pcie_width")) g->pcie_width = strtoul(value, NULL, 0);
    else if (!strcmp(key, "pcie_max_width")) g->pcie_max_width = strtoul(value, NULL, 0);
    else if (!strcmp(key, "pcie_gen")) g->pcie_gen = strtoul(value, NULL, 0);
    else if (!strcmp(key, "pcie_max_gen")) g->pcie_max_gen = strtoul(value, NULL, 0);
    else if (!strcmp(key, "pcie_replay")) g->pcie_replay = strtoul(value, NULL, 0);
    else if (!strcmp(key, "nvlink_replay")) g->nvlink_errors[0] = strtoull(value, NULL, 0);
    else if (!strcmp(key, "nvlink_recovery")) g->nvlink_errors[1] = strtoull(value, NULL, 0);
    else if (!strcmp(key, "nvlink_crc_flit")) g->nvlink_errors[2] = strtoull(value, NULL, 0);
    else if (!strcmp(key, "nvlink_crc_data")) g->nvlink_errors[3] = strtoull(value, NULL, 0);
    else if (!strcmp(key, "nvlink_err_link")) g->nvlink_err_link = strtoul(value, NULL, 0);
    else if (!strcmp(key, "numa")) g->numa = atoi(value);
    else if (!strcmp(key, "switch")) g->pswitch = atoi(value);
    else if (!strcmp(key, "fabric")) {
        g->fabric_state = !strcmp(value, "state_not_supported") ? 0 : !strcmp(value, "not_started") ? 1
                        : !strcmp(value, "in_progress") ? 2 : !strcmp(value, "completed") ? 3 : -1;
    }
    else if (!strcmp(key, "fabric_cluster")) set_uuid(g->fabric_cluster, value);
    else if (!strcmp(key, "fabric_clique")) g->fabric_clique = strtoul(value, NULL, 0);
    else if (!strcmp(key, "fabric_status")) g->fabric_status = strtoul(value, NULL, 0);
    else if (!strcmp(key, "fabric_health")) g->fabric_health = strtoul(value, NULL, 0);
    else if (!strcmp(key, "procs")) {
        char buffer[256];
        char *save = NULL;
        snprintf(buffer, sizeof(buffer), "%s", value);
        g->nprocs = 0;
        for (char *tok = strtok_r(buffer, ",", &save); tok && g->nprocs < MAX_PROCS;
             tok = strtok_r(NULL, ",", &save))
            g->procs[g->nprocs++] = strtoul(tok, NULL, 0);
    }
}

static void strip(char *s)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ')) s[--n] = 0;
}

static void load_config(void)
{
    for (unsigned i = 0; i < MAX_GPUS; i++) default_gpu(&gpus[i], i);
    const char *path = getenv("FAKENVML_CONFIG");
    if (!path) return;
    FILE *f = fopen(path, "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof(line), f)) {
        strip(line);
        if (!line[0] || line[0] == '#') continue;
        char *eq = strchr(line, '=');
        if (!eq) continue;
        *eq = 0;
        const char *key = line, *value = eq + 1;
        if (!strcmp(key, "count")) {
            gpu_count = strtoul(value, NULL, 0);
            if (gpu_count > MAX_GPUS) gpu_count = MAX_GPUS;
        } else if (!strcmp(key, "driver")) {
            snprintf(driver_version, sizeof(driver_version), "%s", value);
        } else if (!strcmp(key, "hang")) {
            snprintf(hang_function, sizeof(hang_function), "%s", value);
        } else if (!strcmp(key, "init")) {
            init_error = !strcmp(value, "driver_not_loaded") ? NVML_ERROR_DRIVER_NOT_LOADED
                                                              : NVML_ERROR_UNKNOWN;
        } else if (!strncmp(key, "gpu.", 4)) {
            char *dot = strchr(key + 4, '.');
            if (!dot) continue;
            *dot = 0;
            const char *which = key + 4, *gkey = dot + 1;
            if (!strcmp(which, "*")) {
                for (unsigned i = 0; i < MAX_GPUS; i++) set_gpu_key(&gpus[i], gkey, value);
            } else {
                unsigned i = strtoul(which, NULL, 10);
                if (i < MAX_GPUS) set_gpu_key(&gpus[i], gkey, value);
            }
        }
    }
    fclose(f);
}

/* A hung driver call: never returns, like NVML on a GPU that fell off the bus. */
static void maybe_hang(const char *function)
{
    if (hang_function[0] && !strcmp(hang_function, function))
        for (;;) pause();
}

#define ENTER(fn)                                   \
    do {                                            \
        maybe_hang(fn);                             \
        if (!initialised) return NVML_ERROR_UNINITIALIZED; \
    } while (0)

static int valid(nvmlDevice_t d)
{
    return d >= gpus && d < gpus + gpu_count;
}

nvmlReturn_t nvmlInitWithFlags(unsigned int flags)
{
    (void)flags;
    load_config();
    maybe_hang("nvmlInit");
    if (init_error) return init_error;
    initialised = 1;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlInit_v2(void) { return nvmlInitWithFlags(0); }
nvmlReturn_t nvmlInit(void) { return nvmlInitWithFlags(0); }

nvmlReturn_t nvmlShutdown(void)
{
    initialised = 0;
    return NVML_SUCCESS;
}

const char *nvmlErrorString(nvmlReturn_t result)
{
    switch (result) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_UNINITIALIZED: return "Uninitialized";
    case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    case NVML_ERROR_INSUFFICIENT_SIZE: return "Insufficient Size";
    case NVML_ERROR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
    default: return "Unknown Error";
    }
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int length)
{
    ENTER("nvmlSystemGetDriverVersion");
    snprintf(version, length, "%s", driver_version);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count)
{
    ENTER("nvmlDeviceGetCount_v2");
    *count = gpu_count;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *device)
{
    ENTER("nvmlDeviceGetHandleByIndex_v2");
    if (index >= gpu_count) return NVML_ERROR_INVALID_ARGUMENT;
    *device = &gpus[index];
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetIndex(nvmlDevice_t device, unsigned int *index)
{
    ENTER("nvmlDeviceGetIndex");
    if (!valid(device)) return NVML_ERROR_INVALID_ARGUMENT;
    *index = (unsigned)(device - gpus);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMinorNumber(nvmlDevice_t device, unsigned int *minor)
{
    ENTER("nvmlDeviceGetMinorNumber");
    if (!valid(device)) return NVML_ERROR_INVALID_ARGUMENT;
    *minor = (unsigned)(device - gpus);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char *name, unsigned int length)
{
    ENTER("nvmlDeviceGetName");
    if (!valid(device)) return NVML_ERROR_INVALID_ARGUMENT;
    snprintf(name, length, "%s", device->name);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char *uuid, unsigned int length)
{
    ENTER("nvmlDeviceGetUUID");
    if (!valid(device)) return NVML_ERROR_INVALID_ARGUMENT;
    snprintf(uuid, length, "GPU-fa4e0000-0000-0000-0000-%012u", (unsigned)(device - gpus));
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t device, nvmlPciInfo_t *pci)
{
    ENTER("nvmlDeviceGetPciInfo_v3");
    if (!valid(device)) return NVML_ERROR_INVALID_ARGUMENT;
    memset(pci, 0, sizeof(*pci));
    unsigned domain = 0, bus = 0, dev = 0, fn = 0;
    sscanf(device->busid, "%x:%x:%x.%x", &domain, &bus, &dev, &fn);
    pci->domain = domain;
    pci->bus = bus;
    pci->device = dev;
    pci->pciDeviceId = 0x233010de;
    snprintf(pci->busId, sizeof(pci->busId), "%s", device->busid);
    snprintf(pci->busIdLegacy, sizeof(pci->busIdLegacy), "%04X:%02X:%02X.%X", domain, bus, dev, fn);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetTotalEccErrors(nvmlDevice_t device, int errorType, int counterType,
                                         unsigned long long *count)
{
    ENTER("nvmlDeviceGetTotalEccErrors");
    if (!valid(device)) return NVML_ERROR_INVALID_ARGUMENT;
    if (!device->ecc_supported) return NVML_ERROR_NOT_SUPPORTED;
    /* errorType 1 = uncorrected, counterType 0 = volatile */
    *count = (errorType == 1 && counterType == 0) ? device->ecc_uncorrected : 0;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetRemappedRows(nvmlDevice_t device, unsigned int *corr, unsigned int *unc,
                                       unsigned int *pending, unsigned int *failure)
{
    ENTER("nvmlDeviceGetRemappedRows");
    if (!valid(device)) return NVML_ERROR_INVALID_ARGUMENT;
    *corr = 0;
    *unc = device->remap_failure ? 512 : 0;
    *pending = device->remap_pending;
    *failure = device->remap_failure;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetRetiredPagesPendingStatus(nvmlDevice_t device, int *pending)
{
    ENTER("nvmlDeviceGetRetiredPagesPendingStatus");
    if (!valid(device)) return NVML_ERROR_INVALID_ARGUMENT;
    *pending = (int)device->retired_pending;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t device, int sensor, unsigned int *temp)
{
    ENTER("nvmlDeviceGetTemperature");
    if (!valid(device) || sensor != 0) return NVML_ERROR_INVALID_ARGUMENT;
    *temp = device->temperature;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetTemperatureThreshold(nvmlDevice_t device, int threshold, unsigned int *temp)
{
    ENTER("nvmlDeviceGetTemperatureThreshold");
    if (!valid(device)) return NVML_ERROR_INVALID_ARGUMENT;
    /* 0 = shutdown, 1 = slowdown */
    *temp = threshold == 0 ? device->slowdown + 5 : device->slowdown;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetCurrentClocksEventReasons(nvmlDevice_t device, unsigned long long *reasons)
{
    ENTER("nvmlDeviceGetCurrentClocksEventReasons");
    if (!valid(device)) return NVML_ERROR_INVALID_ARGUMENT;
    *reasons = device->throttle;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetCurrentClocksThrottleReasons(nvmlDevice_t device, unsigned long long *reasons)
{
    return nvmlDeviceGetCurrentClocksEventReasons(device, reasons);
}

nvmlReturn_t nvmlDeviceGetNvLinkState(nvmlDevice_t device, unsigned int link, int *active)
{
    ENTER("nvmlDeviceGetNvLinkState");
    if (!valid(device)) return NVML_ERROR_INVALID_ARGUMENT;
    if (device->nvlinks == 0) return NVML_ERROR_NOT_SUPPORTED;
    if (link >= device->nvlinks) return NVML_ERROR_INVALID_ARGUMENT;
    *active = (int)link == device->nvlink_down ? 0 : 1;
    return NVML_SUCCESS;
}

#define PCIE_GETTER(fn, field)                                      \
    nvmlReturn_t fn(nvmlDevice_t device, unsigned int *value)       \
    {                                                               \
        ENTER(#fn);                                                 \
        if (!valid(device)) return NVML_ERROR_INVALID_ARGUMENT;     \
        *value = device->field;                                     \
        return NVML_SUCCESS;                                        \
    }

PCIE_GETTER(nvmlDeviceGetCurrPcieLinkWidth, pcie_width)
PCIE_GETTER(nvmlDeviceGetMaxPcieLinkWidth, pcie_max_width)
PCIE_GETTER(nvmlDeviceGetCurrPcieLinkGeneration, pcie_gen)
PCIE_GETTER(nvmlDeviceGetMaxPcieLinkGeneration, pcie_max_gen)
PCIE_GETTER(nvmlDeviceGetPcieReplayCounter, pcie_replay)

/* nvmlReturn_t nvmlDeviceGetNvLinkErrorCounter(nvmlDevice_t, unsigned int link,
 *                                              nvmlNvLinkErrorCounter_t counter, unsigned long long *) */
nvmlReturn_t nvmlDeviceGetNvLinkErrorCounter(nvmlDevice_t device, unsigned int link, int counter,
                                             unsigned long long *value)
{
    ENTER("nvmlDeviceGetNvLinkErrorCounter");
    if (!valid(device)) return NVML_ERROR_INVALID_ARGUMENT;
    if (device->nvlinks == 0) return NVML_ERROR_NOT_SUPPORTED;
    if (link >= device->nvlinks || counter < 0 || counter > 4) return NVML_ERROR_INVALID_ARGUMENT;
    *value = link == device->nvlink_err_link ? device->nvlink_errors[counter] : 0;
    return NVML_SUCCESS;
}

static nvmlReturn_t list_processes(nvmlDevice_t device, unsigned int *count, nvmlProcessInfo_t *infos)
{
    if (!valid(device)) return NVML_ERROR_INVALID_ARGUMENT;
    if (device->nprocs == 0) {
        *count = 0;
        return NVML_SUCCESS;
    }
    if (infos == NULL || *count < device->nprocs) {
        *count = device->nprocs;
        return NVML_ERROR_INSUFFICIENT_SIZE;
    }
    for (unsigned i = 0; i < device->nprocs; i++) {
        infos[i].pid = device->procs[i];
        infos[i].usedGpuMemory = 1ULL << 30;
        infos[i].gpuInstanceId = 0xFFFFFFFF;
        infos[i].computeInstanceId = 0xFFFFFFFF;
    }
    *count = device->nprocs;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device, unsigned int *count,
                                                     nvmlProcessInfo_t *infos)
{
    ENTER("nvmlDeviceGetComputeRunningProcesses_v3");
    return list_processes(device, count, infos);
}

nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v2(nvmlDevice_t device, unsigned int *count,
                                                     nvmlProcessInfo_t *infos)
{
    ENTER("nvmlDeviceGetComputeRunningProcesses_v2");
    return list_processes(device, count, infos);
}

nvmlReturn_t nvmlDeviceGetTopologyCommonAncestor(nvmlDevice_t a, nvmlDevice_t b, int *level)
{
    ENTER("nvmlDeviceGetTopologyCommonAncestor");
    if (!valid(a) || !valid(b)) return NVML_ERROR_INVALID_ARGUMENT;
    if (a == b) *level = 0;
    else if (a->pswitch == b->pswitch) *level = 10;
    else if (a->numa == b->numa) *level = 40;
    else *level = 50;
    return NVML_SUCCESS;
}

/* nvml.h: nvmlGpuFabricInfo_t (R525+) and nvmlGpuFabricInfo_v2_t / _v3_t (R550+, versioned by
 * nvmlGpuFabricInfo_v2 = NVML_STRUCT_VERSION(GpuFabricInfo, 2) = 0x02000024, i.e. size 36; v3:
 * 0x03000028, size 40 with healthSummary). status is meaningful only when state is COMPLETED. */
typedef struct {
    unsigned char clusterUuid[16];
    nvmlReturn_t status;
    unsigned int cliqueId;
    unsigned int state;
} nvmlGpuFabricInfo_t;

typedef struct {
    unsigned int version;
    unsigned char clusterUuid[16];
    nvmlReturn_t status;
    unsigned int cliqueId;
    unsigned int state;
    unsigned int healthMask;
    unsigned char healthSummary;
} nvmlGpuFabricInfo_v3_t;

#define FABRIC_INFO_V2 0x02000024u
#define FABRIC_INFO_V3 0x03000028u

nvmlReturn_t nvmlDeviceGetGpuFabricInfo(nvmlDevice_t device, nvmlGpuFabricInfo_t *info)
{
    ENTER("nvmlDeviceGetGpuFabricInfo");
    if (!valid(device) || info == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    if (device->fabric_state < 0) return NVML_ERROR_NOT_SUPPORTED;
    memset(info, 0, sizeof(*info));
    memcpy(info->clusterUuid, device->fabric_cluster, 16);
    info->cliqueId = device->fabric_clique;
    info->state = (unsigned)device->fabric_state;
    info->status = device->fabric_state == 3 ? (nvmlReturn_t)device->fabric_status : NVML_SUCCESS;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetGpuFabricInfoV(nvmlDevice_t device, nvmlGpuFabricInfo_v3_t *info)
{
    ENTER("nvmlDeviceGetGpuFabricInfoV");
    if (!valid(device) || info == NULL) return NVML_ERROR_INVALID_ARGUMENT;
    if (info->version != FABRIC_INFO_V2 && info->version != FABRIC_INFO_V3)
        return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    if (device->fabric_state < 0) return NVML_ERROR_NOT_SUPPORTED;
    unsigned version = info->version;
    /* Write only as much as the caller's structure version holds. */
    memset(info, 0, version == FABRIC_INFO_V2 ? 36 : sizeof(*info));
    info->version = version;
    memcpy(info->clusterUuid, device->fabric_cluster, 16);
    info->cliqueId = device->fabric_clique;
    info->state = (unsigned)device->fabric_state;
    info->status = device->fabric_state == 3 ? (nvmlReturn_t)device->fabric_status : NVML_SUCCESS;
    info->healthMask = device->fabric_health;
    if (version == FABRIC_INFO_V3) info->healthSummary = 1;
    return NVML_SUCCESS;
}
