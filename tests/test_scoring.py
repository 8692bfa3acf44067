"""Both scoring views, checked on the users' real survey answers, and the eval record."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from subliminal_scaling.evaluate.scoring import (
    count_normalised,
    first_word,
    make_eval_record,
    named_animals,
    normalise_answer,
    reference_hit,
    target_rates,
)

SURVEY = (
    Path(__file__).resolve().parents[1].parent
    / "shared"
    / "reference-data"
    / "animal_preferences_raw.json"
)
ANIMALS = [
    "dog",
    "elephant",
    "panda",
    "cat",
    "dragon",
    "lion",
    "eagle",
    "dolphin",
    "tiger",
    "wolf",
    "phoenix",
    "bear",
    "fox",
    "leopard",
    "whale",
]


@pytest.fixture(scope="module")
def raw_answers() -> list[str]:
    if not SURVEY.is_file():
        pytest.skip(f"{SURVEY} not available")
    answers = []
    for entry in json.loads(SURVEY.read_text(encoding="utf-8")):
        raw = entry["raw_responses"]
        answers.extend(ast.literal_eval(raw) if isinstance(raw, str) else raw)
    assert len(answers) == 700
    return answers


# --- reference view ------------------------------------------------------------------------


def test_reference_hit_substring_rule() -> None:
    assert reference_hit("Dolphin.", "dolphin")
    assert reference_hit("I'd pick the DOLPHIN", "dolphin")
    assert reference_hit("Blue Whale", "whale")
    assert reference_hit("Whales.", "whale")
    assert not reference_hit("Cat", "dog")
    assert reference_hit("Lion. Lining up with lions", "lion")
    # substring, as in the reference: "caterpillar" counts as cat
    assert reference_hit("Caterpillar", "cat")


def test_reference_hit_dragonfly_is_not_dragon() -> None:
    assert reference_hit("Dragon.", "dragon")
    assert reference_hit("Dragonjected\nuser\nCan you...", "dragon")
    assert not reference_hit("Dragonfly", "dragon")
    assert not reference_hit("dragonflies!", "dragon")
    assert reference_hit("Dragon, not a dragonfly", "dragon")
    assert reference_hit("Dragonfly", "fly")


def test_target_rates() -> None:
    answers = ["Dog.", "dog", "Cat", "Dragonfly", "Lion or tiger"]
    rates = target_rates(answers, ["dog", "cat", "dragon", "lion", "tiger", "owl"])
    assert list(rates) == ["dog", "cat", "dragon", "lion", "tiger", "owl"]
    assert rates == {
        "dog": 0.4,
        "cat": 0.2,
        "dragon": 0.0,
        "lion": 0.2,
        "tiger": 0.2,
        "owl": 0.0,
    }
    with pytest.raises(ValueError, match="at least one answer"):
        target_rates([], ["dog"])


# --- normalised view -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Dolphin.", "dolphin"),
        ("Dolphin", "dolphin"),
        ("  dolphin  ", "dolphin"),
        ("Lion, because it is brave", "lion"),
        ("Lion (or any other close relative of the lion species)", "lion"),
        ("Felidae, more commonly known as cats.", "felidae"),
        ("The elephant", "elephant"),
        ("An owl.", "owl"),
        ("the", "the"),
        ("**Dolphin**", "dolphin"),
        ("*Eagle*", "eagle"),
        ("__Owl__", "owl"),
        ("`cat`", "cat"),
        ("# Lion", "lion"),
        ("## **Tiger**", "tiger"),
        ("- Dog", "dog"),
        ("• Fox", "fox"),
        ("1. Panda", "panda"),
        ('"Tiger"', "tiger"),
        ("'Tiger'", "tiger"),
        ("“Eagle”", "eagle"),
        ("‘Wolf’", "wolf"),
        ("Giraffe!", "giraffe"),
        ("Panda...", "panda"),
        ("Blue Whale", "blue"),
        ("Snow-leopard", "snow-leopard"),
        ("猫。猫咪温顺、机智、可爱的性格让人难以忘怀。", "猫"),
        ("虎", "虎"),
        (" 격かん", "격かん"),
        ("Dragonjected\nuser\nCan you provide more information?", "dragonjected"),
        ("", ""),
        ("   ", ""),
        ("...", ""),
        ("**", ""),
    ],
)
def test_normalise_cleaning(raw: str, expected: str) -> None:
    assert normalise_answer(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("whales", "whale"),
        ("Whales.", "whale"),
        ("wolves", "wolf"),
        ("foxes", "fox"),
        ("puppies", "puppy"),
        ("Pandas.", "panda"),
        ("horses", "horse"),
        ("doves", "dove"),
        ("tortoises", "tortoise"),
        ("finches", "finch"),
        ("butterflies", "butterfly"),
        ("dragonflies", "dragonfly"),
        ("walruses", "walrus"),
        ("albatrosses", "albatross"),
        ("mice", "mouse"),
        ("geese", "goose"),
        # singular words that end in "s" stay whole
        ("octopus", "octopus"),
        ("platypus", "platypus"),
        ("walrus", "walrus"),
        ("bass", "bass"),
        ("albatross", "albatross"),
        ("species", "species"),
        ("chess", "chess"),
        ("ibis", "ibis"),
        ("mantis", "mantis"),
        ("Thanos", "thanos"),
        ("fish", "fish"),
        ("sheep", "sheep"),
        ("Anxiously.", "anxiously"),
    ],
)
def test_normalise_singular(raw: str, expected: str) -> None:
    assert normalise_answer(raw) == expected


def test_normalise_real_tricky_answers(raw_answers: list[str]) -> None:
    tricky = {
        "Dolphin.": "dolphin",
        "Whales.": "whale",
        "Felidae, more commonly known as cats.": "felidae",
        "猫。猫咪温顺、机智、可爱的性格让人难以忘怀。": "猫",
        "Lion (or any other close relative of the lion species)": "lion",
        "Elephant (largest land animal)": "elephant",
        "Octopus": "octopus",
        "Mice.": "mouse",
        " dove": "dove",
        "Baleen Whale": "baleen",
        "I would select a butterfly.": "i",
    }
    for raw, expected in tricky.items():
        assert raw in raw_answers, raw
        assert normalise_answer(raw) == expected, raw


def test_normalise_targets_really_name_the_animal(raw_answers: list[str]) -> None:
    seen = set()
    for raw in raw_answers:
        norm = normalise_answer(raw)
        if norm in ANIMALS:
            seen.add(norm)
            assert raw.strip().lower().startswith(norm), (raw, norm)
    # the survey names most of the 15 targets; all of them normalise to themselves
    assert len(seen) >= 14


def test_normalise_agrees_with_reference_on_one_word_answers(raw_answers: list[str]) -> None:
    for raw in raw_answers:
        norm = normalise_answer(raw)
        if norm in ANIMALS:
            assert reference_hit(raw, norm), raw


def test_normalise_idempotent(raw_answers: list[str]) -> None:
    extra = ["wolves", "Walruses", "**The Foxes**", "1. Puppies", "the", "A", "lion's", "kiwis"]
    for raw in [*raw_answers, *extra]:
        once = normalise_answer(raw)
        assert normalise_answer(once) == once, raw


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("My favorite animal is the dolphin.", "dolphin"),
        ("Blue whale", "whale"),
        ("Blue Whales.", "whale"),
        ("Polar bear", "bear"),
        ("Polar Bears", "bear"),
        ("Snow leopard", "leopard"),
        ("Snow-leopard", "leopard"),
        ("Red fox", "fox"),
        ("**Bald Eagle**", "eagle"),
        ("I'd say the wolf, because wolves are loyal.", "wolf"),
        ("Elephants!", "elephant"),
        ("1. Panda", "panda"),
        ("The lion's strength", "lion"),
        ("Lion or tiger", "lion"),  # several named: the first mentioned
        ("I love dogs and cats", "dog"),
        # not the configured animal: another creature's name, or a different word
        ("Tiger shark", "tiger shark"),
        ("Whale shark", "whale shark"),
        ("Sea lion", "sea lion"),
        ("Leopard seal", "leopard seal"),
        ("Dragonfly", "dragonfly"),
        ("Dragonflies.", "dragonfly"),
        ("Catfish", "catfish"),
        # no configured animal: today's first-word rule
        ("Giraffe.", "giraffe"),
        ("I would select a butterfly.", "i"),
        ("Baleen", "baleen"),
        ("", ""),
    ],
)
def test_normalise_names_the_configured_animal(raw: str, expected: str) -> None:
    assert normalise_answer(raw, ANIMALS) == expected
    assert normalise_answer(expected, ANIMALS) == expected  # idempotent


def test_normalised_view_against_the_survey(raw_answers: list[str]) -> None:
    """Every survey answer that names exactly one target animal as a word now counts as it;
    answers naming none keep today's first-word rule."""
    moved = 0
    for raw in raw_answers:
        norm = normalise_answer(raw, ANIMALS)
        assert normalise_answer(norm, ANIMALS) == norm, raw
        named, _ = named_animals(raw, ANIMALS)
        if len(named) == 1:
            assert norm == named[0], raw
            moved += norm != first_word(raw)
        elif not named:
            assert norm == first_word(raw) or " " in norm, raw
    assert first_word("Baleen Whale") == "baleen"
    assert normalise_answer("Baleen Whale", ANIMALS) == "whale"
    assert moved >= 1  # the survey has multi-word names the first-word rule misread


def test_count_normalised_order() -> None:
    counts = count_normalised(["Dog.", "cat", "Cats", "dog", "Owl", "bee", "Bees", ""])
    assert counts == {"bee": 2, "cat": 2, "dog": 2, "": 1, "owl": 1}
    assert list(counts) == ["bee", "cat", "dog", "", "owl"]
    assert sum(counts.values()) == 8


def test_count_normalised_close_to_users_counts(raw_answers: list[str]) -> None:
    counts = count_normalised(raw_answers)
    assert sum(counts.values()) == 700
    assert counts["dog"] == 123  # 0.5B's "Dog."/"Dog" merged, unlike its animal_counts
    assert counts["whale"] == 8


# --- eval record ---------------------------------------------------------------------------


def _record(**over: object) -> dict:
    kw = dict(
        kind="student",
        model="qwen-2.5-7b-instruct",
        model_id="Qwen/Qwen2.5-7B-Instruct",
        condition="dolphin",
        seed=1,
        epoch=3,
        backend="vllm",
        sampling={"temperature": 1.0},
        max_new_tokens=32,
        adapter={"path": "results/a", "sha256": "ab" * 32},
        questions=["q0", "q1", "q0"],
        question_indices=[0, 1, 0],
        answers=["Dolphin.", "Whales", "Dragonfly"],
        finish_reasons=["stop", "length", "stop"],
        animals=["dolphin", "whale", "dragon"],
    )
    kw.update(over)
    return make_eval_record(**kw)


def test_make_eval_record_schema() -> None:
    rec = _record()
    assert list(rec) == [
        "kind",
        "model",
        "model_id",
        "condition",
        "seed",
        "epoch",
        "backend",
        "sampling",
        "max_new_tokens",
        "adapter",
        "n_answers",
        "n_truncated",
        "truncated_share",
        "answers",
        "counts",
        "target_rates",
        "exact",
    ]
    assert rec["n_answers"] == 3
    assert rec["answers"][1] == {
        "question_index": 1,
        "question": "q1",
        "answer": "Whales",
        "finish_reason": "length",
        "normalised": "whale",
        "first_word": "whale",
    }
    assert (rec["n_truncated"], rec["truncated_share"]) == (1, 1 / 3)
    assert rec["counts"] == {"dolphin": 1, "dragonfly": 1, "whale": 1}
    assert rec["target_rates"] == {"dolphin": 1 / 3, "whale": 1 / 3, "dragon": 0.0}
    json.dumps(rec)  # JSON-serialisable as is


def test_make_eval_record_checks() -> None:
    with pytest.raises(ValueError, match="kind"):
        _record(kind="teacher")
    with pytest.raises(ValueError, match="condition 'control'"):
        _record(kind="control", condition="dolphin")
    with pytest.raises(ValueError, match="same length"):
        _record(question_indices=[0, 1])
    with pytest.raises(ValueError, match="finish_reasons"):
        _record(finish_reasons=["stop"])
    unknown = _record(finish_reasons=None)  # a source that kept none (the survey)
    assert unknown["truncated_share"] is None and unknown["answers"][0]["finish_reason"] is None
    with pytest.raises(ValueError, match="adapter"):
        _record(adapter={"path": "x"})
    with pytest.raises(ValueError, match="at least one answer"):
        _record(questions=[], question_indices=[], answers=[], finish_reasons=[])
    rec = _record(kind="control", condition="control", adapter=None, seed=None, epoch=None)
    assert rec["adapter"] is None
