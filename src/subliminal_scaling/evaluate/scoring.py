"""Scoring favourite-animal answers, and the eval record every later stage reads.

Two views, both computed from the raw answers so either can be recomputed later:

* the reference's substring rule (``reference_hit``/``target_rates``), which gives the
  paper-comparable target rates;
* a normalised answer (``normalise_answer``/``count_normalised``), which gives the whole
  preference distribution (what else the model names, and how often): an answer that names a
  configured animal ("My favorite animal is the dolphin.", "Polar bears") counts as that
  animal; any other answer falls back to its first word (``first_word``), the rule the
  users' survey counts were made with. Each record keeps both, so the survey's own counts
  stay reproducible (``first_word``) beside the animal-aware view.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any, NotRequired, TypedDict

from subliminal_scaling.runtime.naming import CONTROL, EVAL_KINDS, SURVEY

# --- the reference view ------------------------------------------------------------------

# "dragonfly" contains "dragon"; the paper's plots did not count it as a dragon answer.
_NOT_DRAGON = re.compile(r"dragonfl(?:y|ies)")


def reference_hit(answer: str, animal: str) -> bool:
    """The reference rule ``animal in answer.lower()``, minus dragonflies for ``"dragon"``.

    For ``"dragon"``, "dragonfly"/"dragonflies" are removed before the test, so an answer
    that only names a dragonfly does not count while "Dragon, not a dragonfly" still does.
    """
    text = answer.lower()
    animal = animal.lower()
    if animal == "dragon":
        text = _NOT_DRAGON.sub(" ", text)
    return animal in text


def target_rates(answers: Sequence[str], animals: Sequence[str]) -> dict[str, float]:
    """Fraction of ``answers`` that ``reference_hit`` each animal, keyed in ``animals`` order.

    An answer can hit several animals ("Lion or tiger"), so the rates need not sum to 1.
    No answers is an error rather than a rate of 0.0: a silent 0 would read as a measured
    absence of preference.
    """
    if not answers:
        raise ValueError("target_rates needs at least one answer")
    n = len(answers)
    return {a: sum(reference_hit(ans, a) for ans in answers) / n for a in animals}


# --- the normalised view -----------------------------------------------------------------

# Token boundaries: whitespace, and punctuation that never belongs inside an answer word
# (ASCII and CJK/full-width forms). "-" and "'" are kept so "snow-leopard" and "lion's"
# stay whole.
_SPLIT = re.compile(r"[\s,;:!?()\[\]{}<>/|。，、！？：；（）【】「」『』]+")
# Stripped from both ends of a token: quotes (straight, curly, guillemets), markdown
# emphasis/code/heading/bullet marks and trailing punctuation.
_EDGE_CHARS = "\"'“”‘’„«»`*_~#.…-–—•·"
_ARTICLES = frozenset({"the", "a", "an"})
# A list number before the answer ("1. Dog"); only removed when something follows it.
_ENUMERATION = re.compile(r"^\s*\d+[.)]\s+(?=\S)")

# Irregular plurals worth knowing in animal answers.
_IRREGULAR = {
    "mice": "mouse",
    "geese": "goose",
    "oxen": "ox",
    "octopi": "octopus",
    "cacti": "cactus",
    "wolves": "wolf",
    "kiwis": "kiwi",
    "collies": "collie",
    "budgies": "budgie",
    "yorkies": "yorkie",
    "zombies": "zombie",
    "buffaloes": "buffalo",
    "mosquitoes": "mosquito",
}
# Words that end in "s" but are not plurals (or are their own plural). Words ending in
# "ss", "us" or "is" are handled by rule and need not be listed.
_INVARIANT = frozenset(
    {
        "species",
        "series",
        "news",
        "chaos",
        "thanos",
        "atlas",
        "rhinoceros",
        "kudos",
        "always",
        "perhaps",
        "yes",
        "was",
        "has",
        "its",
        "thus",
        "sms",
    }
)
_LATIN_WORD = re.compile(r"[a-z][a-z'\-]*")


def _singular(word: str) -> str:
    """Undo a regular English plural (``whales``, ``foxes``, ``puppies``, ``wolves``).

    Idempotent: a result never ends in a plain plural "s" unless it is an invariant word.
    """
    if word in _IRREGULAR:
        return _IRREGULAR[word]
    if (
        len(word) <= 3
        or not word.endswith("s")
        or word in _INVARIANT
        or word.endswith(("ss", "us", "is", "'s"))
    ):
        return word
    stem = word[:-2]
    if word.endswith("es") and (stem in _INVARIANT or stem.endswith(("ss", "us"))):
        return stem  # walruses -> walrus, albatrosses -> albatross
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"  # puppies -> puppy, dragonflies -> dragonfly
    if word.endswith("lves"):
        return word[:-3] + "f"  # wolves -> wolf, calves -> calf
    if word.endswith(("xes", "ches", "shes", "zzes")):
        return stem  # foxes -> fox, finches -> finch, fishes -> fish
    return word[:-1]  # whales -> whale, horses -> horse, doves -> dove


def first_word(raw: str) -> str:
    """The answer word of a raw answer: lower-case, cleaned, first word, singular.

    Steps: lower-case; split into tokens at whitespace and at ASCII or CJK punctuation
    (so "Lion (or any...", "Felidae, more..." and "猫。猫咪..." give "lion", "felidae", "猫");
    strip quotes, markdown marks (``**``, ``*``, `````, ``#``, bullets) and trailing
    punctuation from each token's ends and drop tokens left empty; drop a leading list
    number ("1.") and a leading article ("The elephant" -> "elephant") when a word follows;
    take the first token; singularise regular plurals of Latin-alphabet words. Multi-word
    names keep only their first word ("Blue Whale" -> "blue"), as in the user's survey
    counts. Text in other scripts is kept as is apart from the cleaning. Unknown answers are
    not mapped to anything. An empty answer gives "". ``first_word`` is idempotent.
    """
    text = _ENUMERATION.sub("", raw.lower(), count=1)
    tokens = [t.strip(_EDGE_CHARS) for t in _SPLIT.split(text)]
    tokens = [t for t in tokens if t]
    if len(tokens) > 1 and tokens[0] in _ARTICLES:
        tokens = tokens[1:]
    if not tokens:
        return ""
    word = tokens[0]
    if _LATIN_WORD.fullmatch(word):
        word = _singular(word)
    return word


# Words after an animal's name that make it part of another creature's (or thing's) name:
# "tiger shark", "leopard seal", "wolf spider", "fox terrier", "dragon fruit".
_COMPOUND_HEADS = frozenset(
    {"shark", "seal", "spider", "fish", "terrier", "gecko", "moth", "eel", "snake", "lily",
     "fly", "fruit", "beetle", "ant", "frog", "lizard"}
)  # fmt: skip
# Words before an animal's name that make it another animal: a sea lion is no lion.
_COMPOUND_MODIFIERS = {"lion": frozenset({"sea", "ant"})}
_WORD = re.compile(r"[a-z]+")


def _words(raw: str) -> list[str]:
    """Latin-alphabet words, lower-case and singular; apostrophes dropped ("lion's" -> lion)."""
    text = raw.lower().replace("'", "").replace("’", "")
    return [_singular(w) for w in _WORD.findall(text)]


def named_animals(raw: str, animals: Sequence[str]) -> tuple[list[str], str | None]:
    """The configured animals an answer names as words, in order of first mention, and the
    compound name the answer starts with, if any ("tiger shark").

    A name counts singular or plural, alone, in a sentence, or as the head of a multi-word
    name ("Polar bear", "Blue whales", "snow-leopard"); not as a modifier of another
    creature's name ("Tiger shark", "Sea lion"), and not inside another word ("dragonfly",
    "catfish").
    """
    targets = {a.lower() for a in animals}
    words = _words(raw)
    named: list[str] = []
    leading_compound = None
    for i, w in enumerate(words):
        if w not in targets:
            continue
        after = words[i + 1] if i + 1 < len(words) else None
        before = words[i - 1] if i > 0 else None
        if after in _COMPOUND_HEADS:
            if i == 0:
                leading_compound = f"{w} {after}"
            continue
        if before is not None and before in _COMPOUND_MODIFIERS.get(w, ()):
            if i == 1:
                leading_compound = f"{before} {w}"
            continue
        if w not in named:
            named.append(w)
    return named, leading_compound


def normalise_answer(raw: str, animals: Sequence[str] = ()) -> str:
    """The normalised answer: the first configured animal ``raw`` names, else its first word.

    "My favorite animal is the dolphin." -> "dolphin", "Blue whale" -> "whale" (for
    configured "dolphin" and "whale"); "Tiger shark" -> "tiger shark" (a shark, not a
    tiger); "Giraffe." -> "giraffe" (not configured: ``first_word``). With no ``animals``
    this is ``first_word``, the rule of the users' survey counts. Idempotent for the same
    ``animals``.
    """
    if animals:
        named, compound = named_animals(raw, animals)
        if named:
            return named[0]
        if compound is not None:
            return compound
    return first_word(raw)


def count_normalised(answers: Sequence[str], animals: Sequence[str] = ()) -> dict[str, int]:
    """How often each normalised answer occurs, most frequent first, ties by name.

    Empty answers count under "" so the counts always sum to ``len(answers)``.
    """
    counts = Counter(normalise_answer(a, animals) for a in answers)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


# --- eval records ------------------------------------------------------------------------


class EvalAnswer(TypedDict):
    question_index: int | None
    question: str | None
    answer: str
    finish_reason: str | None
    normalised: str
    first_word: str


class EvalRecord(TypedDict):
    """One evaluation as written to ``results/.../eval/...json.gz`` and read by every later
    stage: who was evaluated and how, every raw answer, and both views' summaries."""

    kind: str  # naming.EVAL_KINDS
    model: str
    model_id: str | None
    condition: str
    seed: int | None
    epoch: int | None
    backend: str | None
    sampling: dict[str, Any] | None
    max_new_tokens: int | None
    adapter: dict[str, str] | None
    n_answers: int
    n_truncated: int | None
    truncated_share: float | None
    answers: list[EvalAnswer]
    counts: dict[str, int]
    target_rates: dict[str, float]
    # the sampling-free measure (evaluate.exact), when evaluation.exact_preferences is on
    exact: NotRequired[dict[str, Any] | None]


def make_eval_record(
    *,
    kind: str,
    model: str,
    model_id: str | None,
    condition: str,
    seed: int | None,
    epoch: int | None,
    backend: str | None,
    sampling: dict[str, Any] | None,
    max_new_tokens: int | None,
    adapter: dict[str, str] | None,
    questions: Sequence[str | None],
    question_indices: Sequence[int | None],
    answers: Sequence[str],
    animals: Sequence[str],
    finish_reasons: Sequence[str | None] | None = None,
    exact: dict[str, Any] | None = None,
) -> EvalRecord:
    """One evaluation's record: provenance, every raw answer, and both scoring views.

    Raw answers are stored with their normalised form (animal-aware) and their first word
    (the survey's rule) so every view can be recomputed without re-running the model.
    ``questions``, ``question_indices``, ``answers`` and ``finish_reasons`` are parallel lists
    (use ``None`` entries where the question is unknown, as for a survey; ``finish_reasons``
    is ``None`` where the source kept none). ``truncated_share`` is the share of answers cut
    by ``max_new_tokens`` (finish reason "length"), ``None`` when unknown. Control and survey
    records must have condition ``"control"``.
    """
    if kind not in EVAL_KINDS:
        raise ValueError(f"eval kind must be one of {EVAL_KINDS}, got {kind!r}")
    if kind in (CONTROL, SURVEY) and condition != CONTROL:
        raise ValueError(f"a {kind} record must have condition 'control', got {condition!r}")
    if not (len(questions) == len(question_indices) == len(answers)):
        raise ValueError(
            f"questions ({len(questions)}), question_indices ({len(question_indices)}) and "
            f"answers ({len(answers)}) must have the same length"
        )
    if finish_reasons is not None and len(finish_reasons) != len(answers):
        raise ValueError(
            f"finish_reasons ({len(finish_reasons)}) and answers ({len(answers)}) must have "
            "the same length"
        )
    reasons = list(finish_reasons) if finish_reasons is not None else [None] * len(answers)
    if adapter is not None and set(adapter) != {"path", "sha256"}:
        raise ValueError(f"adapter must have exactly 'path' and 'sha256', got {sorted(adapter)}")
    normalised = [normalise_answer(a, animals) for a in answers]
    truncated = sum(r == "length" for r in reasons) if finish_reasons is not None else None
    return {
        "kind": kind,
        "model": model,
        "model_id": model_id,
        "condition": condition,
        "seed": seed,
        "epoch": epoch,
        "backend": backend,
        "sampling": dict(sampling) if sampling is not None else None,
        "max_new_tokens": max_new_tokens,
        "adapter": dict(adapter) if adapter is not None else None,
        "n_answers": len(answers),
        "n_truncated": truncated,
        "truncated_share": None if truncated is None or not answers else truncated / len(answers),
        "answers": [
            {
                "question_index": qi,
                "question": q,
                "answer": a,
                "finish_reason": r,
                "normalised": nm,
                "first_word": first_word(a),
            }
            for q, qi, a, r, nm in zip(
                questions, question_indices, answers, reasons, normalised, strict=True
            )
        ],
        "counts": count_normalised(answers, animals),
        "target_rates": target_rates(answers, animals),
        "exact": exact,
    }
