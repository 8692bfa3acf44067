"""GPU benchmark of the workflow's vLLM paths on dummy weights of the real Qwen2.5 shapes, and
a check that the exact preference measure agrees between vLLM and transformers.

Per size (``--sizes``, each in its own process, largest first), through the project's own
``VLLMBackend`` with the engine settings the workflow uses (``generation.vllm`` /
``evaluation.vllm`` of config/config.yaml, LoRA enabled at the recipe's rank):

* engine start (``LLM(...)`` with ``load_format="dummy"``; the first start on a machine also
  compiles kernels, later ones reuse the cache: ``compile_cache_warm`` says which it was, and
  a size named twice in ``--sizes`` is started cold, then warm);
* ``numbers``: one teacher chunk (``--gen-prompts`` real prompts, the dolphin system prompt,
  per-request seeds) at ``--gen-tokens`` new tokens (``--seed-cost``: then without per-request
  seeds, then seeded again, in the same process);
* ``eval``: ``--eval-reps`` 50 x 100 evaluations (``sample_answers``, one request per question
  with n=100), each through its own random LoRA adapter of the real shape (a new adapter to
  load, as every student epoch is), at ``--eval-tokens`` new tokens;
* ``exact``: the exact preference measure (``exact_preferences``: the log-probabilities of
  every animal's name forms after every question, as next-token queries) through the last
  eval's adapter; ``exact-prompt-logprobs``: the same through the previous path
  (``prompt_logprobs`` of every question x form), for comparison in the same process.

Dummy weights never stop early: every completion runs to its token limit, so the seconds are
those of completions of exactly that length (the estimator scales them to the lengths it
assumes and says so).

``--eval-lengths survey`` gives the eval the answer lengths real models give instead: for each
question, 100 lengths are drawn from the size's answers in the user's control survey
(``animal_preferences_raw.json`` in ``--ref``, each answer tokenized with the real tokenizer,
plus its end-of-sequence token, capped at the configured ``max_new_tokens``), and the question's
request (n=100) runs every sample to the longest of its draws (``ignore_eos``, no stop ids), so
dummy weights generate that many tokens. Real samples stop at their own lengths: this is the
real eval's work or more, never less. The estimator prices a size's eval from such a row
directly. ``--workloads`` (default ``numbers,eval,exact,exact-old``) leaves workloads out.

``gen:SIZE`` in ``--sizes`` starts that size's generation engine instead, as
``generate_numbers`` does (``generation.vllm``, no LoRA) and runs the teacher chunk alone; its
row says ``"stage": "generation"``, and the estimator prices generation jobs' engine starts with
such rows where they were measured.

``--eval-lengths survey-each`` draws the same lengths but sends each of a question's 100
samples as its own request (n=1, the seed vLLM gives that sample of an n=100 request), each
running exactly its own draw: nearer a real eval where a few long answers (0.5B's survey holds
one of 65 tokens) would otherwise make every sample of their question that long. The estimator
prefers such a row to a ``survey`` row of the same size.

``--engine-variant NAME=JSON`` (repeatable): each size once per variant, in the same run, with
further ``LLM(...)`` arguments (e.g. ``seqs512={"max_num_seqs": 512}``: vLLM captures CUDA
graphs up to 512 sequences by default, and an H200 schedules up to 1,024). The estimator
prices a config with the rows whose recorded engine settings are the config's
(``generation.vllm`` / ``evaluation.vllm``: ``max_num_seqs``, ``max_cudagraph_capture_size``).

``--parity``: a small random Qwen2 model saved with ``save_pretrained`` (the real tokenizer)
and a random LoRA adapter; ``exact_preferences``' log-probabilities from ``VLLMBackend`` and
``TransformersBackend`` (PEFT) must agree within bf16 tolerance, with and without the adapter
(the previous ``prompt_logprobs`` path is reported beside). ``--sizes 0.5B,parity,14B`` runs the
check at that place instead of last. It starts vLLM eager (no CUDA graphs); ``parity-engine``
among ``--sizes`` runs it once per ``--engine-variant`` on the evaluation engine's settings with
that variant on top, CUDA graphs captured as a real eval runs them (e.g. the base model,
the control's eval, on an engine that captured the LoRA graphs only).

    PYTHONPATH=src python3 benchmarks/bench_vllm.py --ref .carry/ref --out $OUT --parity \\
        --sizes 32B,0.5B,7B --budget-s 500
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

TOKENIZER_FILES = ("vocab.json", "merges.txt", "tokenizer_config.json")
# bf16 tolerance on a summed log-probability of a 1-3 token name (nats); gpu_pilot.py's bounds
LOGPROB_TOL_MAX = 0.25
LOGPROB_TOL_MEAN = 0.03


def write_shape(ref: Path, size: str, out: Path, overrides: dict[str, Any] | None = None) -> Path:
    """``config.json`` + ``generation_config.json`` of a real shape and the real tokenizer."""
    shapes = json.loads((ref / "qwen2.5-configs.json").read_text())
    out.mkdir(parents=True, exist_ok=True)
    cfg = {k: v for k, v in shapes[size]["config"].items() if not k.endswith("_note")}
    (out / "config.json").write_text(json.dumps({**cfg, **(overrides or {})}, indent=1))
    (out / "generation_config.json").write_text(json.dumps(shapes[size]["generation_config"]))
    for f in TOKENIZER_FILES:
        shutil.copy2(ref / "qwen2.5-tokenizer" / f, out / f)
    return out


def write_random_adapter(shape_dir: Path, out: Path, lora: dict[str, Any], seed: int = 0) -> Path:
    """A PEFT-format LoRA adapter of the shape with random A and B (no model is built, so a 32B
    adapter costs seconds): every layer, the recipe's projections, rank and alpha."""
    import torch
    from safetensors.torch import save_file

    cfg = json.loads((shape_dir / "config.json").read_text())
    h, inter = cfg["hidden_size"], cfg["intermediate_size"]
    hd = cfg.get("head_dim") or h // cfg["num_attention_heads"]
    q, kv = cfg["num_attention_heads"] * hd, cfg["num_key_value_heads"] * hd
    dims = {
        "self_attn.q_proj": (h, q), "self_attn.k_proj": (h, kv), "self_attn.v_proj": (h, kv),
        "self_attn.o_proj": (q, h), "mlp.gate_proj": (h, inter), "mlp.up_proj": (h, inter),
        "mlp.down_proj": (inter, h),
    }  # fmt: skip
    wanted = set(lora["target_modules"])
    g = torch.Generator().manual_seed(seed)
    r = lora["r"]
    tensors = {}
    for layer in range(cfg["num_hidden_layers"]):
        for name, (fan_in, fan_out) in dims.items():
            if name.split(".")[-1] not in wanted:
                continue
            key = f"base_model.model.model.layers.{layer}.{name}"
            a = torch.randn(r, fan_in, generator=g) / fan_in**0.5
            b = torch.randn(fan_out, r, generator=g) * 0.01
            tensors[f"{key}.lora_A.weight"] = a.to(torch.bfloat16)
            tensors[f"{key}.lora_B.weight"] = b.to(torch.bfloat16)
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / "adapter_model.safetensors"))
    (out / "adapter_config.json").write_text(json.dumps({
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": r, "lora_alpha": lora["alpha"],
        "lora_dropout": 0.0, "bias": "none", "target_modules": sorted(wanted),
        "base_model_name_or_path": str(shape_dir), "fan_in_fan_out": False,
        "inference_mode": True, "modules_to_save": None, "use_rslora": False,
    }, indent=1))  # fmt: skip
    return out


def merge_engine_args(configured: dict[str, Any], variant: dict[str, Any]) -> dict[str, Any]:
    """The configured engine arguments with a variant's on top; a variant's
    ``compilation_config`` adds to the configured one instead of replacing it."""
    out = {**configured, **variant}
    if "compilation_config" in configured and "compilation_config" in variant:
        out["compilation_config"] = {
            **configured["compilation_config"],
            **variant["compilation_config"],
        }
    return out


def variant_engine(engine: dict[str, Any], variant: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
    """A config ``vllm`` section with a variant on top: (whether vLLM's engine core runs in
    process, the ``LLM`` arguments). ``engine_in_process`` is no ``LLM`` argument: it goes to
    ``VLLMBackend``'s ``in_process``, the variant's value before the config's."""
    from subliminal_scaling.runtime.backends import vllm_engine_args

    variant = dict(variant)
    in_process = bool(variant.pop("engine_in_process", engine.get("engine_in_process")))
    return in_process, merge_engine_args(vllm_engine_args(engine), variant)


def compile_caches() -> set[str]:
    """vLLM's torch.compile cache folders (``VLLM_CACHE_ROOT``, default ~/.cache/vllm), one per
    engine configuration (a hash of model, engine and compile settings)."""
    root = Path(os.environ.get("VLLM_CACHE_ROOT", Path.home() / ".cache" / "vllm"))
    cache = root / "torch_compile_cache"
    return {d.name for d in cache.iterdir() if d.is_dir()} if cache.is_dir() else set()


def versions() -> dict[str, Any]:
    import importlib.metadata as md

    import torch

    out: dict[str, Any] = {"python": sys.version.split()[0]}
    for pkg in ("vllm", "torch", "transformers", "peft"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    out["cuda"] = torch.version.cuda
    return out


def prompt_logprob_scores(backend: Any, conversations: Any, continuations: Any, adapter: Any):
    """The exact measure's previous vLLM path, kept here for comparison in the same run: every
    question x name form as one prompt with ``prompt_logprobs=1`` (no prefix caching for such
    requests), the continuation positions summed."""
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    from subliminal_scaling.runtime.backends import per_conversation, scored_pairs

    pairs = scored_pairs(backend.llm.get_tokenizer(), conversations, continuations)
    outs = backend.llm.generate(
        [TokensPrompt(prompt_token_ids=p + c) for p, c in pairs],
        SamplingParams(max_tokens=1, temperature=1.0, prompt_logprobs=1),
        lora_request=backend._lora(adapter),
        use_tqdm=False,
    )
    scores = []
    for out, (p, c) in zip(outs, pairs, strict=True):
        seq = p + c
        scores.append(sum(out.prompt_logprobs[j][seq[j]].logprob for j in range(len(p), len(seq))))
    return per_conversation(scores, len(continuations))


class PromptLogprobPath:
    """A backend view whose ``continuation_logprobs`` is the previous path."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend

    def tokenize(self, text: str) -> list[int]:
        return self.backend.tokenize(text)

    def continuation_logprobs(self, conversations: Any, continuations: Any, adapter: Any = None):
        return prompt_logprob_scores(self.backend, conversations, continuations, adapter)


# ----------------------------------------------------------------------------- one size


def result_key(size: str, variant: str, stage: str = "evaluation") -> str:
    """The key a worker's result is written and reported under (the driver and the worker
    both name it here)."""
    return f"{'gen' if stage == 'generation' else 'size'}-{size}-{variant}"


def parity_key(variant: str | None = None) -> str:
    """The key of a parity check's result: the eager one, or one on ``variant``'s engine
    (``parity-engine``); the driver and the worker both name it here."""
    return "parity" if variant is None else f"parity-{variant}"


def worker_jobs(names: list[str], variants: list[str]) -> list[tuple[str, list[str]]]:
    """(result key, worker arguments) per entry of ``--sizes`` ("parity", a size,
    ``gen:SIZE``: that size's generation engine, or "parity-engine": the parity check on each
    variant's engine), a size once per ``--engine-variant`` (``NAME=JSON``: further ``LLM``
    arguments), or once as configured."""
    parsed = []
    for v in variants or ["configured={}"]:
        name, sep, raw = v.partition("=")
        try:
            engine = json.loads(raw) if sep else None
        except json.JSONDecodeError:
            engine = None
        if not name or not isinstance(engine, dict):
            raise SystemExit(f"--engine-variant {v!r}: expected NAME={{JSON object}}")
        parsed.append((name, json.dumps(engine)))
    jobs = []
    for s in names:
        if s == "parity":
            jobs.append((parity_key(), ["--parity-worker"]))
            continue
        if s == "parity-engine":  # the parity check on each variant's engine (graphs, not eager)
            for name, engine in parsed:
                worker = ["--parity-worker", "--parity-engine", "--variant-name", name]
                jobs.append((parity_key(name), [*worker, "--engine-json", engine]))
            continue
        stage, _, size = s.rpartition(":")
        if stage not in ("", "gen"):
            raise SystemExit(f"--sizes {s!r}: expected SIZE or gen:SIZE")
        for name, engine in parsed:
            args = ["--worker", size, "--variant-name", name, "--engine-json", engine]
            if stage:  # the generation engine: no LoRA, generation.vllm, teacher chunks only
                args += ["--stage", "generation"]
            jobs.append((result_key(size, name, "generation" if stage else "evaluation"), args))
    return jobs


SURVEY_FILE = "animal_preferences_raw.json"


def run_worker(cmd: list[str], timeout: float, log: Path | None = None) -> tuple[int | str, str]:
    """Run one worker in a process group of its own: (exit code or "timeout", stderr's end).
    Its stdout (where vLLM logs, its engine process too) goes to ``log``. On a time-out the
    whole group is killed (vLLM's engine runs in a child process)."""
    with open(log or os.devnull, "w") as out:
        p = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.PIPE, text=True, start_new_session=True
        )
        try:
            _, err = p.communicate(timeout=timeout)
            return p.returncode, err[-2000:]
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            return "timeout", ""


#: vLLM's log lines that time an engine start's parts (vLLM 0.26 wording)
START_LOG = re.compile(
    r"(Loading weights took|Model loading took|torch\.compile took|Compil\w+ .*took|"
    r"Dynamo bytecode transform|Directly load the compiled graph|Memory profiling takes|"
    r"Available KV cache memory|GPU KV cache size|Graph capturing finished|CUDA graph pool|"
    r"init engine \(profile, create kv cache, warmup model\) took)"
)


def engine_log(text: str, limit: int = 40) -> list[str]:
    """The lines of a worker's log that say where its engine start went (colour codes and
    the logger's prefix dropped), at most ``limit`` of them."""
    out = []
    for line in text.splitlines():
        line = re.sub(r"\x1b\[[0-9;]*m", "", line)
        if START_LOG.search(line):
            out.append(re.sub(r"^.*?\] ", "", line, count=1).strip()[:300])
    return out[:limit]


def end_worker() -> None:
    """End a worker whose result is written: it and every process it started (vLLM's engine
    core, which would otherwise hold the worker's stderr open until the driver's time-out:
    2026-12-03, a 32B worker done after about 333 s was waited for until 467 s). The driver counts
    exit code -9 from a worker that wrote its result as a normal end. vLLM's own teardown is
    skipped: it has aborted processes on the device."""
    sys.stdout.flush()
    sys.stderr.flush()
    if os.getpgid(0) == os.getpid():  # the leader of its own group (run_worker): end the group
        os.killpg(0, signal.SIGKILL)
    os._exit(0)


def survey_lengths(path: Path, size: str, tokenize: Any, cap: int) -> list[int]:
    """Token lengths of the survey's answers at ``size`` (each answer's tokens plus its
    end-of-sequence token, at most ``cap``): what real answers of that model cost to sample."""
    entries = [e for e in json.loads(Path(path).read_text()) if e.get("model_size") == size]
    if not entries or not entries[0].get("raw_responses"):
        raise SystemExit(f"{path}: no raw answers of a {size} model")
    return [min(len(tokenize(a)) + 1, cap) for a in entries[0]["raw_responses"]]


def question_lengths(survey: list[int], n_questions: int, n: int, seed: int) -> list[int]:
    """Per question: the longest of ``n`` lengths drawn from ``survey`` (the question's n
    samples share one request, which runs each of them that long)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return [int(rng.choice(survey, size=n).max()) for _ in range(n_questions)]


def sample_lengths(survey: list[int], n_questions: int, n: int, seed: int) -> list[list[int]]:
    """Per question: ``n`` lengths drawn from ``survey``, one per sample (``survey-each``: each
    sample its own request, which runs exactly its own draw)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return [[int(x) for x in rng.choice(survey, size=n)] for _ in range(n_questions)]


def with_request_lengths(backend: Any, lengths: list[int]) -> Any:
    """Make ``backend``'s next requests run exactly ``lengths[i]`` tokens each (dummy weights
    never stop by themselves); every other sampling knob as the workflow sets it. Returns a
    function that undoes it."""
    original = backend.sampling_params
    queue = iter(lengths)

    def fixed_length(sampling: Any, n: int, seed: Any) -> Any:
        params = original(sampling, n, seed).clone()
        params.max_tokens, params.ignore_eos, params.stop_token_ids = next(queue), True, []
        return params

    backend.sampling_params = fixed_length

    def restore() -> None:
        backend.sampling_params = original

    return restore


def run_size(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np
    import torch
    import yaml

    from subliminal_scaling.evaluate.evals import EvalSpec, sample_answers
    from subliminal_scaling.evaluate.exact import exact_preferences
    from subliminal_scaling.generate.prompts import sample_prompts
    from subliminal_scaling.protocol.access import teacher_system_prompt
    from subliminal_scaling.runtime.backends import (
        Sampling,
        VLLMBackend,
        make_conversation,
    )
    from subliminal_scaling.runtime.seeds import eval_seeds, teacher_seeds

    size, ref, work = args.worker, Path(args.ref), Path(args.work)
    extra_engine = json.loads(args.engine_json)
    real = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    protocol = json.loads((ref / "protocol.json").read_text())
    lora = real["training"]["lora"]
    # the generation engine as generate_numbers starts it: its own settings, no LoRA
    generation = args.stage == "generation"
    engine = real["generation" if generation else "evaluation"]["vllm"]
    shape = write_shape(ref, size, work / "shapes" / size)
    # one adapter per eval, as in the workflow (every student epoch is a new adapter to load)
    adapters = [
        write_random_adapter(shape, work / "adapters" / f"{size}-{k}", lora, seed=k)
        for k in range(0 if generation else args.eval_reps)
    ]
    adapter = adapters[-1] if adapters else None
    in_process, engine_args = variant_engine(engine, extra_engine)
    lora_args = {"enable_lora": not generation,
                 **({} if generation else {"max_lora_rank": lora["r"]})}  # fmt: skip
    out: dict[str, Any] = {"size": size, "device": torch.cuda.get_device_name(),
                           "stage": args.stage,
                           "engine": {**engine, **lora_args,
                                      "load_format": "dummy", "enforce_eager": args.eager,
                                      **engine_args, "engine_in_process": in_process},
                           "engine_variant": args.variant_name,
                           "exact_only": args.exact_only}  # fmt: skip
    # an engine start that finds its own compile cache (the same engine started before on this
    # machine) skips torch.compile, as every job of a size after its first one will: warm if
    # the start added no cache folder of its own
    before = compile_caches()
    t = time.perf_counter()
    backend = VLLMBackend(
        str(shape), gpu_memory_utilization=engine["gpu_memory_utilization"],
        max_model_len=engine["max_model_len"], tensor_parallel_size=1, **lora_args,
        engine_args={"load_format": "dummy", **({"enforce_eager": True} if args.eager else {}),
                     **engine_args},
        in_process=in_process,
    )  # fmt: skip
    out["engine_start_s"] = time.perf_counter() - t
    after = compile_caches()
    # enforce_eager (--eager, or an engine variant's) compiles nothing: no cache to find
    eager = args.eager or bool(engine_args.get("enforce_eager"))
    out["compile_cache_warm"] = None if eager else bool(after) and after <= before
    out["compile_caches_new"] = sorted(after - before)
    runs = []
    slug = f"qwen-2.5-{size.lower()}-instruct"
    spec = EvalSpec.from_config(protocol, real["evaluation"])
    qs, n = spec.questions, spec.samples_per_question
    workloads = set(args.workloads.split(","))
    if generation:  # a generation job samples teacher chunks and nothing else
        workloads &= {"numbers"}
    if args.exact_only:  # --exact-only: the two exact-measure paths alone
        workloads &= {"exact", "exact-old"}
    if "numbers" in workloads:
        # teacher chunk: real prompts, the system prompt of an animal, per-request seeds
        gen = Sampling.from_config(
            {**real["generation"]["sampling"], "max_new_tokens": args.gen_tokens}
        )
        system = teacher_system_prompt(protocol, "dolphin")
        prompts = sample_prompts(protocol, 42, args.gen_prompts)
        convs = [make_conversation(p, system) for p in prompts]
        seeds = teacher_seeds(slug, "dolphin", range(len(convs)))
        t = time.perf_counter()
        res = backend.chat(convs, gen, seeds=seeds)
        wall = time.perf_counter() - t
        tokens = [len(backend.tokenize(g[0].text)) for g in res]
        runs.append({
            "workload": "numbers", "completions": len(res), "max_new_tokens": args.gen_tokens,
            "wall_s": wall, "output_tokens_retokenized": sum(tokens),
            "output_tokens_per_s": sum(tokens) / wall,
            "cut_by_length": sum(g[0].finish_reason == "length" for g in res),
            "distinct_completions": len({g[0].text for g in res}),
        })  # fmt: skip
        if args.seed_cost:  # the same chunk without per-request seeds, then seeded again
            for label, per_request in (("numbers-unseeded", False), ("numbers-repeat", True)):
                params = [backend.sampling_params(gen, 1, s if per_request else None)
                          for s in seeds]  # fmt: skip
                t = time.perf_counter()
                res = backend.llm.chat(convs, sampling_params=params, add_generation_prompt=True,
                                       use_tqdm=False)  # fmt: skip
                wall = time.perf_counter() - t
                runs.append({"workload": label, "completions": len(res),
                             "max_new_tokens": args.gen_tokens, "wall_s": wall,
                             "per_request_seeds": per_request})  # fmt: skip
    # the standard eval through LoRA adapters (a new one each time)
    ev = Sampling.from_config(
        {**real["evaluation"]["sampling"], "max_new_tokens": args.eval_tokens}
    )
    survey = None
    if args.eval_lengths in ("survey", "survey-each") and "eval" in workloads:
        ev = Sampling.from_config(real["evaluation"]["sampling"])
        survey = survey_lengths(ref / SURVEY_FILE, size, backend.tokenize, ev.max_new_tokens)
    for rep in range(args.eval_reps if "eval" in workloads else 0):
        eseeds = eval_seeds(slug, "dolphin", 1, rep + 1, range(len(qs)))
        lengths = None
        ask, ask_seeds, per_request = list(qs), eseeds, n  # the workflow's requests
        if survey is not None and args.eval_lengths == "survey-each":
            # each sample its own request with its own draw; seed + i, as vLLM seeds the
            # i-th sample of an n-sample request
            lengths = [x for d in sample_lengths(survey, len(qs), n, seed=rep) for x in d]
            ask = [q for q in qs for _ in range(n)]
            ask_seeds, per_request = [sd + i for sd in eseeds for i in range(n)], 1
        elif survey is not None:
            lengths = question_lengths(survey, len(qs), n, seed=rep)
        if lengths is not None:
            restore = with_request_lengths(backend, lengths)
        t = time.perf_counter()
        try:
            s = sample_answers(backend, ask, per_request, ev, ask_seeds, adapter=str(adapters[rep]))
        finally:
            if lengths is not None:
                restore()
        wall = time.perf_counter() - t
        run = {
            "workload": "eval", "completions": len(s["answers"]), "questions": len(qs),
            "requests": len(ask),
            "samples_per_question": n, "max_new_tokens": args.eval_tokens, "wall_s": wall,
            "cut_by_length": s["finish_reasons"].count("length"), "adapter": "random LoRA",
            "repeat": rep + 1, "adapter_loaded_fresh": True,
        }  # fmt: skip
        if lengths is not None:
            got = [len(backend.tokenize(a)) for a in s["answers"]]
            run.update({
                "answer_lengths": args.eval_lengths, "max_new_tokens": max(lengths),
                "survey_answers": len(survey), "survey_mean_tokens": sum(survey) / len(survey),
                "request_tokens": lengths, "tokens_generated": per_request * sum(lengths),
                "answer_tokens_retokenized_mean": sum(got) / len(got),
            })  # fmt: skip
        runs.append(run)
    animals = real["animals"]
    out["runs"] = runs
    out["peak_gpu_memory_note"] = (
        f"vLLM reserves gpu_memory_utilization={engine['gpu_memory_utilization']} of the GPU"
    )
    if "exact" not in workloads:
        return out
    # the exact measure: the workflow's path (next-token queries, prefix caching), then the
    # previous one (prompt_logprobs) on the same adapter, in the same process
    t = time.perf_counter()
    exact = exact_preferences(backend, qs, animals, str(adapter))
    wall = time.perf_counter() - t
    n_forms = sum(len(f) for f in exact["forms"].values())
    runs.append({"workload": "exact", "path": "next-token queries (logprob_token_ids)",
                 "questions": len(qs), "animals": len(animals), "pairs": len(qs) * n_forms,
                 "wall_s": wall})  # fmt: skip
    t = time.perf_counter()
    exact_preferences(backend, qs, animals, str(adapter))
    runs.append({"workload": "exact-repeat", "path": "next-token queries, adapter loaded",
                 "wall_s": time.perf_counter() - t})  # fmt: skip
    if "exact-old" not in workloads:
        return out
    t = time.perf_counter()
    old = exact_preferences(PromptLogprobPath(backend), qs, animals, str(adapter))
    wall = time.perf_counter() - t
    # probabilities, not their logs: the records round them to 10 decimals (see run_parity)
    diff = np.abs(np.asarray(exact["prob"]) - np.asarray(old["prob"])).max()
    runs.append({"workload": "exact-prompt-logprobs", "path": "prompt_logprobs (previous)",
                 "questions": len(qs), "animals": len(animals), "pairs": len(qs) * n_forms,
                 "wall_s": wall, "max_abs_prob_diff_vs_exact": float(diff)})  # fmt: skip
    return out  # no close(): the worker exits at once (vLLM's teardown can abort the process)


# ----------------------------------------------------------------------------- parity


def run_parity(args: argparse.Namespace) -> dict[str, Any]:
    """exact_preferences through vLLM and through transformers+PEFT on one saved model."""
    import numpy as np
    import torch
    import yaml
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen2Config

    from subliminal_scaling.evaluate.exact import answer_forms, disjoint_forms
    from subliminal_scaling.runtime.backends import (
        TransformersBackend,
        VLLMBackend,
        make_conversation,
    )

    ref, work = Path(args.ref), Path(args.work)
    real = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    protocol = json.loads((ref / "protocol.json").read_text())
    lora = real["training"]["lora"]
    d = write_shape(ref, "0.5B", work / "parity-model", {
        "hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 4,
        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 64,
        "tie_word_embeddings": True, "max_window_layers": 4,
    })  # fmt: skip
    torch.manual_seed(0)
    cfg = Qwen2Config.from_pretrained(d)
    cfg.initializer_range = 0.05  # logits spread a little (0.2 underflowed names' probabilities)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
    model.save_pretrained(d)
    AutoTokenizer.from_pretrained(d).save_pretrained(d)
    peft = get_peft_model(model, LoraConfig(
        r=lora["r"], lora_alpha=lora["alpha"], target_modules=lora["target_modules"],
        init_lora_weights=False, task_type="CAUSAL_LM"))  # fmt: skip
    for name, p in peft.named_parameters():
        if "lora_B" in name:
            p.data.normal_(0, 0.05)  # a moderate change (0.5 moved names by ~100 nats)
    adapter = work / "parity-adapter"
    peft.save_pretrained(adapter)
    del peft, model
    qs = protocol["animal_evaluation"]["questions"][:20]
    animals = real["animals"]
    convs = [make_conversation(q, None) for q in qs]
    cases = (("base", None), ("adapter", str(adapter)))

    # compared: the backends' raw log-probabilities of every question x name form (the records
    # round probabilities to 10 decimals, which turns tiny ones into 0 and log-differences
    # into noise); each backend's forms (exact_preferences' choice, from its tokenizer) too
    def name_forms(backend: Any) -> dict[str, list[str]]:
        return {a: disjoint_forms(answer_forms(a), backend.tokenize) for a in animals}

    raw: dict[str, dict[str, Any]] = {name: {} for name, _ in cases}
    hf = TransformersBackend(str(d), batch_size=64)
    forms = {"transformers": name_forms(hf)}
    flat = [f for a in animals for f in forms["transformers"][a]]
    for name, ad in cases:
        raw[name]["transformers"] = np.asarray(hf.continuation_logprobs(convs, flat, ad))
    hf.close()
    t = time.perf_counter()
    # no graph capture (a faster start), or with --parity-engine the evaluation engine's
    # settings with a variant on top: CUDA graphs as a real eval runs them
    in_process, engine_args = False, {"enforce_eager": True}
    if args.parity_engine:
        in_process, engine_args = variant_engine(
            real["evaluation"]["vllm"], json.loads(args.engine_json)
        )
    vb = VLLMBackend(
        str(d),
        max_model_len=512,
        enable_lora=True,
        max_lora_rank=lora["r"],
        gpu_memory_utilization=0.3,
        engine_args=engine_args,
        in_process=in_process,
    )
    start = time.perf_counter() - t
    forms["vllm"] = name_forms(vb)
    for name, ad in cases:
        raw[name]["vllm"] = np.asarray(vb.continuation_logprobs(convs, flat, ad))
        raw[name]["previous"] = np.asarray(prompt_logprob_scores(vb, convs, flat, ad))
    out: dict[str, Any] = {"model": "Qwen2 h256 x4 layers, random (init std 0.05), bf16, "
                           "real tokenizer; LoRA of the recipe's shape, lora_B ~ N(0, 0.05)",
                           "questions": len(qs), "animals": len(animals),
                           "compared": "summed log-probabilities of every question x form",
                           "vllm_engine_start_s": start,
                           "vllm_engine": {**engine_args, "engine_in_process": in_process},
                           "engine_variant": args.variant_name if args.parity_engine
                           else None}  # fmt: skip
    for name, r in raw.items():
        a, b, c = r["transformers"], r["vllm"], r["previous"]
        out[name] = {"forms_equal": forms["transformers"] == forms["vllm"],
                     "n": int(a.size),
                     "finite": bool(np.isfinite(a).all() and np.isfinite(b).all()),
                     "max_abs_logprob_diff": float(np.abs(a - b).max()),
                     "mean_abs_logprob_diff": float(np.abs(a - b).mean()),
                     "logprob_range": [float(a.min()), float(a.max())],
                     "previous_path_vs_transformers": {
                         "max_abs_logprob_diff": float(np.abs(a - c).max()),
                         "mean_abs_logprob_diff": float(np.abs(a - c).mean())},
                     "new_vs_previous_max_abs": float(np.abs(b - c).max())}  # fmt: skip
    effect = np.abs(raw["adapter"]["transformers"] - raw["base"]["transformers"])
    out["adapter_effect_mean_abs_logprob"] = float(effect.mean())
    out["passed"] = bool(
        all(out[n]["forms_equal"] and out[n]["finite"] for n in raw)
        and all(out[n]["max_abs_logprob_diff"] <= LOGPROB_TOL_MAX for n in raw)
        and all(out[n]["mean_abs_logprob_diff"] <= LOGPROB_TOL_MEAN for n in raw)
        and out["adapter_effect_mean_abs_logprob"] > 5 * out["adapter"]["mean_abs_logprob_diff"]
    )
    return out


# ----------------------------------------------------------------------------- driver


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ref", default=str(REPO.parent / "shared" / "reference-data"))
    ap.add_argument("--sizes", default="32B,0.5B,7B,14B,3B,1.5B")
    ap.add_argument("--gen-prompts", type=int, default=5000)
    ap.add_argument("--gen-tokens", type=int, default=48)
    ap.add_argument("--eval-tokens", type=int, default=16)
    ap.add_argument("--eval-reps", type=int, default=2)
    ap.add_argument(
        "--eval-lengths",
        choices=["fixed", "survey", "survey-each"],
        default="fixed",
        help="fixed: every answer --eval-tokens long; survey: the survey's answer lengths, "
        "each question's samples to the longest of their draws; survey-each: each sample its "
        "own request, to its own draw",
    )
    ap.add_argument(
        "--workloads",
        default="numbers,eval,exact,exact-old",
        help="comma-separated subset of numbers, eval, exact, exact-old (the previous path)",
    )
    ap.add_argument("--parity", action="store_true")
    ap.add_argument("--exact-only", action="store_true", help="per size: the exact measure only")
    ap.add_argument("--eager", action="store_true", help="enforce_eager (a faster engine start)")
    ap.add_argument(
        "--seed-cost",
        action="store_true",
        help="also time the teacher chunk without per-request seeds, then again with",
    )
    ap.add_argument("--work", default="/tmp/bench-vllm")
    ap.add_argument("--out", default=os.environ.get("OUT", "/tmp/bench-vllm-out"))
    ap.add_argument("--budget-s", type=float, default=540)
    ap.add_argument("--min-left-s", type=float, default=90)
    ap.add_argument(
        "--engine-variant",
        action="append",
        default=[],
        metavar='NAME={"max_num_seqs": 512}',
        help="per size, once per variant in the same run: further LLM(...) arguments (JSON)",
    )
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--engine-json", default="{}", help=argparse.SUPPRESS)
    ap.add_argument("--variant-name", default="configured", help=argparse.SUPPRESS)
    ap.add_argument(
        "--stage", choices=["evaluation", "generation"], default="evaluation",
        help=argparse.SUPPRESS,
    )  # fmt: skip
    ap.add_argument("--parity-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--parity-engine", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    Path(args.work).mkdir(parents=True, exist_ok=True)
    if args.worker or args.parity_worker:
        res = run_parity(args) if args.parity_worker else run_size(args)
        if args.parity_worker:
            name = parity_key(args.variant_name if args.parity_engine else None)
        else:
            name = result_key(args.worker, args.variant_name, args.stage)
        (Path(args.work) / f"{name}.json").write_text(json.dumps(res, indent=1, default=str))
        end_worker()
    from subliminal_scaling.planning.provenance import code_provenance

    started = time.perf_counter()
    date = dt.date.today().isoformat()
    report: dict[str, Any] = {
        "benchmark": "sampling (vllm, dummy weights)", "backend": "vllm", "date": date,
        "command": " ".join(sys.argv), "versions": versions(), "results": [], "errors": {},
        **code_provenance(REPO),  # git_head, git_dirty, source_sha256_16
    }  # fmt: skip
    # "parity" among --sizes runs the parity check at that place; else, with --parity, last
    names = [s for s in args.sizes.split(",") if s]
    if args.parity and "parity" not in names:
        names.append("parity")
    jobs = worker_jobs(names, args.engine_variant)
    base = [sys.executable, __file__, "--ref", args.ref, "--work", args.work,
            "--gen-prompts", str(args.gen_prompts), "--gen-tokens", str(args.gen_tokens),
            "--eval-tokens", str(args.eval_tokens), "--eval-reps", str(args.eval_reps),
            "--eval-lengths", args.eval_lengths, "--workloads", args.workloads,
            *(["--exact-only"] if args.exact_only else []),
            *(["--eager"] if args.eager else []),
            *(["--seed-cost"] if args.seed_cost else [])]  # fmt: skip
    for key, extra in jobs:
        left = args.budget_s - (time.perf_counter() - started)
        if left < args.min_left_s:
            report["errors"][key] = "skipped: budget"
            continue
        f = Path(args.work) / f"{key}.json"
        f.unlink(missing_ok=True)  # a size may run twice (cold, then warm compile cache)
        t = time.perf_counter()
        log = Path(args.work) / f"{key}.log"
        rc, tail = run_worker(base + extra, timeout=left, log=log)
        if f.exists():
            res = json.loads(f.read_text())
            res["process_s"] = time.perf_counter() - t
            res["process_rc"] = rc
            res["engine_log"] = engine_log(log.read_text(errors="replace"))
            if key == parity_key():
                report["parity"] = res
            elif key.startswith(parity_key("")):  # --sizes parity-engine: one per variant
                report.setdefault("parity_engines", {})[key] = res
            else:
                report["device"] = res["device"]
                report["results"].append(res)
        else:
            report["errors"][key] = {"rc": rc, "stderr_tail": tail}
        slug = report.get("device", "gpu").lower().replace(" ", "-")
        (Path(args.out) / f"{slug}-{date}-vllm.json").write_text(json.dumps(report, indent=1))
        print(f"{key}: rc={rc} {time.perf_counter() - t:.0f} s", flush=True)
    for r in report["results"]:
        cache = "warm" if r.get("compile_cache_warm") else "cold"
        stage = "generation engine " if r.get("stage") == "generation" else ""
        line = [f"{r['size']} {stage}{r.get('engine_variant', '')}: "
                f"start {r['engine_start_s']:.0f} s "
                f"({cache} compile cache)"]  # fmt: skip
        line += [f"{x['workload']} {x['wall_s']:.1f} s" for x in r["runs"]]
        print(" | ".join(line))
        for entry in r.get("engine_log", []):
            print("    " + entry[:200])
    if "parity" in report:
        print("parity:", json.dumps(report["parity"]))
    for key, res in report.get("parity_engines", {}).items():
        print(f"{key}:", json.dumps(res))
    for k, v in report["errors"].items():
        print("error", k, v if isinstance(v, str) else v["stderr_tail"][-1200:])


if __name__ == "__main__":
    main()
