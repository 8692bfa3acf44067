"""The students' training rows."""

from __future__ import annotations

import random
from collections.abc import Sequence

from subliminal_scaling.generate.prompts import T


def subsample(rows: Sequence[T], n: int, seed: int) -> list[T]:
    """The ``n`` training rows of one student seed: ``random.Random(seed).sample(rows, n)``.

    This is the reference's ``run_finetuning_job`` draw, which samples only when there are
    MORE rows than ``n``; with exactly ``n`` it keeps them all in their original order, and
    so does this. Unlike the reference (which silently trains on fewer), too few rows is an
    error, since it would break the equal-size comparison between conditions.
    """
    if n < 0:
        raise ValueError(f"subsample size must be non-negative, got {n}")
    if len(rows) < n:
        raise ValueError(
            f"cannot subsample {n} rows: only {len(rows)} passed the filter "
            "(generate more teacher completions)"
        )
    if len(rows) == n:
        return list(rows)
    return random.Random(seed).sample(list(rows), n)
