"""gpupool/validate.py function by function, expected values by hand (issue 29: the fast tests
`scripts/test --mutation gpupool/validate.py` runs; every boundary of every rule is pinned)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from gpupool import validate as v
from gpupool.cli.errors import exit_code_for
from gpupool.errors import InputError


def refused(call, *args, **kw) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError) as info:
        call(*args, **kw)
    assert exit_code_for(info.value) == 4
    return str(info.value.message)


# -- names -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["a", "0", "_", "vision", "a.b-c_d", "x" * 64, "9lives"])
def test_slurm_names_accepted(name: str) -> None:
    assert v.slurm_name(name, "pool") == name


@pytest.mark.parametrize("name", ["", "A", "Vision", "-a", ".a", "a b", "a\n", "x" * 65, "\u0663", "é", "a/b", 7,
                                  None, "a:b"])
def test_slurm_names_refused(name: object) -> None:
    message = refused(v.slurm_name, name, "pools.x")
    assert message == (f"pools.x: {name!r} is not a valid Slurm name (lower-case letters, digits, '_', '.', '-', "
                       "starting with a letter, digit or '_', at most 64 characters)")


@pytest.mark.parametrize("name", ["alice", "Alice", "a.b@AD", "_svc", "a-b", "u" * 64])
def test_user_names_accepted(name: str) -> None:
    assert v.user_name(name, "user") == name


@pytest.mark.parametrize("name", ["", "@a", "-a", ".a", "a b", "u" * 65, "a\n", 3, "a:b", "\u0663"])
def test_user_names_refused(name: object) -> None:
    assert refused(v.user_name, name, "users.0") == f"users.0: {name!r} is not a valid user name"


@pytest.mark.parametrize("name", ["gpu001", "a", "_x", "x_", "a-b", "a.b.c", "A9", "x" * 63,
                                  ".".join(["x" * 63] * 4)[:253], "1"])
def test_host_names_accepted(name: str) -> None:
    assert v.is_host_name(name)
    assert v.host_name(name, "host") == name


@pytest.mark.parametrize("name", ["", "-a", "a-", "a..b", ".a", "a.", "x" * 64, "gpu[1-2]", "a,b", "a b", "a:1",
                                  "a=b", "a#", "a\n", "\u0663", "é", "x" * 63 + "." + "y" * 63 + "." + "z" * 63 + "."
                                  + "w" * 63, None, 5])
def test_host_names_refused(name: object) -> None:
    assert not v.is_host_name(name)
    assert refused(v.host_name, name, "nodes") == f"nodes: {name!r} is not a valid host name"


def test_host_name_length_limit_is_253() -> None:
    ok = ".".join(["x" * 63] * 3) + "." + "y" * 61  # 63*3 + 3 + 61 = 253
    assert len(ok) == 253 and v.is_host_name(ok)
    assert not v.is_host_name(ok + "y")


@pytest.mark.parametrize(("text", "expected"), [("abc", False), ("", False), ("a\x00", True), ("\x1f", True),
                                                ("\x7f", True), ("\x9f", True), ("\xa0", False), ("\x20", False),
                                                ("tab\t", True), ("é", False)])
def test_has_control(text: str, expected: bool) -> None:
    assert v.has_control(text) is expected


# -- numbers ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "low", "high", "expected"), [
    (0, 0, 10, 0), (10, 0, 10, 10), (3.0, 0, 10, 3), (-1, -1, 5, -1), (v.MAX_COUNT, 0, v.MAX_COUNT, v.MAX_COUNT)])
def test_bounded_int_accepts(value: float, low: int, high: int, expected: int) -> None:
    result = v.bounded_int(value, "n", low, high)
    assert result == expected and type(result) is int


def test_bounded_int_default_range() -> None:
    assert v.bounded_int(0, "n") == 0 and v.bounded_int(10_000_000, "n") == 10_000_000
    assert refused(v.bounded_int, -1, "n") == "n: -1 is out of range [0, 10000000]"
    assert refused(v.bounded_int, 10_000_001, "n") == "n: 10000001 is out of range [0, 10000000]"


@pytest.mark.parametrize(("value", "message"), [
    (True, "n: expected an integer, got True"), (None, "n: expected an integer, got None"),
    ("3", "n: expected an integer, got '3'"), (2.5, "n: expected an integer, got 2.5"),
    (math.nan, "n: expected an integer, got nan"), (math.inf, "n: expected an integer, got inf"),
    (-math.inf, "n: expected an integer, got -inf"), (11, "n: 11 is out of range [0, 10]"),
    (-1, "n: -1 is out of range [0, 10]"), (10.5, "n: expected an integer, got 10.5"),
    (11.0, "n: 11 is out of range [0, 10]"), (2**200, "n: an integer of about 60 digits is out of range [0, 10]"),
])
def test_bounded_int_refuses(value: object, message: str) -> None:
    assert refused(v.bounded_int, value, "n", 0, 10) == message


@pytest.mark.parametrize(("text", "expected"), [("0", 0), ("7", 7), (" 42 ", 42), ("\t9\n", 9), ("007", 7),
                                                ("10000000", 10_000_000)])
def test_int_text_accepts(text: str, expected: int) -> None:
    assert v.int_text(text, "n") == expected
    assert v.maybe_int_text(text) == expected


@pytest.mark.parametrize("text", ["", " ", "-1", "+1", "1.0", "1_0", "1e3", "\u0663", "\u00b2", "1\u0663", "0x10",
                                  "1 2", "9" * 19, "9" * 5000])
def test_int_text_refuses(text: str) -> None:
    assert refused(v.int_text, text, "--gpus").startswith("--gpus: ")
    assert refused(v.int_text, text, "--gpus").endswith(" is not a whole number")
    assert v.maybe_int_text(text) is None


def test_int_text_bounds_and_types() -> None:
    assert v.int_text("5", "n", 5, 5) == 5
    assert refused(v.int_text, "4", "n", 5, 9) == "n: 4 is out of range [5, 9]"
    assert refused(v.int_text, "10", "n", 5, 9) == "n: 10 is out of range [5, 9]"
    assert refused(v.int_text, "10000001", "n") == "n: 10000001 is out of range [0, 10000000]"
    assert refused(v.int_text, 5, "n") == "n: 5 is not a whole number"  # type: ignore[arg-type]
    assert v.int_text("18" * 9, "n", 0, 10**18) == int("18" * 9)  # 18 digits is the longest accepted


def test_maybe_int_text_bounds() -> None:
    assert v.maybe_int_text(None) is None
    assert v.maybe_int_text("5", 5, 5) == 5
    assert v.maybe_int_text("4", 5, 9) is None and v.maybe_int_text("10", 5, 9) is None
    assert v.maybe_int_text("10000000") == 10_000_000 and v.maybe_int_text("10000001") is None
    assert v.maybe_int_text(" 3 ") == 3


def test_decode_slurm_replaces_bad_bytes() -> None:
    assert v.decode_slurm(b"job\xffname") == "job\ufffdname"
    assert v.decode_slurm("é".encode()) == "é"


def test_short_rendering() -> None:
    assert v._short("x" * 40) == repr("x" * 40)[:37] + "..."
    assert v._short("x" * 38) == repr("x" * 38)  # 40 characters with quotes: kept whole
    assert v._short(2**127) == repr(2**127)  # 128 bits: printed whole (39 digits, at most 40)
    assert v._short(2**128) == "an integer of about 38 digits"  # 129 bits x 0.30103 = 38.8
    assert v._short(2**129) == "an integer of about 39 digits"
    assert v._short(True) == "True"


# -- JSON ------------------------------------------------------------------------------------------

def test_load_json_text_accepts_and_keeps_types() -> None:
    assert v.load_json_text('{"a": [1, 2.5, "x", null, true]}', "f") == {"a": [1, 2.5, "x", None, True]}
    assert v.load_json_text("[" * 64 + "]" * 64, "f") is not None
    assert v.load_json_text("9" * 40, "f") == int("9" * 40)
    assert v.load_json_text('["\\ue000"]', "f") == ["\ue000"]
    pairs = v.load_json_text('{"a": 1, "a": 2}', "f", hook=lambda p: p)
    assert pairs == [("a", 1), ("a", 2)]


@pytest.mark.parametrize(("text", "message"), [
    ("[" * 65 + "]" * 65, "f.json: not JSON: nests deeper than 64 levels"),
    ("NaN", "f.json: not JSON: NaN is not a number JSON allows"),
    ("[Infinity]", "f.json: not JSON: Infinity is not a number JSON allows"),
    ("[-Infinity]", "f.json: not JSON: -Infinity is not a number JSON allows"),
    ("9" * 41, "f.json: not JSON: integer with 41 digits"),
    ("1e400", "f.json: not JSON: number 1e400 is out of range"),
    ("-1e400", "f.json: not JSON: number -1e400 is out of range"),
    ('["\\ud800"]', "f.json: not JSON: a string holds a lone surrogate (\\ud800-\\udfff escape)"),
    ('{"\\udfff": 1}', "f.json: not JSON: a string holds a lone surrogate (\\ud800-\\udfff escape)"),
    ('[[{"a": ["\\udc00"]}]]', "f.json: not JSON: a string holds a lone surrogate (\\ud800-\\udfff escape)"),
    ("{\n\"a\": }", "f.json:2: not JSON: Expecting value"),
])
def test_load_json_text_refuses(text: str, message: str) -> None:
    assert refused(v.load_json_text, text, "f.json", problem="not JSON") == message


def test_load_json_default_problem_wording() -> None:
    assert refused(v.load_json_text, "[", "f") == "f:1: invalid JSON: Expecting value"


def test_json_depth_ok() -> None:
    nested: object = 1
    for _ in range(64):
        nested = [nested]
    assert v.json_depth_ok(nested) and not v.json_depth_ok([nested])
    assert v.json_depth_ok({"a": {"b": 1}}, limit=2) and not v.json_depth_ok({"a": {"b": {}}}, limit=2)
    assert v.json_depth_ok(5, limit=0) and not v.json_depth_ok([], limit=0)


def test_deeper_than_counts_closing_brackets() -> None:
    assert not v._deeper_than("[[]][[]]", 2) and v._deeper_than("[[[]]]", 2)
    assert not v._deeper_than("{}" * 100, 1) and v._deeper_than("{[", 1)


# -- YAML ------------------------------------------------------------------------------------------

def test_parse_source_data_and_lines() -> None:
    source = v.parse_source("a: 1\nb:\n  - x\n  - y: 2\nt: 12:00:00\n", "p.yaml")
    assert source.data == {"a": 1, "b": ["x", {"y": 2}], "t": "12:00:00"}
    assert source.lines == {(): 1, ("a",): 1, ("b",): 2, ("b", "0"): 3, ("b", "1"): 4, ("b", "1", "y"): 4,
                            ("t",): 5}
    assert source.line(("b", "1", "y", "missing")) == 4 and source.line(("zzz",)) == 1
    assert str(source.error(("b", "0"), "bad").message) == "p.yaml:3: b.0: bad"
    assert str(source.error((), "bad").message) == "p.yaml:1: (top level): bad"


def test_parse_source_empty_and_numbers_as_keys() -> None:
    assert v.parse_source("", "p").data == {} and v.parse_source("", "p").lines == {}
    assert v.parse_source("# only a comment\n", "p").data == {}
    assert v.parse_source("1: a\n2.5: b\n", "p").data == {"1": "a", "2.5": "b"}


@pytest.mark.parametrize(("text", "message"), [
    ("a: 1\na: 2\n", "p.yaml:2: a: duplicate key"),
    ("a: &x 1\nb: *x\n", "p.yaml:2: invalid YAML: YAML aliases (*name) are not allowed"),
    ("a: [1\n", "p.yaml:2: invalid YAML: expected ',' or ']', but got '<stream end>'"),
    ("a: {b: [1]}\n? [x]\n: 1\n", "p.yaml:2: (top level): expected a plain value here"),
    ("true: 1\n", "p.yaml:1: (top level): keys must be plain names"),
    ("a:\n  b: " + "9" * 5000 + "\n", "p.yaml:2: a.b: Exceeds the limit (4300 digits) for integer string "
     "conversion: value has 5000 digits; use sys.set_int_max_str_digits() to increase the limit"),
    ("pools: " + "[" * 2000 + "]" * 2000 + "\n", "p.yaml: invalid YAML: nests too deeply"),
])
def test_parse_source_refuses(text: str, message: str) -> None:
    assert refused(v.parse_source, text, "p.yaml") == message


def test_parse_source_size_limit() -> None:
    assert refused(v.parse_source, "a: " + "x" * v.MAX_POOLS_FILE_BYTES, "p.yaml") == \
        f"p.yaml: pools file larger than {v.MAX_POOLS_FILE_BYTES} bytes"
    text = "a: " + "x" * (v.MAX_POOLS_FILE_BYTES - 3)
    assert len(text) == v.MAX_POOLS_FILE_BYTES and v.parse_source(text, "p").data["a"].startswith("x")


def test_load_source_files(tmp_path: Path) -> None:
    good = tmp_path / "p.yaml"
    good.write_text("pools: {v: {nodes: gpu1}}\n")
    assert v.load_source(str(good)).data == {"pools": {"v": {"nodes": "gpu1"}}}
    assert v.load_source(str(good)).path == str(good)
    assert refused(v.load_source, str(tmp_path / "none.yaml")) == f"{tmp_path / 'none.yaml'}: file not found"
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"\xff\xfe\x00")
    assert refused(v.load_source, str(bad)).startswith(f"{bad}: cannot read: 'utf-8' codec can't decode byte 0xff")
    assert refused(v.load_source, str(tmp_path)).startswith(f"{tmp_path}: cannot read: ")


# -- cases the first mutation run (mutmut, issue 29) showed untested -------------------------------

def test_line_falls_back_one_level_at_a_time() -> None:
    source = v.parse_source("b:\n  - x\n", "p.yaml")
    assert source.lines == {(): 1, ("b",): 1, ("b", "0"): 2}
    assert source.line(("b", "0", "missing")) == 2  # the parent's line, not the grandparent's (1)
    assert v.Source("p", None).line(("a",)) is None


def test_parse_source_default_path_and_errors_without_a_mark(monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    assert refused(v.parse_source, "a: 1\na: 2\n") == "<pools>:2: a: duplicate key"
    # A reader error (not a marked one: no line) is still one line naming the file.
    assert refused(v.parse_source, "a: 1\nb: \x00\nc: 2\n", "p.yaml") == (
        "p.yaml:2: invalid YAML: unacceptable character #x0000: special characters are not allowed")
    assert refused(v.parse_source, "\nb: \x00", "p.yaml").startswith("p.yaml:2: ")  # lines counted from the start

    def no_mark(*args: object, **kw: object) -> None:
        raise yaml.MarkedYAMLError(problem="broken")

    monkeypatch.setattr(yaml, "compose", no_mark)
    assert refused(v.parse_source, "a: 1\n", "p.yaml") == "p.yaml: invalid YAML: broken"

    def plain_error(*args: object, **kw: object) -> None:
        raise yaml.YAMLError("odd")

    monkeypatch.setattr(yaml, "compose", plain_error)
    assert refused(v.parse_source, "a: 1\n", "p.yaml") == "p.yaml: invalid YAML: odd"

    def empty_error(*args: object, **kw: object) -> None:
        raise yaml.YAMLError("")

    monkeypatch.setattr(yaml, "compose", empty_error)
    assert refused(v.parse_source, "a: 1\n", "p.yaml") == "p.yaml: invalid YAML: YAMLError('')"


def test_deep_nesting_while_converting_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    # yaml.compose recurses two frames per level and _convert one, so compose meets the limit
    # first; the second guard still turns a RecursionError while converting into the same line.
    def too_deep(*args: object, **kw: object) -> None:
        raise RecursionError

    monkeypatch.setattr(v, "_convert", too_deep)
    assert refused(v.parse_source, "a: [1]\n", "p.yaml") == "p.yaml: invalid YAML: nests too deeply"


@pytest.mark.parametrize(("text", "message"), [
    ("a:\n  b:\n    true: 1\n", "p.yaml:3: a.b: keys must be plain names"),
    ("a:\n  b:\n    c: 1\n    c: 2\n", "p.yaml:4: a.b.c: duplicate key"),
    ("a:\n  b:\n    ? [x]\n    : 1\n", "p.yaml:3: a.b: expected a plain value here"),
])
def test_nested_key_paths_in_messages(text: str, message: str) -> None:
    assert refused(v.parse_source, text, "p.yaml") == message


def test_sexagesimal_looking_numbers_stay_text() -> None:
    # YAML 1.1 reads 1:30 as 90 and 1:30.5 as 90.5 (base 60): a time limit is meant, kept as text.
    assert v.parse_source("a: 1:30\nb: 1:30.5\nc: 90\nd: 1.5\n", "p").data == {"a": "1:30", "b": "1:30.5", "c": 90,
                                                                               "d": 1.5}


def test_more_message_boundaries() -> None:
    long_float = "1" + "0" * 25 + "e400"
    assert refused(v.load_json_text, long_float, "f", problem="x") == f"f: x: number {long_float[:20]} is out of range"
    assert v._short("x" * 39) == repr("x" * 39)[:37] + "..."  # 41 characters with quotes: cut
    assert not v._deeper_than("XX", 1) and v._deeper_than("[X[", 1) and v._deeper_than("[][[", 1)
