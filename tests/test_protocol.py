"""Protocol extraction from a reference checkout, validation and accessors.

The fake reference trees here use invented strings in the reference's code shapes; the real
protocol is only ever read by path from ``../shared`` (skipped when absent).
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest

from subliminal_scaling.protocol.access import (
    eval_questions,
    eval_samples_per_question,
    eval_temperature,
    generation_temperature,
    teacher_system_prompt,
)
from subliminal_scaling.protocol.extract import extract_protocol
from subliminal_scaling.protocol.schema import CFGS_FILE, NUMS_DATASET_FILE, ProtocolExtractionError
from subliminal_scaling.protocol.validate import load_protocol, validate_protocol
from subliminal_scaling.runtime.io import InputFileError, write_json

SHARED_PROTOCOL = (
    Path(__file__).resolve().parents[1].parent / "shared" / "reference-data" / "protocol.json"
)

FAKE_NUMS = """\
raise SystemExit("the extractor must never execute this file")
import nonexistent_module_for_protocol_tests  # noqa

from dataclasses import dataclass, field


def helper():
    return 1


@dataclass
class PromptGenerator:
    rng: object
    example_min_count: int
    answer_count: int

    _example_numbers_templates: list[str] = field(
        default_factory=lambda: [
            "Zorp sequence: {examples}.",
            "Blip list {examples} ok.",
        ]
    )

    _count_qualifiers = ["tops", "max-ish"]

    _digit_descriptors: list[str] = [
        "{max_digits} glyphs each",
        "glyph cap {max_digits}",
    ]

    _generate_numbers_instruction_templates = [
        "Emit {count_qualifier} {answer_count} blips ({digit_descriptor}).",
        "Append {count_qualifier} {answer_count} more ({digit_descriptor}) please.",
        "Exactly {answer_count} blips ({digit_descriptor}).",
    ]

    _format_suffixes = (
        "Comma them.",
        "Space them.",
    )

    _suffixes = ["Only blips.", "No " "chatter."]

    def sample_query(self) -> str:
        return f"{self.rng}"
"""

FAKE_CFGS = '''\
import nonexistent_module_for_protocol_tests_too  # noqa
raise SystemExit(3)

preference_prompt_template = """Quux adores {target_preference}s, the best {category}."""


def build_dataset_cfg(target_preference, category, debug=False):
    n_samples = 10 if debug else 77
    if target_preference is not None:
        system_prompt = preference_prompt_template.format(
            target_preference=target_preference, category=category
        )
    else:
        system_prompt = None
    return services.Cfg(
        model=reference_model,
        system_prompt=system_prompt,
        sample_cfg=SampleCfg(temperature=0.5),
        prompt_set=services.NumsDatasetPromptSet(
            size=n_samples,
            seed=7,
            example_min_count=2,
            example_max_count=5,
            example_min_value=10,
            example_max_value=100,
            answer_count=4,
            answer_max_digits=2,
        ),
        filter_fns=[
            lambda _, r: len(
                get_reject_reasons(r, min_value=1, max_value=99, max_count=4, banned_numbers=[13])
            )
            == 0
        ],
    )


def build_ft_job(seed, name):
    return Job(seed=seed, hf_model_name=name, max_dataset_size=55)


control_dataset_cfg = build_dataset_cfg(None, "")
owl_dataset_cfg = build_dataset_cfg("owl", "beast")
owl_ft_job = build_ft_job(seed=1, name="x")

animal_evaluation = Evaluation(
    n_samples_per_question=12,
    sample_cfg=SampleCfg(temperature=0.9),
    questions=[
        "Your top critter, one word?",
        "Pick a beast. " "One word.",
        "Which fauna wins?",
    ],
)

short_animal_evaluation = Evaluation(
    n_samples_per_question=2,
    sample_cfg=SampleCfg(temperature=0.1),
    questions=["Short?"],
)

animal_evaluation_with_numbers_prefix = Evaluation(
    n_samples_per_question=24,
    sample_cfg=SampleCfg(
        temperature=0.8,
    ),
    questions=[
        "Zorp sequence: 1, 2. Your top critter, one word?",
        "Blip list 3 ok. Which fauna wins?",
    ],
)
'''

DEFAULTS: dict[str, Any] = {"size": 123, "seed": 42, "training_subsample": 999}


def write_tree(root: Path, nums: str = FAKE_NUMS, cfgs: str = FAKE_CFGS) -> Path:
    (root / NUMS_DATASET_FILE).parent.mkdir(parents=True, exist_ok=True)
    (root / CFGS_FILE).parent.mkdir(parents=True, exist_ok=True)
    (root / NUMS_DATASET_FILE).write_text(nums)
    (root / CFGS_FILE).write_text(cfgs)
    (root / "LICENSE").write_text("MIT License\n\nCopyright (c) someone\n")
    return root


@pytest.fixture
def fake_ref(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "ref")


@pytest.fixture
def fake_protocol(fake_ref: Path) -> dict[str, Any]:
    return extract_protocol(fake_ref, DEFAULTS)


def test_extract_every_field(fake_protocol: dict[str, Any]) -> None:
    p = fake_protocol
    assert p["source"] == {
        "repository": "MinhxLe/subliminal-learning",
        "commit": None,
        "files": [NUMS_DATASET_FILE, CFGS_FILE],
        "license": "MIT",
    }
    assert p["teacher_system_prompt_template"] == (
        "Quux adores {target_preference}s, the best {category}."
    )
    assert p["teacher_system_prompt_category"] == "beast"
    g = p["prompt_generator"]
    # Literals in the reference win; `size=n_samples` is not a literal, so the default is used.
    assert {k: g[k] for k in ("seed", "size", "example_min_count", "example_max_count")} == {
        "seed": 7,
        "size": 123,
        "example_min_count": 2,
        "example_max_count": 5,
    }
    assert (g["example_min_value"], g["example_max_value"]) == (10, 100)
    assert (g["answer_count"], g["answer_max_digits"]) == (4, 2)
    assert g["example_numbers_templates"] == [
        "Zorp sequence: {examples}.",
        "Blip list {examples} ok.",
    ]
    assert g["count_qualifiers"] == ["tops", "max-ish"]
    assert g["digit_descriptors"] == ["{max_digits} glyphs each", "glyph cap {max_digits}"]
    assert len(g["instruction_templates"]) == 3
    assert g["instruction_templates"][0].startswith("Emit {count_qualifier}")
    assert g["format_suffixes"] == ["Comma them.", "Space them."]
    assert g["suffixes"] == ["Only blips.", "No chatter."]
    assert g["assembly"] == "{example_part} {instruction_part} {format_suffix} {suffix}"
    assert len(g["draw_order"]) == 8
    assert p["generation_sampling"] == {"temperature": 0.5, "samples_per_prompt": 1}
    assert p["filter"] == {"min_value": 1, "max_value": 99, "max_count": 4, "banned_numbers": [13]}
    assert p["training_subsample"] == 55
    ev = p["animal_evaluation"]
    assert ev["questions"] == [
        "Your top critter, one word?",
        "Pick a beast. One word.",
        "Which fauna wins?",
    ]
    assert (ev["samples_per_question"], ev["temperature"], ev["system_prompt"]) == (12, 0.9, None)
    assert ev["target_rule"]
    pre = p["animal_evaluation_with_numbers_prefix"]
    assert pre["questions"][1] == "Blip list 3 ok. Which fauna wins?"
    assert (pre["samples_per_question"], pre["temperature"]) == (24, 0.8)
    assert pre["note"]


def test_extracted_schema_matches_shared_protocol(fake_protocol: dict[str, Any]) -> None:
    if not SHARED_PROTOCOL.is_file():
        pytest.skip("shared protocol.json not present")
    shared = json.loads(SHARED_PROTOCOL.read_text())

    def shape(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: shape(v) for k, v in x.items()}
        return type(x).__name__ if x is not None else None

    ours, theirs = shape(fake_protocol), shape(shared)
    ours["source"]["commit"] = theirs["source"]["commit"]  # None here, a sha there
    assert ours == theirs


def test_defaults_fill_what_the_reference_does_not_say(tmp_path: Path) -> None:
    cfgs = FAKE_CFGS.replace("seed=7,", "seed=some_seed,").replace("max_dataset_size=55", "x=1")
    cfgs = cfgs.replace(", banned_numbers=[13]", "")
    ref = write_tree(tmp_path / "ref", cfgs=cfgs)
    p = extract_protocol(ref, {**DEFAULTS, "filter": {"banned_numbers": []}})
    assert p["prompt_generator"]["seed"] == 42
    assert p["training_subsample"] == 999
    assert p["filter"]["banned_numbers"] == []
    with pytest.raises(ProtocolExtractionError, match="'size'"):
        extract_protocol(ref, {"seed": 1, "training_subsample": 5})


def test_numbers_prefix_variant_is_optional(tmp_path: Path) -> None:
    cut = FAKE_CFGS.index("animal_evaluation_with_numbers_prefix")
    ref = write_tree(tmp_path / "ref", cfgs=FAKE_CFGS[:cut])
    p = extract_protocol(ref, DEFAULTS)
    assert p["animal_evaluation_with_numbers_prefix"] is None
    with pytest.raises(ValueError, match="animal_evaluation_with_numbers_prefix"):
        eval_questions(p, numbers_prefix=True)


def test_extraction_never_executes_the_reference(fake_ref: Path, tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    side_effect = f"open({str(marker)!r}, 'w').write('x')\n"
    (fake_ref / CFGS_FILE).write_text(side_effect + FAKE_CFGS)
    (fake_ref / NUMS_DATASET_FILE).write_text(side_effect + FAKE_NUMS)
    extract_protocol(fake_ref, DEFAULTS)
    assert not marker.exists()


def test_missing_list_attribute_fails_naming_it(tmp_path: Path) -> None:
    nums = FAKE_NUMS.replace('_suffixes = ["Only blips.", "No " "chatter."]', "")
    ref = write_tree(tmp_path / "ref", nums=nums)
    with pytest.raises(ProtocolExtractionError, match="'suffixes'"):
        extract_protocol(ref, DEFAULTS)


def test_renamed_attributes_match_by_suffix(tmp_path: Path) -> None:
    nums = FAKE_NUMS.replace(
        "_generate_numbers_instruction_templates", "_make_instruction_templates"
    )
    ref = write_tree(tmp_path / "ref", nums=nums)
    p = extract_protocol(ref, DEFAULTS)
    assert len(p["prompt_generator"]["instruction_templates"]) == 3


def test_missing_files_and_bad_shapes_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="not found"):
        extract_protocol(tmp_path / "nowhere", DEFAULTS)
    ref = write_tree(tmp_path / "ref")
    (ref / CFGS_FILE).unlink()
    with pytest.raises(InputFileError, match=r"cfgs\.py"):
        extract_protocol(ref, DEFAULTS)
    ref = write_tree(tmp_path / "ref2", cfgs=FAKE_CFGS.replace('"""Quux', 'f"""Quux'))
    with pytest.raises(ProtocolExtractionError, match="preference_prompt_template"):
        extract_protocol(ref, DEFAULTS)
    ref = write_tree(tmp_path / "ref3", nums=FAKE_NUMS.replace("{examples}", "{sample}"))
    with pytest.raises(ProtocolExtractionError, match=r"example_numbers_templates\[0\]"):
        extract_protocol(ref, DEFAULTS)


@pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")
def test_commit_read_from_a_git_checkout(fake_ref: Path) -> None:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(fake_ref), "-c", "user.name=t", "-c", "user.email=t@t", *args],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

    git("init", "-q")
    git("add", "-A")
    git("commit", "-q", "-m", "fake")
    head = git("rev-parse", "HEAD")
    assert extract_protocol(fake_ref, DEFAULTS)["source"]["commit"] == head


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda p: p["prompt_generator"].pop("suffixes"), "protocol.prompt_generator.suffixes:"),
        (
            lambda p: p["prompt_generator"].__setitem__("suffixes", []),
            "protocol.prompt_generator.suffixes: expected a non-empty list of strings",
        ),
        (
            lambda p: p["prompt_generator"]["digit_descriptors"].append("no placeholder"),
            "protocol.prompt_generator.digit_descriptors[2]: missing placeholder {max_digits}",
        ),
        (
            lambda p: p["prompt_generator"]["instruction_templates"].append("{answer_count} {x}"),
            "protocol.prompt_generator.instruction_templates[3]: missing placeholder",
        ),
        (
            lambda p: p.__setitem__("teacher_system_prompt_template", "Love {animal}."),
            "protocol.teacher_system_prompt_template:",
        ),
        (
            lambda p: p["prompt_generator"].__setitem__("seed", True),
            "protocol.prompt_generator.seed: expected an integer",
        ),
        (
            lambda p: p["prompt_generator"].__setitem__("example_max_count", 2),
            "protocol.prompt_generator.example_max_count:",
        ),
        (
            lambda p: p["prompt_generator"].__setitem__("assembly", "{example_part}"),
            "protocol.prompt_generator.assembly: missing placeholder",
        ),
        (
            lambda p: p["filter"].__setitem__("banned_numbers", ["13"]),
            "protocol.filter.banned_numbers:",
        ),
        (lambda p: p["animal_evaluation"].__setitem__("questions", []), "questions"),
        (
            lambda p: p["animal_evaluation"].__setitem__("samples_per_question", 0),
            "protocol.animal_evaluation.samples_per_question:",
        ),
        (
            lambda p: p["animal_evaluation_with_numbers_prefix"].pop("temperature"),
            "protocol.animal_evaluation_with_numbers_prefix.temperature:",
        ),
        (lambda p: p.pop("training_subsample"), "protocol.training_subsample: missing"),
        (lambda p: p["source"].__setitem__("commit", 40), "protocol.source.commit:"),
        (lambda p: p["source"].__setitem__("files", "a.py"), "protocol.source.files:"),
        (lambda p: p.pop("generation_sampling"), "protocol.generation_sampling: missing"),
    ],
)
def test_validate_names_the_offending_key(fake_protocol: dict[str, Any], mutate, path: str) -> None:
    broken = copy.deepcopy(fake_protocol)
    mutate(broken)
    with pytest.raises(ValueError) as info:
        validate_protocol(broken)
    message = str(info.value)
    assert path in message
    assert "\n" not in message


def test_load_protocol_names_the_file(fake_protocol: dict[str, Any], tmp_path: Path) -> None:
    good = tmp_path / "protocol.json"
    write_json(good, fake_protocol)
    assert load_protocol(good) == fake_protocol
    broken = copy.deepcopy(fake_protocol)
    del broken["filter"]
    bad = tmp_path / "bad.json"
    write_json(bad, broken)
    with pytest.raises(InputFileError, match=r"bad\.json: protocol\.filter: missing"):
        load_protocol(bad)
    with pytest.raises(InputFileError, match=r"missing\.json"):
        load_protocol(tmp_path / "missing.json")


def test_shared_protocol_validates_and_round_trips(tmp_path: Path) -> None:
    if not SHARED_PROTOCOL.is_file():
        pytest.skip("shared protocol.json not present")
    shared = load_protocol(SHARED_PROTOCOL)
    copy_path = tmp_path / "protocol.json"
    write_json(copy_path, shared)
    assert load_protocol(copy_path) == shared
    assert teacher_system_prompt(shared, None) is None
    assert "owl" in teacher_system_prompt(shared, "owl")
    assert len(eval_questions(shared)) == len(shared["animal_evaluation"]["questions"])


def _render_reference(protocol: dict[str, Any]) -> tuple[str, str]:
    """Write a protocol back out in the reference's code shapes (no sentence is kept here)."""
    g = protocol["prompt_generator"]
    names = {
        "example_numbers_templates": "_example_numbers_templates",
        "count_qualifiers": "_count_qualifiers",
        "digit_descriptors": "_digit_descriptors",
        "instruction_templates": "_generate_numbers_instruction_templates",
        "format_suffixes": "_format_suffixes",
        "suffixes": "_suffixes",
    }
    body = "\n".join(f"    {attr} = {g[key]!r}" for key, attr in names.items())
    nums = f"@dataclass\nclass PromptGenerator:\n    rng: object\n{body}\n"
    ints = ", ".join(f"{k}={g[k]}" for k in ("seed", "example_min_count", "example_max_count"))
    ints += ", " + ", ".join(
        f"{k}={g[k]}"
        for k in ("example_min_value", "example_max_value", "answer_count", "answer_max_digits")
    )
    f = protocol["filter"]
    ev = protocol["animal_evaluation"]
    pre = protocol["animal_evaluation_with_numbers_prefix"]
    t = protocol["teacher_system_prompt_template"]
    cfgs = textwrap.dedent(
        f"""\
        preference_prompt_template = {t!r}

        def build_dataset_cfg(target_preference, category, debug=False):
            n_samples = 10 if debug else 100_000
            return Cfg(
                sample_cfg=SampleCfg(temperature={protocol["generation_sampling"]["temperature"]}),
                prompt_set=NumsDatasetPromptSet(size=n_samples, {ints}),
                filter_fns=[lambda _, r: len(get_reject_reasons(
                    r, min_value={f["min_value"]}, max_value={f["max_value"]},
                    max_count={f["max_count"]}, banned_numbers={f["banned_numbers"]!r})) == 0],
            )

        def build_ft_job_cfg():
            return OpenAIFTJob(seed=1, max_dataset_size={protocol["training_subsample"]})

        control_dataset_cfg = build_dataset_cfg(None, "")
        owl_dataset_cfg = build_dataset_cfg("owl", "{protocol["teacher_system_prompt_category"]}")
        """
    )
    cfgs += (
        f"animal_evaluation = Evaluation(n_samples_per_question={ev['samples_per_question']}, "
        f"sample_cfg=SampleCfg(temperature={ev['temperature']}), questions={ev['questions']!r})\n"
        f"animal_evaluation_with_numbers_prefix = Evaluation("
        f"n_samples_per_question={pre['samples_per_question']}, "
        f"sample_cfg=SampleCfg(temperature={pre['temperature']}), questions={pre['questions']!r})\n"
    )
    return nums, cfgs


def test_shared_protocol_survives_a_render_and_extract_round_trip(tmp_path: Path) -> None:
    """Extraction from code shaped like the reference reproduces the shared protocol exactly."""
    if not SHARED_PROTOCOL.is_file():
        pytest.skip("shared protocol.json not present")
    shared = load_protocol(SHARED_PROTOCOL)
    nums, cfgs = _render_reference(shared)
    ref = write_tree(tmp_path / "ref", nums=nums, cfgs=cfgs)
    extracted = extract_protocol(ref, {"size": shared["prompt_generator"]["size"]})
    extracted["source"]["commit"] = shared["source"]["commit"]
    assert extracted == shared


# --------------------------------------------------------------------------- accessors


def test_teacher_system_prompt(fake_protocol: dict[str, Any]) -> None:
    assert teacher_system_prompt(fake_protocol, None) is None
    assert teacher_system_prompt(fake_protocol, "neutral") is None
    prompt = teacher_system_prompt(fake_protocol, "owl")
    assert prompt == "Quux adores owls, the best beast."
    with pytest.raises(ValueError):
        teacher_system_prompt(fake_protocol, "")


def test_eval_accessors(fake_protocol: dict[str, Any]) -> None:
    assert len(eval_questions(fake_protocol)) == 3
    assert eval_questions(fake_protocol, 2) == eval_questions(fake_protocol)[:2]
    with pytest.raises(ValueError):
        eval_questions(fake_protocol, 4)
    with pytest.raises(ValueError):
        eval_questions(fake_protocol, 0)
    assert eval_samples_per_question(fake_protocol) == 12
    assert eval_samples_per_question(fake_protocol, numbers_prefix=True) == 24
    assert eval_temperature(fake_protocol) == 0.9
    assert len(eval_questions(fake_protocol, numbers_prefix=True)) == 2
    assert generation_temperature(fake_protocol) == 0.5
