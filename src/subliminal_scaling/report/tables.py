"""Tidy tables from the raw eval records, and what a set of records covers. Every number on a chart
traces back to raw answers through these."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from subliminal_scaling.report.schema import (
    ID_COLUMNS,
    PREFERENCE_COLUMNS,
    TARGET_RATE_COLUMNS,
    View,
)
from subliminal_scaling.runtime.naming import CONTROL, STUDENT, SURVEY

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
    from subliminal_scaling.evaluate.scoring import normalise_answer, reference_hit

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
    from subliminal_scaling.runtime.io import read_json

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
