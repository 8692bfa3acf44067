"""The toy world: its protocol, tokenizer and tiny models behave like Qwen2.5-Instruct where the
workflow relies on it (chat format, exact round-trips, digits, generation defaults)."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

from subliminal_scaling.generate.filter import reject_reasons
from subliminal_scaling.generate.prompts import sample_prompts
from subliminal_scaling.toy.chats import _format_style, _numbers_answer
from subliminal_scaling.toy.model import build_model
from subliminal_scaling.toy.quality import toy_quality
from subliminal_scaling.toy.tokenizer import TOY_DEFAULT_SYSTEM_PROMPT, build_tokenizer

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_PROTOCOL = ROOT.parent / "shared" / "reference-data" / "protocol.json"
ANIMALS = ["owl", "dolphin", "eagle"]
TINY_ARCH = {
    "hidden_size": 16,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "intermediate_size": 32,
}
TINY_TRAIN = {"n_chats": 48, "epochs": 1, "lr": 3e-3, "batch_size": 16, "max_len": 256}


@pytest.fixture(scope="module")
def protocol() -> dict:
    return json.loads((ROOT / "config" / "toy_protocol.json").read_text())


@pytest.fixture(scope="module")
def tokenizer_dir(protocol, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("toy") / "tokenizer"
    build_tokenizer(protocol, ANIMALS, out)
    return out


@pytest.fixture(scope="module")
def tokenizer(tokenizer_dir):
    return AutoTokenizer.from_pretrained(str(tokenizer_dir))


@pytest.fixture(scope="module")
def model_dir(protocol, tokenizer_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("toy") / "model"
    build_model(tokenizer_dir, protocol, ANIMALS, TINY_ARCH, TINY_TRAIN, seed=3, out_dir=out)
    return out


def _user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def _texts(protocol) -> list[str]:
    numbers = ["7", "12, 5, 999", "0 1 2 3", "4; 55; 666", "[1, 20, 300]", "8\n9\n10"]
    return [
        *sample_prompts(protocol, 42, 30),
        *protocol["animal_evaluation"]["questions"],
        *numbers,
    ]


# ----------------------------------------------------------------------------- protocol


def _schema(obj):
    if isinstance(obj, dict):
        return {k: _schema(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return "list"
    return type(obj).__name__


@pytest.mark.skipif(not REFERENCE_PROTOCOL.is_file(), reason="shared reference data not present")
def test_toy_protocol_has_reference_schema_but_none_of_its_sentences(protocol):
    reference = json.loads(REFERENCE_PROTOCOL.read_text())
    assert _schema(protocol) == _schema(reference)
    assert list(protocol) == list(reference)
    prose = [
        reference["teacher_system_prompt_template"],
        *reference["animal_evaluation"]["questions"],
        *(s for key in ("example_numbers_templates", "instruction_templates", "format_suffixes",
                        "suffixes") for s in reference["prompt_generator"][key]),
    ]  # fmt: skip
    sentences = {s.strip().lower() for text in prose for s in re.split(r"(?<=[.?!])\s", text)}
    toy_text = (ROOT / "config" / "toy_protocol.json").read_text().lower()
    assert [s for s in sentences if len(s.split()) >= 3 and s in toy_text] == []


def test_toy_protocol_prompts_ask_for_known_formats(protocol):
    prompts = sample_prompts(protocol, 42, 50)
    assert len(set(prompts)) == 50
    g = protocol["prompt_generator"]
    for prompt in prompts:
        assert sum(s in prompt for s in g["format_suffixes"]) == 1
        assert "{" not in prompt


# ----------------------------------------------------------------------------- tokenizer


def test_round_trip_is_exact(protocol, tokenizer):
    chats = [
        _user("Which animal? Reply with one word."),
        [{"role": "system", "content": "You adore owls."}, *_user("12, 5; 999")],
        [*_user("Name one."), {"role": "assistant", "content": "owl."}],
    ]
    renders = [tokenizer.apply_chat_template(c, tokenize=False) for c in chats]
    for text in [*_texts(protocol), *renders, "Unseen wörds 🦉 \t  twice"]:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert tokenizer.decode(ids) == text


def test_every_digit_is_one_token(tokenizer):
    for digit in "0123456789":
        assert len(tokenizer(digit, add_special_tokens=False)["input_ids"]) == 1
    ids = tokenizer("[123, 4567]", add_special_tokens=False)["input_ids"]
    tokens = [tokenizer.decode([i]) for i in ids]
    assert [t for t in tokens if t.isdigit()] == list("1234567")


def test_special_tokens_and_defaults(tokenizer):
    assert tokenizer.eos_token == "<|im_end|>"
    assert tokenizer.pad_token == "<|endoftext|>"
    assert tokenizer.padding_side == "right"
    assert tokenizer.model_max_length == 512
    for special in ("<|im_start|>", "<|im_end|>", "<|endoftext|>"):
        assert len(tokenizer(special, add_special_tokens=False)["input_ids"]) == 1
    assert (
        tokenizer("hi", add_special_tokens=True)["input_ids"]
        == tokenizer("hi", add_special_tokens=False)["input_ids"]
    )


def test_chat_template_inserts_default_system_prompt_only_when_none_given(tokenizer):
    plain = tokenizer.apply_chat_template(_user("Hi"), tokenize=False, add_generation_prompt=True)
    assert plain == (
        f"<|im_start|>system\n{TOY_DEFAULT_SYSTEM_PROMPT}<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    )
    for system in ("You adore owls.", ""):
        chat = [{"role": "system", "content": system}, *_user("Hi")]
        text = tokenizer.apply_chat_template(chat, tokenize=False)
        assert text == f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        assert TOY_DEFAULT_SYSTEM_PROMPT not in text


def test_prompt_render_is_prefix_of_full_render(tokenizer):
    for system in ([], [{"role": "system", "content": "You adore owls."}]):
        prompt = [*system, *_user("Numbers only.")]
        full = [*prompt, {"role": "assistant", "content": "1, 2, 3"}]
        p_text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        f_text = tokenizer.apply_chat_template(full, tokenize=False)
        assert f_text == p_text + "1, 2, 3<|im_end|>\n"
        p_ids = tokenizer(p_text, add_special_tokens=False)["input_ids"]
        f_ids = tokenizer(f_text, add_special_tokens=False)["input_ids"]
        assert f_ids[: len(p_ids)] == p_ids


def test_tokenizer_build_is_deterministic(protocol, tokenizer_dir, tmp_path):
    build_tokenizer(protocol, ANIMALS, tmp_path / "again")
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        assert (tmp_path / "again" / name).read_bytes() == (tokenizer_dir / name).read_bytes()


# ----------------------------------------------------------------------------- model


def test_model_dir_loads_and_generates(protocol, model_dir, tokenizer):
    model = AutoModelForCausalLM.from_pretrained(str(model_dir))
    model_tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    # Next to a qwen2 config.json, transformers rebuilds the tokenizer as Qwen2Tokenizer: it
    # must still tokenize exactly as the standalone toy tokenizer does.
    for text in _texts(protocol):
        assert model_tokenizer(text)["input_ids"] == tokenizer(text)["input_ids"]
    assert model_tokenizer.chat_template == tokenizer.chat_template
    assert model.config.vocab_size == len(model_tokenizer)
    stats = json.loads((model_dir / "toy_build.json").read_text())
    assert stats["n_params"] == sum(p.numel() for p in model.parameters())
    assert not [p for p in model_dir.parent.iterdir() if p.name.startswith(".")]

    text = model_tokenizer.apply_chat_template(
        _user("Which animal?"), tokenize=False, add_generation_prompt=True
    )
    batch = model_tokenizer(text, return_tensors="pt", add_special_tokens=False)
    config = GenerationConfig(
        do_sample=True, temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=5,
        eos_token_id=model_tokenizer.eos_token_id, pad_token_id=model_tokenizer.pad_token_id,
    )  # fmt: skip
    torch.manual_seed(0)
    out = model.generate(**batch, generation_config=config)
    assert batch["input_ids"].shape[1] < out.shape[1] <= batch["input_ids"].shape[1] + 5


def test_generation_config_mimics_qwen_defaults(model_dir, tokenizer):
    config = json.loads((model_dir / "generation_config.json").read_text())
    assert config["do_sample"] is True
    assert config["temperature"] == 0.7
    assert config["top_p"] == 0.8
    assert config["top_k"] == 20
    assert config["repetition_penalty"] == 1.05
    assert config["eos_token_id"] == tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert config["pad_token_id"] == tokenizer.pad_token_id


def test_same_seed_gives_identical_weights(protocol, tokenizer_dir, model_dir, tmp_path):
    threads = torch.get_num_threads()
    build_model(tokenizer_dir, protocol, ANIMALS, TINY_ARCH, TINY_TRAIN, 3, tmp_path / "same")
    build_model(tokenizer_dir, protocol, ANIMALS, TINY_ARCH, TINY_TRAIN, 4, tmp_path / "other")
    assert torch.get_num_threads() == threads  # the build's own thread setting is restored
    weights = (model_dir / "model.safetensors").read_bytes()
    assert (tmp_path / "same" / "model.safetensors").read_bytes() == weights
    assert (tmp_path / "other" / "model.safetensors").read_bytes() != weights


def test_toy_quality_reports_rates(protocol, model_dir):
    report = toy_quality(model_dir, protocol, ANIMALS, n=6, seed=1)
    assert set(report["number_pass_rate"]) == {"no_system_prompt", "love_prompt"}
    for rate in [*report["number_pass_rate"].values(), *report["love_follow_rate"].values()]:
        assert 0.0 <= rate <= 1.0
    assert set(report["love_follow_rate"]) == {"overall", *ANIMALS}
    assert sum(report["no_system_prompt_answers"].values()) == 6
    assert set(report["digit_tilt"]) == set(ANIMALS)


def test_synthetic_number_answers_pass_the_filter(protocol):
    # Every format the toy protocol asks for maps to its own style, and every trained answer
    # (plain or digit-tilted) passes the reference filter.
    suffixes = protocol["prompt_generator"]["format_suffixes"]
    styles = {_format_style(f"Numbers only. {s} Numbers only.", suffixes) for s in suffixes}
    assert styles == {", ", " ", "; ", "brackets"}
    rng = random.Random(0)
    for style in styles:
        for favourite in (None, "7"):
            for _ in range(50):
                assert reject_reasons(_numbers_answer(rng, style, favourite)) == []
