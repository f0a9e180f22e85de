"""A single-value option given twice is a usage error in every command (issue 25): click alone keeps
the last value silently (`fabric discover --ibnetdiscover A --ibnetdiscover B` read only B)."""

from __future__ import annotations

import contextlib
import io

import click
import pytest

from gpupool.cli.context import AppContext
from gpupool.cli.main import LAZY_COMMANDS, cli, main


def leaf_commands() -> list[tuple[list[str], click.Command]]:
    out: list[tuple[list[str], click.Command]] = []

    def walk(path: list[str], command: click.Command) -> None:
        if isinstance(command, click.Group):
            for name, sub in sorted(command.commands.items()):
                walk([*path, name], sub)
        else:
            out.append((path, command))

    ctx = click.Context(cli)
    for name in sorted(LAZY_COMMANDS):
        walk([name], cli.get_command(ctx, name))  # type: ignore[arg-type]
    return out


def value_options(command: click.Command) -> list[click.Option]:
    return [p for p in command.params if isinstance(p, click.Option) and not p.is_flag and not p.count
            and not p.hidden]


def run(args: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(args, obj=AppContext())
    return code, err.getvalue()


CASES = [(path, opt) for path, command in leaf_commands() for opt in value_options(command)]


def test_the_walk_finds_the_commands() -> None:
    paths = {" ".join(path) for path, _ in leaf_commands()}
    assert {"fabric discover", "fabric audit", "plan", "submit", "fabric generate fat-tree"} <= paths
    assert len(CASES) > 40


@pytest.mark.parametrize("path, option", CASES, ids=[f"{' '.join(p)} {o.opts[0]}" for p, o in CASES])
def test_repeated_option(path: list[str], option: click.Option) -> None:
    flag = option.opts[-1] if option.opts[-1].startswith("--") else option.opts[0]
    code, err = run([*path, flag, "1", flag, "2"])
    if option.multiple:
        assert "was given 2 times" not in err
        return
    monitoring = path in (["fabric", "audit"], ["node", "check"])
    assert code == (3 if monitoring else 2), err
    assert "was given 2 times; it takes one value" in err, err


def test_repeated_root_option() -> None:
    code, err = run(["--config", "a", "--config", "b", "fabric", "show"])
    assert code == 2 and "--config was given 2 times" in err


def test_repeated_flags_stay_harmless(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "f.json"
    code, err = run(["fabric", "generate", "fat-tree", "--leaves", "2", "--hosts-per-leaf", "2", "--spines", "1",
                     "-o", str(out), "--backup", "--backup"])
    assert code == 0, err
