"""Transfer effect: the animal students' target rate minus the neutral students', per size, animal
and epoch."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from subliminal_scaling.report.bars import _bar_samples, _params_by_model, _typed
from subliminal_scaling.report.bootstrap import _nanstd, percentile_ci, satterthwaite_df
from subliminal_scaling.report.schema import MEAN_ANIMAL, TRANSFER_COLUMNS, View
from subliminal_scaling.report.tables import rate_table, select_epoch
from subliminal_scaling.runtime.naming import CONTROL, STUDENT

# --- transfer effect -------------------------------------------------------------------------


def _effect_row(
    base: dict[str, Any],
    keep_samples: bool,
    animal: str,
    est: float,
    reps: np.ndarray | None,
    df: float = np.nan,
    **extra: Any,
) -> dict[str, Any]:
    """One transfer_effect row from a point estimate and its bootstrap replicates."""
    lo, hi = percentile_ci(reps, 0.95, est, df) if reps is not None else ([np.nan], [np.nan])
    se = _nanstd(reps)[0] if reps is not None else np.nan
    row = {**base, "animal": animal, "effect": est, "ci_low": lo[0], "ci_high": hi[0]}
    row |= {"se": se, **extra}
    if keep_samples:
        row["boot"] = None if reps is None else reps.tolist()
    return row


def _transfer_one(
    rates: pd.DataFrame,
    animals: Sequence[str],
    params: Mapping[str, float],
    models: Sequence[str],
    n_boot: int,
    seed: int,
    epoch_label: Any,
    keep_samples: bool,
) -> list[dict[str, Any]]:
    per_model = _bar_samples(rates, animals, CONTROL, n_boot, seed, salt=epoch_label)
    rows = []
    for model in models:
        groups, samples = per_model.get(model, (pd.DataFrame(columns=["animal", "bar"]), None))
        found = {(g.animal, g.bar): i for i, g in enumerate(groups.itertuples(index=False))}
        diffs, used, idx = [], [], []
        base = {"model": model, "params": params.get(model, np.nan), "epoch": epoch_label}

        row_for = functools.partial(_effect_row, base, keep_samples)
        for animal in animals:
            ia, ineu = found.get((animal, "animal")), found.get((animal, "neutral"))
            ga = groups.iloc[ia] if ia is not None else None
            gn = groups.iloc[ineu] if ineu is not None else None
            extra = {
                "animal_rate": np.nan if ga is None else ga["estimate"],
                "neutral_rate": np.nan if gn is None else gn["estimate"],
                "n_seeds_animal": 0 if ga is None else int(ga["n_seed"]),
                "n_seeds_neutral": 0 if gn is None else int(gn["n_seed"]),
                "epoch_min": pd.NA if ga is None else ga["epoch_min"],
                "epoch_max": pd.NA if ga is None else ga["epoch_max"],
            }
            if ga is None or gn is None:
                rows.append(row_for(animal, np.nan, None, n_animals=0, missing=True, **extra))
                continue
            reps = samples[ia] - samples[ineu]
            diffs.append(reps)
            used.append((ga, gn))
            idx.append((ia, ineu))
            est = ga["estimate"] - gn["estimate"]
            df = satterthwaite_df(
                [np.nanvar(samples[ia]), np.nanvar(samples[ineu])], [ga["df"], gn["df"]]
            )
            rows.append(row_for(animal, est, reps, df, n_animals=1, missing=False, **extra))
        if used:
            est = float(np.mean([a["estimate"] - n["estimate"] for a, n in used]))
            reps = np.mean(np.vstack(diffs), axis=0)
            # components: each animal's students (independent), and the shared neutral students
            m = len(used)
            neutral_mean = np.mean(samples[[j for _, j in idx]], axis=0)
            df = satterthwaite_df(
                [np.nanvar(samples[i]) / m**2 for i, _ in idx] + [np.nanvar(neutral_mean)],
                [a["df"] for a, _ in used] + [min(n["df"] for _, n in used)],
            )
            extra = {
                "animal_rate": float(np.mean([a["estimate"] for a, _ in used])),
                "neutral_rate": float(np.mean([n["estimate"] for _, n in used])),
                "n_seeds_animal": min(int(a["n_seed"]) for a, _ in used),
                "n_seeds_neutral": int(used[0][1]["n_seed"]),
                "epoch_min": min(a["epoch_min"] for a, _ in used),
                "epoch_max": max(a["epoch_max"] for a, _ in used),
            }
            rows.append(row_for(MEAN_ANIMAL, est, reps, df, n_animals=m, missing=False, **extra))
        else:
            extra = {"animal_rate": np.nan, "neutral_rate": np.nan, "n_seeds_animal": 0}
            extra |= {"n_seeds_neutral": 0, "epoch_min": pd.NA, "epoch_max": pd.NA}
            rows.append(row_for(MEAN_ANIMAL, np.nan, None, n_animals=0, missing=True, **extra))
    return rows


def transfer_effect(
    table: pd.DataFrame,
    animals: Sequence[str],
    epoch: int | Literal["all"] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    view: View = "reference",
    models: Sequence[str] | None = None,
    keep_samples: bool = False,
) -> pd.DataFrame:
    """Transfer effect: rate of animal X among X-students minus among neutral students.

    One row per (model, animal) plus a row with ``animal == "mean"`` per model: the mean over
    the animals that have both bars (``n_animals`` of them). CIs come from the paired cluster
    bootstrap (seeds resampled within condition, questions shared), so the mean's CI accounts
    for the neutral students being shared by all animals. ``epoch=None``: each student's final
    epoch (``epoch`` column NA); an int: that epoch; ``"all"``: one block per evaluated epoch,
    for per-epoch curves. ``keep_samples`` adds a ``boot`` column (list of replicate effects)
    that ``fit_scaling`` can resample. Columns: ``TRANSFER_COLUMNS`` = model, params, epoch,
    animal, effect, ci_low, ci_high, se, animal_rate, neutral_rate, n_seeds_animal,
    n_seeds_neutral, n_animals, epoch_min, epoch_max, missing (+ boot). Effects are fractions.
    """
    rates = rate_table(table, animals, view)
    params = _params_by_model(table)
    models = list(models) if models is not None else sorted(params, key=lambda m: params[m])
    if epoch == "all":
        epochs = sorted(
            int(e) for e in rates.loc[rates["kind"] == STUDENT, "epoch"].dropna().unique()
        )
        rows = []
        for e in epochs:
            sel = select_epoch(rates, e)
            present = [m for m in models if (sel.loc[sel["kind"] == STUDENT, "model"] == m).any()]
            rows += _transfer_one(sel, animals, params, present, n_boot, seed, e, keep_samples)
    else:
        sel = select_epoch(rates, epoch)
        rows = _transfer_one(sel, animals, params, models, n_boot, seed, epoch, keep_samples)
    columns = TRANSFER_COLUMNS + (["boot"] if keep_samples else [])
    out = pd.DataFrame(rows, columns=columns)
    return _typed(
        out,
        ints=("n_seeds_animal", "n_seeds_neutral", "n_animals"),
        nullable=("epoch", "epoch_min", "epoch_max"),
    )
