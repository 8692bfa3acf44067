"""Reading a protocol: the teacher prompt, eval questions, samples and temperatures."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from subliminal_scaling.protocol.validate import _is_int
from subliminal_scaling.runtime.naming import NEUTRAL


def teacher_system_prompt(protocol: Mapping[str, Any], animal: str | None) -> str | None:
    """The teacher's system prompt; ``None`` (no system message at all) for the neutral teacher.

    ``"neutral"`` is accepted as a synonym of ``None`` so that a condition name passed
    straight through can never turn into "You love neutrals".
    """
    if animal is None or animal == NEUTRAL:
        return None
    if not isinstance(animal, str) or not animal.strip():
        raise ValueError(f"teacher_system_prompt: expected an animal name, got {animal!r}")
    return protocol["teacher_system_prompt_template"].format(
        target_preference=animal, category=protocol["teacher_system_prompt_category"]
    )


def _evaluation_block(protocol: Mapping[str, Any], numbers_prefix: bool) -> Mapping[str, Any]:
    key = "animal_evaluation_with_numbers_prefix" if numbers_prefix else "animal_evaluation"
    block = protocol.get(key)
    if block is None:
        raise ValueError(f"protocol.{key}: not present in this protocol")
    return block


def eval_questions(
    protocol: Mapping[str, Any], n_questions: int | None = None, *, numbers_prefix: bool = False
) -> list[str]:
    """The evaluation questions, optionally only the first ``n_questions`` (for smoke runs)."""
    questions = list(_evaluation_block(protocol, numbers_prefix)["questions"])
    if n_questions is None:
        return questions
    if not _is_int(n_questions) or not 1 <= n_questions <= len(questions):
        raise ValueError(f"n_questions must be in 1..{len(questions)}, got {n_questions!r}")
    return questions[:n_questions]


def eval_samples_per_question(protocol: Mapping[str, Any], *, numbers_prefix: bool = False) -> int:
    """How many answers the protocol samples per evaluation question."""
    return int(_evaluation_block(protocol, numbers_prefix)["samples_per_question"])


def eval_temperature(protocol: Mapping[str, Any], *, numbers_prefix: bool = False) -> float:
    """Sampling temperature for the evaluation."""
    return float(_evaluation_block(protocol, numbers_prefix)["temperature"])


def generation_temperature(protocol: Mapping[str, Any]) -> float:
    """Sampling temperature for the teachers' number completions."""
    return float(protocol["generation_sampling"]["temperature"])
