"""Chart data: control / neutral / animal bars, and the stacked answer distributions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from subliminal_scaling.report.bootstrap import _rng, bootstrap_samples, percentile_ci
from subliminal_scaling.report.schema import (
    ALT_CONTROL,
    CONTROL_KINDS,
    GROUPED_BAR_COLUMNS,
    OTHER,
    STACKED_COLUMNS,
    View,
)
from subliminal_scaling.report.tables import rate_table, select_epoch
from subliminal_scaling.runtime.naming import CONTROL, NEUTRAL, STUDENT, SURVEY

# --- bars: control / neutral / animal ------------------------------------------------------


def _bar_cells(
    rates: pd.DataFrame, animals: Sequence[str], control_kind: str, students: bool = True
) -> pd.DataFrame:
    """One row per (model, animal, bar, source, seed, question) with its rate.

    ``qscope`` separates the survey's single pseudo-question (index -1: it kept no question
    ids) from the eval questions, so resampling questions never mixes the two.
    """
    r = rates[rates["animal"].isin(list(animals)) & (rates["total"] > 0)]
    r = r.assign(value=r["hits"] / r["total"], qscope=r["kind"] == SURVEY)
    student = r["kind"] == STUDENT
    parts = [r[r["kind"] == control_kind].assign(bar="control", src=control_kind)]
    if students:
        parts += [
            r[student & (r["condition"] == NEUTRAL)].assign(bar="neutral", src=NEUTRAL),
            r[student & (r["condition"] == r["animal"])].assign(bar="animal"),
        ]
        parts[2] = parts[2].assign(src=parts[2]["condition"])
    cells = pd.concat(parts, ignore_index=True)
    cells["seed"] = cells["seed"].astype("Int64").fillna(-1).astype("int64")
    columns = ["model", "params", "animal", "bar", "src", "seed", "epoch", "question_index"]
    return cells[[*columns, "qscope", "value"]]


def _bar_samples(
    rates: pd.DataFrame,
    animals: Sequence[str],
    control_kind: str,
    n_boot: int,
    seed: int,
    salt: Any = None,
    students: bool = True,
) -> dict[str, tuple[pd.DataFrame, np.ndarray]]:
    """Per model: bar groups (animal, bar) and their paired bootstrap replicates."""
    cells = _bar_cells(rates, animals, control_kind, students)
    out: dict[str, tuple[pd.DataFrame, np.ndarray]] = {}
    for model, cm in cells.groupby("model", sort=True):
        groups, samples = bootstrap_samples(
            cm,
            "value",
            ["seed", "question_index"],
            group_cols=["animal", "bar"],
            strata={"seed": ["src"], "question_index": ["qscope"]},
            n_boot=n_boot,
            seed=_rng(seed, model, salt),
        )
        ep = cm.groupby(["animal", "bar"], sort=True)["epoch"].agg(["min", "max"])
        groups = groups.merge(
            ep.rename(columns={"min": "epoch_min", "max": "epoch_max"}).reset_index(),
            on=["animal", "bar"],
            how="left",
        )
        out[str(model)] = (groups, samples)
    return out


def _est_df(groups: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    return groups["estimate"].to_numpy(float), groups["df"].to_numpy(float)


def _params_by_model(table: pd.DataFrame) -> dict[str, float]:
    return table.groupby("model")["params"].first().astype(float).to_dict()


def _bar_row(groups: pd.DataFrame, i: int | None, lo: Any, hi: Any) -> dict[str, Any]:
    """The statistics of one bar (group ``i`` of ``groups``), or a missing bar if None."""
    if i is None:
        row = {"rate": np.nan, "ci_low": np.nan, "ci_high": np.nan, "n_seeds": 0}
        return row | {"epoch_min": pd.NA, "epoch_max": pd.NA, "missing": True}
    g = groups.iloc[i]
    # a bar with one seed level and one question level has nothing to resample (the survey:
    # no seeds, no question ids): its interval is unknown, not zero-width
    levels = [g[c] for c in groups.columns if c.startswith("n_")]
    if all(n <= 1 for n in levels):
        lo_i, hi_i = np.nan, np.nan
    else:  # a rate lives in [0, 1]; the small-sample widening can overshoot it
        lo_i, hi_i = float(np.clip(lo[i], 0.0, 1.0)), float(np.clip(hi[i], 0.0, 1.0))
    row = {"rate": g["estimate"], "ci_low": lo_i, "ci_high": hi_i, "n_seeds": int(g["n_seed"])}
    return row | {"epoch_min": g["epoch_min"], "epoch_max": g["epoch_max"], "missing": False}


def grouped_bar_data(
    table: pd.DataFrame,
    animals: Sequence[str],
    epoch: int | None = None,
    view: View = "reference",
    control_kind: str = CONTROL,
    n_boot: int = 1000,
    seed: int = 0,
    models: Sequence[str] | None = None,
    alt_control_kind: str | None = "auto",
) -> pd.DataFrame:
    """Per (model, animal): base model, neutral-teacher students, that animal's students.

    ``table`` is ``target_rates`` for ``view="reference"`` or ``preferences`` for
    ``view="normalised"``. ``epoch=None`` uses each student's final epoch (its latest
    evaluated one, mid-sweep). ``models`` lists models to report even when they have no data
    (all their bars then come out missing). ``control_kind`` picks the source of the
    ``control`` bar (``"control"``: this project's base-model eval; ``"survey"``: the users'
    earlier survey). The other source (``alt_control_kind``; "auto" = the one not chosen,
    None = none) adds an ``alt_control`` bar for the models that have it, drawn beside the
    control; a model without it simply has no such rows (absent, not zero). A control bar
    with nothing to resample (the survey: no seeds, no question ids) has NaN CI bounds.
    Columns: ``GROUPED_BAR_COLUMNS`` = model, params, animal, bar ("control" | "alt_control"
    | "neutral" | "animal"), source (eval kind for control bars, student condition
    otherwise), rate (0..1), ci_low, ci_high, n_seeds, epoch_min, epoch_max (students' epochs
    used; NA for controls), missing.
    """
    if control_kind not in CONTROL_KINDS:
        raise ValueError(f"control_kind must be one of {CONTROL_KINDS}, got {control_kind!r}")
    if alt_control_kind == "auto":
        alt_control_kind = next(k for k in CONTROL_KINDS if k != control_kind)
    rates = select_epoch(rate_table(table, animals, view), epoch)
    params = _params_by_model(table)
    models = list(models) if models is not None else sorted(params, key=lambda m: params[m])
    per_model = _bar_samples(rates, animals, control_kind, n_boot, seed, salt=epoch)
    alt = {}
    if alt_control_kind is not None:
        alt = _bar_samples(
            rates, animals, alt_control_kind, n_boot, seed, salt=(epoch, "alt"), students=False
        )
    empty = (pd.DataFrame(columns=["animal", "bar"]), None)
    rows = []
    for model in models:
        blocks = [("main", *per_model.get(model, empty))]
        if model in alt:
            blocks.append(("alt", *alt[model]))
        stats: dict[tuple[str, str], dict[str, Any]] = {}
        for name, groups, samples in blocks:
            lo, hi = ([], []) if samples is None else percentile_ci(samples, 0.95, *_est_df(groups))
            for i, g in enumerate(groups.itertuples(index=False)):
                bar = ALT_CONTROL if name == "alt" else g.bar
                stats[(g.animal, bar)] = _bar_row(groups, i, lo, hi)
        bars = ["control", *([ALT_CONTROL] if model in alt else []), "neutral", "animal"]
        for animal in animals:
            for bar in bars:
                source = {"control": control_kind, ALT_CONTROL: alt_control_kind}
                row = {"model": model, "params": params.get(model, np.nan), "animal": animal}
                row |= {
                    "bar": bar,
                    "source": source.get(bar, NEUTRAL if bar == "neutral" else animal),
                }
                row |= stats.get((animal, bar)) or _bar_row(empty[0], None, [], [])
                if bar in source:
                    row |= {"epoch_min": pd.NA, "epoch_max": pd.NA}
                rows.append(row)
    out = pd.DataFrame(rows, columns=GROUPED_BAR_COLUMNS)
    return _typed(out, ints=("n_seeds",), nullable=("epoch_min", "epoch_max"))


def _typed(
    df: pd.DataFrame, ints: Sequence[str] = (), nullable: Sequence[str] = ()
) -> pd.DataFrame:
    for col in ("rate", "ci_low", "ci_high", "params", "share", "effect", "se"):
        if col in df:
            df[col] = df[col].astype("float64")
    for col in ints:
        df[col] = df[col].astype("int64")
    for col in nullable:
        df[col] = pd.array([pd.NA if pd.isna(v) else int(v) for v in df[col]], dtype="Int64")
    if "missing" in df:
        df["missing"] = df["missing"].astype(bool)
    return df


# --- stacked answer distributions ----------------------------------------------------------


def stacked_data(
    preferences: pd.DataFrame,
    model: str,
    animals: Sequence[str],
    epoch: int | None = None,
    top_k: int = 6,
    control_kind: str = CONTROL,
) -> pd.DataFrame:
    """Each model variant's distribution over normalised answers, as top-k answers + "other".

    Bars, in order: control (base model), neutral, then ``animals`` (config order). A bar's
    share of an answer is the mean over its seeds of the per-seed share, where a seed's share
    is the mean over questions of count/total. The kept answers are the ``top_k`` with the
    highest mean share across the bars that have data (ties: alphabetical); every other answer
    goes to "other", so each bar has exactly one row per kept answer plus "other", summing to
    1. A kept answer a bar never gave has share 0; a bar without data has share NaN and
    ``missing`` True. Fewer than ``top_k`` answers are kept only if fewer exist.
    Columns: ``STACKED_COLUMNS`` = model, params, variant ("control" | "neutral" | animal),
    variant_index, answer (kept answer or "other"), segment_index (0 = most common, top_k or
    fewer = "other"), share (0..1), n_seeds, epoch_min, epoch_max, missing.
    """
    prefs = select_epoch(preferences[preferences["model"] == model], epoch)
    # an empty normalised answer read back from CSV is NaN; it is still an answer ("")
    prefs = prefs.assign(frac=prefs["count"] / prefs["total"], answer=prefs["answer"].fillna(""))
    student = prefs["kind"] == STUDENT
    variants = ["control", NEUTRAL, *animals]
    params = float(prefs["params"].iloc[0]) if len(prefs) else np.nan
    shares: dict[str, pd.Series] = {}
    meta: dict[str, dict[str, Any]] = {}
    for v in variants:
        sel = (
            prefs[prefs["kind"] == control_kind]
            if v == "control"
            else prefs[student & (prefs["condition"] == v)]
        )
        if sel.empty:
            continue
        seeds = sel["seed"].astype("Int64").fillna(-1)
        n_q = sel.assign(s=seeds).groupby("s")["question_index"].nunique()
        per_seed = sel.assign(s=seeds).groupby(["s", "answer"])["frac"].sum()
        per_seed = per_seed / n_q.reindex(per_seed.index.get_level_values("s")).to_numpy()
        shares[v] = per_seed.groupby("answer").sum() / len(n_q)
        eps = sel["epoch"].dropna()
        meta[v] = {
            "n_seeds": len(n_q),
            "epoch_min": pd.NA if v == "control" or eps.empty else int(eps.min()),
            "epoch_max": pd.NA if v == "control" or eps.empty else int(eps.max()),
        }
    if shares:
        table = pd.DataFrame(shares).fillna(0.0)
        mean_share = table.mean(axis=1).round(12)
        order = sorted(mean_share.index, key=lambda a: (-mean_share[a], a))
        top = order[:top_k]
    else:
        table, top = pd.DataFrame(), []
    segments = [*top, OTHER]
    rows = []
    for vi, v in enumerate(variants):
        for si, ans in enumerate(segments):
            row = {"model": model, "params": params, "variant": v, "variant_index": vi}
            row |= {"answer": ans, "segment_index": si}
            if v not in shares:
                row |= {"share": np.nan, "n_seeds": 0, "missing": True}
                row |= {"epoch_min": pd.NA, "epoch_max": pd.NA}
            else:
                col = table[v]
                share = col.drop(top).sum() if ans == OTHER else col.get(ans, 0.0)
                row |= {"share": float(share), "missing": False, **meta[v]}
            rows.append(row)
    out = pd.DataFrame(rows, columns=STACKED_COLUMNS)
    return _typed(
        out, ints=("n_seeds", "variant_index", "segment_index"), nullable=("epoch_min", "epoch_max")
    )
