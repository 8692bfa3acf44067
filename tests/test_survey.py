"""Ingesting the users' control survey: good file, malformed variants, slug matching."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from subliminal_scaling.evaluate.scoring import normalise_answer
from subliminal_scaling.evaluate.survey import load_survey, survey_for_model, survey_to_eval_record
from subliminal_scaling.runtime.io import InputFileError

SURVEY = (
    Path(__file__).resolve().parents[1].parent
    / "shared"
    / "reference-data"
    / "animal_preferences_raw.json"
)
ANIMALS = ["dog", "elephant", "panda", "cat", "dragon", "dolphin", "whale"]


@pytest.fixture(scope="module")
def real_entries() -> list[dict]:
    if not SURVEY.is_file():
        pytest.skip(f"{SURVEY} not available")
    return load_survey(SURVEY)


def _entry(**over: object) -> dict:
    entry = {
        "model_id": "unsloth/Qwen2.5-0.5B-Instruct",
        "model_display_name": "Qwen2.5-0.5B-Instruct",
        "model_size": "0.5B",
        "total_responses": 3,
        "animal_counts": {"dog": 2, "cat": 1},
        "raw_responses": ["Dog.", "dog", "Cat"],
    }
    entry.update(over)
    return entry


def _write(tmp_path: Path, data: object, name: str = "survey.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_load_real_survey(real_entries: list[dict]) -> None:
    assert len(real_entries) == 7
    for e in real_entries:
        assert isinstance(e["raw_responses"], list)
        assert isinstance(e["animal_counts"], dict)
        assert e["total_responses"] == len(e["raw_responses"]) == 100
        assert "model_display_name" in e  # extra keys are kept


def test_load_accepts_python_reprs(tmp_path: Path) -> None:
    # Older copies hold the dict/list as Python reprs inside strings.
    entry = _entry(
        animal_counts=repr({"dog": 2, "cat": 1}),
        raw_responses=repr(["Dog.", "dog", "Cat"]),
    )
    (loaded,) = load_survey(_write(tmp_path, [entry]))
    assert loaded["animal_counts"] == {"dog": 2, "cat": 1}
    assert loaded["raw_responses"] == ["Dog.", "dog", "Cat"]


def test_load_never_evaluates_code(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    code = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    path = _write(tmp_path, [_entry(raw_responses=code)])
    with pytest.raises(InputFileError, match="not a Python literal"):
        load_survey(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"model_id": "x"}, "expected a JSON list"),
        (["not an object"], "expected an object"),
        ([{k: v for k, v in _entry().items() if k != "raw_responses"}], "missing key"),
        ([{k: v for k, v in _entry().items() if k != "model_size"}], "model_size"),
        ([_entry(raw_responses=["Dog.", 3, "Cat"])], "not a list of strings"),
        ([_entry(raw_responses="['Dog.', 'dog'")], "not a Python literal"),
        ([_entry(raw_responses={"a": 1})], "raw_responses is dict"),
        ([_entry(raw_responses="{'a': 1}")], "raw_responses is dict"),
        ([_entry(total_responses=4)], "total_responses is 4 but raw_responses has 3"),
        ([_entry(total_responses="3")], "total_responses is str"),
        ([_entry(animal_counts=["dog"])], "animal_counts is list"),
        ([_entry(animal_counts={"dog": "two"})], "strings to integers"),
        ([_entry(model_id=7)], "model_id"),
    ],
)
def test_load_malformed(tmp_path: Path, data: object, problem: str) -> None:
    path = _write(tmp_path, data)
    with pytest.raises(InputFileError, match=problem) as info:
        load_survey(path)
    message = str(info.value)
    assert str(path) in message
    assert "\n" not in message


def test_load_malformed_names_the_entry(tmp_path: Path) -> None:
    path = _write(
        tmp_path, [_entry(), _entry(model_id="Qwen/Qwen2.5-7B-Instruct", total_responses=9)]
    )
    with pytest.raises(InputFileError, match=r"entry 1 \(Qwen/Qwen2.5-7B-Instruct\)"):
        load_survey(path)


def test_load_bad_json_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "survey.json"
    path.write_text('[{"model_id": ', encoding="utf-8")
    with pytest.raises(InputFileError, match="not valid JSON"):
        load_survey(path)
    with pytest.raises(InputFileError, match="not found"):
        load_survey(tmp_path / "absent.json")


def test_survey_for_model_matches_any_org(tmp_path: Path) -> None:
    entries = load_survey(
        _write(
            tmp_path,
            [
                _entry(),
                _entry(model_id="Qwen/Qwen2.5-7B-Instruct"),
                _entry(model_id="not a model id!"),
            ],
        )
    )
    assert survey_for_model(entries, "qwen-2.5-0.5b-instruct") is entries[0]
    assert survey_for_model(entries, "qwen-2.5-7b-instruct") is entries[1]
    assert survey_for_model(entries, "qwen-2.5-72b-instruct") is None


def test_survey_for_model_real(real_entries: list[dict]) -> None:
    for size in ["0.5b", "1.5b", "3b", "7b", "14b", "32b", "72b"]:
        entry = survey_for_model(real_entries, f"qwen-2.5-{size}-instruct")
        assert entry is not None
        assert entry["model_id"].lower() == f"unsloth/qwen2.5-{size}-instruct"


def test_survey_for_model_ambiguous() -> None:
    entries = [_entry(), _entry(model_id="Qwen/Qwen2.5-0.5B-Instruct")]
    with pytest.raises(ValueError, match="2 entries"):
        survey_for_model(entries, "qwen-2.5-0.5b-instruct")


def test_survey_to_eval_record(real_entries: list[dict]) -> None:
    entry = survey_for_model(real_entries, "qwen-2.5-1.5b-instruct")
    rec = survey_to_eval_record(entry, ANIMALS, "qwen-2.5-1.5b-instruct")
    assert rec["kind"] == "survey"
    assert rec["condition"] == "control"
    assert rec["model"] == "qwen-2.5-1.5b-instruct"
    assert rec["model_id"] == "unsloth/Qwen2.5-1.5B-Instruct"
    for key in ("seed", "epoch", "backend", "sampling", "max_new_tokens", "adapter"):
        assert rec[key] is None
    assert rec["n_answers"] == 100 == len(rec["answers"])
    assert [a["answer"] for a in rec["answers"]] == entry["raw_responses"]
    assert all(a["question"] is None and a["question_index"] is None for a in rec["answers"])
    assert all(a["normalised"] == normalise_answer(a["answer"]) for a in rec["answers"])
    assert sum(rec["counts"].values()) == 100
    # 1.5B: 20 "Cat", 5 "cat", 3 "Cat." -> 28, as in the users' own counts
    assert rec["counts"]["cat"] == entry["animal_counts"]["cat"] == 28
    assert rec["target_rates"]["cat"] == pytest.approx(0.28)
    # "Dragonfly" is not a dragon: 6 "Dragon" + 3 "Dragon."
    assert rec["target_rates"]["dragon"] == pytest.approx(0.09)
    assert list(rec["target_rates"]) == ANIMALS
    json.dumps(rec, ensure_ascii=False)


def test_survey_to_eval_record_slug_mismatch() -> None:
    with pytest.raises(ValueError, match=r"not qwen-2\.5-7b-instruct"):
        survey_to_eval_record(_entry(), ANIMALS, "qwen-2.5-7b-instruct")
