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
