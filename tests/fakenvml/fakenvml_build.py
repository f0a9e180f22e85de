"""Build the fake libnvidia-ml.so.1 (fakenvml.c) with gcc and write scenario files for it."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

SOURCE = Path(__file__).with_name("fakenvml.c")
LIBRARY_NAME = "libnvidia-ml.so.1"


def build_fake_nvml(out_dir: Path) -> Path:
    """Compile the fake NVML into out_dir and return the library path."""
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        raise RuntimeError("gcc not found: cannot build the fake NVML library")
    out_dir.mkdir(parents=True, exist_ok=True)
    library = out_dir / LIBRARY_NAME
    subprocess.run(
        # -Wall without -Werror: a newer compiler's new warning must not break the test build.
        [gcc, "-shared", "-fPIC", "-O1", "-Wall", "-o", str(library), str(SOURCE)],
        check=True, capture_output=True, text=True, timeout=120,
    )
    return library


def write_scenario(path: Path, settings: Mapping[str, object]) -> Path:
    """Write a FAKENVML_CONFIG file: one `key=value` per line (see fakenvml.c for keys)."""
    path.write_text("".join(f"{key}={value}\n" for key, value in settings.items()))
    return path


def fake_nvml_env(library: Path, scenario: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for a child process whose pynvml must load the fake library."""
    env = dict(os.environ if base is None else base)
    previous = env.get("LD_LIBRARY_PATH", "")
    env["LD_LIBRARY_PATH"] = f"{library.parent}:{previous}" if previous else str(library.parent)
    env["FAKENVML_CONFIG"] = str(scenario)
    return env


def node_config(tmp: Path, body: str = "") -> str:
    """A config whose [node] table keeps a test off the machine's /dev/kmsg and /var/lib/gpupool."""
    log = tmp / "kernel.log"
    log.touch(exist_ok=True)
    rest = body.removeprefix("[node]\n")
    return f'[node]\nstate_dir = "{tmp / "state"}"\nkernel_log = "{log}"\n{rest}'
