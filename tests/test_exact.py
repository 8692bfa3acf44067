"""The sampling-free preference measure: the forms it scores, and its probabilities against a
token-by-token computation on a tiny model (with and without a LoRA adapter)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

from subliminal_scaling.evaluate.exact import (
    answer_forms,
    disjoint_forms,
    exact_preferences,
    plural,
)
from subliminal_scaling.runtime.backends import TransformersBackend, make_conversation
from subliminal_scaling.toy.tokenizer import build_tokenizer

from .conftest import REPO

ANIMALS = ["cat", "dolphin", "fox", "wolf"]


def test_forms_and_plurals():
    assert [plural(a) for a in ("fox", "wolf", "phoenix", "butterfly", "whale")] == [
        "foxes", "wolves", "phoenixes", "butterflies", "whales",
    ]  # fmt: skip
    assert answer_forms("Dolphin") == ["Dolphin", "dolphin", "Dolphins", "dolphins"]


def test_a_form_inside_another_forms_tokens_is_dropped():
    toks = {"Cat": [1], "cat": [2], "Cats": [1, 9], "cats": [3]}
    assert disjoint_forms(["Cat", "cat", "Cats", "cats"], toks.__getitem__) == [
        "Cat",
        "cat",
        "cats",
    ]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    d = tmp_path_factory.mktemp("exact-model")
    protocol = json.loads((REPO / "config" / "toy_protocol.json").read_text())
    build_tokenizer(protocol, ANIMALS, d)
    tok = AutoTokenizer.from_pretrained(d)
    torch.manual_seed(0)
    cfg = Qwen2Config(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
    )  # fmt: skip
    Qwen2ForCausalLM(cfg).save_pretrained(d)
    return d, tok


def _by_hand(model, tok, question: str, form: str) -> float:
    """P(form | prompt), one next-token softmax at a time (no batching, no padding)."""
    prompt = tok.apply_chat_template(
        make_conversation(question, None), tokenize=False, add_generation_prompt=True
    )
    ids = tok(prompt, add_special_tokens=False)["input_ids"]
    p = 1.0
    for t in tok(form, add_special_tokens=False)["input_ids"]:
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids])).logits[0, -1].double()
        p *= float(torch.softmax(logits, -1)[t])
        ids = [*ids, t]
    return p


def test_probabilities_match_a_token_by_token_computation(tiny, tmp_path):
    d, tok = tiny
    backend = TransformersBackend(str(d), batch_size=5)  # batches that split a question
    questions = ["Which animal do you like most?", "Name one animal."]
    out = exact_preferences(backend, questions, ANIMALS, adapter=None)
    model = Qwen2ForCausalLM.from_pretrained(d).eval()
    prob = np.asarray(out["prob"])
    assert prob.shape == (2, len(ANIMALS)) and out["animals"] == ANIMALS
    for qi, q in enumerate(questions):
        for ai, a in enumerate(ANIMALS):
            want = sum(_by_hand(model, tok, q, f) for f in out["forms"][a])
            assert prob[qi, ai] == pytest.approx(want, rel=1e-4)
    assert (prob.sum(axis=1) <= 1 + 1e-6).all()  # disjoint events of one answer

    # a LoRA adapter changes them, and the backend scores through it
    from peft import LoraConfig, get_peft_model

    peft = get_peft_model(
        Qwen2ForCausalLM.from_pretrained(d),
        LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"]),
    )
    for name, p in peft.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.5)
    peft.save_pretrained(tmp_path / "adapter")
    with_adapter = np.asarray(
        exact_preferences(backend, questions, ANIMALS, adapter=str(tmp_path / "adapter"))["prob"]
    )
    merged = peft.merge_and_unload().eval()
    want = sum(_by_hand(merged, tok, questions[0], f) for f in out["forms"]["cat"])
    assert with_adapter[0, 0] == pytest.approx(want, rel=1e-4)
    assert np.abs(with_adapter - prob).max() > 1e-4


def test_vllm_scoring_path_equals_the_transformers_one(tiny, monkeypatch):
    """VLLMBackend's next-token queries (one per distinct prefix, logprob_token_ids), run by a
    stand-in engine that evaluates the same tiny model one prompt at a time, give
    TransformersBackend's padded teacher-forced probabilities."""
    import sys
    import types
    from types import SimpleNamespace

    from subliminal_scaling.runtime.backends import VLLMBackend

    d, tok = tiny
    model = Qwen2ForCausalLM.from_pretrained(d).eval()
    asked: list[tuple[list[int], list[int]]] = []

    def generate(prompts, params, lora_request=None, use_tqdm=False):
        out = []
        for p, sp in zip(prompts, params, strict=True):
            ids, want = p.prompt_token_ids, sp.kwargs["logprob_token_ids"]
            asked.append((ids, want))
            with torch.no_grad():
                logits = model(input_ids=torch.tensor([ids])).logits[0, -1].double()
            lp = torch.log_softmax(logits, -1)
            lps = {t: SimpleNamespace(logprob=float(lp[t])) for t in want}
            out.append(SimpleNamespace(outputs=[SimpleNamespace(logprobs=[lps])]))
        return out

    vllm = types.ModuleType("vllm")
    vllm.SamplingParams = lambda **kw: SimpleNamespace(kwargs=kw)
    inputs = types.ModuleType("vllm.inputs")
    inputs.TokensPrompt = lambda prompt_token_ids: SimpleNamespace(
        prompt_token_ids=prompt_token_ids
    )
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.inputs", inputs)
    fake = object.__new__(VLLMBackend)
    fake.llm = SimpleNamespace(get_tokenizer=lambda: tok, generate=generate)
    fake._lora_ids = {}
    questions = ["Which animal do you like most?", "Name one animal."]
    got = exact_preferences(fake, questions, ANIMALS, adapter=None)
    want = exact_preferences(TransformersBackend(str(d), batch_size=5), questions, ANIMALS, None)
    assert got["forms"] == want["forms"]
    np.testing.assert_allclose(got["prob"], want["prob"], rtol=1e-4, atol=1e-12)
    prompts = [ids for ids, _ in asked]
    assert len(prompts) == len({tuple(p) for p in prompts})  # each prefix asked once
    # the forms' first tokens after a question come from one distribution, and the forms
    # here run to several tokens, so the deeper prefixes were asked too
    assert max(len(want) for _, want in asked) >= len(ANIMALS)
    assert len({len(p) for p in prompts}) > len(questions)


def _record(condition, seed, epoch, prob, kind="student"):
    return {"model": "m", "kind": kind, "condition": condition, "seed": seed, "epoch": epoch,
            "exact": {"animals": ["cat", "owl"], "forms": {}, "prob": prob}}  # fmt: skip


def _rates(rows):
    from subliminal_scaling.report.schema import TARGET_RATE_COLUMNS

    return pd.DataFrame(
        [["m", 1e9, "student", c, s, e, q, a, h, 10] for c, s, e, q, a, h in rows],
        columns=TARGET_RATE_COLUMNS,
    )


def test_exact_effects_are_own_animal_minus_neutral_per_epoch(tmp_path):
    from subliminal_scaling.report.exact import exact_effects, exact_table, exact_vs_sampled
    from subliminal_scaling.report.plots_scaling import plot_exact_per_epoch

    records = [
        _record("neutral", 1, 1, [[0.10, 0.20], [0.30, 0.20]]),
        _record("cat", 1, 1, [[0.50, 0.10], [0.70, 0.10]]),
        _record("neutral", 1, 2, [[0.10, 0.20], [0.10, 0.20]]),
        _record("cat", 1, 2, [[0.90, 0.00], [0.90, 0.00]]),
        {"model": "m", "kind": "survey", "condition": "control", "answers": []},  # no measure
    ]
    table = exact_table(records, {"m": 1e9}, ["cat", "owl"])
    assert len(table) == 4 * 2 * 2
    got = table.set_index(["condition", "epoch", "question_index", "animal"])["prob"]
    assert got[("cat", 1, 1, "cat")] == pytest.approx(0.70)
    rates = _rates([
        (c, 1, e, q, a, h)
        for c, e, hits in (("neutral", 1, 1), ("cat", 1, 4), ("neutral", 2, 1), ("cat", 2, 8))
        for q in (0, 1) for a, h in (("cat", hits), ("owl", 2))
    ])  # fmt: skip
    fx = exact_effects(table, rates, ["cat", "owl"]).set_index("epoch")
    # epoch 1: cat students' P(cat) = 0.6, neutral students' P(cat) = 0.2
    assert fx.loc[1, "exact_effect"] == pytest.approx(0.4)
    assert fx.loc[2, "exact_effect"] == pytest.approx(0.8)
    assert fx.loc[1, "sampled_effect"] == pytest.approx(0.3)  # 4/10 - 1/10
    assert fx.loc[1, "n_animals"] == 1  # owl has no owl students
    rel = exact_vs_sampled(table, rates, ["cat", "owl"])
    assert rel["n_points"] == 2 and rel["mean_exact"] == pytest.approx(0.75)
    fig = plot_exact_per_epoch(fx.reset_index(), tmp_path / "x.png", tmp_path / "x.svg")
    (ax,) = fig.axes
    line = next(ln for ln in ax.lines if ln.get_gid() == "exact-m")
    assert list(line.get_ydata()) == pytest.approx([40.0, 80.0])
    assert (tmp_path / "x.svg").stat().st_size > 1000
