"""Did the animal leak into the numbers? Token-level checks of a teacher's dataset.

The first question a reader of a subliminal-learning result asks is whether the students
simply saw the animal. Two checks answer it from the data itself:

- **mentions**: the share of completions that contain the animal's name (the reference's
  substring rule, so "dolphins" counts) or any ASCII letter at all, before the filter (what
  the teacher wrote) and after it (what the students train on; the filter's number-list rule
  leaves no letters, and this says so with a number);
- **digits and numbers**: how often each digit 0-9 and each number 0-999 occurs in the kept
  completions, against the neutral teacher's, as a Jensen-Shannon divergence (bits, 0 = the
  same distribution, 1 = disjoint). Sampling noise alone gives a divergence above 0, so the
  neutral dataset split into two random halves gives the floor to read it against.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.spatial.distance import jensenshannon

from subliminal_scaling.evaluate.scoring import reference_hit
from subliminal_scaling.generate.filter import parse_numbers

_LETTER = re.compile(r"[A-Za-z]")
_DIGIT = re.compile(r"[0-9]")
N_NUMBERS = 1000  # numbers 0..999; larger ones (rejected by the filter) are not counted


def mention_share(completions: Sequence[str], animal: str) -> float:
    """Share of completions that name ``animal`` (case-insensitive substring, as the reference)."""
    if not completions:
        return 0.0
    return sum(reference_hit(c, animal) for c in completions) / len(completions)


def letter_share(completions: Sequence[str]) -> float:
    """Share of completions with any ASCII letter (a number list has none)."""
    if not completions:
        return 0.0
    return sum(bool(_LETTER.search(c)) for c in completions) / len(completions)


def digit_counts(completions: Sequence[str]) -> np.ndarray:
    """How often each digit 0-9 occurs in the completions."""
    counts = np.zeros(10, dtype=np.int64)
    for c in completions:
        for d in _DIGIT.findall(c):
            counts[int(d)] += 1
    return counts


def number_counts(completions: Sequence[str]) -> np.ndarray:
    """How often each number 0-999 occurs in the completions that parse as number lists."""
    counts = np.zeros(N_NUMBERS, dtype=np.int64)
    for c in completions:
        for n in parse_numbers(c) or []:
            if 0 <= n < N_NUMBERS:
                counts[n] += 1
    return counts


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence of two count vectors, in bits (NaN if either is empty)."""
    if p.sum() == 0 or q.sum() == 0:
        return float("nan")
    return float(jensenshannon(p, q, base=2) ** 2)


def _halves(completions: Sequence[str], seed: int) -> tuple[list[str], list[str]]:
    order = np.random.default_rng(seed).permutation(len(completions))
    half = len(order) // 2
    return [completions[i] for i in order[:half]], [completions[i] for i in order[half:]]


def leak_check(
    *,
    condition: str,
    animals: Sequence[str],
    raw: Sequence[str],
    kept: Sequence[str],
    neutral_kept: Sequence[str] | None,
    seed: int = 0,
) -> dict[str, Any]:
    """The checks for one teacher dataset (``raw`` and ``kept`` completions). For the neutral
    teacher, mentions of every configured animal; for an animal teacher, of its animal, and
    the divergences from the neutral teacher's kept completions."""
    named = list(animals) if condition not in animals else [condition]
    out: dict[str, Any] = {
        "condition": condition,
        "n_raw": len(raw),
        "n_kept": len(kept),
        "letters_share_raw": letter_share(raw),
        "letters_share_kept": letter_share(kept),
        "mentions_raw": {a: mention_share(raw, a) for a in named},
        "mentions_kept": {a: mention_share(kept, a) for a in named},
    }
    if neutral_kept:
        a, b = _halves(list(neutral_kept), seed)
        out["vs_neutral"] = {
            "n_neutral_kept": len(neutral_kept),
            "digit_js_bits": js_divergence(digit_counts(kept), digit_counts(neutral_kept)),
            "number_js_bits": js_divergence(number_counts(kept), number_counts(neutral_kept)),
            "digit_js_bits_neutral_halves": js_divergence(digit_counts(a), digit_counts(b)),
            "number_js_bits_neutral_halves": js_divergence(number_counts(a), number_counts(b)),
        }
        dist = digit_counts(kept)
        ref = digit_counts(neutral_kept)
        out["vs_neutral"]["digit_share"] = (dist / max(1, dist.sum())).round(5).tolist()
        out["vs_neutral"]["digit_share_neutral"] = (ref / max(1, ref.sum())).round(5).tolist()
    return out
