"""gpupool.hostlist: expansion, the one folding rule (last number only), errors and the size cap.

Expected values are written out by hand from Slurm's hostlist syntax, not taken from the code.
"""

from __future__ import annotations

import pytest

from gpupool.errors import InputError
from gpupool.hostlist import DEFAULT_LIMIT, LIMIT_ENV, expand, expand_all, fold


@pytest.mark.parametrize(("text", "names"), [
    ("gpu[001-003],login1", ["gpu001", "gpu002", "gpu003", "login1"]),
    ("gpu[1,3-4]", ["gpu1", "gpu3", "gpu4"]),
    ("r[1-2]-n[1-3]", ["r1-n1", "r1-n2", "r1-n3", "r2-n1", "r2-n2", "r2-n3"]),
    ("n[08-10]", ["n08", "n09", "n10"]),
    ("single", ["single"]),
    ("", []),
    ("(null)", []),
    (None, []),
])
def test_expand(text: str | None, names: list[str]) -> None:
    assert expand(text) == names


@pytest.mark.parametrize(("hosts", "text"), [
    (["r1-n1", "r1-n2", "r1-n3", "r2-n1", "r2-n2", "r2-n3"], "r1-n[1-3],r2-n[1-3]"),
    (["gpu003", "gpu001", "gpu002", "gpu010"], "gpu[001-003,010]"),
    (["a1", "b2", "a2"], "a[1-2],b2"),
    (["dgx-a100-001", "dgx-a100-002"], "dgx-a100-[001-002]"),
    (["login"], "login"),
    ([], ""),
])
def test_fold_ranges_only_the_last_number(hosts: list[str], text: str) -> None:
    assert fold(hosts) == text


def test_fold_then_expand_round_trips() -> None:
    hosts = [f"r{r}-n{n:02d}" for r in (1, 2, 5) for n in (1, 2, 3, 7)]
    assert expand(fold(hosts)) == hosts


def test_expand_all_keeps_first_occurrence() -> None:
    assert expand_all(["gpu[1-2]", "gpu2,gpu3"]) == ["gpu1", "gpu2", "gpu3"]


@pytest.mark.parametrize("text", ["gpu[001-", "gpu[3-1]", "gpu[a-b]", "gpu[1-2"])
def test_unparsable_hostlist_names_the_text(text: str) -> None:
    with pytest.raises(InputError) as caught:
        expand(text)
    assert repr(text) in caught.value.message


def test_node_groups_are_not_resolved() -> None:
    with pytest.raises(InputError, match="@gpus"):
        expand("@gpus")


def test_expansion_is_capped_before_it_happens(monkeypatch: pytest.MonkeyPatch) -> None:
    assert DEFAULT_LIMIT == 200_000
    with pytest.raises(InputError, match=r"expands to 999999999 names, more than the limit of 200000"):
        expand("n[1-999999999]")
    with pytest.raises(InputError, match="expands to 4000000 names"):
        expand("a[1-2000]b[1-2000]")  # a product of ranges counts as such
    monkeypatch.setenv(LIMIT_ENV, "3")
    assert expand("n[1-3]") == ["n1", "n2", "n3"]
    with pytest.raises(InputError, match="expands to 4 names, more than the limit of 3"):
        expand("n[1-3],m1")
    monkeypatch.setenv(LIMIT_ENV, "lots")
    with pytest.raises(InputError, match=LIMIT_ENV):
        expand("n1")


# -- boundaries the first mutation run (mutmut, issue 29) showed untested ---------------------------

@pytest.mark.parametrize(("value", "expected"), [("0", 1), ("-5", 1), ("1", 1), ("2", 2), (" 7 ", 7), ("", DEFAULT_LIMIT)])
def test_limit_is_at_least_one(monkeypatch: pytest.MonkeyPatch, value: str, expected: int) -> None:
    from gpupool.hostlist import limit

    monkeypatch.setenv(LIMIT_ENV, value)
    assert limit() == expected


def test_limit_that_is_not_a_number(monkeypatch: pytest.MonkeyPatch) -> None:
    from gpupool.hostlist import limit

    monkeypatch.setenv(LIMIT_ENV, "lots")
    with pytest.raises(InputError) as info:
        limit()
    assert info.value.message == "GPUPOOL_HOSTLIST_LIMIT='lots' is not a whole number"


@pytest.mark.parametrize(("text", "pieces"), [
    ("ab,cd", ["ab", "cd"]), ("a[1,[2]],b", ["a[1,[2]]", "b"]), ("aXb", ["aXb"]), ("a b!c&d^e", list("abcde")),
    (",,a,", ["a"]), ("n[1-2],m[3,4]", ["n[1-2]", "m[3,4]"]),
])
def test_top_level_pieces(text: str, pieces: list[str]) -> None:
    from gpupool.hostlist import _top_level_pieces

    assert _top_level_pieces(text) == pieces


@pytest.mark.parametrize(("text", "bound"), [("n[1-3,5-6]", 5), ("n[1-9/2]", 5), ("a,b", 2), ("n[1-2]x[1-3]", 6),
                                             ("n[7]", 1), ("n[0-10/5],m", 4)])
def test_size_bound_by_hand(text: str, bound: int) -> None:
    from gpupool.hostlist import size_bound

    assert size_bound(text) == bound


@pytest.mark.parametrize("text", ["n[5-3]", "n[1-9/0]", "n[a-b]"])
def test_size_bound_refuses_bad_ranges(text: str) -> None:
    from gpupool.hostlist import size_bound

    with pytest.raises(InputError) as info:
        size_bound(text)
    assert info.value.message.startswith(f"{text!r} is not a valid Slurm hostlist: bad range ")


def test_exact_messages(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InputError) as info:
        expand(5)  # type: ignore[arg-type]
    assert info.value.message == "5 is not a valid Slurm hostlist: not text"
    monkeypatch.setenv(LIMIT_ENV, "3")
    with pytest.raises(InputError) as info:
        expand("n[1-4]")
    assert info.value.message == ("hostlist 'n[1-4]' expands to 4 names, more than the limit of 3 "
                                  "(set GPUPOOL_HOSTLIST_LIMIT to raise it)")
    assert expand("n[1-3]") == ["n1", "n2", "n3"]  # exactly the limit
    with pytest.raises(InputError) as info:
        fold(["a["])
    assert info.value.message == 'cannot fold host names into a hostlist: missing bracket: "a["'


def test_shown_cuts_at_200_characters() -> None:
    from gpupool.hostlist import _shown

    assert _shown("x" * 198) == repr("x" * 198)  # 200 characters with quotes: kept
    assert _shown("x" * 199) == repr("x" * 199)[:200] + "..."
    assert _shown("x" * 5000) == "'" + "x" * 199 + "..."
