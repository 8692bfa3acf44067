"""Validating a protocol JSON: every key the workflow reads, with errors that name it."""

from __future__ import annotations

import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from subliminal_scaling.protocol.schema import (
    ASSEMBLY_FIELDS,
    LIST_KEYS,
    SYSTEM_PROMPT_FIELDS,
    TEMPLATE_FIELDS,
)
from subliminal_scaling.runtime.io import InputFileError, read_json


def _fields(template: str) -> set[str]:
    try:
        return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as exc:
        raise ValueError(f"malformed format string ({exc})") from exc


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _get(obj: Mapping[str, Any], key: str, where: str, kind: type | tuple[type, ...]) -> Any:
    if not isinstance(obj, Mapping) or key not in obj:
        raise ValueError(f"{where}.{key}: missing")
    value = obj[key]
    if not isinstance(value, kind):
        raise ValueError(f"{where}.{key}: expected {getattr(kind, '__name__', kind)}")
    return value


def _check_int(obj: Mapping[str, Any], key: str, where: str, minimum: int | None = None) -> int:
    if key not in obj:
        raise ValueError(f"{where}.{key}: missing")
    value = obj[key]
    if not _is_int(value):
        raise ValueError(f"{where}.{key}: expected an integer")
    if minimum is not None and value < minimum:
        raise ValueError(f"{where}.{key}: expected an integer >= {minimum}, got {value}")
    return value


def _check_str_list(obj: Mapping[str, Any], key: str, where: str) -> list[str]:
    value = obj.get(key) if isinstance(obj, Mapping) else None
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(s, str) and s.strip() for s in value)
    ):
        raise ValueError(f"{where}.{key}: expected a non-empty list of strings")
    return value


def _check_template(text: str, where: str, required: set[str], allowed: set[str]) -> None:
    try:
        fields = _fields(text)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from exc
    missing = required - fields
    if missing:
        names = ", ".join("{" + m + "}" for m in sorted(missing))
        raise ValueError(f"{where}: missing placeholder {names}")
    unknown = fields - allowed
    if unknown:
        names = ", ".join("{" + u + "}" for u in sorted(unknown))
        raise ValueError(f"{where}: unknown placeholder {names}")


def _check_evaluation(ev: Any, where: str) -> None:
    if not isinstance(ev, Mapping):
        raise ValueError(f"{where}: expected an object")
    _check_str_list(ev, "questions", where)
    _check_int(ev, "samples_per_question", where, minimum=1)
    if "temperature" not in ev or not _is_number(ev["temperature"]) or ev["temperature"] < 0:
        raise ValueError(f"{where}.temperature: expected a number >= 0")
    if "system_prompt" not in ev:
        raise ValueError(f"{where}.system_prompt: missing")
    if ev["system_prompt"] is not None and not isinstance(ev["system_prompt"], str):
        raise ValueError(f"{where}.system_prompt: expected a string or null")


def validate_protocol(protocol: Mapping[str, Any]) -> None:
    """Check every key the workflow uses; raise a one-line ``ValueError`` naming the key path.

    Run on load so a hand-edited or stale protocol fails at once, not hours into generation.
    """
    w = "protocol"
    if not isinstance(protocol, Mapping):
        raise ValueError(f"{w}: expected an object")

    src = _get(protocol, "source", w, dict)
    _get(src, "repository", f"{w}.source", str)
    # Provenance: recorded, not used to compute anything, so only the types are checked
    # (a hand-written protocol such as the toy one may say "none" and list no files).
    if "commit" not in src or not (src["commit"] is None or isinstance(src["commit"], str)):
        raise ValueError(f"{w}.source.commit: expected a string or null")
    files = src.get("files")
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        raise ValueError(f"{w}.source.files: expected a list of strings")
    if "license" not in src or not (src["license"] is None or isinstance(src["license"], str)):
        raise ValueError(f"{w}.source.license: expected a string or null")

    template = _get(protocol, "teacher_system_prompt_template", w, str)
    _check_template(template, f"{w}.teacher_system_prompt_template", *SYSTEM_PROMPT_FIELDS)
    category = _get(protocol, "teacher_system_prompt_category", w, str)
    if not category.strip():
        raise ValueError(f"{w}.teacher_system_prompt_category: expected a non-empty string")

    pw = f"{w}.prompt_generator"
    gen = _get(protocol, "prompt_generator", w, dict)
    _get(gen, "rng", pw, str)
    _check_int(gen, "seed", pw, minimum=0)
    _check_int(gen, "size", pw, minimum=1)
    min_count = _check_int(gen, "example_min_count", pw, minimum=0)
    max_count = _check_int(gen, "example_max_count", pw, minimum=1)
    if max_count <= min_count:
        raise ValueError(f"{pw}.example_max_count: must exceed example_min_count (exclusive bound)")
    min_value = _check_int(gen, "example_min_value", pw, minimum=0)
    max_value = _check_int(gen, "example_max_value", pw, minimum=1)
    if max_value <= min_value:
        raise ValueError(f"{pw}.example_max_value: must exceed example_min_value (exclusive bound)")
    _check_int(gen, "answer_count", pw, minimum=1)
    _check_int(gen, "answer_max_digits", pw, minimum=1)
    _check_str_list(gen, "draw_order", pw)
    assembly = _get(gen, "assembly", pw, str)
    _check_template(assembly, f"{pw}.assembly", ASSEMBLY_FIELDS, ASSEMBLY_FIELDS)
    for key in LIST_KEYS:
        items = _check_str_list(gen, key, pw)
        if key in TEMPLATE_FIELDS:
            required, allowed = TEMPLATE_FIELDS[key]
            for i, item in enumerate(items):
                _check_template(item, f"{pw}.{key}[{i}]", required, allowed)

    sw = f"{w}.generation_sampling"
    sampling = _get(protocol, "generation_sampling", w, dict)
    if not _is_number(sampling.get("temperature")) or sampling["temperature"] < 0:
        raise ValueError(f"{sw}.temperature: expected a number >= 0")
    _check_int(sampling, "samples_per_prompt", sw, minimum=1)

    fw = f"{w}.filter"
    filt = _get(protocol, "filter", w, dict)
    lo = _check_int(filt, "min_value", fw)
    hi = _check_int(filt, "max_value", fw)
    if hi < lo:
        raise ValueError(f"{fw}.max_value: must be >= min_value")
    _check_int(filt, "max_count", fw, minimum=1)
    banned = filt.get("banned_numbers")
    if not isinstance(banned, list) or not all(_is_int(n) for n in banned):
        raise ValueError(f"{fw}.banned_numbers: expected a list of integers")

    _check_int(protocol, "training_subsample", w, minimum=1)

    if "animal_evaluation" not in protocol:
        raise ValueError(f"{w}.animal_evaluation: missing")
    _check_evaluation(protocol["animal_evaluation"], f"{w}.animal_evaluation")
    if "animal_evaluation_with_numbers_prefix" not in protocol:
        raise ValueError(f"{w}.animal_evaluation_with_numbers_prefix: missing (may be null)")
    variant = protocol["animal_evaluation_with_numbers_prefix"]
    if variant is not None:
        _check_evaluation(variant, f"{w}.animal_evaluation_with_numbers_prefix")


def load_protocol(path: str | Path) -> dict[str, Any]:
    """Read and validate a protocol JSON; any problem raises ``InputFileError`` naming the file."""
    protocol = read_json(path)
    try:
        validate_protocol(protocol)
    except ValueError as exc:
        raise InputFileError(f"{path}: {exc}") from exc
    return protocol
