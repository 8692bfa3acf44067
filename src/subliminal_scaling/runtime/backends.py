"""Sampling backends behind one interface: vLLM (GPU default) and transformers (CPU, toy,
or any GPU without vLLM).

Both set every sampling knob explicitly. Qwen ships a generation_config (T 0.7, top_p 0.8,
top_k 20, repetition penalty 1.05) that is NOT the protocol; neither backend lets it leak in.
"""

from __future__ import annotations

import gc
import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from tqdm.auto import tqdm

from subliminal_scaling.runtime.seeds import batch_seed, check_samples

log = logging.getLogger(__name__)

Message = dict[str, str]
Conversation = list[Message]


@dataclass(frozen=True)
class Sampling:
    """Sampling parameters, all explicit. ``top_k=None`` means no top-k."""

    temperature: float
    top_p: float
    top_k: int | None
    repetition_penalty: float
    max_new_tokens: int

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> Sampling:
        return cls(
            temperature=float(cfg["temperature"]),
            top_p=float(cfg["top_p"]),
            top_k=cfg["top_k"],
            repetition_penalty=float(cfg["repetition_penalty"]),
            max_new_tokens=int(cfg["max_new_tokens"]),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str  # "stop" (end of turn) or "length" (cut by max_new_tokens)


class Backend(Protocol):
    name: str

    def chat(
        self,
        conversations: Sequence[Conversation],
        sampling: Sampling,
        *,
        seeds: Sequence[int],
        n: int = 1,
        adapter: str | None = None,
    ) -> list[list[Completion]]:
        """``n`` completions for each conversation, with ``adapter`` (a LoRA dir) if given.

        ``seeds`` has one seed per conversation (``runtime.seeds``): requests never share a
        random stream, and a request's samples do not depend on what else is batched with it
        (vLLM), or depend only on the batch's own seeds (transformers).
        """
        ...

    def render(self, conversation: Conversation) -> str:
        """The exact prompt text the model sees for ``conversation``."""
        ...

    def tokenize(self, text: str) -> list[int]:
        """Token ids of ``text`` alone (no special tokens), as a continuation is scored."""
        ...

    def continuation_logprobs(
        self,
        conversations: Sequence[Conversation],
        continuations: Sequence[str],
        adapter: str | None = None,
    ) -> list[list[float]]:
        """Teacher-forced: ``[i][j]`` is log P(continuation j | conversation i's prompt), the
        sum over the continuation's tokens, right after the generation prompt. No sampling."""
        ...

    def close(self) -> None: ...


def render_chat(tokenizer: Any, conversation: Conversation) -> str:
    """The exact prompt text the model sees (chat template + generation prompt)."""
    return tokenizer.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)


def stop_token_ids(tokenizer_eos: int | None, generation_config: dict[str, Any]) -> list[int]:
    """Every end-of-sequence id: the tokenizer's, then the model's generation config's.

    Qwen2.5-Instruct's generation config lists both ``<|im_end|>`` and ``<|endoftext|>``;
    stopping on only one lets an answer run on past the other.
    """
    listed = generation_config.get("eos_token_id")
    listed = [] if listed is None else [listed] if isinstance(listed, int) else list(listed)
    ids = [tokenizer_eos, *listed]
    return list(dict.fromkeys(int(i) for i in ids if i is not None))


def cut_at_stop(ids: Sequence[int], stops: Sequence[int]) -> tuple[list[int], str]:
    """Tokens before the first stop id, and the finish reason ("stop", else "length")."""
    stop_set = set(stops)
    for i, tok in enumerate(ids):
        if tok in stop_set:
            return list(ids[:i]), "stop"
    return list(ids), "length"


def token_ids(tokenizer: Any, text: str) -> list[int]:
    """Token ids of ``text`` alone (no special tokens)."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def scored_pairs(
    tokenizer: Any, conversations: Sequence[Conversation], continuations: Sequence[str]
) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, continuation ids) for every conversation x continuation, tokenised apart:
    the generation prompt ends a chat turn's header, so no token spans the boundary."""
    cont = [token_ids(tokenizer, c) for c in continuations]
    if any(not c for c in cont):
        raise ValueError("an empty continuation has no tokens to score")
    out = []
    for conv in conversations:
        ids = token_ids(tokenizer, render_chat(tokenizer, conv))
        out += [(ids, c) for c in cont]
    return out


#: vLLM's bound on ``SamplingParams.logprob_token_ids`` (vllm/sampling_params.py, 0.26.0)
MAX_LOGPROB_TOKEN_IDS = 128


def next_token_queries(
    pairs: Sequence[tuple[Sequence[int], Sequence[int]]], limit: int = MAX_LOGPROB_TOKEN_IDS
) -> tuple[list[tuple[list[int], list[int]]], list[list[tuple[int, int]]]]:
    """Teacher forcing as next-token queries, one per distinct prefix.

    A continuation's log-probability is the sum, over its tokens, of log P(token | prompt +
    the tokens before it). Every (prefix, next token) of every pair is grouped by prefix:
    ``queries[k] = (prefix ids, the next tokens wanted there)`` (at most ``limit`` tokens; a
    prefix needing more gets several queries), and ``plan[i]`` lists pair ``i``'s
    ``(query index, token)`` steps. Pairs sharing a prompt share its queries: all the first
    tokens after one question are read from a single next-token distribution.
    """
    wanted: dict[tuple[int, ...], list[int]] = {}
    for prompt, cont in pairs:
        for j, tok in enumerate(cont):
            toks = wanted.setdefault((*prompt, *cont[:j]), [])
            if tok not in toks:
                toks.append(tok)
    queries: list[tuple[list[int], list[int]]] = []
    where: dict[tuple[tuple[int, ...], int], int] = {}
    for prefix, toks in wanted.items():
        for start in range(0, len(toks), limit):
            queries.append((list(prefix), toks[start : start + limit]))
            where.update({(prefix, t): len(queries) - 1 for t in toks[start : start + limit]})
    plan = [
        [(where[((*prompt, *cont[:j]), tok)], tok) for j, tok in enumerate(cont)]
        for prompt, cont in pairs
    ]
    return queries, plan


def per_conversation(scores: Sequence[float], n_continuations: int) -> list[list[float]]:
    """``scored_pairs`` order (conversation-major) back to one row per conversation."""
    n = n_continuations
    return [list(scores[i : i + n]) for i in range(0, len(scores), n)]


def _check_seeds(conversations: Sequence[Conversation], seeds: Sequence[int], n: int) -> None:
    if len(seeds) != len(conversations):
        raise ValueError(f"{len(seeds)} seeds for {len(conversations)} conversations")
    check_samples(n)


def make_conversation(user: str, system: str | None) -> Conversation:
    """A chat with an optional system message. ``None`` means no system message at all, so
    the chat template inserts its default (an empty string would suppress it)."""
    conv: Conversation = [] if system is None else [{"role": "system", "content": system}]
    conv.append({"role": "user", "content": user})
    return conv


class TransformersBackend:
    """Batched sampling with ``model.generate``; LoRA adapters through PEFT."""

    name = "transformers"

    def __init__(
        self,
        model_source: str,
        revision: str | None = None,
        batch_size: int = 64,
        dtype: str = "auto",
        device: str | None = None,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

        self.torch = torch
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(model_source, revision=revision)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        torch_dtype = (
            (torch.bfloat16 if self.device == "cuda" else torch.float32)
            if dtype == "auto"
            else dtype
        )
        self.base = AutoModelForCausalLM.from_pretrained(
            model_source, revision=revision, dtype=torch_dtype
        ).to(self.device)
        self.base.eval()
        # The shipped generation_config is kept for the record only; a clean one replaces it
        # so that none of its sampling defaults can fill an unset field.
        self.shipped_generation_config = self.base.generation_config.to_dict()
        self.stop_ids = stop_token_ids(self.tokenizer.eos_token_id, self.shipped_generation_config)
        self.base.generation_config = GenerationConfig(
            eos_token_id=self.stop_ids, pad_token_id=self.tokenizer.pad_token_id
        )
        self.model = self.base
        self._adapter: str | None = None
        self.batch_size = batch_size

    def generation_config(self, sampling: Sampling, n: int) -> Any:
        """The complete GenerationConfig passed to ``generate``: every knob set explicitly."""
        from transformers import GenerationConfig

        return GenerationConfig(
            do_sample=True,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            top_k=0 if sampling.top_k is None else sampling.top_k,  # 0 disables top-k
            min_p=None,  # unset is safe: the model's generation_config was replaced
            typical_p=1.0,
            repetition_penalty=sampling.repetition_penalty,
            no_repeat_ngram_size=0,
            max_new_tokens=sampling.max_new_tokens,
            num_return_sequences=n,
            eos_token_id=self.stop_ids,
            pad_token_id=self.tokenizer.pad_token_id,
        )

    def render(self, conversation: Conversation) -> str:
        return render_chat(self.tokenizer, conversation)

    def _use_adapter(self, adapter: str | None) -> None:
        if adapter == self._adapter:
            return
        from peft import PeftModel

        if isinstance(self.model, PeftModel):
            self.model = self.model.unload()  # back to the untouched base weights
        self.model = self.base if adapter is None else PeftModel.from_pretrained(self.base, adapter)
        self.model.eval()
        self._adapter = adapter

    def chat(
        self,
        conversations: Sequence[Conversation],
        sampling: Sampling,
        *,
        seeds: Sequence[int],
        n: int = 1,
        adapter: str | None = None,
    ) -> list[list[Completion]]:
        """All of a call's samples come from one generator seeded by ``batch_seed(seeds)``:
        independent draws, reproducible for the same requests and batch size."""
        _check_seeds(conversations, seeds, n)
        torch = self.torch
        self._use_adapter(adapter)
        texts = [render_chat(self.tokenizer, c) for c in conversations]
        # Prompts per forward pass so that prompts x samples stays near batch_size.
        per_batch = max(1, self.batch_size // n)
        gen_cfg = self.generation_config(sampling, n)
        out: list[list[Completion]] = []
        torch.manual_seed(batch_seed(seeds))
        n_batches = math.ceil(len(texts) / per_batch)
        for b in tqdm(range(n_batches), desc=f"sampling ({self.name})", unit="batch", leave=False):
            chunk = texts[b * per_batch : (b + 1) * per_batch]
            enc = self.tokenizer(
                chunk, return_tensors="pt", padding=True, add_special_tokens=False
            ).to(self.device)
            with torch.inference_mode():
                seqs = self.model.generate(**enc, generation_config=gen_cfg)
            new = seqs[:, enc["input_ids"].shape[1] :].tolist()
            for i in range(len(chunk)):
                group = []
                for ids in new[i * n : (i + 1) * n]:
                    ids, reason = cut_at_stop(ids, self.stop_ids)
                    text = self.tokenizer.decode(ids, skip_special_tokens=True)
                    group.append(Completion(text=text, finish_reason=reason))
                out.append(group)
        return out

    def tokenize(self, text: str) -> list[int]:
        return token_ids(self.tokenizer, text)

    def continuation_logprobs(
        self,
        conversations: Sequence[Conversation],
        continuations: Sequence[str],
        adapter: str | None = None,
    ) -> list[list[float]]:
        """One forward pass per batch of prompt + continuation sequences (padded on the
        right), log-softmax in float32, the continuation tokens' log-probabilities summed."""
        torch = self.torch
        self._use_adapter(adapter)
        pairs = scored_pairs(self.tokenizer, conversations, continuations)
        scores: list[float] = []
        pad = self.tokenizer.pad_token_id
        for b in range(0, len(pairs), self.batch_size):
            chunk = pairs[b : b + self.batch_size]
            width = max(len(p) + len(c) for p, c in chunk)
            ids = torch.full((len(chunk), width), pad, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for i, (p, c) in enumerate(chunk):
                ids[i, : len(p) + len(c)] = torch.tensor(p + c)
                mask[i, : len(p) + len(c)] = 1
            with torch.inference_mode():
                logits = self.model(
                    input_ids=ids.to(self.device), attention_mask=mask.to(self.device)
                ).logits.float()
            logp = torch.log_softmax(logits, dim=-1).cpu()
            for i, (p, c) in enumerate(chunk):
                pos = torch.arange(len(p) - 1, len(p) + len(c) - 1)  # position t scores t + 1
                scores.append(float(logp[i, pos, torch.tensor(c)].sum()))
        return per_conversation(scores, len(continuations))

    def close(self) -> None:
        del self.model, self.base
        gc.collect()
        if self.torch.cuda.is_available():
            self.torch.cuda.empty_cache()


class VLLMBackend:
    """vLLM's documented offline API: ``LLM.chat`` with explicit ``SamplingParams``.

    Runs on the device (NVIDIA H200, vLLM 0.26.0; see README "Backends: what ran where").
    Every request carries its own ``SamplingParams`` with its own seed. ``generation_config=
    "vllm"`` keeps the model's sampling defaults out; its end-of-sequence ids are read
    separately and passed as ``stop_token_ids``, since vLLM otherwise stops only on the
    tokenizer's.
    """

    name = "vllm"

    def __init__(
        self,
        model_source: str,
        revision: str | None = None,
        gpu_memory_utilization: float = 0.9,
        max_model_len: int = 1024,
        tensor_parallel_size: int = 1,
        enable_lora: bool = False,
        max_lora_rank: int = 8,
        seed: int = 0,
        engine_args: dict[str, Any] | None = None,
        in_process: bool = False,
    ) -> None:
        """``engine_args``: further ``LLM`` arguments: the config's engine knobs
        (``vllm_engine_args``), and in benchmarks and device checks e.g.
        ``load_format="dummy"``. ``in_process``: run vLLM's engine core in this process
        (``engine_in_process``) instead of a spawned one that imports torch and vLLM again."""
        import os

        if in_process:  # read by vLLM when the engine is built (vllm.envs, not cached)
            os.environ[IN_PROCESS_ENV] = "0"
        from vllm import LLM

        self.llm = LLM(
            model=model_source,
            revision=revision,
            gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=max_model_len,
            tensor_parallel_size=tensor_parallel_size,
            enable_lora=enable_lora,
            max_lora_rank=max_lora_rank,
            seed=seed,
            # "vllm": do not read the model's generation_config.json as sampling defaults.
            generation_config="vllm",
            **(engine_args or {}),
        )
        self.stop_ids = stop_token_ids(
            self.llm.get_tokenizer().eos_token_id, _generation_config(model_source, revision)
        )
        self._lora_ids: dict[str, int] = {}

    def render(self, conversation: Conversation) -> str:
        return render_chat(self.llm.get_tokenizer(), conversation)

    def _lora(self, adapter: str | None) -> Any:
        if adapter is None:
            return None
        from vllm.lora.request import LoRARequest

        idx = self._lora_ids.setdefault(adapter, len(self._lora_ids) + 1)
        return LoRARequest(f"adapter-{idx}", idx, adapter)

    def sampling_params(self, sampling: Sampling, n: int, seed: int) -> Any:
        """One request's ``SamplingParams``: every knob explicit, its own seed."""
        from vllm import SamplingParams

        return SamplingParams(
            n=n,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            top_k=-1 if sampling.top_k is None else sampling.top_k,
            min_p=0.0,
            repetition_penalty=sampling.repetition_penalty,
            presence_penalty=0.0,
            frequency_penalty=0.0,
            max_tokens=sampling.max_new_tokens,
            stop_token_ids=list(self.stop_ids),
            seed=seed,
        )

    def chat(
        self,
        conversations: Sequence[Conversation],
        sampling: Sampling,
        *,
        seeds: Sequence[int],
        n: int = 1,
        adapter: str | None = None,
    ) -> list[list[Completion]]:
        _check_seeds(conversations, seeds, n)
        outputs = self.llm.chat(
            list(conversations),
            sampling_params=[self.sampling_params(sampling, n, s) for s in seeds],
            lora_request=self._lora(adapter),
            add_generation_prompt=True,
            use_tqdm=True,
        )
        return [
            [Completion(text=o.text, finish_reason=o.finish_reason or "stop") for o in out.outputs]
            for out in outputs
        ]

    def tokenize(self, text: str) -> list[int]:
        return token_ids(self.llm.get_tokenizer(), text)

    def continuation_logprobs(
        self,
        conversations: Sequence[Conversation],
        continuations: Sequence[str],
        adapter: str | None = None,
    ) -> list[list[float]]:
        """Teacher-forced log-probabilities from next-token queries (``next_token_queries``):
        one request per distinct prefix, ``max_tokens=1`` with ``logprob_token_ids`` (vLLM's
        scoring parameter: the raw log-probabilities of exactly those tokens, before any
        sampling transform), so prefix caching reuses each question's prompt across its
        animal names. On the H200 (0.5B shape, random LoRA) it gave exactly the values of
        ``prompt_logprobs`` of every prompt + name, the call checked against PEFT there;
        ``benchmarks/bench_vllm.py --parity`` compares it with TransformersBackend directly."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        pairs = scored_pairs(self.llm.get_tokenizer(), conversations, continuations)
        queries, plan = next_token_queries(pairs)
        outs = self.llm.generate(
            [TokensPrompt(prompt_token_ids=prefix) for prefix, _ in queries],
            [
                SamplingParams(max_tokens=1, temperature=0.0, logprob_token_ids=toks)
                for _, toks in queries
            ],
            lora_request=self._lora(adapter),
            use_tqdm=False,
        )
        got = [out.outputs[0].logprobs[0] for out in outs]  # {token id: Logprob}, first step
        scores = [sum(got[q][t].logprob for q, t in steps) for steps in plan]
        return per_conversation(scores, len(continuations))

    def close(self) -> None:
        from vllm.distributed.parallel_state import (
            destroy_distributed_environment,
            destroy_model_parallel,
        )

        del self.llm
        destroy_model_parallel()
        destroy_distributed_environment()
        gc.collect()
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _generation_config(model_source: str, revision: str | None) -> dict[str, Any]:
    """The model's shipped generation config (for its end-of-sequence ids), or ``{}``."""
    from transformers import GenerationConfig

    try:
        return GenerationConfig.from_pretrained(model_source, revision=revision).to_dict()
    except OSError:  # none shipped (e.g. a dummy-weight shape): the tokenizer's eos only
        log.warning("%s: no generation_config.json, stopping on the tokenizer's eos", model_source)
        return {}


#: ``generation.vllm`` / ``evaluation.vllm`` keys beyond the three every engine gets; null (the
#: default) leaves vLLM's own choice. vLLM 0.26 schedules up to 1,024 sequences at once on an
#: H200 (``max_num_seqs``) and captures CUDA graphs for decode batches of up to 512
#: (``max_cudagraph_capture_size``); benchmarks/bench_vllm.py --engine-variant compares them.
#: With LoRA on, vLLM 0.26 captures every graph twice, with and without an active adapter
#: (``cudagraph_specialize_lora``, default true): false captures the LoRA graphs only, a
#: shorter engine start, while a batch without an adapter (the control's eval) runs the LoRA
#: kernels with none active. ``enforce_eager`` (default false) compiles nothing and captures no
#: graphs: the shortest engine start, for engines that decode few tokens (the eval's one-word
#: answers, the exact measure's single forward passes). ``cudagraph_capture_sizes`` (default:
#: vLLM's list, 83 batch sizes up to 1,024) names the batch sizes captured: each is captured
#: once per graph kind (piecewise and full, and again per LoRA case), which is most of a warm
#: engine start; a batch between two sizes runs padded to the next one.
#: ``engine_in_process`` (default false) builds vLLM's engine core in the job's own process
#: (``VLLM_ENABLE_V1_MULTIPROCESSING=0``) instead of spawning one: a spawned core imports torch
#: and vLLM again, 18-21 s of each engine start on the H200 (tenth session's vLLM logs), but
#: runs beside the process that feeds it requests and reads their outputs.
ENGINE_KNOBS = (
    "max_num_seqs",
    "max_cudagraph_capture_size",
    "cudagraph_capture_sizes",
    "cudagraph_specialize_lora",
    "enforce_eager",
    "engine_in_process",
)
#: vLLM's switch between a spawned engine core (unset, "1") and one in-process ("0")
IN_PROCESS_ENV = "VLLM_ENABLE_V1_MULTIPROCESSING"


def _capture_sizes(sizes: Any) -> list[int]:
    return sorted({int(x) for x in sizes})


#: the knobs vLLM takes inside ``compilation_config``, with how each is read
COMPILATION_KNOBS: dict[str, Any] = {"max_cudagraph_capture_size": int,
                                     "cudagraph_capture_sizes": _capture_sizes,
                                     "cudagraph_specialize_lora": bool}  # fmt: skip


def check_capture_sizes(vllm_cfg: dict[str, Any], where: str) -> None:
    """vLLM refuses an engine whose largest captured size differs from a set
    ``max_cudagraph_capture_size``, but only once the engine starts (minutes in): say so now."""
    sizes, top = vllm_cfg.get("cudagraph_capture_sizes"), vllm_cfg.get("max_cudagraph_capture_size")
    if sizes and top is not None and max(sizes) != top:
        raise ValueError(
            f"{where}.cudagraph_capture_sizes: its largest size {max(sizes)} must equal "
            f"{where}.max_cudagraph_capture_size ({top}), or set one of them to null"
        )


def vllm_engine_args(vllm_cfg: dict[str, Any]) -> dict[str, Any]:
    """The further ``LLM(...)`` arguments a ``vllm`` config section asks for (none if unset)."""
    out: dict[str, Any] = {}
    if vllm_cfg.get("max_num_seqs") is not None:
        out["max_num_seqs"] = int(vllm_cfg["max_num_seqs"])
    if vllm_cfg.get("enforce_eager"):
        out["enforce_eager"] = True
    compiled = {
        key: kind(vllm_cfg[key])
        for key, kind in COMPILATION_KNOBS.items()
        if vllm_cfg.get(key) is not None
    }
    if compiled:
        out["compilation_config"] = compiled
    return out


def make_backend(
    name: str,
    model_source: str,
    revision: str | None,
    batch_size: int,
    vllm_cfg: dict[str, Any],
    enable_lora: bool = False,
    max_lora_rank: int = 8,
    seed: int = 0,
) -> Backend:
    """The configured backend, loaded once per job."""
    if name == "transformers":
        return TransformersBackend(model_source, revision=revision, batch_size=batch_size)
    if name == "vllm":
        try:
            import vllm  # noqa: F401
        except ImportError as exc:
            raise RuntimeError(
                "backend 'vllm' is configured but vllm is not installed: "
                "pip install -e '.[gpu]', or set the backend to 'transformers'"
            ) from exc
        return VLLMBackend(
            model_source,
            revision=revision,
            gpu_memory_utilization=vllm_cfg["gpu_memory_utilization"],
            max_model_len=vllm_cfg["max_model_len"],
            tensor_parallel_size=vllm_cfg["tensor_parallel_size"],
            enable_lora=enable_lora,
            max_lora_rank=max_lora_rank,
            seed=seed,
            engine_args=vllm_engine_args(vllm_cfg),
            in_process=bool(vllm_cfg.get("engine_in_process")),
        )
    raise ValueError(f"unknown backend {name!r} (expected 'vllm' or 'transformers')")
