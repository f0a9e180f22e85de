"""The Slurm port: backends register themselves, the chooser imports them by name, no import cycle."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path
from typing import Any

import pytest

from gpupool.errors import EnvError, UsageError
from gpupool.slurm import client as chooser
from gpupool.slurm.commands import CommandsClient
from gpupool.slurm.invoke import SlurmCommandError
from gpupool.slurm.port import BACKENDS, Backend, BackendUnavailable, SlurmClient

SLURM_DIR = Path(__file__).resolve().parents[2] / "gpupool" / "slurm"


def _top_level_imports(name: str) -> set[str]:
    tree = ast.parse((SLURM_DIR / name).read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in tree.body:  # module level only
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_chooser_and_backends_do_not_import_each_other() -> None:
    imports = _top_level_imports("client.py")
    assert "gpupool.slurm.pyslurm_backend" not in imports and "gpupool.slurm.commands" not in imports
    for backend in ("pyslurm_backend.py", "commands.py"):
        assert "gpupool.slurm.client" not in _top_level_imports(backend)


def test_backends_register_when_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GPUPOOL_SLURM_BACKEND", raising=False)
    chooser.load_backends()
    assert {"commands", "pyslurm"} <= set(BACKENDS)
    assert isinstance(chooser.make_client(backend="commands"), CommandsClient)
    with pytest.raises(UsageError, match="unknown Slurm backend 'slurmrestd'"):
        chooser.make_client(backend="slurmrestd")


def test_auto_takes_the_most_preferred_usable_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    chooser.load_backends()
    made: list[str] = []

    def unusable(_timeout: float) -> Any:
        raise BackendUnavailable("not here")

    def usable(timeout: float) -> Any:
        made.append(f"test-usable {timeout:g}")
        return CommandsClient(timeout=timeout)

    monkeypatch.setitem(BACKENDS, "test-unusable", Backend("test-unusable", preference=100, create=unusable))
    monkeypatch.setitem(BACKENDS, "test-usable", Backend("test-usable", preference=50, create=usable))
    chooser.make_client(timeout=3, backend="auto")
    assert made == ["test-usable 3"]
    with pytest.raises(EnvError, match="test-unusable backend requested but unusable: not here"):
        chooser.make_client(backend="test-unusable")


def test_commands_backend_node_side_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    client = CommandsClient(timeout=1)
    asked: list[list[str]] = []

    def run(argv: list[str], **_kw: Any) -> subprocess.CompletedProcess[str]:
        asked.append(argv)
        if argv[:2] == ["scontrol", "-o"]:
            return subprocess.CompletedProcess(argv, 0, "NodeName=gpu001 Arch=x86_64 Gres=gpu:a100:8 Gres=x\n", "")
        if argv[0] == "sinfo":
            return subprocess.CompletedProcess(argv, 0, "gpu002\ngpu001\ngpu001\n", "")
        return subprocess.CompletedProcess(argv, 0, "", "")

    monkeypatch.setattr("gpupool.slurm.commands.run", run)
    assert client.node_gres("gpu001") == "gpu:a100:8"
    assert client.node_names() == ["gpu001", "gpu002"]
    client.drain("gpu001", "gpupool: ECC")
    assert asked[-1] == ["scontrol", "update", "nodename=gpu001", "state=drain", "reason=gpupool: ECC"]

    def down(argv: list[str], **_kw: Any) -> Any:
        raise EnvError("scontrol did not answer within 1s")

    monkeypatch.setattr("gpupool.slurm.commands.run", down)
    assert client.node_gres("gpu001") is None  # a Prolog treats "no answer" as unknown
    with pytest.raises(EnvError):
        client.drain("gpu001", "x")

    def refused(argv: list[str], **_kw: Any) -> Any:
        raise SlurmCommandError("scontrol: error: Invalid node name specified")

    monkeypatch.setattr("gpupool.slurm.commands.run", refused)
    assert client.node_gres("nosuch") is None
    assert isinstance(client, SlurmClient)
