"""NVLink domains from the nodes' own reports (`node topo --json` / `node check --json`), merged
into the fabric by `gpupool fabric nvlink`.

A report names its node (`node`) and, in `nvlink_domain.gpus`, each GPU's NVML fabric info. A GPU
belongs to the domain (cluster_uuid, clique_id) once its registration is `completed` with status 0;
the host belongs to it when every GPU that registered agrees. Anything doubtful leaves the host out
of every domain with a named problem, so the block file built from the result is never wrong: GPUs
of one host in several domains, two reports for one host that disagree, no GPU registered, and a
report for a host the fabric does not have. A report whose text or fields are malformed is an
input error naming the file and the field.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gpupool.errors import BadInput
from gpupool.fabric.nvlink import NvlinkDomain

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_STATES = ("not_supported", "not_started", "in_progress", "completed")


@dataclass(frozen=True)
class NvlinkProblem:
    """Why a host is left out of the NVLink domains, or what looks odd (severity: warning | info)."""

    check: str
    subject: str
    message: str
    severity: str = "warning"
    source: str = ""

    def to_json(self) -> dict[str, str]:
        return {"check": self.check, "subject": self.subject, "severity": self.severity, "message": self.message,
                "source": self.source}


@dataclass(frozen=True)
class NodeReport:
    """One report, checked: the host and each GPU's (state, status, cluster_uuid, clique_id)."""

    source: str
    host: str
    gpus: tuple[tuple[int, str | None, int, str | None, int | None], ...]  # index, state, status, uuid, clique


def read_report(doc: Any, source: str) -> NodeReport:
    """A parsed report -> NodeReport; anything malformed is an BadInput naming file and field."""
    from gpupool.validate import bounded_int, host_name

    if not isinstance(doc, dict):
        raise BadInput(f"{source}: not a gpupool node report (expected a JSON object)")
    if "node" not in doc or "nvlink_domain" not in doc:
        raise BadInput(f"{source}: not a `gpupool node topo --json` / `node check --json` report "
                         "(no \"node\" or \"nvlink_domain\" key)")
    host = host_name(doc["node"], f"{source}: node")
    summary = doc["nvlink_domain"]
    if summary is None:
        return NodeReport(source, host, ())
    if not isinstance(summary, dict) or not isinstance(summary.get("gpus"), list):
        raise BadInput(f"{source}: nvlink_domain: expected null or an object with a \"gpus\" list")
    gpus: list[tuple[int, str | None, int, str | None, int | None]] = []
    for i, gpu in enumerate(summary["gpus"]):
        where = f"{source}: nvlink_domain.gpus[{i}]"
        if not isinstance(gpu, dict):
            raise BadInput(f"{where}: expected an object")
        index = bounded_int(gpu.get("index"), f"{where}.index", 0, 1 << 16)
        state = gpu.get("state")
        if state is not None and state not in _STATES and not (isinstance(state, str) and state.startswith("unknown(")):
            raise BadInput(f"{where}.state: {str(state)[:40]!r} is not an NVML fabric state")
        if state is None:  # the GPU gave no fabric info while others did
            gpus.append((index, None, 0, None, None))
            continue
        status = bounded_int(gpu.get("status", 0), f"{where}.status", 0, (1 << 31) - 1)
        uuid = gpu.get("cluster_uuid")
        if not isinstance(uuid, str) or not _UUID.fullmatch(uuid):
            raise BadInput(f"{where}.cluster_uuid: expected 8-4-4-4-12 lower-case hex, got {str(uuid)[:40]!r}")
        clique = bounded_int(gpu.get("clique_id"), f"{where}.clique_id", 0, (1 << 32) - 1)
        gpus.append((index, str(state), status, uuid, clique))
    return NodeReport(source, host, tuple(gpus))


def domain_name(cluster_uuid: str, clique_id: int) -> str:
    """A Slurm-safe, stable block name for a domain: the cluster UUID's first group and the clique."""
    return f"nvl-{cluster_uuid[:8]}-{clique_id}"


def merge_reports(fabric_hosts: Sequence[str], reports: Sequence[NodeReport]
                  ) -> tuple[list[NvlinkDomain], list[NvlinkProblem]]:
    """Domains (hosts in fabric order, domains by their first host) and the problems found."""
    known = set(fabric_hosts)
    problems: list[NvlinkProblem] = []
    claims: dict[str, dict[tuple[str, int] | None, list[str]]] = {}  # host -> domain -> report files
    for report in reports:
        if report.host not in known:
            problems.append(NvlinkProblem("nvlink-host-unknown", report.host,
                                          f"report for {report.host}, which the fabric does not have: ignored",
                                          source=report.source))
            continue
        domain = _host_domain(report, problems)
        if domain is not False:
            claims.setdefault(report.host, {}).setdefault(domain, []).append(report.source)  # type: ignore[arg-type]
    members: dict[tuple[str, int], list[str]] = {}
    for host, by_domain in claims.items():
        if len(by_domain) > 1:
            told = "; ".join(f"{'no domain' if d is None else domain_name(*d)} ({', '.join(files)})"
                             for d, files in by_domain.items())
            problems.append(NvlinkProblem("nvlink-host-claimed-twice", host,
                                          f"reports disagree on {host}'s NVLink domain: {told}; left out of every domain",
                                          source=", ".join(f for files in by_domain.values() for f in files)))
            continue
        (domain,) = by_domain
        if domain is not None:
            members.setdefault(domain, []).append(host)
    order = {h: i for i, h in enumerate(fabric_hosts)}
    domains = [NvlinkDomain(name=domain_name(*key), hosts=tuple(sorted(hosts, key=order.__getitem__)),
                            cluster_uuid=key[0], clique_id=key[1]) for key, hosts in members.items()]
    domains.sort(key=lambda d: order[d.hosts[0]])
    names: dict[str, int] = {}
    for d in domains:  # two clusters whose UUIDs share a first group: keep block names unique
        names[d.name] = names.get(d.name, 0) + 1
    if any(n > 1 for n in names.values()):
        domains = [NvlinkDomain(f"nvl-{d.cluster_uuid}-{d.clique_id}".replace("-", "")[:60], d.hosts, d.cluster_uuid,
                                d.clique_id) if names[d.name] > 1 else d for d in domains]
    missing = [h for h in fabric_hosts if h not in claims and h not in {p.subject for p in problems}]
    if domains and missing:
        problems.append(NvlinkProblem("nvlink-no-report", f"{len(missing)} hosts",
                                      f"no report for {len(missing)} host(s) (e.g. {missing[0]}): in no domain",
                                      severity="info"))
    sizes = sorted({len(d.hosts) for d in domains})
    if len(sizes) > 1:
        problems.append(NvlinkProblem("nvlink-domain-sizes", "domains",
                                      f"domains hold {', '.join(map(str, sizes))} hosts: Slurm's base block is the "
                                      f"smallest ({sizes[0]})", severity="info"))
    return domains, problems


def _host_domain(report: NodeReport, problems: list[NvlinkProblem]) -> tuple[str, int] | None | bool:
    """The report's domain, None (the host is in none), or False (doubtful: a problem is noted)."""
    if not report.gpus:
        return None
    registered = {(uuid, clique) for _i, state, status, uuid, clique in report.gpus
                  if state == "completed" and status == 0 and uuid is not None and clique is not None}
    pending = [f"gpu{i} {state or 'no info'}" + (f" (status {status})" if state == "completed" else "")
               for i, state, status, _u, _c in report.gpus if not (state == "completed" and status == 0)]
    if len(registered) > 1:
        told = ", ".join(domain_name(*d) for d in sorted(registered))
        problems.append(NvlinkProblem("nvlink-gpus-disagree", report.host,
                                      f"{report.host}'s GPUs are in {len(registered)} NVLink domains ({told}): "
                                      "left out of every domain", source=report.source))
        return False
    if not registered:
        if all(state == "not_supported" for _i, state, *_rest in report.gpus):
            return None
        problems.append(NvlinkProblem("nvlink-registration-incomplete", report.host,
                                      f"no GPU of {report.host} completed NVLink fabric registration "
                                      f"({'; '.join(pending)}): left out of every domain", source=report.source))
        return False
    (domain,) = registered
    if pending:
        problems.append(NvlinkProblem("nvlink-registration-incomplete", report.host,
                                      f"{report.host} is in {domain_name(*domain)} but not every GPU registered "
                                      f"({'; '.join(pending)})", source=report.source))
    return domain


def load_report(path: str) -> NodeReport:
    """A report file -> NodeReport (input errors name the file)."""
    from gpupool.fabric.model import read_json_document

    return read_report(read_json_document(path, "node report"), path)


def merge_into_fabric(fabric_path: str, report_paths: Sequence[str], output: str, *, backup: bool = False
                      ) -> dict[str, Any]:
    """`fabric nvlink`: replace the fabric's NVLink domains by those the reports show, write OUTPUT
    (and seed its cache); every report is read and checked before anything is written."""
    from gpupool.fabric.compiled import compile_fabric, store_compiled
    from gpupool.fabric.model import load_fabric, save_fabric
    from gpupool.fabric.nvlink import domains_across_leaves

    if not report_paths:
        raise BadInput("no node report given")
    fabric = load_fabric(fabric_path)
    reports = [load_report(path) for path in report_paths]
    domains, problems = merge_reports(fabric.host_names(), reports)
    fabric.nvlink_domains = domains
    compiled = compile_fabric(fabric)
    for name in domains_across_leaves(compiled):
        problems.append(NvlinkProblem("nvlink-domain-across-leaves", name,
                                      f"NVLink domain {name} spans several IB leaf groups: only a job that one "
                                      "domain holds is kept in one domain there (docs/contract.md)"))
    save_fabric(fabric, output, backup=backup)
    store_compiled(output, compiled)
    return {"output": output, "reports": len(reports),
            "domains": [d.to_json() for d in domains],
            "hosts_in_domains": sum(len(d.hosts) for d in domains),
            "problems": [p.to_json() for p in problems]}
