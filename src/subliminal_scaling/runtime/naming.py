"""Names shared by the workflow, the Hub repos and the charts."""

from __future__ import annotations

import re

NEUTRAL = "neutral"
CONTROL = "control"  # the base model's condition, and the kind of its eval records

# The kinds of eval record: a student's, the base model's own eval, the users' survey.
STUDENT = "student"
SURVEY = "survey"
EVAL_KINDS = (STUDENT, CONTROL, SURVEY)


def model_slug(model_id: str) -> str:
    """The user's slug for an HF model id: ``Qwen/Qwen2.5-7B-Instruct`` -> ``qwen-2.5-7b-instruct``.

    The organisation is dropped (``unsloth/`` and ``Qwen/`` copies are the same model) and a
    dash is put between the family name and its version number.
    """
    name = model_id.rstrip("/").split("/")[-1].lower()
    name = re.sub(r"^([a-z]+)(\d)", r"\1-\2", name)
    if not re.fullmatch(r"[a-z0-9][a-z0-9.\-]*", name):
        raise ValueError(f"cannot derive a slug from model id {model_id!r}")
    return name
