"""The mypy configuration (setup.cfg [mypy]) keeps its promise: placement, fabric and slurm get every flag of
`mypy --strict`, as mypy itself lists them, and scripts/test runs mypy.

Not a type check itself (scripts/test and CI run mypy); this catches a config that silently stops being strict,
e.g. when a mypy release adds a flag to --strict, since `strict` cannot be set per module.
"""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
STRICT_PACKAGES = ("gpupool.placement", "gpupool.fabric", "gpupool.slurm")


def _strict_flags_from_mypy() -> set[str]:
    """The flags `mypy --help` says --strict enables, as config option names (--no-implicit-reexport ->
    no_implicit_reexport)."""
    if shutil.which("mypy", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("mypy is not installed next to this Python")
    text = subprocess.run([sys.executable, "-m", "mypy", "--help"], capture_output=True, text=True, timeout=60,
                          check=True).stdout
    block = text.split("--strict ", 1)[1].split("\n  --", 1)[0]
    joined = re.sub(r"-\n\s+", "-", block)  # the help text wraps flag names at their hyphens
    return {flag.replace("-", "_") for flag in re.findall(r"--([a-z-]+)", joined)}


def test_strict_packages_get_every_strict_flag() -> None:
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    assert config.has_section("mypy")
    wanted = _strict_flags_from_mypy()
    assert {"disallow_untyped_defs", "warn_return_any", "no_implicit_reexport"} <= wanted  # the parse worked
    global_on = {k for k, v in config["mypy"].items() if v.strip() == "True"}
    for package in STRICT_PACKAGES:
        sections = [s for s in config.sections() if s.startswith("mypy-")
                    and f"{package}.*" in [p.strip() for p in s.removeprefix("mypy-").split(",")]]
        assert len(sections) == 1, package
        on = {k for k, v in config[sections[0]].items() if v.strip() == "True"} | global_on
        assert wanted - on == set(), f"{package} misses {sorted(wanted - on)}"


def test_scripts_test_runs_mypy_on_the_package() -> None:
    script = (REPO / "scripts" / "test").read_text()
    assert re.search(r"^\s+python -m mypy \|\| status=1$", script, re.M)
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    assert config["mypy"]["files"].strip() == "gpupool"
    assert config["mypy"]["cache_dir"].strip().startswith(".venv/")  # ignored: never committed
