"""Column layouts and labels of the result tables every figure reads."""

from __future__ import annotations

from typing import Literal

from subliminal_scaling.runtime.naming import CONTROL, SURVEY

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
