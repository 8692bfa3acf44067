"""Tables and statistics behind every figure.

``tidy_tables`` flattens the raw eval records into two long tables (``preferences`` and
``target_rates``). Every other function here is a pure function of those two tables, so any
number on a chart can be traced back to raw answers.

Conventions used throughout:

* Rates and shares are fractions in 0..1; plots turn them into % (or percentage points).
* The unit of analysis is one (eval, question) cell: its rate is hits / answers to that
  question. A bar's rate is the mean over its (seed, question) cells, which for complete
  evals (every seed answered every question) is the mean over seeds of per-seed rates.
* Uncertainty comes from a cluster bootstrap that resamples seeds (within each condition)
  and questions (one draw shared by all conditions of a model, so differences between
  conditions are paired by question). Intervals are 95% percentile intervals widened by
  t_{df}/z for the few seeds (see ``percentile_ci``); in simulation they cover ~95%.
* Missing data is never a zero: a bar with no data has ``rate`` NaN and ``missing`` True.
"""

from __future__ import annotations

import functools
import math
import os
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from .naming import CONTROL, NEUTRAL

STUDENT = "student"
SURVEY = "survey"  # the kind of the users' earlier survey records (see survey.py)
CONTROL_KINDS = (CONTROL, SURVEY)  # the two sources a control bar can come from
MEAN_ANIMAL = "mean"  # the ``animal`` label of transfer_effect's mean-over-animals rows
OTHER = "other"  # the stacked charts' remainder segment
BARS = ("control", "neutral", "animal")
ALT_CONTROL = "alt_control"  # chart 1's extra bar: the control source not chosen in config
ID_COLUMNS = ["model", "params", "kind", "condition", "seed", "epoch"]
PREFERENCE_COLUMNS = [*ID_COLUMNS, "question_index", "answer", "count", "total"]
TARGET_RATE_COLUMNS = [*ID_COLUMNS, "question_index", "animal", "hits", "total"]
GROUPED_BAR_COLUMNS = [
    "model",
    "params",
    "animal",
    "bar",
    "source",
    "rate",
    "ci_low",
    "ci_high",
    "n_seeds",
    "epoch_min",
    "epoch_max",
    "missing",
]
STACKED_COLUMNS = [
    "model",
    "params",
    "variant",
    "variant_index",
    "answer",
    "segment_index",
    "share",
    "n_seeds",
    "epoch_min",
    "epoch_max",
    "missing",
]
TRANSFER_COLUMNS = [
    "model",
    "params",
    "epoch",
    "animal",
    "effect",
    "ci_low",
    "ci_high",
    "se",
    "animal_rate",
    "neutral_rate",
    "n_seeds_animal",
    "n_seeds_neutral",
    "n_animals",
    "epoch_min",
    "epoch_max",
    "missing",
]
FORMS = ("log_linear", "power", "quadratic_log")
_Z95 = 1.959963984540054

View = Literal["reference", "normalised"]


# --- tidy tables ---------------------------------------------------------------------------


def _int_or_na(value: Any) -> Any:
    return pd.NA if value is None else int(value)


def tidy_tables(
    records: Iterable[dict[str, Any]],
    params: Mapping[str, float],
    animals: Sequence[str],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Flatten eval records into ``(preferences, target_rates)``, both recomputed from raw answers.

    ``preferences`` has one row per (eval, question, normalised answer: the configured animal
    it names, else its first word) with that answer's
    ``count`` and the question's ``total`` answers; ``target_rates`` has one row per
    (eval, question, animal) with the reference rule's ``hits`` (zero rows included, so a
    mean over rows is a mean over questions). Survey answers without a question get
    question_index -1. The records' own ``counts``/``target_rates`` summaries are ignored on
    purpose: the tables must depend on nothing but the answers.
    """
    from .scoring import normalise_answer, reference_hit  # lazily: scoring is owned elsewhere

    animals = list(animals)
    hit_cache: dict[str, tuple[bool, ...]] = {}
    norm_cache: dict[str, str] = {}
    seen: set[tuple[Any, ...]] = set()
    pref_parts: list[pd.DataFrame] = []
    rate_parts: list[pd.DataFrame] = []
    for rec in records:
        model = rec["model"]
        key = (model, rec["kind"], rec["condition"], rec.get("seed"), rec.get("epoch"))
        where = "eval record (model={}, kind={}, condition={}, seed={}, epoch={})".format(*key)
        if key in seen:
            raise ValueError(f"duplicate {where}")
        seen.add(key)
        if model not in params:
            raise ValueError(f"{where}: model {model!r} has no parameter count in config")
        answers = rec["answers"]
        if rec.get("n_answers") is not None and rec["n_answers"] != len(answers):
            raise ValueError(f"{where}: n_answers={rec['n_answers']} but {len(answers)} answers")
        if not answers:
            continue
        qi = np.array(
            [-1 if a.get("question_index") is None else int(a["question_index"]) for a in answers]
        )
        raw = [a.get("answer") or "" for a in answers]
        norm = []
        for text in raw:  # recomputed, so a record written by older code is scored the same
            if text not in norm_cache:
                norm_cache[text] = normalise_answer(text, animals)
            norm.append(norm_cache[text])
        ident = {
            "model": model,
            "params": float(params[model]),
            "kind": rec["kind"],
            "condition": rec["condition"],
            "seed": _int_or_na(rec.get("seed")),
            "epoch": _int_or_na(rec.get("epoch")),
        }
        questions, q_inv = np.unique(qi, return_inverse=True)
        totals = np.bincount(q_inv, minlength=len(questions))

        pair_counts = Counter(zip(q_inv.tolist(), norm, strict=True))
        q_codes = np.fromiter((k[0] for k in pair_counts), dtype=np.int64, count=len(pair_counts))
        pref = pd.DataFrame(
            {
                "question_index": questions[q_codes],
                "answer": [k[1] for k in pair_counts],
                "count": np.fromiter(pair_counts.values(), dtype=np.int64),
                "total": totals[q_codes],
            }
        )
        pref_parts.append(pref.assign(**ident))

        flags = []
        for text in raw:
            hit = hit_cache.get(text)
            if hit is None:
                hit = hit_cache[text] = tuple(reference_hit(text, a) for a in animals)
            flags.append(hit)
        flag_arr = np.array(flags, dtype=np.int64).reshape(len(raw), len(animals))
        hits = np.zeros((len(questions), len(animals)), dtype=np.int64)
        np.add.at(hits, q_inv, flag_arr)
        rates = pd.DataFrame(
            {
                "question_index": np.repeat(questions, len(animals)),
                "animal": np.tile(np.array(animals, dtype=object), len(questions)),
                "hits": hits.reshape(-1),
                "total": np.repeat(totals, len(animals)),
            }
        )
        rate_parts.append(rates.assign(**ident))

    preferences = _finish(pref_parts, PREFERENCE_COLUMNS, ["question_index", "answer"])
    target_rates = _finish(rate_parts, TARGET_RATE_COLUMNS, ["question_index", "animal"])
    return preferences, target_rates


def _finish(parts: list[pd.DataFrame], columns: list[str], order: list[str]) -> pd.DataFrame:
    """Concatenate per-record frames into one with fixed dtypes and a deterministic order."""
    if parts:
        df = pd.concat(parts, ignore_index=True)[columns]
    else:
        df = pd.DataFrame({c: [] for c in columns})
    for col in ("model", "kind", "condition", *[c for c in ("answer", "animal") if c in columns]):
        df[col] = df[col].astype(object)
    df["params"] = df["params"].astype("float64")
    for col in ("seed", "epoch"):
        df[col] = df[col].astype("Int64")
    for col in ("question_index", "count", "hits", "total"):
        if col in df:
            df[col] = df[col].astype("int64")
    sort = ["model", "kind", "condition", "seed", "epoch", *order]
    return df.sort_values(sort, na_position="first", kind="stable").reset_index(drop=True)


def read_eval_records(
    evals: Sequence[str | os.PathLike[str]],
    surveys: Sequence[str | os.PathLike[str]] = (),
    only_existing: bool = False,
) -> tuple[list[dict[str, Any]], int]:
    """Eval records from eval files and ingested-survey files, and how many were absent.

    ``only_existing`` is for a snapshot: ``evals`` are all of the sweep's eval paths and
    those not written yet are skipped (a snapshot beside a running sweep shows what exists).
    Otherwise a missing file raises ``InputFileError``.
    """
    from .io import read_json

    records: list[dict[str, Any]] = []
    absent = 0
    for path, survey in [*((p, False) for p in evals), *((p, True) for p in surveys)]:
        if only_existing and not os.path.isfile(path):
            absent += 1
            continue
        data = read_json(path)
        records += data["records"] if survey else [data]
    return records, absent


def truncated_share(record: Mapping[str, Any]) -> float | None:
    """Share of a record's answers cut by ``max_new_tokens`` (finish reason "length"), from
    its answers; ``None`` when they carry no finish reasons (the survey, older records)."""
    reasons = [a.get("finish_reason") for a in record.get("answers", ())]
    if not reasons or any(r is None for r in reasons):
        return None
    return sum(r == "length" for r in reasons) / len(reasons)


def _truncation_summary(shares: Sequence[float]) -> dict[str, Any] | None:
    """Mean and largest truncated share over a size's evals, and how many evals had any."""
    if not shares:
        return None
    return {
        "evals": len(shares),
        "mean": float(np.mean(shares)),
        "max": float(max(shares)),
        "evals_with_truncation": int(sum(s > 0 for s in shares)),
    }


def coverage(
    records: Iterable[Mapping[str, Any]],
    models: Sequence[str],
    conditions: Sequence[str],
    seeds: Sequence[int],
    epochs: Sequence[int],
    scope: str = "final",
) -> dict[str, Any]:
    """How much of the sweep a set of eval records covers: overall, per model, per student.

    Figures built from a mid-sweep snapshot state this, so a reader knows a bar is not final.
    Besides the records' identities (``kind``, ``model``, ``condition``, ``seed``,
    ``epoch``), only the answers' finish reasons are read, for each size's truncated share.
    A student is *partial* when some of its epochs are evaluated but not the
    sweep's last one: "final epoch" charts then show it at its latest evaluated epoch.
    ``n_evals``/``n_expected`` count student evals plus one base-model control per model
    (the optional survey is reported separately, in ``survey_models``).
    """
    final_epoch = max(epochs)
    expected_students = {(c, int(s)) for c in conditions for s in seeds}
    epochs_of: dict[tuple[str, str, int], set[int]] = {}
    controls, surveys = set(), set()
    truncated: dict[str, list[float]] = {m: [] for m in models}
    for rec in records:
        share = truncated_share(rec)
        if share is not None and rec["model"] in truncated:
            truncated[rec["model"]].append(share)
        if rec["kind"] == STUDENT:
            key = (rec["model"], rec["condition"], int(rec["seed"]))
            if key[1:] in expected_students and int(rec["epoch"]) in epochs:
                epochs_of.setdefault(key, set()).add(int(rec["epoch"]))
        elif rec["kind"] == CONTROL:
            controls.add(rec["model"])
        elif rec["kind"] == SURVEY:
            surveys.add(rec["model"])
    per_model: dict[str, dict[str, Any]] = {}
    for m in models:
        mine = {k[1:]: e for k, e in epochs_of.items() if k[0] == m}
        n = sum(len(e) for e in mine.values())
        per_model[m] = {
            "student_evals": n,
            "student_evals_expected": len(expected_students) * len(epochs),
            "control": m in controls,
            "survey": m in surveys,
            "students_started": len(mine),
            "students_at_final_epoch": sum(final_epoch in e for e in mine.values()),
            "students_partial": sum(final_epoch not in e for e in mine.values()),
            "students_expected": len(expected_students),
            "conditions_complete": [
                c
                for c in conditions
                if all(len(mine.get((c, int(s)), ())) == len(epochs) for s in seeds)
            ],
            "truncated_share": _truncation_summary(truncated[m]),
        }
    n_evals = sum(v["student_evals"] + v["control"] for v in per_model.values())
    n_expected = sum(v["student_evals_expected"] + 1 for v in per_model.values())
    return {
        "scope": scope,
        "complete": n_evals == n_expected,
        "n_evals": n_evals,
        "n_expected": n_expected,
        "final_epoch": final_epoch,
        "students_partial": sum(v["students_partial"] for v in per_model.values()),
        "models_without_data": [m for m, v in per_model.items() if not v["student_evals"]],
        "survey_models": sorted(surveys),
        "models": per_model,
    }


def rate_table(
    table: pd.DataFrame, animals: Sequence[str], view: View = "reference"
) -> pd.DataFrame:
    """Per-(eval, question, animal) hits/total in the chosen scoring view.

    ``view="reference"`` expects the ``target_rates`` table (substring rule on raw answers);
    ``view="normalised"`` expects the ``preferences`` table and counts answers whose normalised
    word equals the animal. Either way the result has the ``target_rates`` columns, so the
    statistics downstream do not care which view they were given.
    """
    animals = list(animals)
    if view == "reference":
        if "hits" not in table:
            raise ValueError("view='reference' needs the target_rates table (column 'hits')")
        return table[table["animal"].isin(animals)].reset_index(drop=True)
    if view != "normalised":
        raise ValueError(f"view must be 'reference' or 'normalised', got {view!r}")
    if "answer" not in table:
        raise ValueError("view='normalised' needs the preferences table (column 'answer')")
    keys = [*ID_COLUMNS, "question_index"]
    questions = table[[*keys, "total"]].drop_duplicates(keys)
    grid = questions.merge(pd.DataFrame({"animal": pd.Series(animals, dtype=object)}), how="cross")
    hits = (
        table[table["answer"].isin(animals)]
        .rename(columns={"answer": "animal", "count": "hits"})
        .groupby([*keys, "animal"], dropna=False, as_index=False)["hits"]
        .sum()
    )
    out = grid.merge(hits, on=[*keys, "animal"], how="left")
    out["hits"] = out["hits"].fillna(0).astype("int64")
    return out[TARGET_RATE_COLUMNS]


def select_epoch(table: pd.DataFrame, epoch: int | None = None) -> pd.DataFrame:
    """Student rows at ``epoch`` (None: each student's own final epoch) plus every control row.

    Control rows of both sources (the project's ``control`` evals and the users' ``survey``)
    are kept; the callers pick the source they draw. With ``epoch=None`` a student whose later
    epochs are not evaluated yet (a mid-sweep snapshot) contributes its latest available
    epoch; ``epoch_min``/``epoch_max`` in the outputs show when that happens, and the charts
    mark it.
    """
    control = table[table["kind"] != STUDENT]
    students = table[table["kind"] == STUDENT]
    if epoch is None:
        last = students.groupby(["model", "condition", "seed"], dropna=False)["epoch"].transform(
            "max"
        )
        keep = (students["epoch"] == last).fillna(False).astype(bool)
    else:
        keep = (students["epoch"] == int(epoch)).fillna(False).astype(bool)
    return pd.concat([control, students[keep]], ignore_index=True)


# --- bootstrap -----------------------------------------------------------------------------


def _rng(seed: int | np.random.Generator, *salt: Any) -> np.random.Generator:
    """A generator that depends on ``seed`` and ``salt`` only (not on what else is present)."""
    if isinstance(seed, np.random.Generator):
        return seed
    words = [zlib.crc32(str(s).encode()) for s in salt]
    return np.random.default_rng([int(seed), *words])


def bootstrap_samples(
    df: pd.DataFrame,
    value_col: str,
    cluster_cols: Sequence[str],
    *,
    group_cols: Sequence[str] = (),
    strata: Mapping[str, Sequence[str]] | None = None,
    n_boot: int = 1000,
    seed: int | np.random.Generator = 0,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Cluster-bootstrap replicates of each group's mean of ``value_col``.

    Each column in ``cluster_cols`` is a clustering factor (e.g. seed and question); every
    replicate resamples the levels of each factor with replacement, independently per factor,
    and weights a row by the product of its levels' draw counts (a crossed/two-way cluster
    bootstrap). ``strata`` maps a factor to columns that scope it: ``{"seed": ["condition"]}``
    resamples seeds within each condition (seed 1 of "neutral" is a different student than
    seed 1 of "dolphin"). Draws are shared by all groups, so replicates of different groups are
    paired and their differences or averages are valid replicates too.

    Returns ``(groups, samples)``: ``groups`` has ``group_cols``, ``estimate`` (the plain mean),
    ``n_<factor>`` (levels present in the group) and ``df`` (levels - 1 of the smallest factor
    with at least two levels, the degrees of freedom ``percentile_ci`` uses; NaN if none);
    ``samples`` is (n_groups, n_boot), NaN where a replicate drew none of a group's rows.
    """
    rng = _rng(seed)
    strata = dict(strata or {})
    data = df.dropna(subset=[value_col]).reset_index(drop=True)
    values = data[value_col].to_numpy(dtype=float)
    codes: dict[str, np.ndarray] = {}
    weights: dict[str, np.ndarray] = {}
    for col in cluster_cols:
        scope = list(strata.get(col, []))
        level = data.groupby([*scope, col], dropna=False, sort=True).ngroup().to_numpy()
        n_levels = int(level.max()) + 1 if len(level) else 0
        w = np.zeros((n_boot, n_levels))
        if scope:
            level_stratum = (
                pd.DataFrame({"level": level})
                .assign(stratum=data.groupby(scope, dropna=False, sort=True).ngroup().to_numpy())
                .drop_duplicates("level")
                .sort_values("level")["stratum"]
                .to_numpy()
            )
        else:
            level_stratum = np.zeros(n_levels, dtype=int)
        for s in np.unique(level_stratum):
            members = np.flatnonzero(level_stratum == s)
            k = len(members)
            w[:, members] = rng.multinomial(k, np.full(k, 1.0 / k), size=n_boot)
        codes[col] = level
        weights[col] = w

    group_cols = list(group_cols)
    if group_cols:
        grouped = data.groupby(group_cols, dropna=False, sort=True).indices
        keys = list(grouped)
        index_sets = [grouped[k] for k in keys]
        keys = [k if isinstance(k, tuple) else (k,) for k in keys]
    else:
        keys, index_sets = [()], [np.arange(len(data))]
    rows, samples = [], np.full((len(keys), n_boot), np.nan)
    for g, (key, idx) in enumerate(zip(keys, index_sets, strict=True)):
        row = dict(zip(group_cols, key, strict=True))
        if len(idx) == 0:
            row["estimate"] = np.nan
            rows.append(row)
            continue
        w = np.ones((n_boot, len(idx)))
        for col in cluster_cols:
            w *= weights[col][:, codes[col][idx]]
            row[f"n_{col}"] = len(np.unique(codes[col][idx]))
        sizes = [row[f"n_{col}"] for col in cluster_cols if row[f"n_{col}"] > 1]
        row["df"] = float(min(sizes) - 1) if sizes else np.nan
        den = w.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            samples[g] = np.where(den > 0, (w @ values[idx]) / den, np.nan)
        row["estimate"] = float(values[idx].mean())
        rows.append(row)
    columns = [*group_cols, "estimate", *[f"n_{c}" for c in cluster_cols], "df"]
    return pd.DataFrame(rows, columns=columns), samples


def percentile_ci(
    samples: np.ndarray,
    ci: float = 0.95,
    estimate: Any = None,
    df: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval along the last axis, ignoring NaN replicates (NaN if all are NaN).

    With ``estimate`` and ``df`` the interval is widened about the estimate by
    t_{df}/z (both at ``ci``): the plain percentile interval of a mean over 5 seeds covers the
    truth only ~87% of the time (it behaves like a z interval and the resampled variance is
    (G-1)/G too small), the t factor brings it to ~95% in simulation (Cameron, Gelbach &
    Miller 2008 recommend t_{G-1} critical values with few clusters). NaN df: no widening.
    """
    samples = np.atleast_2d(np.asarray(samples, dtype=float))
    lo = np.full(samples.shape[0], np.nan)
    hi = np.full(samples.shape[0], np.nan)
    ok = np.isfinite(samples).any(axis=1)
    if ok.any():
        q = [50 * (1 - ci), 50 * (1 + ci)]
        lo[ok], hi[ok] = np.nanpercentile(samples[ok], q, axis=1)
    if estimate is not None and df is not None:
        from scipy import stats

        est = np.broadcast_to(np.asarray(estimate, dtype=float), lo.shape)
        dfs = np.broadcast_to(np.asarray(df, dtype=float), lo.shape)
        factor = np.ones_like(lo)
        use = np.isfinite(dfs) & (dfs >= 1)
        factor[use] = stats.t.ppf(0.5 + ci / 2, dfs[use]) / stats.norm.ppf(0.5 + ci / 2)
        lo, hi = est + (lo - est) * factor, est + (hi - est) * factor
    return lo, hi


def satterthwaite_df(variances: Sequence[float], dfs: Sequence[float]) -> float:
    """Welch-Satterthwaite degrees of freedom of a sum of independent variance components."""
    v = np.asarray(variances, dtype=float)
    d = np.asarray(dfs, dtype=float)
    keep = np.isfinite(v) & (v > 0) & np.isfinite(d) & (d >= 1)
    if not keep.any():
        return np.nan
    return float(v[keep].sum() ** 2 / np.sum(v[keep] ** 2 / d[keep]))


def _nanstd(samples: np.ndarray) -> np.ndarray:
    samples = np.atleast_2d(samples)
    out = np.full(samples.shape[0], np.nan)
    n = np.isfinite(samples).sum(axis=1)
    ok = n > 1
    if ok.any():
        out[ok] = np.nanstd(samples[ok], axis=1, ddof=1)
    return out


def cluster_bootstrap(
    df: pd.DataFrame,
    value_col: str,
    cluster_cols: Sequence[str],
    n_boot: int = 1000,
    seed: int | np.random.Generator = 0,
    *,
    group_cols: Sequence[str] = (),
    strata: Mapping[str, Sequence[str]] | None = None,
    ci: float = 0.95,
    small_sample: bool = True,
) -> pd.DataFrame:
    """Mean of ``value_col`` per group with a cluster-bootstrap percentile CI.

    See ``bootstrap_samples`` for the resampling scheme and ``percentile_ci`` for the
    ``small_sample`` t widening (on by default). Columns: ``group_cols``, ``estimate``,
    ``ci_low``, ``ci_high``, ``se`` (replicate s.d.), ``n_<factor>``, ``df``.
    """
    groups, samples = bootstrap_samples(
        df, value_col, cluster_cols, group_cols=group_cols, strata=strata, n_boot=n_boot, seed=seed
    )
    if small_sample:
        lo, hi = percentile_ci(samples, ci, groups["estimate"], groups["df"])
    else:
        lo, hi = percentile_ci(samples, ci)
    groups.insert(len(group_cols) + 1, "ci_low", lo)
    groups.insert(len(group_cols) + 2, "ci_high", hi)
    groups.insert(len(group_cols) + 3, "se", _nanstd(samples))
    return groups


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


# --- scaling fits ----------------------------------------------------------------------------

_FORM_INFO = {
    "log_linear": {"formula": "a + b*x", "coefficients": ["a", "b"]},
    "power": {"formula": "a * (N/1e9)**b", "coefficients": ["a", "b"]},
    "quadratic_log": {"formula": "a + b*x + c*x**2", "coefficients": ["a", "b", "c"]},
}
_POWER_B_RANGE = (-3.0, 3.0)
_POWER_GRID = np.linspace(*_POWER_B_RANGE, 601)


def size_x(params: Any) -> np.ndarray:
    """The fits' x axis: log10 of the parameter count in billions (x = 0 at 1B)."""
    return np.log10(np.asarray(params, dtype=float) / 1e9)


def predict(form: str, coefficients: Mapping[str, float], params: Any) -> np.ndarray:
    """Evaluate a fitted form (coefficients as in ``fit_scaling``'s output) at parameter counts."""
    x = size_x(params)
    c = coefficients
    if form == "log_linear":
        return c["a"] + c["b"] * x
    if form == "quadratic_log":
        return c["a"] + c["b"] * x + c["c"] * x**2
    if form == "power":
        return c["a"] * (np.asarray(params, dtype=float) / 1e9) ** c["b"]
    raise ValueError(f"unknown form {form!r}; known: {FORMS}")


def _wls(design: np.ndarray, w: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Weighted least-squares coefficients for each row of ``ys`` (shape (m, n) -> (m, p))."""
    sw = np.sqrt(w)
    coef, *_ = np.linalg.lstsq(design * sw[:, None], (ys * sw).T, rcond=None)
    return coef.T


def _power_fit(x: np.ndarray, w: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Fit a*10**(b*x) to each row of ``ys``: a is profiled out, b by grid + parabolic step."""
    z = 10.0 ** (np.outer(_POWER_GRID, x))  # (g, n)
    szz = (z**2 * w).sum(axis=1)  # (g,)
    syz = (ys * w) @ z.T  # (m, g)
    rss = (ys**2 * w).sum(axis=1)[:, None] - syz**2 / szz
    j = np.clip(np.argmin(rss, axis=1), 1, len(_POWER_GRID) - 2)
    m = np.arange(len(ys))
    r0, r1, r2 = rss[m, j - 1], rss[m, j], rss[m, j + 1]
    denom = r0 - 2 * r1 + r2
    step = _POWER_GRID[1] - _POWER_GRID[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        shift = np.where(denom > 0, 0.5 * (r0 - r2) / denom, 0.0)
    b = _POWER_GRID[j] + np.clip(shift, -1, 1) * step
    zb = 10.0 ** (b[:, None] * x[None, :])
    a = (ys * w * zb).sum(axis=1) / (w * zb**2).sum(axis=1)
    return np.column_stack([a, b])


def _fit_many(form: str, params: np.ndarray, w: np.ndarray, ys: np.ndarray) -> np.ndarray:
    x = size_x(params)
    if form == "log_linear":
        return _wls(np.column_stack([np.ones_like(x), x]), w, ys)
    if form == "quadratic_log":
        return _wls(np.column_stack([np.ones_like(x), x, x**2]), w, ys)
    if form == "power":
        return _power_fit(x, w, ys)
    raise ValueError(f"unknown form {form!r}; known: {FORMS}")


def _clean(value: Any) -> Any:
    """JSON-safe: numpy scalars to Python, non-finite floats to None."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _effect_points(effects: pd.DataFrame) -> pd.DataFrame:
    df = effects
    if "animal" in df:
        df = df[df["animal"] == MEAN_ANIMAL]
    if "missing" in df:
        df = df[~df["missing"].astype(bool)]
    df = df[np.isfinite(df["effect"].astype(float)) & np.isfinite(df["params"].astype(float))]
    if "epoch" in df and df["epoch"].dropna().nunique() > 1:
        raise ValueError("fit_scaling needs one epoch; filter transfer_effect(epoch='all') first")
    if df["model"].duplicated().any():
        raise ValueError("fit_scaling needs one row per model")
    return df.sort_values("params").reset_index(drop=True)


def _vertex_params(b: float, c: float) -> float:
    """Parameter count at the quadratic's extremum (x clipped to ±30 so it stays finite)."""
    return float(1e9 * 10 ** float(np.clip(-b / (2 * c), -30, 30)))


def fit_scaling(
    effects: pd.DataFrame,
    forms: Sequence[str] = FORMS,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Fit the transfer effect against model size in several forms and pick one by AICc.

    ``effects`` has one row per model with ``model``, ``params``, ``effect`` and an
    uncertainty: ``ci_low``/``ci_high`` (se = CI width / 3.92, so the fit weighs points by the
    error bars drawn), else ``se``, else the s.d. of a ``boot`` column of replicates.
    ``transfer_effect`` output can be passed as is: its ``animal == "mean"`` rows are used,
    missing rows dropped.

    Forms, with x = log10(N / 1e9) (N = parameters): ``log_linear`` a + b·x; ``power``
    a·(N/1e9)^b (two parameters, so it is fittable with few sizes; a is the effect at 1B, its
    sign free, b searched in [-3, 3]); ``quadratic_log`` a + b·x + c·x² (can peak mid-range;
    ``vertex_params`` is the size at the extremum).

    Fits are weighted least squares (weights 1/se²) under a Gaussian likelihood with the
    measured se as each point's sd, so k = number of coefficients and -2 log L = chi² +
    sum log(2π se²). ``reduced_chi2`` well above 1 means the sizes scatter more than their
    error bars allow; then AIC favours richer forms too easily (``warning`` says so). Without
    any se the fit is unweighted with the sd estimated (k = coefficients + 1). AICc =
    AIC + 2k(k+1)/(n-k-1); when it is undefined for some fitted form (too few sizes) all forms
    are compared by AIC (``criterion`` says which). A form needs coefficients + 1 sizes to be
    fitted at all. Coefficient CIs are percentile intervals over refits to bootstrap draws of
    the effects: per size, a random replicate from ``boot`` if given, else effect + se·N(0, 1)
    (parametric), sizes drawn independently.
    """
    pts = _effect_points(effects)
    n = len(pts)
    N = pts["params"].to_numpy(float)
    y = pts["effect"].to_numpy(float)
    se = np.full(n, np.nan)
    if "ci_low" in pts and "ci_high" in pts:
        se = (pts["ci_high"].to_numpy(float) - pts["ci_low"].to_numpy(float)) / (2 * _Z95)
    if "se" in pts:
        se = np.where(np.isfinite(se), se, pts["se"].to_numpy(float))
    if "boot" in pts:
        boot_sd = [
            np.nanstd(b, ddof=1) if b is not None and len(b) > 1 else np.nan for b in pts["boot"]
        ]
        se = np.where(np.isfinite(se), se, np.asarray(boot_sd, dtype=float))
    weighted = n > 0 and bool(np.all(np.isfinite(se) & (se > 0)))
    w = 1.0 / se**2 if weighted else np.ones(n)

    rng = _rng(seed, "fit_scaling")
    draws: np.ndarray | None = None
    source = None
    if n and "boot" in pts and pts["boot"].notna().all():
        reps = [np.asarray(b, dtype=float) for b in pts["boot"]]
        reps = [r[np.isfinite(r)] for r in reps]
        if all(len(r) for r in reps):
            draws = np.column_stack([r[rng.integers(0, len(r), n_boot)] for r in reps])
            source = "bootstrap replicates of the effects"
    if draws is None and weighted:
        draws = y + se * rng.standard_normal((n_boot, n))
        source = "parametric: effect + se * N(0, 1)"

    result: dict[str, Any] = {
        "x": "log10(params / 1e9)",
        "n_points": n,
        "models": pts["model"].tolist(),
        "params": N.tolist(),
        "effect": y.tolist(),
        "se": se.tolist(),
        "weighted": weighted,
        "likelihood": (
            "Gaussian, sd_i = se_i (k = coefficients)"
            if weighted
            else "Gaussian, one sd estimated (k = coefficients + 1)"
        ),
        "ci_source": source,
        "n_boot": n_boot if draws is not None else 0,
        "warning": None,
        "forms": {},
    }
    for form in forms:
        if form not in _FORM_INFO:
            raise ValueError(f"unknown form {form!r}; known: {FORMS}")
        names = _FORM_INFO[form]["coefficients"]
        p = len(names)
        entry: dict[str, Any] = {"formula": _FORM_INFO[form]["formula"], "n_coefficients": p}
        if n < p + 1:
            entry |= {"fitted": False, "reason": f"needs >= {p + 1} model sizes, have {n}"}
            result["forms"][form] = entry
            continue
        coef = _fit_many(form, N, w, y[None, :])[0]
        coefs = dict(zip(names, coef.tolist(), strict=True))
        resid = y - predict(form, coefs, N)
        rss = float(max(np.sum(w * resid**2), 1e-300))
        if weighted:
            k = p
            neg2ll = rss + float(np.sum(np.log(2 * math.pi * se**2)))
        else:
            k = p + 1
            neg2ll = n * math.log(2 * math.pi * rss / n) + n
        aic = neg2ll + 2 * k
        aicc = aic + 2 * k * (k + 1) / (n - k - 1) if n - k - 1 > 0 else None
        entry |= {"fitted": True, "reason": None, "params": coefs, "k": k, "rss_weighted": rss}
        if weighted:
            chi2 = float(np.sum((resid / se) ** 2))
            entry |= {"chi2": chi2, "reduced_chi2": chi2 / (n - p)}
        entry |= {"aic": aic, "aicc": aicc}
        if form == "power" and min(abs(coef[1] - b) for b in _POWER_B_RANGE) < 1e-6:
            entry["note"] = "b at the edge of its search range"
        ci: dict[str, list[float] | None] = {nm: None for nm in names}
        boot_coefs = None
        if draws is not None:
            boot_coefs = _fit_many(form, N, w, draws)
            lo, hi = percentile_ci(boot_coefs.T)
            ci = {nm: [lo[i], hi[i]] for i, nm in enumerate(names)}
        entry["ci"] = ci
        if form == "quadratic_log":
            _, b, c = coef
            entry["vertex_params"] = _vertex_params(b, c) if c != 0 else None
            entry["vertex_is_max"] = bool(c < 0)
            if boot_coefs is not None:
                bc = boot_coefs
                concave = bc[:, 2] < 0
                entry["p_concave"] = float(concave.mean())
                if concave.any():
                    lo, hi = np.nanpercentile(-bc[concave, 1] / (2 * bc[concave, 2]), [2.5, 97.5])
                    entry["vertex_params_ci_if_max"] = [
                        _vertex_params(2 * lo, -1),
                        _vertex_params(2 * hi, -1),
                    ]
        result["forms"][form] = entry

    fitted = {f: e for f, e in result["forms"].items() if e["fitted"]}
    if fitted:
        use_aicc = all(e["aicc"] is not None for e in fitted.values())
        key = "aicc" if use_aicc else "aic"
        best = min(fitted, key=lambda f: fitted[f][key])
        scores = np.array([fitted[f][key] for f in fitted])
        rel = np.exp(-(scores - scores.min()) / 2)
        for e, r in zip(fitted.values(), rel / rel.sum(), strict=True):
            e["delta"] = e[key] - fitted[best][key]
            e["akaike_weight"] = float(r)
        result |= {"criterion": "AICc" if use_aicc else "AIC", "preferred": best}
        red = fitted[best].get("reduced_chi2")
        if red is not None and red > 2:
            result["warning"] = (
                f"reduced chi2 of the preferred form is {red:.1f}: sizes scatter more than "
                "their CIs allow, so the richer forms may be favoured too easily"
            )
    else:
        result |= {"criterion": None, "preferred": None}
    return _clean(result)
