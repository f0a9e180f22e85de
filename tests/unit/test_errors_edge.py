"""Errors at the edge (issue #28 item 5): domain packages raise typed errors that carry data, never
an exit code or a command-line flag; `gpupool.cli.errors` maps them, in one place, to the exit codes of
docs/contract.md and spells each request parameter as the flag that sets it."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from gpupool.cli.errors import CliError, exit_code_for, flag, flag_spelling, message_for
from gpupool.cli.main import main
from gpupool.errors import (
    BadInput,
    BadRequest,
    GpupoolError,
    Refused,
    Unreachable,
    Unsatisfiable,
    param,
)
from gpupool.fabric.generate import fat_tree
from gpupool.fabric.model import save_fabric
from gpupool.placement.model import Request

REPO = Path(__file__).resolve().parents[2]
DOMAIN = ("fabric", "placement", "slurm", "pools", "audit", "node", "observe", "simulate")
OLD_NAMES = {"UsageError", "InputError", "InfeasibleError", "EnvError"}
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z-]*[a-z]")
# Other programs' options a domain message may name: they are data about those tools, not gpupool's flags.
TOOL_FLAGS = {"--json", "--test-only"}
# slurm.sbatch reads sbatch's own command line and #SBATCH lines: sbatch's options are its subject.
TOOL_MODULES = {"gpupool/slurm/sbatch.py"}
# Not errors the CLI maps: node.dcgm's DcgmUnavailable becomes a line of the `node check --deep`
# report itself ("could not check: dcgmi not found (install DCGM for --deep)"), kept word for word.
REPORT_LINES = {("gpupool/node/dcgm.py", "--deep")}


def _domain_files() -> list[Path]:
    return sorted(p for pkg in DOMAIN for p in (REPO / "gpupool" / pkg).rglob("*.py"))


def test_domain_packages_use_the_typed_errors_and_no_exit_codes() -> None:
    found = []
    for path in _domain_files():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            name = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None
            if name in OLD_NAMES or name in {"EXIT_USAGE", "EXIT_INPUT", "EXIT_INFEASIBLE", "EXIT_ENVIRONMENT"}:
                found.append(f"{path.relative_to(REPO)}:{node.lineno}: {name}")
            if isinstance(node, ast.alias) and node.name in OLD_NAMES:
                found.append(f"{path.relative_to(REPO)}: imports {node.name}")
    assert found == []


def test_no_domain_error_message_names_a_gpupool_flag() -> None:
    found = []
    for path in _domain_files():
        if str(path.relative_to(REPO)) in TOOL_MODULES:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)):
                continue
            texts = [n.value for n in ast.walk(node.exc) if isinstance(n, ast.Constant) and isinstance(n.value, str)]
            flags = {f for text in texts for f in FLAG.findall(text)} - TOOL_FLAGS
            flags = {f for f in flags if (str(path.relative_to(REPO)), f) not in REPORT_LINES}
            if flags:
                found.append(f"{path.relative_to(REPO)}:{node.lineno}: {sorted(flags)}")
    assert found == []


def test_the_checker_sees_a_flag_in_a_raise() -> None:
    tree = ast.parse('raise BadRequest(f"--segment {n} needs --nodes")\nraise BadInput("squeue --json: no jobs")\n')
    raises = [n for n in ast.walk(tree) if isinstance(n, ast.Raise)]
    flags = [{f for n in ast.walk(r) if isinstance(n, ast.Constant) for f in FLAG.findall(str(n.value))} - TOOL_FLAGS
             for r in raises]
    assert flags == [{"--segment", "--nodes"}, set()]


@pytest.mark.parametrize(("error", "code"), [
    (Unsatisfiable("no room"), 1), (BadRequest("bad"), 2), (Unreachable("no slurmctld"), 3), (BadInput("bad file"), 4),
    (Refused("sbatch: error: Invalid account"), 4), (GpupoolError("unclassified"), 4), (CliError("monitoring usage"), 2),
])
def test_one_mapping_from_error_class_to_the_documented_exit_code(error: GpupoolError, code: int) -> None:
    assert exit_code_for(error) == code


def test_a_subclass_keeps_its_family_code() -> None:
    from gpupool.slurm.invoke import SlurmCommandError  # Slurm refused the request: bad input

    class Monitoring(CliError):
        exit_code = 3

    assert exit_code_for(SlurmCommandError("sbatch: error: x")) == 4
    assert exit_code_for(Monitoring("x")) == 3


def test_a_parameter_is_its_name_for_a_library_caller_and_its_flag_on_the_command_line() -> None:
    error = BadRequest(f"{param('gpus')} 12 cannot be split evenly over {param('nodes')} 5; "
                       f"give {param('gpus_per_node')}")
    assert error.parameters == ("gpus", "nodes", "gpus_per_node")
    assert error.message == str(error) == "gpus 12 cannot be split evenly over nodes 5; give gpus_per_node"
    expected = "--gpus 12 cannot be split evenly over --nodes 5; give --gpus-per-node"
    assert message_for(error) == expected
    with flag_spelling():  # what a use case copies into a note while a command runs
        assert error.message == expected
    assert error.message.startswith("gpus 12")  # and only while it runs
    assert flag("hosts_per_domain") == "--nvlink-domain-hosts"  # a keyword whose flag is spelled otherwise


def test_a_domain_call_raises_with_parameters_not_flags() -> None:
    with pytest.raises(BadRequest) as info:
        Request(gpus=12, nodes=5).shape()
    assert info.value.parameters == ("gpus", "nodes", "gpus_per_node")
    assert "--" not in info.value.message


def test_the_command_line_names_the_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "fabric.json"
    fabric = fat_tree(2, 4, 1)
    save_fabric(fabric, str(path))
    free = tmp_path / "free.json"
    free.write_text(json.dumps(dict.fromkeys(fabric.host_names(), 8)))
    assert main(["plan", "--gpus", "12", "--nodes", "5", "--free", str(free), "--fabric", str(path)]) == 2
    assert capsys.readouterr().err == ("gpupool: error: --gpus 12 cannot be split evenly over --nodes 5; "
                                       "give --gpus-per-node\n")
    # Unsatisfiable (exit 1) names the flag too.
    assert main(["plan", "--gpus-per-node", "9", "--nodes", "1", "--free", str(free), "--fabric", str(path)]) == 1
    assert capsys.readouterr().err == ("gpupool: error: no available host has 9 free GPUs (most free on one host: 8); "
                                       "largest feasible request is 0 GPUs with --gpus-per-node 9\n")


def _every_option() -> set[str]:
    import click

    from gpupool.cli.main import LAZY_COMMANDS, cli

    options: set[str] = set()
    ctx = click.Context(cli)

    def walk(command: click.Command) -> None:
        options.update(o for p in command.params if isinstance(p, click.Option) for o in p.opts)
        if isinstance(command, click.Group):
            for sub in command.commands.values():
                walk(sub)

    for name in LAZY_COMMANDS:
        command = cli.get_command(ctx, name)
        assert command is not None
        walk(command)
    return options


def test_every_parameter_a_message_names_is_a_real_flag() -> None:
    # Literal param("...") anywhere in gpupool, and the keywords fabric.generate checks by name.
    names: set[str] = set()
    for path in (REPO / "gpupool").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "param"
                    and node.args and isinstance(node.args[0], ast.Constant)):
                names.add(node.args[0].value)
    names |= {"leaves", "hosts_per_leaf", "spines", "pods", "rails", "uplinks", "groups", "routers_per_group",
              "hosts_per_router"}
    assert len(names) > 20
    options = _every_option()
    assert sorted(n for n in names if flag(n) not in options) == []
