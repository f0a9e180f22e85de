"""Fuzz suite (issue 19): every command that reads a file or Slurm output, run in-process on
generated and mutated inputs. Each case must end with an exit code of the contract (0-4), one
`gpupool: error:` line at most, no traceback, and no half-written output file.

Examples per target: `GPUPOOL_FUZZ_EXAMPLES` (default 150, so the suite stays well under two
minutes; 1500 under the `nightly` hypothesis profile, tests/conftest.py). Under `CI` the `ci`
profile derandomizes every target (its seed is fixed per test) and prints a failing example's
reproduce blob. The corpus of inputs that failed before the fixes lives in tests/fixtures/hostile/
and is replayed first by every target as explicit examples (test_every_target_replays_the_corpus).
Correctness properties of accepted inputs: test_fuzz_properties.py; here, robustness, and the
Slurm parsers' records checked against Slurm's own invariants.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gpupool.cli.context import AppContext
from gpupool.cli.main import main
from gpupool.errors import GpupoolError
from gpupool.fabric.generate import fat_tree
from gpupool.fabric.model import fabric_to_dict, save_fabric
from gpupool.slurm.fake import FakeSlurm

NIGHTLY = os.environ.get("GPUPOOL_HYPOTHESIS_PROFILE") == "nightly"
EXAMPLES = int(os.environ.get("GPUPOOL_FUZZ_EXAMPLES", "1500" if NIGHTLY else "150"))
# derandomize, print_blob and the example database come from the profile (tests/conftest.py).
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
DOCUMENTED = {0, 1, 2, 3, 4}
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
HOSTILE = FIXTURES / "hostile"
IBNET = (FIXTURES / "ibnetdiscover" / "ibsim-fat-tree-2x2x2.default.out").read_text()
HOSTS = [f"gpu{i:03d}" for i in range(1, 9)]
WORK = Path(tempfile.mkdtemp(prefix="gpupool-fuzz-"))
FABRIC = WORK / "fabric.json"
save_fabric(fat_tree(4, 2, 2), str(FABRIC))

# Text a hostile user, admin or fabric could produce.
HOSTILE_TEXT = st.lists(st.sampled_from(
    list("gpu0123456789[]-,:=#;\"' \t\n\r{}\\/*&!.") + ["\u00b2", "\u0663", "\udcff", "\x00", "\x7f", "\u2028",
                                                         "é", "Nodes=", "SwitchName=", "gpupool:", "alloc="]),
    max_size=30).map("".join)


def run_cli(args: list[str], ctx: AppContext | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args, obj=ctx or AppContext())
    return code, out.getvalue(), err.getvalue()


def check(code: int, err: str) -> None:
    assert code in DOCUMENTED, (code, err)
    assert "Traceback" not in err and "internal error" not in err, err
    errors = [line for line in err.splitlines() if line.startswith("gpupool: error:")]
    assert len(errors) <= 1, err
    if code not in (0, 1):
        # click's own usage errors (exit 2) print "Error: ..." after a usage line
        assert errors or (code == 2 and "Error:" in err), err


def no_half_written(directory: Path, output: Path, code: int) -> None:
    # Temp files of atomic writes are gone; a failed command leaves no output behind.
    assert not [p for p in directory.iterdir() if p.name.endswith(".tmp")]
    if code != 0:
        assert not output.exists()


def write_input(name: str, data: bytes) -> Path:
    directory = Path(tempfile.mkdtemp(dir=WORK))
    path = directory / name
    path.write_bytes(data)
    return path


def corpus(pattern: str) -> list[bytes]:
    return [p.read_bytes() for p in sorted(HOSTILE.glob(pattern))]


def with_corpus(pattern: str, arg: str = "data", convert: Callable[[bytes], Any] = bytes,
                **others: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Replay every corpus file matching `pattern` (as `convert(bytes)` in argument `arg`) as an
    explicit example before generated ones."""
    assert corpus(pattern), f"no corpus file matches {pattern}"

    def decorate(test: Callable[..., Any]) -> Callable[..., Any]:
        for data in corpus(pattern):
            test = example(**{arg: convert(data)}, **others)(test)
        test.corpus_pattern = pattern  # type: ignore[attr-defined]
        return test
    return decorate


# -- mutations of a real text capture ----------------------------------------------------------

@st.composite
def mutated_text(draw: st.DrawFn, base: str) -> bytes:
    lines = base.splitlines()
    for _ in range(draw(st.integers(0, 6))):
        if not lines:
            break
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["delete", "duplicate", "replace", "splice", "description", "truncate"]))
        if op == "delete":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "replace":
            lines[i] = draw(HOSTILE_TEXT)
        elif op == "splice":
            j = draw(st.integers(0, len(lines[i])))
            lines[i] = lines[i][:j] + draw(HOSTILE_TEXT) + lines[i][j:]
        elif op == "description" and '# "' in lines[i]:
            head, _, tail = lines[i].partition('# "')
            lines[i] = head + '# "' + draw(HOSTILE_TEXT).replace('"', "") + '"' + tail.partition('"')[2]
        elif op == "truncate":
            lines = lines[:i]
    data = ("\n".join(lines) + "\n").encode("utf-8", errors="surrogateescape")
    if draw(st.booleans()) and data:
        k = draw(st.integers(0, len(data) - 1))
        data = data[:k] + bytes([draw(st.integers(0, 255))]) + data[k + 1:]
    return data


@FUZZ
@with_corpus("ibnetdiscover-*.out")
@given(data=mutated_text(IBNET))
def test_fuzz_fabric_discover(data: bytes) -> None:
    source = write_input("capture.out", data)
    output = source.parent / "out" / "fabric.json"
    code, _, err = run_cli(["fabric", "discover", "--ibnetdiscover", str(source), "-o", str(output)])
    check(code, err)
    no_half_written(output.parent if output.parent.exists() else source.parent, output, code)
    if code == 0:
        json.loads(output.read_text())


# -- every capture format (issue 25): ibdiagnet2 .lst / .db_csv, iblinkinfo, port labels ----------

CAPTURES = [(FIXTURES / "ibdiagnet" / name).read_text() for name in (
    "quantum2-split.ibdiagnet2.ibnetdiscover", "fat-tree-split.ibdiagnet2.lst",
    "fat-tree-split.ibdiagnet2.db_csv", "fat-tree-split.iblinkinfo", "fat-tree-split.iblinkinfo-l")]


def test_capture_corpus_is_one_error_line_each() -> None:
    files = sorted(HOSTILE.glob("capture-*"))
    assert len(files) >= 10
    for path in files:
        output = WORK / f"{path.name}.json"
        code, _, err = run_cli(["fabric", "discover", "--ibnetdiscover", str(path), "-o", str(output)])
        assert code == 4, (path.name, code, err)
        assert err.count("gpupool: error:") == 1 and str(path) in err and "Traceback" not in err, (path.name, err)
        assert not output.exists()


@FUZZ
@with_corpus("capture-*")
@given(data=st.one_of(*(mutated_text(text) for text in CAPTURES)))
def test_fuzz_capture_formats(data: bytes) -> None:
    source = write_input("capture.txt", data)
    output = source.parent / "fabric.json"
    code, _, err = run_cli(["fabric", "discover", "--ibnetdiscover", str(source), "-o", str(output)])
    check(code, err)
    no_half_written(source.parent, output, code)
    if code == 0:
        json.loads(output.read_text())


@FUZZ
@with_corpus("capture-*", fmt=0)
@given(data=mutated_text(CAPTURES[0]), fmt=st.integers(0, len(CAPTURES) - 1))
def test_fuzz_fabric_diff(data: bytes, fmt: int) -> None:
    # OLD: a good capture of any format; NEW: a mutated labelled capture of the same fabric.
    old = write_input("old.txt", CAPTURES[fmt].encode())
    new = write_input("new.txt", data)
    code, out, err = run_cli(["--json", "fabric", "diff", str(old), str(new)])
    check(code, err)
    if code in (0, 1):
        doc = json.loads(out)
        assert doc["changed"] == (code == 1)


# -- fabric JSON ---------------------------------------------------------------------------------

JSON_LEAF = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True),
                      HOSTILE_TEXT)
JSON_VALUE = st.recursive(JSON_LEAF, lambda inner: st.lists(inner, max_size=4)
                          | st.dictionaries(HOSTILE_TEXT, inner, max_size=4), max_leaves=20)
GOOD_FABRIC = fabric_to_dict(fat_tree(2, 2, 1))


@st.composite
def mutated_fabric(draw: st.DrawFn) -> bytes:
    doc = json.loads(json.dumps(GOOD_FABRIC))
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.sampled_from(["top", "node", "link"]))
        if where == "top":
            doc[draw(st.sampled_from(["version", "nodes", "links", "meta", "warnings"]))] = draw(JSON_VALUE)
        elif where == "node" and isinstance(doc.get("nodes"), list) and doc["nodes"]:
            node = draw(st.sampled_from(doc["nodes"]))
            if isinstance(node, dict):
                node[draw(st.sampled_from(["id", "type", "ports", "host", "role", "lid", "group", "desc"]))] = \
                    draw(JSON_VALUE)
        elif where == "link" and isinstance(doc.get("links"), list) and doc["links"]:
            link = draw(st.sampled_from(doc["links"]))
            if isinstance(link, list) and link:
                link[draw(st.integers(0, len(link) - 1))] = draw(JSON_VALUE)
    text = json.dumps(doc, allow_nan=True)
    if draw(st.booleans()):
        cut = draw(st.integers(0, len(text)))
        text = text[:cut]
    return text.encode("utf-8", errors="surrogatepass")


def has_fractional_count(data: bytes) -> bool:
    """Does a node's ports/lid/group/rail or a link's node index or port hold 2.5-like number?"""
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        return False
    if not isinstance(doc, dict):
        return False

    def fractional(value: Any) -> bool:
        return isinstance(value, float) and value == value and abs(value) != float("inf") and not value.is_integer()

    nodes = doc.get("nodes") if isinstance(doc.get("nodes"), list) else []
    links = doc.get("links") if isinstance(doc.get("links"), list) else []
    return (any(isinstance(n, dict) and any(fractional(n.get(k)) for k in ("ports", "lid", "group", "rail"))
                for n in nodes)
            or any(isinstance(lk, list) and any(fractional(x) for x in lk[:4]) for lk in links))


@FUZZ
@with_corpus("fabric-*.json")
@given(data=mutated_fabric())
def test_fuzz_fabric_json(data: bytes) -> None:
    path = write_input("fabric.json", data)
    code, out, err = run_cli(["fabric", "show", "--fabric", str(path), "--json"])
    check(code, err)
    assert code in (0, 4)
    if has_fractional_count(data):
        assert code == 4, "a fabric with a fractional port/LID/node index was accepted"
    if code == 0:
        json.loads(out)
    code, _, err = run_cli(["plan", "--fabric", str(path), "--gpus", "2", "--free", str(FREE_OK)])
    check(code, err)


# -- free files ----------------------------------------------------------------------------------

FREE_OK = WORK / "free-ok.json"
FREE_OK.write_text(json.dumps(dict.fromkeys(HOSTS, 4)))


@st.composite
def free_files(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["values", "any"]))
    if kind == "values":
        doc: Any = {draw(st.sampled_from([*HOSTS, "gpu[1", "x"])) if draw(st.booleans()) else draw(HOSTILE_TEXT):
                    draw(JSON_LEAF) for _ in range(draw(st.integers(0, 6)))}
    else:
        doc = draw(JSON_VALUE)
    return json.dumps(doc, allow_nan=True).encode("utf-8", errors="surrogatepass")


@FUZZ
@with_corpus("free-*.json", gpus="1", exclude=None)
@given(data=free_files(), gpus=st.sampled_from(["1", "4", "16", "1000000000", "\u00b2", "0", "-3"]),
       exclude=st.one_of(st.none(), HOSTILE_TEXT.filter(lambda t: not t.startswith("-"))))
def test_fuzz_free_files(data: bytes, gpus: str, exclude: str | None) -> None:
    path = write_input("free.json", data)
    args = ["plan", "--fabric", str(FABRIC), "--free", str(path), "--gpus", gpus, "--json"]
    if exclude:
        args += ["--exclude", exclude]
    code, _, err = run_cli(args)
    check(code, err)


# -- pools files ---------------------------------------------------------------------------------

class CannedPoolsSlurm:
    """Read-only answers of an 8-node cluster (pool apply --dry-run never mutates)."""

    def __call__(self, argv: list[str]) -> str:
        if argv[:3] == ["scontrol", "show", "config"]:
            return "ClusterName = test\nPriorityType = priority/multifactor\n"
        if "node" in argv:
            return "".join(f"NodeName={h} Gres=gpu:4 GresUsed=gpu:0 State=IDLE\n" for h in HOSTS)
        if "partition" in argv:
            return ""
        if argv[0] == "sacctmgr":
            if "account" in argv:
                return "root|default root account|root\n"
            if "assoc" in argv:
                return "root|||1|normal|\n"
            return ""
        raise AssertionError(argv)


POOL_KEYS = st.sampled_from(["nodes", "owners", "gpus_per_node", "max_time", "default", "priority_tier", "lend",
                             "gpu_type"])
ACCOUNT_KEYS = st.sampled_from(["shares", "users", "parent", "default_queue", "organization"])


@st.composite
def pools_files(draw: st.DrawFn) -> bytes:
    scalar = st.one_of(HOSTILE_TEXT, st.integers(-(2**40), 2**40), st.booleans(), st.none(),
                       st.sampled_from(["gpu[001-004]", "gpu[1-100000000]", "2-00:00:00", "vision", ".nan",
                                        "*a", "&a x", "<<: *a", "9" * 5000]))
    value = st.one_of(scalar, st.lists(scalar, max_size=3))
    pools = {draw(st.one_of(st.sampled_from(["vision", "llm"]), HOSTILE_TEXT)):
             {draw(POOL_KEYS): draw(value) for _ in range(draw(st.integers(0, 3)))} for _ in range(draw(st.integers(0, 3)))}
    accounts = {draw(st.one_of(st.sampled_from(["vision", "llm"]), HOSTILE_TEXT)):
                {draw(ACCOUNT_KEYS): draw(value) for _ in range(draw(st.integers(0, 3)))}
                for _ in range(draw(st.integers(0, 3)))}
    text = json.dumps({"pools": pools, "accounts": accounts})  # JSON is YAML
    if draw(st.booleans()):
        text = text.replace("\"*a\"", "*a").replace("\"&a x\"", "&a x")  # raw aliases/anchors
    return text.encode("utf-8", errors="surrogatepass")


@FUZZ
@with_corpus("*.yaml")
@given(data=pools_files())
def test_fuzz_pools_files(data: bytes) -> None:
    path = write_input("pools.yaml", data)
    fragment = path.parent / "fragment.conf"
    ctx = AppContext(slurm_runner=CannedPoolsSlurm(), user_exists=lambda n: True)
    code, out, err = run_cli(["pool", "apply", str(path), "--dry-run", "--json", "--fragment", str(fragment)], ctx)
    check(code, err)
    assert not fragment.exists()
    lua = path.parent / "job_submit.lua"
    code, out, err = run_cli(["pool", "lua", str(path), "-o", str(lua)], AppContext())
    assert code in (0, 4) and "Traceback" not in err
    no_half_written(path.parent, lua, code)


# -- sbatch scripts and submit options -----------------------------------------------------------

SBATCH_OPTIONS = st.sampled_from(["--gpus", "--gpus-per-node", "--gres", "--nodes", "-N", "--partition", "-p",
                                  "--exclude", "--constraint", "--cpus-per-gpu", "--mem-per-gpu", "--comment",
                                  "--switches", "-J", "--nodelist", "-w"])


@st.composite
def sbatch_scripts(draw: st.DrawFn) -> bytes:
    lines = ["#!/bin/bash" if draw(st.integers(0, 9)) else draw(HOSTILE_TEXT)]
    for _ in range(draw(st.integers(0, 5))):
        option = draw(SBATCH_OPTIONS)
        value = draw(st.one_of(HOSTILE_TEXT, st.sampled_from(["4", "gpu:2", "gpu:h100:8", "2-4", "\u00b2",
                                                               "9" * 5000, "gpu"])))
        sep = "=" if option.startswith("--") and draw(st.booleans()) else " "
        lines.append(f"#SBATCH {option}{sep}{value}")
    lines.append("srun true")
    data = "\n".join(lines).encode("utf-8", errors="surrogateescape")
    if draw(st.booleans()) and data:
        k = draw(st.integers(0, len(data) - 1))
        data = data[:k] + bytes([draw(st.integers(0, 255))]) + data[k + 1:]
    return data


@FUZZ
@with_corpus("sbatch-*.sh", gpus=None)
@given(data=sbatch_scripts(), gpus=st.one_of(st.none(), st.sampled_from(["4", "\u00b2", "0", "100000000000"])))
def test_fuzz_sbatch_scripts(data: bytes, gpus: str | None) -> None:
    script = write_input("job.sh", data)
    slurm = FakeSlurm.uniform(HOSTS, gpus=4)
    ctx = AppContext(slurm=slurm)
    args = ["submit", "--fabric", str(FABRIC), "--dry-run", "--json"]
    if gpus is not None:
        args += ["--gpus", gpus]
    code, _, err = run_cli([*args, str(script)], ctx)
    check(code, err)
    assert not slurm.submitted


# -- Slurm JSON and text parsers -----------------------------------------------------------------

SQUEUE = json.loads((FIXTURES / "slurm" / "squeue-22.05.json").read_text())
JOB_FIELDS = ["name", "comment", "nodes", "job_state", "tres_per_node", "gres_detail", "job_id", "user_name",
              "partition", "required_nodes", "priority", "tres_req_str", "node_count"]


@st.composite
def squeue_docs(draw: st.DrawFn) -> dict[str, Any]:
    doc = json.loads(json.dumps(SQUEUE))
    for _ in range(draw(st.integers(1, 6))):
        job = draw(st.sampled_from(doc["jobs"]))
        job[draw(st.sampled_from(JOB_FIELDS))] = draw(st.one_of(JSON_VALUE, HOSTILE_TEXT))
    return doc


# Slurm's job states (job_state_string(): base states and the flags that name a job).
SLURM_JOB_STATES = {"PENDING", "RUNNING", "SUSPENDED", "COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL",
                    "PREEMPTED", "BOOT_FAIL", "DEADLINE", "OUT_OF_MEMORY", "COMPLETING", "STAGE_OUT", "CONFIGURING",
                    "EXPEDITING", "RESIZING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "SPECIAL_EXIT", "STOPPED",
                    "REVOKED", "RESV_DEL_HOLD", "SIGNALING", "LAUNCH_FAILED", "POWER_UP_NODE", "RECONFIG_FAIL",
                    "UPDATE_DB", "UNKNOWN"}
# Of these, the states in which a job holds its nodes (slurm/src/common/slurm_protocol_defs.c).
SLURM_HOLDING = {"RUNNING", "SUSPENDED", "COMPLETING", "CONFIGURING", "STOPPED", "RESIZING", "SIGNALING"}
# Slurm's node state words (node_state_string(), base and flags).
SLURM_NODE_STATES = {"IDLE", "ALLOCATED", "ALLOC", "MIXED", "DOWN", "ERROR", "FUTURE", "UNKNOWN", "DRAIN", "DRAINING",
                     "DRAINED", "COMPLETING", "NOT_RESPONDING", "POWERED_DOWN", "POWERING_DOWN", "POWERING_UP",
                     "POWER_DOWN", "POWER_UP", "FAIL", "FAILING", "MAINTENANCE", "MAINT", "REBOOT_REQUESTED",
                     "REBOOT_ISSUED", "RESERVED", "PLANNED", "CLOUD", "DYNAMIC_FUTURE", "DYNAMIC_NORM", "INVALID_REG",
                     "NO_RESPOND", "PERFCTRS", "RESUME", "UNDRAIN", "BLOCKED", "INVALID", "REBOOT"}


def check_job_record(job: Any) -> None:
    """A parsed job satisfies Slurm's invariants: a job that holds nodes is in a holding state from
    Slurm's list, its allocation is on its own nodes, counts are non-negative, its node list is
    within the hostlist limit and has no duplicate."""
    from gpupool.hostlist import limit

    if job.nodes or job.allocation:
        assert job.state.split("+")[0] in SLURM_HOLDING, (job.state, job.nodes)
    assert len(job.nodes) == len(set(job.nodes)) and len(job.nodes) <= limit()
    assert set(job.allocation) <= set(job.nodes), (job.allocation, job.nodes)
    assert all(isinstance(g, int) and g >= 0 for g in job.allocation.values()), job.allocation
    for count in (job.request.nodes, job.request.gpus_per_node, job.request.gpus_total):
        assert count is None or (isinstance(count, int) and count >= 0), job.request
    for when in (job.start_time, job.submit_time):
        assert when is None or (isinstance(when, int | float) and when >= 0)
    # One upper-case word as Slurm prints it (a hostile non-word state is kept: it never holds nodes).
    assert job.state == job.state.upper() == job.state.strip()


def check_node_record(node: Any) -> None:
    # A node name Slurm prints: no white space, no control character, not empty.
    assert node.name and not re.search(r"[\x00-\x20\x7f]", node.name), node.name
    # A node gpupool may place on (free GPUs) is in a usable state from Slurm's list.
    if node.free_gpus and node.flags & {"IDLE", "MIXED"}:
        assert node.flags <= SLURM_NODE_STATES, node.flags
    for count in (node.gpus_total, node.gpus_used, node.cpus_total, node.cpus_alloc, node.memory_mb,
                  node.memory_alloc_mb):
        assert isinstance(count, int) and count >= 0, node
    assert 0 <= node.free_gpus <= node.gpus_total


def test_job_and_node_invariants_hold_on_the_real_captures() -> None:
    # The checks themselves, on real Slurm output (22.05 squeue JSON): they must pass there and
    # fail on a record that breaks them.
    from gpupool.slurm.models import JobInfo
    from gpupool.slurm.parse import jobs_from_json

    jobs = jobs_from_json(SQUEUE)
    assert jobs and any(j.nodes for j in jobs)
    for job in jobs:
        check_job_record(job)
    for broken in (JobInfo(job_id="1", state="GPU0", nodes=("gpu001",)),
                   JobInfo(job_id="1", state="RUNNING", nodes=("gpu001",), allocation={"gpu002": 1}),
                   JobInfo(job_id="1", state="RUNNING", nodes=("gpu001",), allocation={"gpu001": -1})):
        with pytest.raises(AssertionError):
            check_job_record(broken)


@FUZZ
@with_corpus("squeue-*.json", arg="doc", convert=json.loads)
@given(doc=squeue_docs())
def test_fuzz_slurm_job_json(doc: dict[str, Any]) -> None:
    from gpupool.pools.slurm_state import jobs_from_squeue_json
    from gpupool.slurm.freestate import subtract_pending_plans
    from gpupool.slurm.parse import jobs_from_json

    jobs_from_squeue_json(doc)  # per-record isolation: never raises for one odd job
    try:
        jobs = jobs_from_json(doc)
    except GpupoolError:
        return  # a malformed Slurm document is an input/environment error, never a crash
    for job in jobs:
        check_job_record(job)
    free = dict.fromkeys(HOSTS, 4)
    left = subtract_pending_plans(free, jobs)
    assert all(0 <= left.get(h, 0) <= free[h] for h in free), left


@FUZZ
@with_corpus("scontrol-*.txt", arg="line")
@given(line=mutated_text(
    "JobId=11 JobName=wrap UserId=bob(1001) Priority=100 Account=llm QOS=normal JobState=RUNNING "
    "Partition=llm NodeList=gpu[001-002] NumNodes=2 TRES=cpu=2,node=2,gres/gpu=6 JOB_GRES=gpu:6   Nodes=gpu001 "
    "CPU_IDs=0 Mem=2000 GRES=gpu:4(IDX:0-3)   Nodes=gpu002 CPU_IDs=0 Mem=2000 GRES=gpu:2(IDX:0-1) "
    "MinCPUsNode=1 Comment=x\n"
    "NodeName=gpu001 Arch=x86_64 CPUAlloc=2 CPUEfctv=16 Gres=gpu:4 GresUsed=gpu:2(IDX:0-1) State=MIXED "
    "Partitions=gpu RealMemory=1000 AllocMem=10\n"))
def test_fuzz_slurm_text(line: bytes) -> None:
    from gpupool.pools.slurm_state import parse_jobs, parse_nodes
    from gpupool.slurm.parse import jobs_from_scontrol, nodes_from_scontrol

    text = line.decode("utf-8", errors="replace")
    parse_jobs(text)
    with contextlib.suppress(GpupoolError):  # an input error is fine; anything else is a crash
        parse_nodes(text)
    with contextlib.suppress(GpupoolError):
        for job in jobs_from_scontrol(text):
            check_job_record(job)
    with contextlib.suppress(GpupoolError):
        for node in nodes_from_scontrol(text):
            check_node_record(node)


def test_every_target_replays_the_corpus() -> None:
    # Each fuzz target carries the corpus (with_corpus) and the corpus has files for it.
    targets = {name: test for name, test in globals().items() if name.startswith("test_fuzz_")}
    assert len(targets) >= 7
    for name, test in targets.items():
        pattern = getattr(test, "corpus_pattern", None)
        assert pattern, f"{name} does not replay the corpus"
        assert corpus(pattern), f"{name}: no corpus file matches {pattern}"

