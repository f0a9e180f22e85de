"""`dcgmi diag -r N -j` (NVIDIA DCGM diagnostics) for `node check --deep`, folded into the findings.

Output shapes read: DCGM 2.x/3.x JSON (`{"DCGM GPU Diagnostic": {"test_categories": [{"category",
"tests": [{"name", "results": [{"gpu_ids"|"gpu_id", "status": "Pass|Fail|Warn|Skip", "warnings"}]}]}]}}`),
DCGM 4.x JSON (top-level `"tests": [{"name", "results": [{"entity_group": "GPU", "entity_id",
"status": "pass", "errors"|"warnings"}]}]`), and the plain table (`| Denylist | Pass |`) as fallback.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import Any

STATUSES = {"pass": "pass", "fail": "fail", "warn": "warn", "warning": "warn", "skip": "skip",
            "skipped": "skip", "not run": "skip"}


class DcgmUnavailable(Exception):
    """dcgmi is missing, could not reach nv-hostengine, or printed nothing readable."""


@dataclass(frozen=True)
class DcgmTest:
    name: str
    subject: str  # gpuN, or "node" for tests that cover all GPUs (deployment/software)
    status: str  # pass, fail, warn, skip
    message: str = ""


@dataclass
class DcgmResult:
    level: int
    tests: list[DcgmTest] = field(default_factory=list)
    version: str = ""


def _status(text: Any) -> str:
    word = str(text).strip().lower()
    return STATUSES.get(word, STATUSES.get(word.split(" ")[0], word))


def _messages(result: dict[str, Any]) -> str:
    texts: list[str] = []
    for key in ("errors", "warnings"):
        for item in result.get(key) or []:
            if isinstance(item, dict):
                item = item.get("msg") or item.get("warning") or item.get("error") or ""
            if str(item).strip():
                texts.append(str(item).strip())
    return "; ".join(texts)


def _subject(result: dict[str, Any]) -> str:
    if str(result.get("entity_group", "GPU")).upper() == "GPU" and "entity_id" in result:
        return f"gpu{result['entity_id']}"
    ids = str(result.get("gpu_ids", result.get("gpu_id", ""))).strip()
    return f"gpu{ids}" if ids.isdigit() else "node"


def _tests_of(tests: list[Any]) -> list[DcgmTest]:
    found: list[DcgmTest] = []
    for test in tests:
        if not isinstance(test, dict):
            continue
        for result in test.get("results") or []:
            if isinstance(result, dict) and "status" in result:
                found.append(DcgmTest(str(test.get("name", "?")), _subject(result), _status(result["status"]),
                                      _messages(result)))
    return found


def parse_dcgm_json(text: str, level: int) -> DcgmResult:
    start = text.find("{")
    if start < 0:
        raise ValueError("no JSON document")
    document = json.loads(text[start:])
    if not isinstance(document, dict):
        raise ValueError("not a JSON object")
    body = document.get("DCGM GPU Diagnostic", document.get("DCGM Diagnostic", document))
    if not isinstance(body, dict):
        raise ValueError("no diagnostic object")
    result = DcgmResult(level=level, version=str(body.get("version", document.get("version", ""))))
    for category in body.get("test_categories") or []:
        result.tests.extend(_tests_of(category.get("tests") or []))
    result.tests.extend(_tests_of(body.get("tests") or []))
    return result


_ROW = re.compile(r"^\|\s*([^|]+?)\s*\|\s*(.*?)\s*\|?\s*$")


def parse_dcgm_text(text: str, level: int) -> DcgmResult:
    """The human table: `| Denylist | Pass |`, `| Memory | Fail - GPU: 0 |`, `| Warning | GPU 0 ... |`."""
    result = DcgmResult(level=level)
    for line in text.splitlines():
        match = _ROW.match(line.strip())
        if not match or line.strip().startswith("|-"):
            continue
        name, value = match.groups()
        if name in ("Warning", "Info", "Error") and result.tests:
            last = result.tests[-1]
            message = f"{last.message}; {value}" if last.message else value
            result.tests[-1] = DcgmTest(last.name, last.subject, last.status, message)
            continue
        word = value.split(" ")[0].lower() if value else ""
        if word not in STATUSES:
            continue  # metadata rows (versions, device ids) and the header
        gpu = re.search(r"GPU:?\s*(\d+)\b", value)
        result.tests.append(DcgmTest(name, f"gpu{gpu.group(1)}" if gpu else "node", STATUSES[word]))
    return result


def run_dcgm_diag(dcgmi: str, level: int, budget: float) -> DcgmResult:
    """Run `dcgmi diag -r LEVEL -j` within `budget` seconds (raises DcgmUnavailable, TimeoutExpired)."""
    command = shutil.which(dcgmi)
    if command is None:
        raise DcgmUnavailable(f"{dcgmi} not found (install DCGM for --deep)")
    done = subprocess.run([command, "diag", "-r", str(level), "-j"], capture_output=True, text=True,
                          timeout=budget, stdin=subprocess.DEVNULL)
    try:
        result = parse_dcgm_json(done.stdout, level)
    except ValueError:
        result = parse_dcgm_text(done.stdout, level)
    if not result.tests:
        detail = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
        raise DcgmUnavailable(f"dcgmi diag -r {level} gave no results (exit {done.returncode}): {detail[:200]}")
    return result
