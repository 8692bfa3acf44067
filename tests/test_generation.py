"""The transformers backend samples with exactly the configured parameters: Qwen's shipped
generation defaults (T 0.7, top_p 0.8, top_k 20, repetition penalty 1.05) never reach the
sampler, and truncation is reported."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

from subliminal_scaling.runtime.backends import (
    Sampling,
    TransformersBackend,
    cut_at_stop,
    make_conversation,
    stop_token_ids,
)
from subliminal_scaling.toy.tokenizer import TOY_DEFAULT_SYSTEM_PROMPT, build_tokenizer

from .conftest import REPO

QWEN_DEFAULTS = dict(
    do_sample=True, temperature=0.7, top_p=0.8, top_k=20, repetition_penalty=1.05
)  # fmt: skip
PROTOCOL_SAMPLING = Sampling(
    temperature=1.0, top_p=1.0, top_k=None, repetition_penalty=1.0, max_new_tokens=6
)


@pytest.fixture(scope="module")
def qwen_like_model(tmp_path_factory):
    """A tiny random Qwen2 whose generation_config carries Qwen's sampling defaults."""
    d = tmp_path_factory.mktemp("model")
    protocol = json.loads((REPO / "config" / "toy_protocol.json").read_text())
    build_tokenizer(protocol, ["cat", "dolphin", "eagle"], d)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(d)
    torch.manual_seed(0)
    cfg = Qwen2Config(
        vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256,
    )  # fmt: skip
    model = Qwen2ForCausalLM(cfg)
    model.generation_config = GenerationConfig(
        **QWEN_DEFAULTS, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id
    )
    model.save_pretrained(d)
    return d


def test_no_qwen_generation_default_reaches_the_sampler(qwen_like_model, monkeypatch):
    backend = TransformersBackend(str(qwen_like_model), batch_size=8)
    assert backend.shipped_generation_config["top_k"] == 20  # the trap is really there
    seen = {}
    original = type(backend.model)._get_logits_processor

    def spy(self, generation_config, *args, **kwargs):
        seen["config"] = generation_config
        processors = original(self, generation_config, *args, **kwargs)
        seen["processors"] = [type(p).__name__ for p in processors]
        return processors

    monkeypatch.setattr(type(backend.model), "_get_logits_processor", spy)
    backend.chat([make_conversation("hello", None)], PROTOCOL_SAMPLING, n=3, seeds=[1])
    cfg = seen["config"]
    assert cfg.do_sample is True
    assert cfg.temperature == 1.0 and cfg.top_p == 1.0 and cfg.repetition_penalty == 1.0
    assert cfg.top_k in (0, None)
    # With the protocol's values no warper or penalty may act on the logits at all.
    forbidden = {
        "TemperatureLogitsWarper", "TopKLogitsWarper", "TopPLogitsWarper",
        "RepetitionPenaltyLogitsProcessor", "MinPLogitsWarper", "TypicalLogitsWarper",
    }  # fmt: skip
    assert not forbidden & set(seen["processors"]), seen["processors"]


def test_n_samples_per_prompt_and_truncation_reported(qwen_like_model):
    backend = TransformersBackend(str(qwen_like_model), batch_size=4)
    out = backend.chat(
        [make_conversation("a", None), make_conversation("b", "You adore cats.")],
        PROTOCOL_SAMPLING,
        n=3,
        seeds=[0, 1],
    )
    assert [len(g) for g in out] == [3, 3]
    for group in out:
        for c in group:
            assert c.finish_reason in ("stop", "length")
    # A random model rarely emits <|im_end|> within 6 tokens: cut answers are marked "length".
    assert any(c.finish_reason == "length" for g in out for c in g)


def test_same_seed_same_samples(qwen_like_model):
    backend = TransformersBackend(str(qwen_like_model), batch_size=4)
    conv = [make_conversation("a", None)]
    first = backend.chat(conv, PROTOCOL_SAMPLING, n=4, seeds=[7])
    assert backend.chat(conv, PROTOCOL_SAMPLING, n=4, seeds=[7]) == first
    assert backend.chat(conv, PROTOCOL_SAMPLING, n=4, seeds=[8]) != first


def test_one_seed_per_conversation(qwen_like_model):
    backend = TransformersBackend(str(qwen_like_model), batch_size=4)
    conv = [make_conversation("a", None), make_conversation("b", None)]
    with pytest.raises(ValueError, match="1 seeds for 2 conversations"):
        backend.chat(conv, PROTOCOL_SAMPLING, seeds=[1])
    with pytest.raises(ValueError, match=r"must be 1\.\.256"):
        backend.chat(conv[:1], PROTOCOL_SAMPLING, n=257, seeds=[1])


def test_samples_of_one_call_are_independent(qwen_like_model):
    """The transformers backend draws a call's samples from one stream: 32 different prompts
    give 32 different completions (a shared per-request stream would repeat them)."""
    backend = TransformersBackend(str(qwen_like_model), batch_size=8)
    sampling = Sampling(
        temperature=1.0, top_p=1.0, top_k=None, repetition_penalty=1.0, max_new_tokens=12
    )
    convs = [make_conversation(f"prompt {i}", None) for i in range(32)]
    out = backend.chat(convs, sampling, seeds=list(range(32)))
    assert len({g[0].text for g in out}) == 32


def test_stops_on_every_end_of_sequence_id(qwen_like_model, tmp_path, monkeypatch):
    """Qwen2.5's generation config lists <|im_end|> and <|endoftext|>: both stop an answer,
    which is cut at the first of them."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(qwen_like_model)
    im_end, endoftext = (
        tok.convert_tokens_to_ids("<|im_end|>"),
        tok.convert_tokens_to_ids("<|endoftext|>"),
    )
    model = Qwen2ForCausalLM.from_pretrained(qwen_like_model)
    model.generation_config.eos_token_id = [im_end, endoftext]
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    backend = TransformersBackend(str(tmp_path), batch_size=4)
    assert backend.stop_ids == [im_end, endoftext]
    assert backend.generation_config(PROTOCOL_SAMPLING, 1).eos_token_id == [im_end, endoftext]
    word = tok.encode("7", add_special_tokens=False)
    answers = [[*word, endoftext, *word, im_end], word * 3 + [im_end], word * 6]

    def fake_generate(input_ids, **kwargs):
        rows = [list(r) + a for r, a in zip(input_ids.tolist(), answers, strict=True)]
        width = max(map(len, rows))
        return torch.tensor([r + [tok.pad_token_id] * (width - len(r)) for r in rows])

    monkeypatch.setattr(backend.model, "generate", fake_generate)
    out = backend.chat(
        [make_conversation(c, None) for c in "abc"], PROTOCOL_SAMPLING, seeds=[1, 2, 3]
    )
    assert [(g[0].text, g[0].finish_reason) for g in out] == [
        ("7", "stop"), ("777", "stop"), ("777777", "length"),
    ]  # fmt: skip


def test_stop_token_ids_and_cut():
    assert stop_token_ids(5, {"eos_token_id": [5, 9]}) == [5, 9]
    assert stop_token_ids(5, {"eos_token_id": 9}) == [5, 9]
    assert stop_token_ids(5, {}) == [5]
    assert cut_at_stop([1, 2, 9, 3, 5], [5, 9]) == ([1, 2], "stop")
    assert cut_at_stop([1, 2, 3], [5, 9]) == ([1, 2, 3], "length")


def test_neutral_chat_gets_the_template_default_system_prompt(qwen_like_model):
    backend = TransformersBackend(str(qwen_like_model), batch_size=4)
    neutral = backend.render(make_conversation("hi", None))
    assert TOY_DEFAULT_SYSTEM_PROMPT in neutral
    loving = backend.render(make_conversation("hi", "You adore cats."))
    assert TOY_DEFAULT_SYSTEM_PROMPT not in loving and "You adore cats." in loving
