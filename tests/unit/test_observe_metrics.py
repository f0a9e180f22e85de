"""`gpupool metrics`: output passes the Prometheus text parser, values match hand-made states, the server answers."""

from __future__ import annotations

import json
import re
import threading
import urllib.request
from pathlib import Path

import click
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gpupool.cli.context import AppContext
from gpupool.cli.main import cli, main
from gpupool.cli.metrics import MetricsOptions, collect_families, make_server, parse_listen
from gpupool.errors import UsageError
from gpupool.fabric.generate import fat_tree
from gpupool.fabric.model import save_fabric
from gpupool.observe.metrics import Family, render_text

FREE = {"gpu001": 8, "gpu002": 8, "gpu003": 8, "gpu004": 3, "gpu005": 8, "gpu006": 2, "gpu009": 8, "gpu010": 8,
        "gpu013": 1}


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


@pytest.fixture()
def inputs(tmp_path: Path) -> tuple[str, str]:
    fabric = tmp_path / "f.json"
    save_fabric(fat_tree(2, 4, 2, pods=2, cores=2), str(fabric))
    free = tmp_path / "free.json"
    free.write_text(json.dumps(FREE))
    return str(fabric), str(free)


def test_textfile_parses_and_holds_the_figures(inputs: tuple[str, str], tmp_path: Path) -> None:
    fabric, free = inputs
    out = tmp_path / "textfile" / "gpupool.prom"
    out.parent.mkdir()  # gpupool never creates a missing directory (a typo must fail, exit 4)
    assert main(["metrics", "--fabric", fabric, "--free", free, "--shapes", "1,2,8,16,32,48,64", "--no-pools",
                 "--textfile", str(out)]) == 0
    text = out.read_text()
    assert [p.name for p in out.parent.iterdir()] == ["gpupool.prom"]  # no temporary file left behind
    samples = _samples(text)
    assert samples[("gpupool_free_gpus", ())] == 54
    assert samples[("gpupool_stranded_gpus", ())] == 0
    assert samples[("gpupool_largest_fitting_job_gpus", (("scope", "leaf"),))] == 16
    assert samples[("gpupool_largest_fitting_job_gpus", (("scope", "pod"),))] == 32
    assert samples[("gpupool_largest_fitting_job_gpus", (("scope", "anywhere"),))] == 48
    assert samples[("gpupool_job_shape_fits", (("scope", "leaf"), ("shape_gpus", "32")))] == 0
    assert samples[("gpupool_job_shape_stranded_gpus", (("shape_gpus", "16"),))] == 14
    assert samples[("gpupool_leaf_free_gpus", (("leaf", "pod1-leaf01"), ("pod", "pod1-spine01")))] == 27
    assert samples[("gpupool_fabric_audit_status", (("status", "OK"),))] in (0, 1)
    assert samples[("gpupool_collector_up", (("source", "fragmentation"),))] == 1
    assert ("gpupool_collector_up", (("source", "pools"),)) not in samples
    names = {f.name for f in text_string_to_metric_families(text)}
    assert all(n.startswith("gpupool_") for n in names)


def test_audit_findings_by_check_from_a_saved_audit(inputs: tuple[str, str], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    fabric, free = inputs
    audit = tmp_path / "audit.json"
    audit.write_text(json.dumps({"status": "CRITICAL", "findings": [
        {"check": "link-rate", "severity": "warning", "subject": "leaf01", "message": "x"},
        {"check": "link-rate", "severity": "warning", "subject": "leaf02", "message": "y"},
        {"check": "missing-uplink", "severity": "critical", "subject": "leaf02", "message": "z"}]}))
    assert main(["metrics", "--fabric", fabric, "--free", free, "--no-pools", "--audit-json", str(audit)]) == 0
    samples = _samples(capsys.readouterr().out)
    assert samples[("gpupool_fabric_audit_status_code", ())] == 2
    assert samples[("gpupool_fabric_audit_status", (("status", "CRITICAL"),))] == 1
    assert samples[("gpupool_fabric_audit_status", (("status", "OK"),))] == 0
    assert samples[("gpupool_fabric_audit_findings", (("check", "link-rate"), ("severity", "warning")))] == 2
    assert samples[("gpupool_fabric_audit_findings", (("check", "missing-uplink"), ("severity", "critical")))] == 1


NODES = "".join(f"NodeName=gpu{i:03d} Gres=gpu:8 GresUsed=gpu:{used}(IDX:0-{max(used - 1, 0)}) State={state}\n"
                for i, used, state in ((1, 8, "ALLOCATED"), (2, 4, "MIXED"), (3, 0, "IDLE"), (4, 0, "IDLE+DRAIN"),
                                       (5, 8, "ALLOCATED"), (6, 0, "IDLE"), (7, 0, "IDLE"), (8, 0, "IDLE")))
JOBS = (
    # llm borrows vision's gpu001 (8) and 4 of gpu002
    "JobId=1 Account=llm JobState=RUNNING Partition=scavenger NodeList=gpu[001-002] TRES=gres/gpu=12 "
    "Nodes=gpu001 CPU_IDs=0 Mem=0 GRES=gpu:8(IDX:0-7) Nodes=gpu002 CPU_IDs=0 Mem=0 GRES=gpu:4(IDX:0-3)\n"
    # vision on llm's gpu005
    "JobId=2 Account=vision JobState=RUNNING Partition=scavenger NodeList=gpu005 TRES=gres/gpu=8 "
    "Nodes=gpu005 CPU_IDs=0 Mem=0 GRES=gpu:8(IDX:0-7)\n"
    "JobId=3 Account=llm JobState=PENDING Partition=llm NodeList= TRES=gres/gpu=8\n")
POOLS_YAML = """\
pools:
  vision: {nodes: "gpu[001-004]", owners: [vision]}
  llm: {nodes: "gpu[005-008]", owners: [llm]}
accounts:
  vision: {shares: 30}
  llm: {shares: 70}
"""


def _fake(argv: list[str]) -> str:
    if argv[:4] == ["scontrol", "-o", "-d", "show"]:
        return NODES if argv[4] == "node" else JOBS
    if argv[:3] == ["scontrol", "-o", "show"]:
        return ""
    raise AssertionError(argv)


def test_pool_gpus_now(inputs: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fabric, free = inputs
    spec = tmp_path / "pools.yaml"
    spec.write_text(POOLS_YAML)
    ctx = AppContext(slurm_runner=_fake)
    assert main(["metrics", "--fabric", fabric, "--free", free, "--pools", str(spec), "--no-audit"], obj=ctx) == 0
    samples = _samples(capsys.readouterr().out)

    def pool(name: str, metric: str) -> float:
        return samples[(f"gpupool_pool_{metric}_gpus", (("pool", name),))]

    # vision: 32 GPUs, 12 used (gpu001 8 + gpu002 4), gpu004's 8 down, 12 free; 12 lent to llm.
    assert [pool("vision", m) for m in ("capacity", "used", "down", "free", "lent", "borrowed")] == [32, 12, 8, 12, 12, 8]
    # llm: 32 GPUs, gpu005's 8 used by vision (lent); llm's owners borrow vision's 12.
    assert [pool("llm", m) for m in ("capacity", "used", "down", "free", "lent", "borrowed")] == [32, 8, 0, 24, 8, 12]
    assert samples[("gpupool_collector_up", (("source", "pools"),))] == 1


def test_unreadable_source_is_reported_not_fatal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["metrics", "--fabric", str(tmp_path / "missing.json"), "--free", "x", "--no-pools"]) == 0
    captured = capsys.readouterr()
    samples = _samples(captured.out)
    assert samples[("gpupool_collector_up", (("source", "fragmentation"),))] == 0
    assert samples[("gpupool_collector_up", (("source", "audit"),))] == 0
    assert "gpupool: warning: fragmentation:" in captured.err


def test_label_escaping_survives_the_parser() -> None:
    text = render_text([Family("gpupool_x", 'help with "quotes"\nand a newline').add(1.5, name='a"b\\c\nd')])
    family = next(iter(text_string_to_metric_families(text)))
    assert family.samples[0].labels == {"name": 'a"b\\c\nd'} and family.samples[0].value == 1.5


def test_server_answers_on_loopback(inputs: tuple[str, str]) -> None:
    fabric, free = inputs
    options = MetricsOptions(fabric, free, None, "8,16", 8, None, None, None, audit=False, pools=False)
    ctx = click.Context(cli, obj=AppContext())

    def collect() -> list[Family]:
        with ctx.scope(cleanup=False):
            return collect_families(options, lambda _m: None)

    server = make_server("127.0.0.1", 0, collect)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        assert host == "127.0.0.1"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            samples = _samples(response.read().decode())
        assert samples[("gpupool_free_gpus", ())] == 54
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/other", timeout=10)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
    assert not thread.is_alive()


def test_listen_and_option_errors(inputs: tuple[str, str]) -> None:
    assert parse_listen("127.0.0.1:9464") == ("127.0.0.1", 9464)
    assert parse_listen(":0") == ("127.0.0.1", 0)
    with pytest.raises(UsageError):
        parse_listen("localhost")
    fabric, free = inputs
    assert main(["metrics", "--fabric", fabric, "--free", free, "--textfile", "x", "--serve"]) == 2


def test_node_check_status_from_a_saved_check(inputs: tuple[str, str], tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    fabric, free = inputs
    saved = tmp_path / "node.json"
    saved.write_text(json.dumps({"status": "WARNING", "findings": [
        {"check": "gpu-ecc", "severity": "warning", "subject": "GPU0", "message": "x"},
        {"check": "gpu-ecc", "severity": "warning", "subject": "GPU1", "message": "y"}]}))
    assert main(["metrics", "--fabric", fabric, "--free", free, "--no-pools", "--no-audit",
                 "--node-check-json", str(saved)]) == 0
    samples = _samples(capsys.readouterr().out)
    node = socket.gethostname().split(".")[0]
    assert samples[("gpupool_node_check_status_code", (("node", node),))] == 1
    assert samples[("gpupool_node_check_findings", (("check", "gpu-ecc"), ("node", node), ("severity", "warning")))] == 2
    saved.write_text("{}")
    assert main(["metrics", "--fabric", fabric, "--free", free, "--no-pools", "--no-audit",
                 "--node-check-json", str(saved)]) == 0
    captured = capsys.readouterr()
    assert _samples(captured.out)[("gpupool_collector_up", (("source", "node_check"),))] == 0
    assert "not a node check file" in captured.err


def _contract_families() -> dict[str, set[str]]:
    """The families docs/contract.md promises for `gpupool metrics`, read from its text: name -> label names."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "contract.md").read_text()
    entry = text.split("- `gpupool metrics ", 1)[1].split("\n- `", 1)[0]
    entry = entry.split("Families (all gauges):", 1)[1]
    return {m.group(1): set(filter(None, (m.group(2) or "").split(",")))
            for m in re.finditer(r"`(gpupool_[a-z_]+)(?:\{([a-z_,]+)\})?`", entry)}


def test_every_family_is_the_contracts_gauge(inputs: tuple[str, str], tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    fabric, free = inputs
    spec = tmp_path / "pools.yaml"
    spec.write_text(POOLS_YAML)
    audit = tmp_path / "audit.json"
    audit.write_text(json.dumps({"status": "WARNING", "findings": [
        {"check": "link-rate", "severity": "warning", "subject": "leaf01", "message": "x"}]}))
    node = tmp_path / "node.json"
    node.write_text(json.dumps({"status": "OK", "findings": [
        {"check": "gpu-ecc", "severity": "warning", "subject": "GPU0", "message": "x"}]}))
    assert main(["metrics", "--fabric", fabric, "--free", free, "--pools", str(spec), "--audit-json", str(audit),
                 "--node-check-json", str(node)], obj=AppContext(slurm_runner=_fake)) == 0
    text = capsys.readouterr().out
    emitted: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        assert family.type == "gauge" and family.documentation, family.name
        labels = {k for sample in family.samples for k in sample.labels}
        emitted[family.name] = labels
        # Every HELP and TYPE line is there once, as the text format wants (read here by hand, not by the parser).
        assert text.count(f"# HELP {family.name} ") == 1 and f"# TYPE {family.name} gauge\n" in text
    assert emitted == _contract_families()


def test_a_failed_scrape_answers_500_and_says_why() -> None:
    def broken() -> list[Family]:
        raise RuntimeError("the fabric file vanished")

    server = make_server("127.0.0.1", 0, broken)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        with pytest.raises(urllib.error.HTTPError) as failed:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10)
        assert failed.value.code == 500 and "the fabric file vanished" in failed.value.read().decode()
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_a_scraper_asking_for_openmetrics_gets_it() -> None:
    server = make_server("127.0.0.1", 0, lambda: [Family("gpupool_free_gpus", "Free GPUs.").add(54)])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        request = urllib.request.Request(f"http://127.0.0.1:{server.server_address[1]}/metrics",
                                         headers={"Accept": "application/openmetrics-text; version=1.0.0"})
        with urllib.request.urlopen(request, timeout=10) as response:
            body = response.read().decode()
            assert response.headers["Content-Type"].startswith("application/openmetrics-text")
        assert body.endswith("# EOF\n") and "gpupool_free_gpus 54.0\n" in body
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
