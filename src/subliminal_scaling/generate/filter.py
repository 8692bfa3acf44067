"""The reference's filter of teacher completions, plus the truncation rule."""

from __future__ import annotations

import re
from typing import Any

# --- the reference's filter --------------------------------------------------------------

# ASCII digits only: ``\d`` also matches other scripts' digits (e.g. Bengali), which the
# reference rejects anyway; matching them here would only make the separator logic murkier.
_DIGIT_RUN = re.compile(r"[0-9]+")

#: Every reason ``filter_completions`` can report, in the order they are checked.
REJECT_REASONS: tuple[str, ...] = (
    "truncated",
    "invalid format",
    "too many numbers",
    "numbers too small",
    "numbers too large",
)


def parse_numbers(completion: str) -> list[int] | None:
    """The integers of a number-list completion, or ``None`` if it is not a clean list.

    Follows the reference ``parse_response`` rule for rule:

    1. one trailing ``"."`` is dropped;
    2. one wrapping ``[...]`` or ``(...)`` pair is dropped;
    3. with no digit run the text is invalid; with exactly one, it is valid only if the whole
       text is that number (so ``"-5"``, ``"5 apples"`` and ``"1.."`` are invalid: ``-`` is
       not a sign or a separator);
    4. the separator is the exact text between the first two numbers and, stripped of
       whitespace, must be ``""``, ``","`` or ``";"``;
    5. splitting on that exact separator must leave only non-empty runs of ASCII digits, so
       ``"1,,2"``, a trailing comma, ``"1, 2 ,3"`` and mixed separators are invalid. Leading
       zeros are fine (``"007"`` -> 7).

    Surrounding whitespace is NOT stripped first, because the reference does not strip
    either (it filters vLLM's raw ``output.text``): ``"1, 2\n"`` and ``" 1, 2"`` are invalid.
    Stripping would admit rows the paper's filter rejected.
    """
    text = completion
    if text.endswith("."):
        text = text[:-1]
    if (text.startswith("[") and text.endswith("]")) or (
        text.startswith("(") and text.endswith(")")
    ):
        text = text[1:-1]
    matches = list(_DIGIT_RUN.finditer(text))
    if not matches:
        return None
    if len(matches) == 1:
        return [int(text)] if text == matches[0].group() else None
    # Two distinct digit runs are always parted by at least one non-digit, so never "".
    separator = text[matches[0].end() : matches[1].start()]
    if separator.strip() not in ("", ",", ";"):
        return None
    parts = text.split(separator)
    if not all(_DIGIT_RUN.fullmatch(part) for part in parts):
        return None
    return [int(part) for part in parts]


def reject_reasons(
    completion: str, min_value: int = 0, max_value: int = 999, max_count: int = 10
) -> list[str]:
    """Why the reference filter drops ``completion``; an empty list means it is kept.

    A completion that does not parse gets only ``"invalid format"``; otherwise each of
    ``"too many numbers"``, ``"numbers too small"``, ``"numbers too large"`` that applies is
    listed (a completion can have several), as in the reference ``get_reject_reasons``.
    """
    numbers = parse_numbers(completion)
    if numbers is None:
        return ["invalid format"]
    reasons = []
    if len(numbers) > max_count:
        reasons.append("too many numbers")
    if any(n < min_value for n in numbers):
        reasons.append("numbers too small")
    if any(n > max_value for n in numbers):
        reasons.append("numbers too large")
    return reasons


def filter_completions(
    rows: list[dict[str, Any]], min_value: int = 0, max_value: int = 999, max_count: int = 10
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Keep the rows whose completion passes the reference filter, and report why others fail.

    Each row needs ``completion`` and ``finish_reason``. A row cut off by the token limit
    (``finish_reason == "length"``) is rejected as ``"truncated"`` without being parsed: this
    is a project rule on top of the reference, since cutting a rambling answer short can
    leave something that looks like a valid list.

    Returns the kept rows (the same dict objects, in their original order) and a report
    ``{"n_total", "n_kept", "pass_rate", "reasons"}``. ``reasons`` always holds every key of
    ``REJECT_REASONS`` (0 when unused); a completion with several reasons is counted under
    each of them, so the counts can sum to more than ``n_total - n_kept``. ``pass_rate`` is
    ``n_kept / n_total``, and 0.0 for no rows.
    """
    kept: list[dict[str, Any]] = []
    counts = dict.fromkeys(REJECT_REASONS, 0)
    for i, row in enumerate(rows):
        try:
            completion = row["completion"]
            finish_reason = row["finish_reason"]
        except (KeyError, TypeError) as exc:
            raise ValueError(f"row {i}: needs 'completion' and 'finish_reason' ({exc!r})") from exc
        if not isinstance(completion, str):
            raise ValueError(f"row {i}: completion is {type(completion).__name__}, not str")
        if finish_reason == "length":
            reasons = ["truncated"]
        else:
            reasons = reject_reasons(completion, min_value, max_value, max_count)
        if reasons:
            for reason in reasons:
                counts[reason] += 1
        else:
            kept.append(row)
    n_total = len(rows)
    report = {
        "n_total": n_total,
        "n_kept": len(kept),
        "pass_rate": len(kept) / n_total if n_total else 0.0,
        "reasons": counts,
    }
    return kept, report
