"""The reference number filter, the filter report and the students' subsample."""

from __future__ import annotations

import random

import pytest

from subliminal_scaling.generate.filter import (
    REJECT_REASONS,
    filter_completions,
    parse_numbers,
    reject_reasons,
)
from subliminal_scaling.train.data import subsample


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", [1]),
        ("1.", [1]),
        ("[1]", [1]),
        ("(1)", [1]),
        ("1, 2, 3", [1, 2, 3]),
        ("1, 2, 3.", [1, 2, 3]),
        ("1,2,3", [1, 2, 3]),
        ("1 2 3", [1, 2, 3]),
        ("1\n2\n3", [1, 2, 3]),
        ("1,\n2,\n3", [1, 2, 3]),
        ("1\n,\n2", [1, 2]),
        ("1 ,2", [1, 2]),
        ("1 , 2", [1, 2]),
        ("1;2;3", [1, 2, 3]),
        ("1; 2; 3", [1, 2, 3]),
        ("1 ;2", [1, 2]),
        ("[1, 2, 3]", [1, 2, 3]),
        ("(1, 2, 3)", [1, 2, 3]),
        ("[1, 2, 3].", [1, 2, 3]),  # the "." is dropped before the brackets
        ("007, 010, 999", [7, 10, 999]),
        ("000", [0]),
        ("1000", [1000]),  # parses; the range check rejects it
        ("1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11", list(range(1, 12))),
    ],
)
def test_parse_valid(text: str, expected: list[int]) -> None:
    assert parse_numbers(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        ".",
        "[]",
        "()",
        "abc",
        "-5",  # "-" is neither a sign nor a separator
        "1, -5",
        "5 apples",
        "1..",
        "1.5",
        "1. 2. 3",
        "123,,456",
        "1, 2, 3,",
        "1 2  3",
        "1, 2 ,3",  # stray spaces: the separator is ", " and "2 ,3" is not a number
        "1,2;3",  # mixed separators
        "1, 2; 3",
        "1 and 2",
        "1/2/3",
        "1-2-3",
        "[1, 2, 3",
        "(1, 2, 3]",
        "[[1, 2]]",
        "Here: 1, 2, 3",
        "1, 2, 3 ",  # surrounding whitespace is not stripped (the reference does not)
        " 1, 2, 3",
        "1, 2, 3\n",
        "1, 2, 3 .",
        "৯২০",  # Bengali digits are not ASCII digits
        "1, ٢, 3",  # Arabic-Indic digit inside a list
        "1,a",
        "1,2,a",
    ],
)
def test_parse_invalid(text: str) -> None:
    assert parse_numbers(text) is None


def test_reject_reasons_each_rule() -> None:
    assert reject_reasons("1, 2, 3") == []
    assert reject_reasons("abc") == ["invalid format"]
    assert reject_reasons("-5") == ["invalid format"]
    assert reject_reasons(", ".join(["1"] * 10)) == []
    assert reject_reasons(", ".join(["1"] * 11)) == ["too many numbers"]
    assert reject_reasons("999") == []
    assert reject_reasons("1000") == ["numbers too large"]
    assert reject_reasons("0") == []
    assert reject_reasons("5", min_value=10) == ["numbers too small"]
    assert reject_reasons("1, 2", max_count=2) == []
    assert reject_reasons("1, 2, 3", max_count=2) == ["too many numbers"]


def test_reject_reasons_several_at_once() -> None:
    text = ", ".join(["1"] * 11 + ["5000"])
    assert reject_reasons(text, min_value=2) == [
        "too many numbers",
        "numbers too small",
        "numbers too large",
    ]


def _row(completion: str, finish_reason: str = "stop", **extra: object) -> dict:
    return {"completion": completion, "finish_reason": finish_reason, **extra}


def test_filter_completions_report() -> None:
    rows = [
        _row("1, 2, 3", prompt="p0"),
        _row("1, 2, 3", "length", prompt="p1"),  # valid-looking but truncated
        _row("I love owls", prompt="p2"),
        _row(", ".join(["1000"] * 11), prompt="p3"),  # too many AND too large
        _row("[4, 5, 6]", prompt="p4"),
        _row("I think owls are gre", "length", prompt="p5"),  # truncated, not parsed
    ]
    kept, report = filter_completions(rows)
    assert kept == [rows[0], rows[4]]
    assert kept[0] is rows[0]  # rows are passed through, not copied
    assert report["n_total"] == 6
    assert report["n_kept"] == 2
    assert report["pass_rate"] == pytest.approx(2 / 6)
    assert report["reasons"] == {
        "truncated": 2,
        "invalid format": 1,
        "too many numbers": 1,
        "numbers too small": 0,
        "numbers too large": 1,
    }


def test_filter_completions_always_lists_every_reason() -> None:
    kept, report = filter_completions([_row("1, 2")])
    assert len(kept) == 1
    assert report["pass_rate"] == 1.0
    assert set(report["reasons"]) == set(REJECT_REASONS)
    assert all(v == 0 for v in report["reasons"].values())


def test_filter_completions_empty_and_bounds() -> None:
    kept, report = filter_completions([])
    assert kept == []
    assert report == {
        "n_total": 0,
        "n_kept": 0,
        "pass_rate": 0.0,
        "reasons": dict.fromkeys(REJECT_REASONS, 0),
    }
    kept, report = filter_completions([_row("50, 60")], min_value=55, max_value=100)
    assert kept == []
    assert report["reasons"]["numbers too small"] == 1


def test_filter_completions_rejects_malformed_rows() -> None:
    with pytest.raises(ValueError, match="row 1"):
        filter_completions([_row("1"), {"completion": "1"}])
    with pytest.raises(ValueError, match="not str"):
        filter_completions([{"completion": None, "finish_reason": "stop"}])


def test_subsample_matches_reference_draw() -> None:
    rows = [{"i": i} for i in range(100)]
    assert subsample(rows, 10, seed=3) == random.Random(3).sample(rows, 10)


def test_subsample_deterministic_per_seed() -> None:
    rows = list(range(1000))
    a = subsample(rows, 100, seed=0)
    assert a == subsample(rows, 100, seed=0)
    assert a != subsample(rows, 100, seed=1)
    assert len(set(a)) == 100 and set(a) <= set(rows)


def test_subsample_exact_size_keeps_order() -> None:
    # The reference samples only when there are more rows than wanted.
    rows = list(range(20))
    assert subsample(rows, 20, seed=5) == rows


def test_subsample_too_few_rows() -> None:
    with pytest.raises(ValueError, match="only 5 passed"):
        subsample(list(range(5)), 6, seed=0)
    with pytest.raises(ValueError, match="non-negative"):
        subsample([1, 2], -1, seed=0)
