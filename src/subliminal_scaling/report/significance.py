"""Does an animal teacher raise its animal's rate above the neutral teacher's? Permutation tests
with the student as the unit, corrected for the number of comparisons.

Why the student: the seeds are what is randomised. A student's answers to the 50 questions
are not independent draws (they share its adapter), so a test that treated the 5,000 answers
as independent would be far too confident. Under the null hypothesis (the teacher's animal
does nothing) an animal student and a neutral student are exchangeable, so permuting the
students' labels gives an exact test, whatever the questions do: each student is summarised
by its rate over all its questions and samples, and the questions stay crossed with every
student. With 5 seeds per condition there are C(10, 5) = 252 splits of one animal's and the
neutral students, so the smallest one-sided p-value of one (size, animal) cell is 1/252 =
0.004; the size's mean over animals permutes the labels of all its students and resolves far
smaller p-values.

Corrections, stated in every row: Benjamini-Hochberg over all (size, animal) cells (a false
discovery rate: with 90 cells, Holm's family-wise bound could never reach 0.05 at the 1/252
resolution), and Holm over the sizes' mean effects (the scaling figure's y, one test per size).
"""

from __future__ import annotations

from collections.abc import Sequence
from math import comb
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from subliminal_scaling.report.schema import MEAN_ANIMAL
from subliminal_scaling.report.tables import rate_table, select_epoch
from subliminal_scaling.runtime.naming import NEUTRAL, STUDENT

SIGNIFICANCE_COLUMNS = [
    "model", "params", "animal", "effect", "p_value", "p_adjusted", "correction",
    "significant", "n_students_animal", "n_students_neutral", "n_permutations", "exact",
]  # fmt: skip
ALPHA = 0.05
CELL_CORRECTION = "benjamini-hochberg over all (size, animal) cells"
MEAN_CORRECTION = "holm over sizes"


def student_rates(
    table: pd.DataFrame, animals: Sequence[str], epoch: int | None = None
) -> pd.DataFrame:
    """Each student's rate of each animal over all its answers: one row per (model,
    condition, seed), one column per animal, at ``epoch`` (None: each student's final)."""
    rates = select_epoch(rate_table(table, animals), epoch)
    rates = rates[rates["kind"] == STUDENT]
    sums = rates.groupby(["model", "params", "condition", "seed", "animal"], dropna=False)[
        ["hits", "total"]
    ].sum()
    per = (sums["hits"] / sums["total"]).unstack("animal")
    return per.reindex(columns=list(animals)).reset_index()


def _diff(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis) - np.mean(y, axis=axis)


def cell_test(
    animal_students: Sequence[float], neutral_students: Sequence[float], n_resamples: int, rng: Any
) -> tuple[float, int, bool]:
    """One-sided permutation test of mean(animal) > mean(neutral), students as units.

    Exact (every split) when there are at most ``n_resamples`` splits. Returns (p, number of
    permutations, exact).
    """
    a, b = np.asarray(animal_students, float), np.asarray(neutral_students, float)
    splits = comb(len(a) + len(b), len(a))
    res = stats.permutation_test(
        (a, b), _diff, permutation_type="independent", alternative="greater",
        n_resamples=n_resamples, vectorized=True, random_state=rng,
    )  # fmt: skip
    exact = splits <= n_resamples
    return float(res.pvalue), splits if exact else n_resamples, exact


def mean_test(
    rates: pd.DataFrame, animals: Sequence[str], n_resamples: int, rng: Any
) -> tuple[float, float, int]:
    """One-sided test of the size's mean effect over ``animals`` (rate of X among X-students
    minus among neutral students, averaged over X): the condition labels of all the size's
    students are permuted, keeping each condition's number of students. Returns
    (effect, p, permutations)."""
    labels = rates["condition"].to_numpy()
    values = rates[list(animals)].to_numpy(float)  # (students, animals)
    conds = [NEUTRAL, *animals]

    def effect(lab: np.ndarray) -> float:
        neutral = values[lab == NEUTRAL].mean(axis=0)
        return float(
            np.mean([values[lab == x, j].mean() - neutral[j] for j, x in enumerate(animals)])
        )

    observed = effect(labels)
    keep = np.isin(labels, conds)
    labels, values = labels[keep], values[keep]
    rng = np.random.default_rng(rng)
    null = np.array([effect(rng.permutation(labels)) for _ in range(n_resamples)])
    p = (1 + np.count_nonzero(null >= observed - 1e-12)) / (1 + n_resamples)
    return observed, float(p), n_resamples


def holm(p: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error)."""
    p = np.asarray(p, float)
    order = np.argsort(p)
    m = len(p)
    adj = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out = np.empty(m)
    out[order] = np.minimum(adj, 1.0)
    return out


def significance_table(
    table: pd.DataFrame,
    animals: Sequence[str],
    epoch: int | None = None,
    n_resamples: int = 9999,
    seed: int = 0,
) -> pd.DataFrame:
    """Per (size, animal) and per size (``animal == "mean"``): the effect, its one-sided
    permutation p-value against the neutral students, the corrected p-value and whether it is
    below 0.05. Cells without students on both sides are left out."""
    rates = student_rates(table, animals, epoch)
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    for (model, params), sub in rates.groupby(["model", "params"], sort=False, dropna=False):
        neutral = sub[sub["condition"] == NEUTRAL]
        if neutral.empty:
            continue
        present = [x for x in animals if (sub["condition"] == x).any()]
        for x in present:
            a, b = sub.loc[sub["condition"] == x, x], neutral[x]
            p, n_perm, exact = cell_test(a, b, n_resamples, rng)
            rows.append({
                "model": model, "params": params, "animal": x, "effect": a.mean() - b.mean(),
                "p_value": p, "correction": CELL_CORRECTION, "n_students_animal": len(a),
                "n_students_neutral": len(b), "n_permutations": n_perm, "exact": exact,
            })  # fmt: skip
        if present:
            eff, p, n_perm = mean_test(sub, present, n_resamples, rng)
            rows.append({
                "model": model, "params": params, "animal": MEAN_ANIMAL, "effect": eff,
                "p_value": p, "correction": MEAN_CORRECTION,
                "n_students_animal": int(sub["condition"].isin(present).sum()),
                "n_students_neutral": len(neutral), "n_permutations": n_perm, "exact": False,
            })  # fmt: skip
    tested = [c for c in SIGNIFICANCE_COLUMNS if c not in ("p_adjusted", "significant")]
    out = pd.DataFrame(rows, columns=tested)
    out["p_adjusted"] = np.nan
    cells = out["animal"] != MEAN_ANIMAL
    if cells.any():
        out.loc[cells, "p_adjusted"] = stats.false_discovery_control(out.loc[cells, "p_value"])
    if (~cells).any():
        out.loc[~cells, "p_adjusted"] = holm(out.loc[~cells, "p_value"])
    out["significant"] = out["p_adjusted"] < ALPHA
    return out[SIGNIFICANCE_COLUMNS]
