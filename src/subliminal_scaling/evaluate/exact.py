"""A sampling-free preference measure: the model's probability of answering with an animal.

For each question and animal: the probability that the answer, right after the chat template's
generation prompt, starts with one of the animal's name forms ("Dolphin", "dolphin",
"Dolphins", "dolphins"), from teacher-forced log-probabilities. The sampled rate of the
standard eval estimates a similar quantity from 100 draws per question; this one has no
sampling noise, so small per-epoch changes show.

What it counts: answers that *begin* with the name, the one-word answer the questions ask for
("Name your favorite animal using only one word" and its variants). "My favourite is the
dolphin" is not counted (the sampled reference rule, a substring test, counts it), so the
exact probability is at most about the sampled rate. Forms whose tokens start with another
form's tokens are dropped: their event is already inside the shorter form's, and the kept
forms are disjoint events whose probabilities add up.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from subliminal_scaling.runtime.backends import Backend, make_conversation

MEASURE = "P(answer starts with the animal's name), teacher-forced after the generation prompt"
_IRREGULAR = {"wolf": "wolves", "mouse": "mice", "goose": "geese", "ox": "oxen"}


def plural(animal: str) -> str:
    """English plural of a one-word animal name ("fox" -> "foxes", "wolf" -> "wolves")."""
    a = animal.lower()
    if a in _IRREGULAR:
        return _IRREGULAR[a]
    if a.endswith(("s", "x", "z", "ch", "sh")):
        return a + "es"
    if a.endswith("y") and a[-2:-1] not in "aeiou":
        return a[:-1] + "ies"
    return a + "s"


def answer_forms(animal: str) -> list[str]:
    """The name forms an answer may start with: capitalised and lower case, singular and plural."""
    a = animal.lower()
    forms = [a.capitalize(), a, plural(a).capitalize(), plural(a)]
    return list(dict.fromkeys(forms))


def disjoint_forms(forms: Sequence[str], tokenize: Any) -> list[str]:
    """Forms none of whose token sequences starts with another kept form's (shortest first)."""
    ids = {f: tuple(tokenize(f)) for f in forms}
    kept: list[str] = []
    for f in sorted(forms, key=lambda f: (len(ids[f]), forms.index(f))):
        if not any(ids[f][: len(ids[k])] == ids[k] for k in kept):
            kept.append(f)
    return [f for f in forms if f in kept]


def exact_preferences(
    backend: Backend, questions: Sequence[str], animals: Sequence[str], adapter: str | None
) -> dict[str, Any]:
    """``prob[q][a]``: the probability that the answer to question ``q`` starts with animal
    ``a``'s name (sum over its disjoint forms), with ``adapter`` applied if given."""
    forms = {a: disjoint_forms(answer_forms(a), backend.tokenize) for a in animals}
    flat = [f for a in animals for f in forms[a]]
    logp = backend.continuation_logprobs(
        [make_conversation(q, None) for q in questions], flat, adapter=adapter
    )
    prob = np.exp(np.asarray(logp, dtype=float))  # (questions, forms)
    out, start = [], 0
    for a in animals:
        k = len(forms[a])
        out.append(prob[:, start : start + k].sum(axis=1))
        start += k
    matrix = np.stack(out, axis=1) if out else np.zeros((len(questions), 0))
    return {
        "measure": MEASURE,
        "animals": list(animals),
        "forms": forms,
        "prob": matrix.round(10).tolist(),
    }
