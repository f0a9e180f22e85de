"""sbatch option handling: #SBATCH lines, GPU request hints, conflicts, the final command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpupool.cli.errors import message_for
from gpupool.errors import InputError, UsageError
from gpupool.slurm import sbatch as sb


def script(tmp_path: Path, *directives: str, body: str = "srun hostname") -> str:
    path = tmp_path / "job.sh"
    path.write_text("#!/bin/bash\n" + "".join(f"#SBATCH {d}\n" for d in directives) + body + "\n#SBATCH --ignored=1\n")
    return str(path)


def names(options: list[sb.Option]) -> list[tuple[str, str | None]]:
    return [(o.name, o.value) for o in options]


def test_split_options_forms() -> None:
    options, rest = sb.split_options(["-N2", "-p", "gpu", "--mem=4G", "--time", "1:00", "-Hv",
                                      "--exclusive", "job.sh", "-N", "3"])
    assert names(options) == [("nodes", "2"), ("partition", "gpu"), ("mem", "4G"), ("time", "1:00"),
                              ("hold", None), ("verbose", None), ("exclusive", None)]
    assert rest == ["job.sh", "-N", "3"]
    # Tokens are kept verbatim for pass-through.
    assert [t for o in options for t in o.tokens] == ["-N2", "-p", "gpu", "--mem=4G", "--time", "1:00", "-Hv",
                                                      "--exclusive"]


def test_split_options_errors() -> None:
    with pytest.raises(UsageError, match="-p needs a value"):
        sb.split_options(["-p"])
    with pytest.raises(UsageError, match="unknown sbatch option -y"):
        sb.split_options(["-y"])


def test_directives_stop_at_first_command(tmp_path: Path) -> None:
    path = script(tmp_path, "--gres=gpu:h100:4  # four per node", "-N 2", "--job-name 'my job'")
    options = sb.read_directives(path)
    assert names(options) == [("gres", "gpu:h100:4"), ("nodes", "2"), ("job-name", "my job")]
    assert options[1].source == f"{path}:3"


@pytest.mark.parametrize(("content", "message"), [
    (None, "batch script not found"),
    ("echo no shebang\n", "must start with a #! line"),
    ("#!/bin/sh\n#SBATCH --gres 'unbalanced\n", ":2: cannot parse #SBATCH line"),
])
def test_bad_scripts(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "job.sh"
    if content is not None:
        path.write_text(content)
    with pytest.raises(InputError, match=message):
        sb.read_directives(str(path))


def test_unreadable_script(tmp_path: Path) -> None:
    import os

    if os.geteuid() == 0:
        pytest.skip("root reads any file")
    path = tmp_path / "job.sh"
    path.write_text("#!/bin/sh\n")
    path.chmod(0)
    with pytest.raises(InputError, match="permission denied"):
        sb.read_directives(str(path))


def test_hints_later_wins_and_families() -> None:
    options, _ = sb.split_options(["--gres=gpu:a100:2,nic:1", "-N", "3", "--gpus-per-node=4",
                                   "-p", "x", "-p", "gpu", "--cpus-per-gpu=6", "--mem-per-gpu=10G",
                                   "-C", "h100&ib", "-x", "gpu001", "--begin=now+1hour"])
    hints = sb.gpu_hints(options)
    assert hints.nodes == hints.nodes_max == 3
    assert hints.gpus_per_node == 4  # --gpus-per-node came after --gres
    assert hints.gpu_type == "a100"
    assert hints.partition == "gpu"
    assert hints.families == ("gres", "gpus-per-node")
    assert hints.other_gres == ("nic:1",)
    assert hints.cpus_per_gpu == 6 and hints.mem_per_gpu_mb == 10240
    assert hints.features == ("h100", "ib")
    assert hints.exclude == ("gpu001",)
    assert hints.defers_start


def test_node_range_and_bad_values() -> None:
    hints = sb.gpu_hints(sb.split_options(["-N", "2-4"])[0])
    assert (hints.nodes, hints.nodes_max) == (2, 4)
    with pytest.raises(UsageError, match="positive integer"):
        sb.gpu_hints(sb.split_options(["--gpus=zero"])[0])


@pytest.mark.parametrize("args", [["-w", "gpu001"], ["--nodelist=gpu[001-002]"], ["-F", "hosts.txt"],
                                  ["--test-only"], ["-M", "other"]])
def test_forbidden_options(args: list[str]) -> None:
    options, _ = sb.split_options(args)
    with pytest.raises(UsageError, match="conflicts with gpupool"):
        sb.check_forbidden(options)


def test_merge_request_conflicts() -> None:
    hints = sb.gpu_hints(sb.split_options(["--gres=gpu:4", "-N", "2", "-p", "gpu"])[0])
    same = sb.merge_request(None, 4, 2, "gpu", hints)
    assert (same.gpus_per_node, same.nodes, same.partition) == (4, 2, "gpu")
    learned = sb.merge_request(None, None, None, None, hints)
    assert (learned.gpus_per_node, learned.nodes, learned.partition) == (4, 2, "gpu")
    # The error names gpupool's parameter (the CLI spells it as the flag); sbatch's own option stays as written.
    with pytest.raises(UsageError, match="gpupool nodes 3 conflicts with sbatch --nodes=2") as info:
        sb.merge_request(None, None, 3, None, hints)
    assert info.value.parameters == ("nodes",)
    assert message_for(info.value).startswith("gpupool --nodes 3 conflicts with sbatch --nodes=2")
    with pytest.raises(UsageError, match="partition other conflicts"):
        sb.merge_request(None, None, None, "other", hints)
    with pytest.raises(UsageError, match="gpus_per_node 8 conflicts") as info:
        sb.merge_request(None, 8, None, None, hints)
    assert message_for(info.value).startswith("gpupool --gpus-per-node 8 conflicts")


def test_check_node_count() -> None:
    hints = sb.gpu_hints(sb.split_options(["-N", "2-3"])[0])
    sb.check_node_count(hints, 3)
    with pytest.raises(UsageError, match="-N/--nodes 2-3 conflicts with gpupool's placement on 1 node"):
        sb.check_node_count(hints, 1)


def test_build_uniform_plan_restates_owned_options() -> None:
    options, _ = sb.split_options(["-J", "train", "--gres=gpu:h100:4,nic:1", "--comment=mine",
                                   "-N", "2", "--mem=8G"])
    hints = sb.gpu_hints(options)
    args = sb.build_sbatch_args(options, {"gpu001": 4, "gpu002": 4}, "gpu[001-002]", hints, "gpupool:x=1;mine")
    assert args == ["-J", "train", "--mem=8G", "--nodes=2", "--nodelist=gpu[001-002]",
                    "--gres=gpu:h100:4,nic:1", "--comment=gpupool:x=1;mine"]


def test_build_uneven_plan_uses_gpus_total() -> None:
    hints = sb.gpu_hints([])
    args = sb.build_sbatch_args([], {"gpu001": 8, "gpu003": 4}, "gpu[001,003]", hints, "gpupool:x=1",
                                partition="gpu")
    assert args == ["--partition=gpu", "--nodes=2", "--nodelist=gpu[001,003]", "--gpus=12", "--comment=gpupool:x=1"]


def test_build_switches_mode_has_no_nodelist() -> None:
    hints = sb.gpu_hints(sb.split_options(["--gpus=16"])[0])
    args = sb.build_sbatch_args([], {"gpu001": 8, "gpu002": 8}, "gpu[001-002]", hints, "gpupool:x=1",
                                switches="1@1:00:00", pin_nodes=False)
    assert "--nodelist=gpu[001-002]" not in args
    assert args == ["--nodes=2", "--gpus=16", "--gpus-per-node=8", "--switches=1@1:00:00", "--comment=gpupool:x=1"]


@pytest.mark.parametrize("value", ["9" * 400, "1e400", "1.2.3G", "lots", "99999999999999T"])
def test_unreadable_mem_per_gpu_is_a_usage_error_naming_the_option(value: str) -> None:
    with pytest.raises(UsageError, match="--mem-per-gpu"):
        sb.gpu_hints(sb.split_options(["--gres=gpu:8", f"--mem-per-gpu={value}"])[0])


@pytest.mark.parametrize(("value", "expected"), [("0", None), ("16G", 16384), ("1500", 1500), ("2048K", 2)])
def test_mem_per_gpu_sizes(value: str, expected: int | None) -> None:
    assert sb.gpu_hints(sb.split_options(["--gres=gpu:8", f"--mem-per-gpu={value}"])[0]).mem_per_gpu_mb == expected
