"""The sampling-free measure (evaluate.exact) as tables and per-epoch effects, next to the
sampled rate, so the report can say how the two relate."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from subliminal_scaling.report.schema import ID_COLUMNS
from subliminal_scaling.report.tables import rate_table
from subliminal_scaling.runtime.naming import NEUTRAL, STUDENT

EXACT_COLUMNS = [*ID_COLUMNS, "question_index", "animal", "prob"]
EXACT_EFFECT_COLUMNS = [
    "model", "params", "epoch", "n_animals", "exact_animal", "exact_neutral", "exact_effect",
    "sampled_animal", "sampled_neutral", "sampled_effect",
]  # fmt: skip


def exact_table(
    records: Iterable[Mapping[str, Any]], params: Mapping[str, float], animals: Sequence[str]
) -> pd.DataFrame:
    """One row per (eval, question, animal) with the exact probability; records without the
    measure (the survey, evals made before it existed) are skipped."""
    parts = []
    for rec in records:
        ex = rec.get("exact")
        if not ex:
            continue
        prob = np.asarray(ex["prob"], dtype=float)
        cols = [ex["animals"].index(a) for a in animals if a in ex["animals"]]
        names = [a for a in animals if a in ex["animals"]]
        n_q = prob.shape[0]
        frame = pd.DataFrame(
            {
                "question_index": np.repeat(np.arange(n_q), len(names)),
                "animal": np.tile(np.array(names, dtype=object), n_q),
                "prob": prob[:, cols].reshape(-1),
            }
        )
        seed, epoch = rec.get("seed"), rec.get("epoch")
        parts.append(
            frame.assign(
                model=rec["model"],
                params=float(params[rec["model"]]),
                kind=rec["kind"],
                condition=rec["condition"],
                seed=pd.NA if seed is None else int(seed),
                epoch=pd.NA if epoch is None else int(epoch),
            )
        )
    if not parts:
        return pd.DataFrame({c: [] for c in EXACT_COLUMNS})
    df = pd.concat(parts, ignore_index=True)[EXACT_COLUMNS]
    for col in ("seed", "epoch"):
        df[col] = df[col].astype("Int64")
    return df.sort_values(["model", "kind", "condition", "seed", "epoch", "question_index"])


def _own_vs_neutral(per: pd.DataFrame, value: str, animals: Sequence[str]) -> pd.DataFrame:
    """Per (model, epoch): mean over animals X of (X-students' mean ``value`` of X) and of
    (neutral students' mean ``value`` of X), over the animals with both."""
    rows = []
    for (model, params, epoch), sub in per.groupby(["model", "params", "epoch"], sort=True):
        neutral = sub[sub["condition"] == NEUTRAL].groupby("animal")[value].mean()
        own = sub[(sub["condition"] == sub["animal"]) & sub["animal"].isin(animals)]
        own = own.groupby("animal")[value].mean()
        both = [a for a in animals if a in own.index and a in neutral.index]
        rows.append({
            "model": model, "params": params, "epoch": int(epoch), "n_animals": len(both),
            "animal": own[both].mean() if both else np.nan,
            "neutral": neutral[both].mean() if both else np.nan,
        })  # fmt: skip
    columns = ["model", "params", "epoch", "n_animals", "animal", "neutral"]
    return pd.DataFrame(rows, columns=columns)


def exact_effects(
    exact: pd.DataFrame, target_rates: pd.DataFrame, animals: Sequence[str]
) -> pd.DataFrame:
    """Per (size, epoch): the students' exact probability of their teacher's animal, the
    neutral students' of the same animals, the difference; and the sampled rate's same three
    numbers from the same evals (the reference rule)."""
    students = exact[exact["kind"] == STUDENT]
    ex = _own_vs_neutral(students, "prob", animals)
    rates = rate_table(target_rates, animals)
    rates = rates[rates["kind"] == STUDENT].assign(rate=lambda d: d["hits"] / d["total"])
    sa = _own_vs_neutral(rates, "rate", animals)
    out = ex.merge(sa, on=["model", "params", "epoch"], how="left", suffixes=("_x", "_s"))
    out = out.rename(columns={
        "n_animals_x": "n_animals", "animal_x": "exact_animal", "neutral_x": "exact_neutral",
        "animal_s": "sampled_animal", "neutral_s": "sampled_neutral",
    })  # fmt: skip
    out["exact_effect"] = out["exact_animal"] - out["exact_neutral"]
    out["sampled_effect"] = out["sampled_animal"] - out["sampled_neutral"]
    return out[EXACT_EFFECT_COLUMNS].sort_values(["params", "epoch"]).reset_index(drop=True)


def exact_vs_sampled(
    exact: pd.DataFrame, target_rates: pd.DataFrame, animals: Sequence[str]
) -> dict[str, Any]:
    """How the two measures relate over every evaluated student and epoch: the Pearson
    correlation of a student's exact probability of its teacher's animal (mean over
    questions) with its sampled rate of it, and their mean ratio."""
    key = ["model", "condition", "seed", "epoch"]
    ex = exact[(exact["kind"] == STUDENT) & (exact["animal"] == exact["condition"])]
    ex = ex.groupby(key)["prob"].mean()
    rt = rate_table(target_rates, animals)
    rt = rt[(rt["kind"] == STUDENT) & (rt["animal"] == rt["condition"])]
    rt = rt.groupby(key)[["hits", "total"]].sum()
    both = pd.concat([ex, rt["hits"] / rt["total"]], axis=1, keys=["exact", "sampled"]).dropna()
    n = len(both)
    r = float(np.corrcoef(both["exact"], both["sampled"])[0, 1]) if n > 2 else float("nan")
    mean_s = float(both["sampled"].mean()) if n else float("nan")
    return {
        "n_points": n,
        "pearson_r": r,
        "mean_exact": float(both["exact"].mean()) if n else float("nan"),
        "mean_sampled": mean_s,
    }
