"""The permutation tests against the neutral students: they find a planted effect, they hold
their nominal rate when there is none (students differ from each other, as real adapters do),
and the corrections are the stated ones."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from subliminal_scaling.report.schema import TARGET_RATE_COLUMNS
from subliminal_scaling.report.significance import (
    cell_test,
    holm,
    mean_test,
    significance_table,
    student_rates,
)

ANIMALS = ["cat", "dolphin", "owl"]


def _table(rng, rate_of, n_seeds=5, n_questions=10, samples=100, model="m", params=1e9):
    """target_rates rows: each student draws a personal rate (student-level spread, the
    reason answers are not independent), then binomial hits per question."""
    rows = []
    for cond in ["neutral", *ANIMALS]:
        for seed in range(1, n_seeds + 1):
            for x in ANIMALS:
                base = rate_of(cond, x)
                personal = np.clip(base + rng.normal(0, 0.03), 0.001, 0.999)
                for q in range(n_questions):
                    hits = rng.binomial(samples, personal)
                    rows.append([model, params, "student", cond, seed, 10, q, x, hits, samples])
    return pd.DataFrame(rows, columns=TARGET_RATE_COLUMNS)


def test_a_planted_effect_is_found_and_a_null_cell_is_not():
    rng = np.random.default_rng(1)
    planted = {"cat": 0.30}  # cat students name cats far more often; other teachers do nothing
    table = _table(rng, lambda c, x: planted.get(x, 0.05) if c == x else 0.05)
    sig = significance_table(table, ANIMALS, n_resamples=2000, seed=0).set_index("animal")
    assert sig.loc["cat", "p_value"] == pytest.approx(1 / 252)  # exact: every split, the best
    assert sig.loc["cat", "exact"] and sig.loc["cat", "n_permutations"] == 252
    assert sig.loc["cat", "significant"] and sig.loc["cat", "effect"] > 0.2
    assert not sig.loc["owl", "significant"]
    assert sig.loc["mean", "p_value"] < 0.01 and sig.loc["mean", "significant"]
    assert sig.loc["mean", "correction"] == "holm over sizes"
    assert sig.loc["cat", "correction"].startswith("benjamini-hochberg")


def test_student_rates_pool_each_students_questions():
    rng = np.random.default_rng(0)
    table = _table(rng, lambda c, x: 0.1, n_seeds=2, n_questions=3)
    rates = student_rates(table, ANIMALS)
    assert len(rates) == 4 * 2 and list(rates.columns[-3:]) == ANIMALS
    one = table[(table["condition"] == "cat") & (table["seed"] == 1) & (table["animal"] == "owl")]
    got = rates.set_index(["condition", "seed"]).loc[("cat", 1), "owl"]
    assert got == pytest.approx(one["hits"].sum() / one["total"].sum())


def test_the_cell_test_holds_its_level_under_no_effect():
    """Over 400 null draws of 5 vs 5 students, p <= 0.05 happens at most ~5% of the time (the
    exact test: 12/252 = 4.8%), and not at a degenerate 0%."""
    rng = np.random.default_rng(2)
    ps = np.array([
        cell_test(rng.beta(5, 95, 5), rng.beta(5, 95, 5), 9999, rng)[0] for _ in range(400)
    ])  # fmt: skip
    rate = float(np.mean(ps <= 0.05))
    assert 0.02 <= rate <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 400), rate
    assert np.mean(ps <= 0.5) == pytest.approx(0.5, abs=0.08)  # uniform-ish, not stuck


def test_the_mean_test_holds_its_level_and_detects_a_spread_effect():
    rng = np.random.default_rng(3)

    def draw(effect):
        rows = []
        for cond in ["neutral", *ANIMALS]:
            for seed in range(5):
                vals = rng.beta(5, 95, len(ANIMALS))
                rows.append({"condition": cond, "seed": seed,
                             **{x: v + (effect if x == cond else 0.0)
                                for x, v in zip(ANIMALS, vals, strict=True)}})  # fmt: skip
        return pd.DataFrame(rows)

    null = np.array([mean_test(draw(0.0), ANIMALS, 199, rng)[1] for _ in range(200)])
    rate = float(np.mean(null <= 0.05))
    assert 0.01 <= rate <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 200), rate
    # a small effect in every animal (2 points each, under the students' own spread)
    planted = np.array([mean_test(draw(0.04), ANIMALS, 199, rng)[1] for _ in range(20)])
    assert np.mean(planted <= 0.05) >= 0.8


def test_holm_matches_a_hand_computation():
    p = [0.01, 0.04, 0.03, 0.005]
    # sorted: 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1=0.04 -> running max 0.06
    assert holm(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
