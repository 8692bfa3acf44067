"""Did the animal leak into the numbers? The checks count what they say and separate a real
shift in the digits from sampling noise."""

from __future__ import annotations

import numpy as np
import pytest

from subliminal_scaling.generate.leaks import (
    digit_counts,
    js_divergence,
    leak_check,
    letter_share,
    mention_share,
    number_counts,
)


def test_mentions_and_letters_are_counted_per_completion():
    rows = ["1, 2, 3", "I love dolphins! 4, 5", "DOLPHIN 7", "(8, 9)"]
    assert mention_share(rows, "dolphin") == pytest.approx(0.5)  # substring, any case
    assert mention_share(rows, "cat") == 0.0
    assert letter_share(rows) == pytest.approx(0.5)
    assert mention_share([], "cat") == 0.0


def test_digit_and_number_counts():
    rows = ["101, 7, 7", "[999; 7]", "not a list 5"]
    assert digit_counts(rows).tolist() == [1, 2, 0, 0, 0, 1, 0, 3, 0, 3]
    counts = number_counts(rows)  # only completions that parse as number lists
    assert counts[7] == 3 and counts[101] == 1 and counts[999] == 1 and counts.sum() == 5


def _rows(rng, n, weights):
    digits = rng.choice(10, size=(n, 9), p=weights)
    return [", ".join("".join(map(str, d[i : i + 3])) for i in range(0, 9, 3)) for d in digits]


def test_a_digit_tilt_stands_out_from_the_neutral_halves_and_no_tilt_does_not():
    rng = np.random.default_rng(0)
    flat = np.full(10, 0.1)
    tilted = np.array([0.05] * 9 + [0.55]) / np.array([0.05] * 9 + [0.55]).sum()
    tilted = 0.7 * flat + 0.3 * tilted
    neutral = _rows(rng, 4000, flat)
    same = leak_check(condition="cat", animals=["cat", "owl"], raw=neutral[:2000],
                      kept=_rows(rng, 2000, flat), neutral_kept=neutral)  # fmt: skip
    shifted = leak_check(condition="cat", animals=["cat", "owl"], raw=neutral[:2000],
                         kept=_rows(rng, 2000, tilted), neutral_kept=neutral)  # fmt: skip
    v0, v1 = same["vs_neutral"], shifted["vs_neutral"]
    assert v0["digit_js_bits"] < 5 * v0["digit_js_bits_neutral_halves"] + 1e-4
    assert v1["digit_js_bits"] > 20 * v1["digit_js_bits_neutral_halves"]
    assert v1["digit_share"][9] > v1["digit_share_neutral"][9] + 0.1
    assert js_divergence(digit_counts(neutral), digit_counts(neutral)) == pytest.approx(0.0)
    assert list(same["mentions_kept"]) == ["cat"]  # an animal teacher: its own animal


def test_the_neutral_teacher_is_checked_for_every_animal_and_has_no_divergence():
    out = leak_check(condition="neutral", animals=["cat", "owl"], raw=["an owl 1, 2", "3"],
                     kept=["3"], neutral_kept=None)  # fmt: skip
    assert out["mentions_raw"] == {"cat": 0.0, "owl": 0.5} and out["mentions_kept"]["owl"] == 0
    assert out["letters_share_raw"] == 0.5 and "vs_neutral" not in out
