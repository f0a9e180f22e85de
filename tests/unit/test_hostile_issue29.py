"""Issue 29, item 4: the three hostile inputs the probe still found, each a regression test here
and a fuzz property in tests/unit/test_fuzz_inputs.py.

- fabric JSON took any link width/speed string (`"99x"`, `"aggregation"`, a newline): `fabric show`
  and the tree export said exit 0, `export --format ibsim` exit 2 (a usage error) for bad data;
- ibnetdiscover numbers of more than 4,300 digits (port count, LID, port index) were
  `internal error: ValueError` exit 70 from `discover`, exit 3 from `fabric audit`;
- (the job_submit.lua generator's own YAML path: tests/unit/test_hostile_lua.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpupool.cli.context import AppContext
from gpupool.cli.main import main
from gpupool.fabric.generate import fat_tree
from gpupool.fabric.model import fabric_to_dict

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
DEFAULT_OUT = (FIXTURES / "ibnetdiscover" / "ibsim-fat-tree-2x2x2.default.out").read_text()
PORTS_LIST = (FIXTURES / "ibnetdiscover" / "ibsim-fat-tree-2x2x2.ports-list.out").read_text()
BIG = "9" * 4301


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(args, obj=AppContext())
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str, *needles: str) -> None:
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpupool: error: "), err
    assert "internal error" not in err and "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, err)


# -- link width / speed in fabric JSON -------------------------------------------------------------

@pytest.mark.parametrize(("index", "value", "key"), [
    (4, "99x", "width"), (4, "aggregation", "width"), (4, "4x\nSwitchName=evil", "width"), (4, "", "width"),
    (4, "\u0664x", "width"), (5, "aggregation", "speed"), (5, "QDR\n", "speed"), (5, "qdr", "speed"),
    (5, "EDR ", "speed"),
])
@pytest.mark.parametrize("command", [
    ["fabric", "show"], ["fabric", "export", "--format", "slurm-tree"],
    ["fabric", "export", "--format", "ibsim"], ["fabric", "export", "--format", "ibsim", "--clamp-speed"],
    ["fabric", "export", "--format", "dot"],
])
def test_unknown_link_width_or_speed_is_exit_4_naming_file_and_key(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], index: int, value: str, key: str,
        command: list[str]) -> None:
    doc = fabric_to_dict(fat_tree(2, 2, 1))
    doc["links"][3][index] = value
    path = tmp_path / "fabric.json"
    path.write_text(json.dumps(doc))
    code, out, err = run([*command, "--fabric", str(path)], capsys)
    assert code == 4, (code, err)
    one_error_line(err, str(path), f"link 3: {key}")
    assert out == ""


@pytest.mark.parametrize(("width", "speed"), [("1x", "SDR"), ("2x", "DDR"), ("4x", "QDR"), ("8x", "QDR"),
                                              ("12x", "SDR")])
def test_every_ib_width_is_accepted_and_reaches_the_ibsim_file_verbatim(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], width: str, speed: str) -> None:
    doc = fabric_to_dict(fat_tree(2, 2, 1))
    for link in doc["links"]:
        link[4], link[5] = width, speed
    path = tmp_path / "fabric.json"
    path.write_text(json.dumps(doc))
    code, out, _ = run(["fabric", "export", "--format", "ibsim", "--fabric", str(path)], capsys)
    assert code == 0
    # Every port line (ibnetdiscover format: `[p] "id"[q] # ... lid 0 <width><speed>`) ends with it.
    ports = [line for line in out.splitlines() if line.startswith("[")]
    assert len(ports) == 2 * len(doc["links"])
    assert all(line.endswith(f" lid 0 {width}{speed}") for line in ports)


def test_a_speed_ibsim_cannot_simulate_is_still_a_usage_question(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    # HDR is a valid fabric; ibsim knows SDR/DDR/QDR only: the user chooses --clamp-speed (exit 2).
    doc = fabric_to_dict(fat_tree(2, 2, 1, speed="HDR"))
    path = tmp_path / "fabric.json"
    path.write_text(json.dumps(doc))
    code, _, err = run(["fabric", "export", "--format", "ibsim", "--fabric", str(path)], capsys)
    assert code == 2 and "--clamp-speed" in err
    code, out, _ = run(["fabric", "export", "--format", "ibsim", "--clamp-speed", "--fabric", str(path)], capsys)
    assert code == 0 and "4xHDR" not in out and out.count("4xQDR") == 2 * len(doc["links"])


def test_ibnetdiscover_lane_counts_ib_does_not_have_fall_back_to_the_other_end() -> None:
    from gpupool.fabric.ibnetdiscover import parse_ibnetdiscover

    # leaf01 port 1 -> gpu001 says 99xQDR; gpu001's own line says 4xQDR: the known width wins.
    text = DEFAULT_OUT.replace('# "gpu001 mlx5_0" lid 5 4xQDR', '# "gpu001 mlx5_0" lid 5 99xQDR')
    assert text != DEFAULT_OUT
    fab = parse_ibnetdiscover(text, "t.out")
    assert {lk.width for lk in fab.links} == {"4x"}


# -- numbers of more than 4,300 digits in ibnetdiscover output -------------------------------------

NUMBER_CASES = {
    "port-count": (DEFAULT_OUT, 'Switch\t8 "S-0002c90300000002"', f'Switch\t{BIG} "S-0002c90300000002"',
                   10, "port count"),
    "switch-lid": (DEFAULT_OUT, '"spine02" enhanced port 0 lid 2 lmc 0', f'"spine02" enhanced port 0 lid {BIG} lmc 0',
                   10, "LID"),
    "port-index": (DEFAULT_OUT, '[2]\t"S-0002c90300000004"[4]', f'[{BIG}]\t"S-0002c90300000004"[4]', 12, "port"),
    "remote-port": (DEFAULT_OUT, '[2]\t"S-0002c90300000004"[4]', f'[2]\t"S-0002c90300000004"[{BIG}]', 12,
                    "remote port"),
    "ca-lid": (DEFAULT_OUT, '# lid 8 lmc 0 "leaf02"', f'# lid {BIG} lmc 0 "leaf02"', 47, "LID"),
    "ports-list-lid": (PORTS_LIST, "CA     8  1 0x", f"CA     {BIG}  1 0x", 1, "LID"),
    "ports-list-port": (PORTS_LIST, "CA     8  1 0x", f"CA     8  {BIG} 0x", 1, "port"),
}


@pytest.mark.parametrize("case", sorted(NUMBER_CASES))
def test_huge_ibnetdiscover_numbers_are_one_exit_4_line_naming_file_and_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str) -> None:
    base, old, new, lineno, what = NUMBER_CASES[case]
    assert base.count(old) >= 1
    capture = tmp_path / "capture.out"
    capture.write_text(base.replace(old, new, 1))
    output = tmp_path / "fabric.json"
    code, _, err = run(["fabric", "discover", "--ibnetdiscover", str(capture), "-o", str(output)], capsys)
    assert code == 4, (code, err[:300])
    one_error_line(err, f"{capture}:{lineno}: {what} of 4301 digits")
    assert not output.exists()
    # fabric audit may exit 0-3 only: the same line, exit 3.
    code, _, err = run(["fabric", "audit", "--ibnetdiscover", str(capture)], capsys)
    assert code == 3, (code, err[:300])
    one_error_line(err, f"{capture}:{lineno}: {what} of 4301 digits")


@pytest.mark.parametrize("digit", ["\u0668", "\u00b2", "\uff18"])
def test_ibnetdiscover_numbers_are_ascii_digits_only(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     digit: str) -> None:
    capture = tmp_path / "capture.out"
    capture.write_text(DEFAULT_OUT.replace('Switch\t8 "S-0002c90300000002"', f'Switch\t{digit} "S-0002c90300000002"'))
    code, _, err = run(["fabric", "discover", "--ibnetdiscover", str(capture), "-o", str(tmp_path / "f.json")], capsys)
    assert code == 4
    one_error_line(err, f"{capture}:10:")


# -- Slurm output parsers: ASCII digits, bounded --------------------------------------------------

@pytest.mark.parametrize("text", ["Submitted batch job \u0663\u0664", "\u0663\u0664", "Submitted batch job " + BIG,
                                  BIG, "Submitted batch job 12345678901234567890"])
def test_sbatch_job_ids_are_bounded_ascii_digits(text: str) -> None:
    from gpupool.errors import InputError
    from gpupool.slurm.parse import parse_sbatch_output

    with pytest.raises(InputError):
        parse_sbatch_output(text)


@pytest.mark.parametrize(("text", "expected"), [("Submitted batch job 42", ("42", "")),
                                                ("Submitted batch job 42 on cluster c1", ("42", "c1")),
                                                ("42;c1\n", ("42", "c1")), ("7\n", ("7", ""))])
def test_sbatch_job_ids_read(text: str, expected: tuple[str, str]) -> None:
    from gpupool.slurm.parse import parse_sbatch_output

    assert parse_sbatch_output(text) == expected


@pytest.mark.parametrize(("text", "expected"), [("slurm-wlm 22.05.8", (22, 5, 8)), ("slurm 24.05.3", (24, 5, 3)),
                                                ("slurm25.11", (25, 11, 0)), (f"slurm {BIG}.05.1", None),
                                                ("slurm \u0662\u0662.05.8", None)])
def test_slurm_version_digits(text: str, expected: tuple[int, int, int] | None) -> None:
    from gpupool.errors import InputError
    from gpupool.slurm.parse import parse_version

    if expected is None:
        with pytest.raises(InputError):
            parse_version(text)
    else:
        assert parse_version(text) == expected


@pytest.mark.parametrize(("value", "expected"), [(7, 7), ("7", 7), (" 12 ", 12), (3.0, 3), ({"set": True, "number": 5}, 5),
                                                 (-1, None), ("-1", None), ("\u0663", None), (2.5, None),
                                                 (float("nan"), None), ({"set": True, "number": -1}, None),
                                                 ("9" * 19, None), ("", None), (True, None)])
def test_slurm_numbers_are_unsigned_ascii(value: object, expected: int | None) -> None:
    from gpupool.slurm.parse import number

    assert number(value) == expected


@pytest.mark.parametrize("name", ["\x00pu001", "gpu 1", "", "gpu\t1"])
def test_scontrol_node_names_slurm_never_prints_are_refused(name: str) -> None:
    from gpupool.errors import InputError
    from gpupool.slurm.parse import nodes_from_scontrol

    with pytest.raises(InputError):
        nodes_from_scontrol(f"NodeName={name} CPUAlloc=2 CPUEfctv=16 Gres=gpu:4 State=IDLE\n")
    assert nodes_from_scontrol("NodeName=gpu_1-a.b CPUAlloc=2 Gres=gpu:4 State=IDLE\n")[0].name == "gpu_1-a.b"
