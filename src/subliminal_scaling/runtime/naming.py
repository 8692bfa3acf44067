"""Names shared by the workflow, the Hub repos and the charts."""

from __future__ import annotations

import re

NEUTRAL = "neutral"
CONTROL = "control"


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


def numbers_repo(namespace: str, slug: str, condition: str) -> str:
    """Dataset repo id for a teacher's numbers, e.g. ``ns/qwen-2.5-7b-instruct-dolphin-numbers``."""
    return f"{namespace}/{slug}-{condition}-numbers"


def student_repo(namespace: str, slug: str, condition: str) -> str:
    """Model repo id for a (model, condition)'s student adapters, e.g. ``ns/...-neutral-ft``."""
    return f"{namespace}/{slug}-{condition}-ft"
