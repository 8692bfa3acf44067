"""Ingest the users' existing control survey (``outputs/animal_preferences_raw.json``).

The survey holds, per Qwen2.5-Instruct size, raw answers to favourite-animal questions.
Its older copies store ``animal_counts``/``raw_responses`` as Python reprs inside strings,
newer ones as real JSON; both are read (with ``ast.literal_eval``, never ``eval``).
It becomes an eval record of kind ``"survey"`` so it sits beside the project's own controls.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Sequence
from typing import Any

from subliminal_scaling.evaluate.scoring import make_eval_record
from subliminal_scaling.runtime import naming
from subliminal_scaling.runtime.io import InputFileError, read_json

REQUIRED_KEYS = ("model_id", "model_size", "total_responses", "animal_counts", "raw_responses")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _literal(value: Any, expected: type, what: str) -> Any:
    """``value`` itself, or the Python literal a string holds; must be of ``expected`` type."""
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value)
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as exc:
            raise ValueError(
                f"{what} is a string but not a Python literal ({_one_line(exc)})"
            ) from exc
    if not isinstance(value, expected):
        raise ValueError(f"{what} is {type(value).__name__}, expected {expected.__name__}")
    return value


def _check_entry(entry: Any) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise ValueError(f"is {type(entry).__name__}, expected an object")
    missing = [k for k in REQUIRED_KEYS if k not in entry]
    if missing:
        raise ValueError(f"missing key(s) {', '.join(missing)}")
    if not isinstance(entry["model_id"], str) or not entry["model_id"]:
        raise ValueError("model_id is not a non-empty string")
    raw = _literal(entry["raw_responses"], list, "raw_responses")
    if not all(isinstance(r, str) for r in raw):
        raise ValueError("raw_responses is not a list of strings")
    counts = _literal(entry["animal_counts"], dict, "animal_counts")
    if not all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool)
        for k, v in counts.items()
    ):
        raise ValueError("animal_counts is not a mapping of strings to integers")
    total = entry["total_responses"]
    if not isinstance(total, int) or isinstance(total, bool):
        raise ValueError(f"total_responses is {type(total).__name__}, expected int")
    if total != len(raw):
        raise ValueError(f"total_responses is {total} but raw_responses has {len(raw)}")
    return {**entry, "animal_counts": counts, "raw_responses": raw}


def load_survey(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The survey's entries, with ``animal_counts``/``raw_responses`` as a real dict/list.

    Other keys (e.g. ``model_display_name``) are kept. Anything malformed raises
    ``InputFileError`` with one line naming the file, the entry and the problem, so a bad
    survey stops the workflow at ingest rather than skewing the control later.
    """
    data = read_json(path)
    if not isinstance(data, list):
        raise InputFileError(f"{path}: expected a JSON list of entries, got {type(data).__name__}")
    entries = []
    for i, entry in enumerate(data):
        try:
            entries.append(_check_entry(entry))
        except ValueError as exc:
            label = f"entry {i}"
            if isinstance(entry, dict) and isinstance(entry.get("model_id"), str):
                label += f" ({entry['model_id']})"
            raise InputFileError(f"{path}: {label}: {_one_line(exc)}") from exc
    return entries


def survey_for_model(entries: Sequence[dict[str, Any]], slug: str) -> dict[str, Any] | None:
    """The entry whose model id has slug ``slug`` (any organisation), or None if absent.

    ``unsloth/Qwen2.5-7B-Instruct`` and ``Qwen/Qwen2.5-7B-Instruct`` both match
    ``qwen-2.5-7b-instruct``. Two entries for one slug are ambiguous and raise ValueError;
    entries whose id yields no slug are skipped.
    """
    found = []
    for entry in entries:
        try:
            if naming.model_slug(entry["model_id"]) == slug:
                found.append(entry)
        except ValueError:
            continue
    if len(found) > 1:
        ids = ", ".join(e["model_id"] for e in found)
        raise ValueError(f"survey has {len(found)} entries for {slug}: {ids}")
    return found[0] if found else None


def survey_to_eval_record(
    entry: dict[str, Any], animals: Sequence[str], model_slug: str
) -> dict[str, Any]:
    """The survey entry as an eval record of kind ``"survey"`` (condition ``"control"``).

    The survey kept no questions, sampling or backend, so those fields are null. Counts and
    target rates are recomputed from the raw answers, not copied from ``animal_counts``, so
    the survey is scored exactly like the project's own evals.
    """
    entry_slug = naming.model_slug(entry["model_id"])
    if entry_slug != model_slug:
        raise ValueError(f"survey entry {entry['model_id']} is {entry_slug}, not {model_slug}")
    answers = list(entry["raw_responses"])
    return make_eval_record(
        kind="survey",
        model=model_slug,
        model_id=entry["model_id"],
        condition=naming.CONTROL,
        seed=None,
        epoch=None,
        backend=None,
        sampling=None,
        max_new_tokens=None,
        adapter=None,
        questions=[None] * len(answers),
        question_indices=[None] * len(answers),
        answers=answers,
        animals=animals,
    )
