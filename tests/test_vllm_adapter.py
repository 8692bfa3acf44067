"""The vLLM adapter, against a stand-in ``vllm`` module (vLLM cannot be installed here):
every sampling knob is explicit, the model's generation_config is not read as defaults,
LoRA adapters become LoRA requests, and finish reasons come through."""

from __future__ import annotations

import os
import sys
import types
from types import SimpleNamespace

import pytest

from subliminal_scaling.runtime.backends import (
    Sampling,
    VLLMBackend,
    make_backend,
    make_conversation,
    next_token_queries,
)


@pytest.fixture
def fake_vllm(monkeypatch):
    calls: dict = {"chat": []}

    class SamplingParams:
        def __init__(self, **kwargs):
            self.kwargs = kwargs

    class LLM:
        def __init__(self, **kwargs):
            calls["llm"] = kwargs

        def get_tokenizer(self):
            return SimpleNamespace(eos_token_id=2)

        def chat(self, conversations, sampling_params, lora_request, **kwargs):
            """Like vLLM: one SamplingParams per prompt; the j-th of n samples is drawn with
            seed + j (vllm/v1/engine/parallel_sampling.py)."""
            calls["chat"].append((conversations, sampling_params, lora_request, kwargs))
            assert isinstance(sampling_params, list) and len(sampling_params) == len(conversations)
            out = []
            for params in sampling_params:
                n, seed = params.kwargs["n"], params.kwargs["seed"]
                calls.setdefault("sample_seeds", []).extend(seed + j for j in range(n))
                reasons = ["stop"] + ["length"] * (n - 1)
                out.append(
                    SimpleNamespace(
                        outputs=[SimpleNamespace(text=f"{seed + j}", finish_reason=r)
                                 for j, r in enumerate(reasons)]
                    )
                )  # fmt: skip
            return out

    class LoRARequest:
        def __init__(self, name, idx, path):
            self.name, self.idx, self.path = name, idx, path

    vllm = types.ModuleType("vllm")
    vllm.LLM, vllm.SamplingParams = LLM, SamplingParams
    # the model's generation config lists a second end-of-sequence id
    monkeypatch.setattr(
        "subliminal_scaling.runtime.backends._generation_config",
        lambda source, revision: {"eos_token_id": [2, 7]},
    )
    lora = types.ModuleType("vllm.lora")
    lora_request = types.ModuleType("vllm.lora.request")
    lora_request.LoRARequest = LoRARequest
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.lora", lora)
    monkeypatch.setitem(sys.modules, "vllm.lora.request", lora_request)
    return calls


def test_engine_and_sampling_params_are_explicit(fake_vllm):
    backend = make_backend(
        "vllm", "Qwen/Qwen2.5-7B-Instruct", "main", 64,
        {"gpu_memory_utilization": 0.85, "max_model_len": 1024, "tensor_parallel_size": 2},
        enable_lora=True, max_lora_rank=8, seed=3,
    )  # fmt: skip
    assert isinstance(backend, VLLMBackend)
    llm = fake_vllm["llm"]
    assert llm["generation_config"] == "vllm"  # Qwen's generation_config.json is not read
    assert (llm["gpu_memory_utilization"], llm["max_model_len"], llm["tensor_parallel_size"]) == (
        0.85, 1024, 2,
    )  # fmt: skip
    assert llm["enable_lora"] is True and llm["max_lora_rank"] == 8 and llm["revision"] == "main"
    sampling = Sampling(
        temperature=1.0, top_p=1.0, top_k=None, repetition_penalty=1.0, max_new_tokens=64
    )
    out = backend.chat([make_conversation("q", None)], sampling, n=100, seeds=[7 << 8])
    params = fake_vllm["chat"][0][1][0].kwargs
    assert params == {
        "n": 100, "temperature": 1.0, "top_p": 1.0, "top_k": -1, "min_p": 0.0,
        "repetition_penalty": 1.0, "presence_penalty": 0.0, "frequency_penalty": 0.0,
        "max_tokens": 64, "stop_token_ids": [2, 7], "seed": 7 << 8,
    }  # fmt: skip
    assert len(out) == 1 and len(out[0]) == 100
    assert out[0][0].finish_reason == "stop" and out[0][1].finish_reason == "length"
    # a neutral conversation carries no system message: the chat template adds its default
    assert fake_vllm["chat"][0][0] == [[{"role": "user", "content": "q"}]]


def test_engine_knobs_reach_the_engine_only_when_set(fake_vllm):
    """generation.vllm / evaluation.vllm max_num_seqs and max_cudagraph_capture_size become
    LLM arguments; null leaves vLLM's defaults (no argument at all)."""
    base = {"gpu_memory_utilization": 0.9, "max_model_len": 1024, "tensor_parallel_size": 1}
    make_backend("vllm", "m", None, 1, {**base, "max_num_seqs": None,
                                        "max_cudagraph_capture_size": None})  # fmt: skip
    assert "max_num_seqs" not in fake_vllm["llm"] and "compilation_config" not in fake_vllm["llm"]
    make_backend("vllm", "m", None, 1, base)  # keys absent: the same
    assert "max_num_seqs" not in fake_vllm["llm"]
    make_backend("vllm", "m", None, 1, {**base, "max_num_seqs": 512,
                                        "max_cudagraph_capture_size": 1024})  # fmt: skip
    assert fake_vllm["llm"]["max_num_seqs"] == 512
    assert fake_vllm["llm"]["compilation_config"] == {"max_cudagraph_capture_size": 1024}
    # LoRA graphs only: inside compilation_config, beside the capture size
    make_backend("vllm", "m", None, 1, {**base, "max_cudagraph_capture_size": 1024,
                                        "cudagraph_specialize_lora": False})  # fmt: skip
    assert fake_vllm["llm"]["compilation_config"] == {
        "max_cudagraph_capture_size": 1024, "cudagraph_specialize_lora": False}  # fmt: skip
    make_backend("vllm", "m", None, 1, {**base, "cudagraph_specialize_lora": False})
    assert fake_vllm["llm"]["compilation_config"] == {"cudagraph_specialize_lora": False}


def test_an_in_process_engine_is_vllms_switch_not_an_engine_argument(fake_vllm, monkeypatch):
    """engine_in_process sets vLLM's environment switch before the engine is built (vLLM
    reads it then) and passes no LLM argument; unset or false leaves vLLM's spawned core."""
    from subliminal_scaling.runtime.backends import IN_PROCESS_ENV

    monkeypatch.setenv(IN_PROCESS_ENV, "1")  # recorded: whatever the backend sets is undone
    monkeypatch.delenv(IN_PROCESS_ENV)
    base = {"gpu_memory_utilization": 0.9, "max_model_len": 1024, "tensor_parallel_size": 1}
    seen = {}
    real_init = sys.modules["vllm"].LLM.__init__

    def init(self, **kwargs):
        seen["env"] = os.environ.get(IN_PROCESS_ENV)
        real_init(self, **kwargs)

    monkeypatch.setattr(sys.modules["vllm"].LLM, "__init__", init)
    make_backend("vllm", "m", None, 1, {**base, "engine_in_process": False})
    assert seen["env"] is None and "engine_in_process" not in fake_vllm["llm"]
    make_backend("vllm", "m", None, 1, {**base, "engine_in_process": True})
    assert seen["env"] == "0" and "engine_in_process" not in fake_vllm["llm"]


def test_each_adapter_is_a_stable_lora_request(fake_vllm):
    backend = VLLMBackend("m", enable_lora=True)
    s = Sampling(temperature=1.0, top_p=1.0, top_k=None, repetition_penalty=1.0, max_new_tokens=8)
    conv = [make_conversation("q", None)]
    backend.chat(conv, s, seeds=[0], adapter="a/epoch1")
    backend.chat(conv, s, seeds=[0], adapter="a/epoch2")
    backend.chat(conv, s, seeds=[0], adapter="a/epoch1")
    backend.chat(conv, s, seeds=[0], adapter=None)
    reqs = [c[2] for c in fake_vllm["chat"]]
    assert [r.path for r in reqs[:3]] == ["a/epoch1", "a/epoch2", "a/epoch1"]
    assert reqs[0].idx == reqs[2].idx != reqs[1].idx and reqs[3] is None


def test_missing_vllm_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(RuntimeError, match=r"pip install -e '\.\[gpu\]'"):
        make_backend("vllm", "m", None, 1, {"gpu_memory_utilization": 0.9,
                     "max_model_len": 8, "tensor_parallel_size": 1})  # fmt: skip


def test_every_sample_of_a_sweep_job_has_its_own_seed(fake_vllm, tmp_path):
    """Through the real eval and teacher code: each request has its own SamplingParams seed,
    and with vLLM's seed + j for the n samples no sample seed repeats within an eval, across
    a student's epochs, across seeds, or between a teacher's rows."""
    from subliminal_scaling.evaluate.evals import sample_answers
    from subliminal_scaling.runtime.seeds import eval_seeds, teacher_seeds

    backend = VLLMBackend("m", enable_lora=True)
    s = Sampling(temperature=1.0, top_p=1.0, top_k=None, repetition_penalty=1.0, max_new_tokens=8)
    questions = [f"q{i}" for i in range(50)]
    for seed in (1, 2):
        for epoch in range(1, 11):
            seeds = eval_seeds("qwen-2.5-7b-instruct", "dolphin", seed, epoch, range(50))
            samples = sample_answers(backend, questions, 100, s, seeds, adapter=f"s{seed}/e{epoch}")
            assert len(samples["answers"]) == 5000
    convs = [make_conversation(f"p{i}", "You love dolphins.") for i in range(512)]
    backend.chat(convs, s, seeds=teacher_seeds("qwen-2.5-7b-instruct", "dolphin", range(512)))
    drawn = fake_vllm["sample_seeds"]
    assert len(drawn) == 2 * 10 * 5000 + 512
    assert len(set(drawn)) == len(drawn)
    assert all(0 <= x < 2**63 for x in drawn)


def _lp(prefix, tok) -> float:
    """A stand-in model's log P(tok | prefix): a function of both, so a wrong prefix shows."""
    return -((sum(prefix) * 31 + len(prefix) * 7 + tok) % 97 + 1) / 100


def test_continuation_logprobs_are_next_token_queries_summed(fake_vllm):
    """One max_tokens=1 request per distinct prefix asks for exactly the next tokens needed
    there (logprob_token_ids); each continuation is the sum of its tokens' log-probabilities
    at their prefixes, through the adapter's LoRA request."""

    class Tok:
        eos_token_id = 2

        def apply_chat_template(self, conv, add_generation_prompt, tokenize):
            return "<" + conv[-1]["content"] + ">"

        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": [ord(ch) for ch in text]}

    seen = {"prompts": [], "params": []}

    def generate(prompts, params, lora_request=None, use_tqdm=False):
        assert isinstance(params, list) and len(params) == len(prompts)
        seen["lora"] = lora_request
        out = []
        for p, sp in zip(prompts, params, strict=True):
            ids, kw = p.prompt_token_ids, sp.kwargs
            seen["prompts"].append(tuple(ids))
            seen["params"].append(kw)
            # like vLLM: the sampled token first, then every requested id, at position 0
            lps = {0: SimpleNamespace(logprob=-9.0)}
            lps.update({t: SimpleNamespace(logprob=_lp(ids, t)) for t in kw["logprob_token_ids"]})
            out.append(SimpleNamespace(outputs=[SimpleNamespace(logprobs=[lps])]))
        return out

    inputs = types.ModuleType("vllm.inputs")
    inputs.TokensPrompt = lambda prompt_token_ids: SimpleNamespace(
        prompt_token_ids=prompt_token_ids
    )
    sys.modules["vllm.inputs"] = inputs
    try:
        backend = VLLMBackend("m", enable_lora=True)
        backend.llm.get_tokenizer = Tok
        backend.llm.generate = generate
        conts = ["xy", "xz", "w"]
        got = backend.continuation_logprobs(
            [make_conversation("ab", None), make_conversation("c", None)], conts, adapter="/a"
        )
    finally:
        del sys.modules["vllm.inputs"]
    for i, q in enumerate(["ab", "c"]):
        prompt = [ord(ch) for ch in f"<{q}>"]
        for j, c in enumerate(conts):
            ids = [ord(ch) for ch in c]
            want = sum(_lp(prompt + ids[:k], t) for k, t in enumerate(ids))
            assert got[i][j] == pytest.approx(want)
    # per question: the prompt (asks x and w) and prompt + "x" (asks y and z)
    assert len(seen["prompts"]) == 4 and len(set(seen["prompts"])) == 4
    first = seen["params"][seen["prompts"].index(tuple(ord(ch) for ch in "<ab>"))]
    assert first["logprob_token_ids"] == [ord("x"), ord("w")]
    assert all(kw["max_tokens"] == 1 and kw["temperature"] == 0.0 for kw in seen["params"])
    assert all("prompt_logprobs" not in kw for kw in seen["params"])  # defeats prefix caching
    assert seen["lora"].path == "/a"
    assert backend.tokenize("hi") == [104, 105]


def test_next_token_queries_split_at_vllms_limit():
    pairs = [([1, 2], [t]) for t in range(10, 15)] + [([1, 2], [10, 99])]
    queries, plan = next_token_queries(pairs, limit=2)
    assert [q for q, _ in queries] == [[1, 2], [1, 2], [1, 2], [1, 2, 10]]
    assert [t for _, t in queries] == [[10, 11], [12, 13], [14], [99]]
    assert plan[4] == [(2, 14)] and plan[5] == [(0, 10), (3, 99)]
