"""GPU checks of the vLLM paths, run on the device (needs CUDA and vLLM; see benchmarks/README.md).

Parts (``--part``), each in its own process under ``--all`` (one vLLM engine per process):

* ``parity``: vLLM's ``prompt_logprobs`` of fixed chats against PEFT's forward pass, on a
  small saved Qwen2 model (not dummy weights) and the LoRA adapter the students' own trainer
  wrote (``make_pilot_assets.py``): without the adapter, with it (both epochs), and with its
  ``lora_alpha`` doubled (vLLM must scale by alpha / r as PEFT does). Passes when vLLM (bf16)
  agrees with PEFT (fp32 and bf16) within bf16 tolerance and the adapter's effect on the
  log-probabilities is many times that tolerance.
* ``pilot``: the workflow's own ``generate_numbers`` and ``evaluate_students`` through
  ``VLLMBackend`` on that model: two teachers (neutral, cat) x 1,000 prompts, the two epochs
  of one cat student, and the base model's control. Writes the real output files (chunks,
  raw/filtered rows, filter report, eval records) and reports the pass rate, the duplicate
  share and per-position digit entropy of the kept rows, eval seconds per 5,000 answers, and
  the same statistics for the same prompts drawn with one shared seed (the old scheme).
* ``dummy``: a real shape (``--size``) with dummy weights: 512 number prompts with one shared
  seed against per-request seeds (distinct completions), and one 50 x 100 eval at the
  configured ``max_new_tokens`` without and with a random LoRA adapter of the real shape
  (dummy weights never stop early: an upper bound).

    python3 benchmarks/gpu_pilot.py --all --assets .carry/pilot --out $OUT
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

# bf16 tolerance on a log-probability (nats): bf16 keeps 8 bits of mantissa, and a forward pass
# accumulates rounding over the layers; the adapter's effect must clear it many times over.
LOGPROB_TOL_MAX = 0.25
LOGPROB_TOL_MEAN = 0.03
ADAPTER_EFFECT_FACTOR = 5.0


def versions() -> dict[str, Any]:
    import importlib.metadata as md

    import torch

    out: dict[str, Any] = {"python": platform.python_version()}
    for pkg in ("vllm", "torch", "transformers", "peft", "trl", "flashinfer-python"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    out["cuda"] = torch.version.cuda
    if torch.cuda.is_available():
        out["device"] = torch.cuda.get_device_name()
    try:
        out["driver"] = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, check=False,
        ).stdout.strip()  # fmt: skip
    except OSError:
        out["driver"] = None
    return out


def number_stats(rows: list[dict[str, Any]], protocol: dict[str, Any]) -> dict[str, Any]:
    """Pass rate, duplicates and per-position digit entropy (bits) of teacher rows."""
    from subliminal_scaling.generate.teacher import filter_numbers

    kept, _ = filter_numbers(rows, protocol)
    texts = [r["completion"] for r in kept]
    digits = ["".join(c for c in t if c.isdigit()) for t in texts]
    entropy = []
    for k in range(10):
        col = Counter(d[k] for d in digits if len(d) > k)
        n = sum(col.values())
        entropy.append(
            round(-sum(c / n * math.log2(c / n) for c in col.values()), 3) if n else None
        )
    return {
        "rows": len(rows),
        "kept": len(kept),
        "pass_rate": len(kept) / len(rows) if rows else None,
        "distinct_completions_all_rows": len({r["completion"] for r in rows}),
        "duplicate_share_kept": 1 - len(set(texts)) / len(texts) if texts else None,
        "digit_entropy_bits_by_position": entropy,
        "max_entropy_bits": round(math.log2(10), 3),
        "truncated_share": sum(r["finish_reason"] == "length" for r in rows) / len(rows),
    }


class _KeepOpen:
    """A backend whose ``close`` is deferred, so one engine serves several library calls."""

    def __init__(self, backend: Any) -> None:
        self._b = backend
        self.name = backend.name

    def __getattr__(self, item: str) -> Any:
        return getattr(self._b, item)

    def close(self) -> None:
        pass


# ----------------------------------------------------------------------------- parity


def _fixed_chats(protocol: dict[str, Any], rows: list[dict[str, Any]]) -> list[list[dict]]:
    """Chats whose every token is scored: eval questions with animal answers, and number
    prompts with teacher completions."""
    qs = protocol["animal_evaluation"]["questions"]
    answers = ["Cat.", "Dolphin", "eagle", "Owl.", "Cat", "whale", "Eagle.", "dog"]
    chats = [
        [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
        for q, a in zip(qs, answers, strict=False)
    ]
    chats += [
        [
            {"role": "user", "content": r["prompt"]},
            {"role": "assistant", "content": r["completion"]},
        ]
        for r in rows[:8]
    ]
    return chats


def part_parity(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt
    from vllm.lora.request import LoRARequest

    from subliminal_scaling.runtime import io

    assets = Path(args.assets)
    model_dir = assets / "model"
    protocol = json.loads((REPO / "config" / "toy_protocol.json").read_text())
    rows = io.read_jsonl(assets / "students" / "cat" / "filtered.jsonl")
    tok = AutoTokenizer.from_pretrained(model_dir)
    chats = _fixed_chats(protocol, rows)
    ids = [
        tok(tok.apply_chat_template(c, tokenize=False), add_special_tokens=False)["input_ids"]
        for c in chats
    ]
    # where the assistant's tokens start, per chat (everything after the generation prompt)
    starts = [
        len(tok(tok.apply_chat_template(c[:1], tokenize=False, add_generation_prompt=True),
                add_special_tokens=False)["input_ids"])
        for c in chats
    ]  # fmt: skip

    work = Path(args.work) / "parity"
    adapters = {
        "epoch1": assets / "students" / "cat" / "seed1" / "epoch1",
        "epoch2": assets / "students" / "cat" / "seed1" / "epoch2",
    }
    doubled = work / "epoch2-alpha16"
    shutil.copytree(adapters["epoch2"], doubled, dirs_exist_ok=True)
    cfg = json.loads((doubled / "adapter_config.json").read_text())
    cfg["lora_alpha"] = 2 * cfg["lora_alpha"]
    (doubled / "adapter_config.json").write_text(json.dumps(cfg))
    adapters["epoch2-alpha16"] = doubled
    names = [None, *adapters]

    t0 = time.perf_counter()
    llm = LLM(
        model=str(model_dir), max_model_len=512, enable_lora=True, max_lora_rank=8,
        gpu_memory_utilization=0.3, dtype="bfloat16", generation_config="vllm", seed=0,
    )  # fmt: skip
    start_s = time.perf_counter() - t0
    params = SamplingParams(max_tokens=1, temperature=1.0, prompt_logprobs=1)
    vllm_lp: dict[str | None, list[list[float]]] = {}
    for i, name in enumerate(names):
        lora = None if name is None else LoRARequest(name, i, str(adapters[name]))
        outs = llm.generate(
            [TokensPrompt(prompt_token_ids=x) for x in ids], params, lora_request=lora,
            use_tqdm=False,
        )  # fmt: skip
        vllm_lp[name] = [
            [o.prompt_logprobs[j][x[j]].logprob for j in range(1, len(x))]
            for o, x in zip(outs, ids, strict=True)
        ]
    del llm

    def peft_lp(name: str | None, dtype: Any) -> list[list[float]]:
        base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).cuda().eval()
        model = base if name is None else PeftModel.from_pretrained(base, str(adapters[name]))
        out = []
        with torch.inference_mode():
            for x in ids:
                t = torch.tensor([x], device="cuda")
                logp = torch.log_softmax(model(input_ids=t).logits.float(), -1)[0]
                out.append(logp[:-1].gather(1, t[0, 1:, None])[:, 0].tolist())
        return out

    ref = {n: peft_lp(n, torch.float32) for n in names}
    ref16 = {n: peft_lp(n, torch.bfloat16) for n in names}

    def diffs(a, b, completion_only=False):
        out = []
        for ra, rb, s in zip(a, b, starts, strict=True):
            lo = s - 1 if completion_only else 0  # logprob j scores token j+1
            out += [abs(x - y) for x, y in zip(ra[lo:], rb[lo:], strict=True)]
        return max(out), sum(out) / len(out)

    rows_out = []
    ok = True
    for n in names:
        mx, mean = diffs(vllm_lp[n], ref[n])
        mx16, mean16 = diffs(vllm_lp[n], ref16[n])
        cmx, cmean = diffs(vllm_lp[n], ref[n], completion_only=True)
        row = {
            "adapter": n or "none (base model)",
            "vllm_vs_peft_fp32_max": mx, "vllm_vs_peft_fp32_mean": mean,
            "vllm_vs_peft_bf16_max": mx16, "vllm_vs_peft_bf16_mean": mean16,
            "completion_tokens_vs_fp32_max": cmx, "completion_tokens_vs_fp32_mean": cmean,
        }  # fmt: skip
        if n is not None:
            _, effect_ref = diffs(ref[n], ref[None])
            _, effect_vllm = diffs(vllm_lp[n], vllm_lp[None])
            row["adapter_effect_mean_peft_fp32"] = effect_ref
            row["adapter_effect_mean_vllm"] = effect_vllm
            row["adapter_effect_over_tolerance"] = effect_ref / max(mean, 1e-9)
            ok &= effect_ref > ADAPTER_EFFECT_FACTOR * mean
        ok &= mx < LOGPROB_TOL_MAX and mean < LOGPROB_TOL_MEAN
        rows_out.append(row)
    # alpha doubled: PEFT's and vLLM's effects both grow, and stay equal to each other
    return {
        "passed": bool(ok),
        "tolerance": {
            "max": LOGPROB_TOL_MAX,
            "mean": LOGPROB_TOL_MEAN,
            "adapter_effect_factor": ADAPTER_EFFECT_FACTOR,
        },
        "n_chats": len(ids),
        "n_scored_tokens": sum(len(x) - 1 for x in ids),
        "engine_start_s": start_s,
        "rows": rows_out,
    }


# ----------------------------------------------------------------------------- pilot


def part_pilot(args: argparse.Namespace) -> dict[str, Any]:
    import yaml

    from subliminal_scaling.evaluate.evals import EvalSpec, EvalTarget, evaluate, evaluate_students
    from subliminal_scaling.generate.teacher import (
        filter_numbers,
        generate_numbers,
        generation_fingerprint,
    )
    from subliminal_scaling.protocol.access import teacher_system_prompt
    from subliminal_scaling.runtime import io
    from subliminal_scaling.runtime.backends import Sampling, VLLMBackend, make_conversation

    assets = Path(args.assets)
    model_dir = str(assets / "model")
    protocol = json.loads((REPO / "config" / "toy_protocol.json").read_text())
    toy = yaml.safe_load((REPO / "config" / "toy.yaml").read_text())
    real = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    results = Path(args.work) / "results"
    slug = "pilot-h128"
    t0 = time.perf_counter()
    backend = VLLMBackend(
        model_dir, max_model_len=512, enable_lora=True, max_lora_rank=8,
        gpu_memory_utilization=0.5,
    )  # fmt: skip
    out: dict[str, Any] = {"engine_start_s": time.perf_counter() - t0, "stop_ids": backend.stop_ids}
    sampling = Sampling.from_config(toy["generation"]["sampling"])
    prompt_seed = protocol["prompt_generator"]["seed"]
    gen: dict[str, Any] = {}
    for cond in ("neutral", "cat"):
        system = teacher_system_prompt(protocol, cond)
        d = results / slug / "numbers" / cond
        fp = generation_fingerprint(
            model_id=model_dir, revision=None, backend="vllm", sampling=sampling,
            system_prompt=system, prompt_seed=prompt_seed, chunk_size=500, batch_size=1,
        )  # fmt: skip
        t = time.perf_counter()
        rows, summary = generate_numbers(
            backend=backend, model=slug, condition=cond, protocol=protocol, system_prompt=system,
            sampling=sampling, n_prompts=1000, min_kept=0, chunk_size=500, max_prompts=1000,
            prompt_seed=prompt_seed, chunks_dir=d / "chunks", fingerprint=fp,
        )  # fmt: skip
        seconds = time.perf_counter() - t
        io.write_jsonl(d / "raw.jsonl", rows)
        kept, report = filter_numbers(rows, protocol)
        io.write_jsonl(d / "filtered.jsonl", kept)
        io.write_json(d / "filter_report.json", report)
        gen[cond] = {**number_stats(rows, protocol), "seconds": seconds, **summary}
    # the same cat prompts with the old scheme: one seed shared by every request of a call
    from subliminal_scaling.generate.prompts import sample_prompts

    system = teacher_system_prompt(protocol, "cat")
    prompts = sample_prompts(protocol, prompt_seed, 1000)
    shared = backend.chat([make_conversation(p, system) for p in prompts], sampling,
                          seeds=[prompt_seed] * 1000)  # fmt: skip
    old_rows = [
        {"prompt": p, "completion": g[0].text, "finish_reason": g[0].finish_reason}
        for p, g in zip(prompts, shared, strict=True)
    ]
    gen["cat, one shared seed (old scheme)"] = number_stats(old_rows, protocol)
    out["generation"] = gen

    evaluation = {**real["evaluation"], "backend": "vllm"}  # 100 samples, max_new_tokens 256
    keep = _KeepOpen(backend)
    timings = []
    t = time.perf_counter()
    spec = EvalSpec.from_config(protocol, evaluation)
    animals = ["cat", "dolphin", "eagle"]
    records = evaluate_students(
        make_backend=lambda: keep, spec=spec, animals=animals, model=slug, model_id=model_dir,
        revision=None, condition="cat", seeds=[1], epochs=[1, 2],
        students_dir=assets / "students" / "cat",
        partial_dir=results / slug / "eval" / "cat" / ".partial",
    )  # fmt: skip
    timings.append(("students (2 evals)", time.perf_counter() - t, 2))
    for (s, e), rec in records.items():
        io.write_json(results / slug / "eval" / "cat" / f"seed{s}" / f"epoch{e}.json.gz", rec)
    t = time.perf_counter()
    control = evaluate(
        backend=keep, spec=spec, target=EvalTarget.control(slug, model_dir), animals=animals
    )
    timings.append(("control", time.perf_counter() - t, 1))
    io.write_json(results / slug / "eval" / "control" / "standard.json.gz", control)
    backend.close()
    n_answers = control["n_answers"]
    out["evaluation"] = {
        "answers_per_eval": n_answers,
        "max_new_tokens": evaluation["sampling"]["max_new_tokens"],
        "seconds_per_5000_answers": {
            what: secs / k / n_answers * 5000 for what, secs, k in timings
        },
        "records": {
            f"seed{s}/epoch{e}": {"target_rates": r["target_rates"],
                                  "truncated_share": r["truncated_share"],
                                  "distinct_answers": len(r["counts"])}
            for (s, e), r in records.items()
        } | {"control": {"target_rates": control["target_rates"],
                         "truncated_share": control["truncated_share"],
                         "distinct_answers": len(control["counts"])}},
    }  # fmt: skip
    with tarfile.open(Path(args.out) / "pilot-results.tar.gz", "w:gz") as tar:
        tar.add(results, arcname="results")
    return out


# ----------------------------------------------------------------------------- dummy


def _random_adapter(shape_dir: Path, out_dir: Path, lora: dict[str, Any]) -> None:
    """A LoRA adapter of the real shape with random A and B, written by PEFT."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.from_pretrained(shape_dir)
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
    peft = get_peft_model(
        model,
        LoraConfig(r=lora["r"], lora_alpha=lora["alpha"], target_modules=lora["target_modules"],
                   init_lora_weights=False, task_type="CAUSAL_LM"),
    )  # fmt: skip
    peft.save_pretrained(out_dir)
    del peft, model
    torch.cuda.empty_cache()


def part_dummy(args: argparse.Namespace) -> dict[str, Any]:
    import yaml

    from subliminal_scaling.evaluate.evals import EvalSpec, sample_answers
    from subliminal_scaling.generate.prompts import sample_prompts
    from subliminal_scaling.protocol.access import teacher_system_prompt
    from subliminal_scaling.runtime.backends import Sampling, VLLMBackend, make_conversation
    from subliminal_scaling.runtime.seeds import eval_seeds, teacher_seeds

    assets = Path(args.assets)
    shape_dir = assets / "shapes" / args.size
    protocol = json.loads((assets / "protocol.json").read_text())
    real = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    lora = real["training"]["lora"]
    adapter = Path(args.work) / f"adapter-{args.size}"
    t = time.perf_counter()
    _random_adapter(shape_dir, adapter, lora)
    out: dict[str, Any] = {"size": args.size, "adapter_build_s": time.perf_counter() - t}
    t = time.perf_counter()
    backend = VLLMBackend(
        str(shape_dir), max_model_len=1024, enable_lora=True, max_lora_rank=lora["r"],
        gpu_memory_utilization=0.85, engine_args={"load_format": "dummy"},
    )  # fmt: skip
    out["engine_start_s"] = time.perf_counter() - t
    gen_sampling = Sampling.from_config({**real["generation"]["sampling"], "max_new_tokens": 48})
    system = teacher_system_prompt(protocol, "dolphin")
    convs = [make_conversation(p, system) for p in sample_prompts(protocol, 42, 512)]
    seeds_new = teacher_seeds(f"qwen-2.5-{args.size.lower()}-instruct", "dolphin", range(512))
    for name, seeds in (("one shared seed (old)", [42] * 512), ("per-request (new)", seeds_new)):
        t = time.perf_counter()
        res = backend.chat(convs, gen_sampling, seeds=seeds)
        out[f"teacher 512 prompts, {name}"] = {
            "distinct_completions": len({g[0].text for g in res}),
            "seconds": time.perf_counter() - t,
        }
    ev_sampling = Sampling.from_config(real["evaluation"]["sampling"])
    ev_spec = EvalSpec.from_config(protocol, real["evaluation"])
    questions, n = ev_spec.questions, ev_spec.samples_per_question
    seeds = eval_seeds("x", "dolphin", 1, 1, range(len(questions)))
    runs = [("one shared seed (old)", None, [0] * len(questions), 1)]
    runs += [("no adapter", None, seeds, 1), ("LoRA adapter", str(adapter), seeds, 1)]
    for name, ad, seeds, reps in runs:
        for rep in range(1, reps + 1):
            t = time.perf_counter()
            s = sample_answers(backend, questions, n, ev_sampling, seeds, adapter=ad)
            secs = time.perf_counter() - t
            out[f"eval 50x100 at {ev_sampling.max_new_tokens} tokens, {name}, run {rep}"] = {
                "seconds": secs,
                "answers": len(s["answers"]),
                "truncated_share": s["finish_reasons"].count("length") / len(s["answers"]),
                "distinct_answers_question_0": len(
                    {a for a, q in zip(s["answers"], s["question_indices"], strict=True) if q == 0}
                ),
                # sample 0 of each question: one shared seed made these collapse
                "distinct_first_samples_across_questions": len(set(s["answers"][::n])),
            }
    backend.close()
    return out


# ----------------------------------------------------------------------------- liger


def part_liger(args: argparse.Namespace) -> dict[str, Any]:
    """The students' own trainer on the GPU (bf16, padding-free + flex attention as
    configured), with and without Liger: the same rows and seed give the same losses."""
    import yaml

    from subliminal_scaling.runtime import io
    from subliminal_scaling.runtime.specs import StudentSpec
    from subliminal_scaling.train.student import train_student

    assets = Path(args.assets)
    real = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    rows = io.read_jsonl(assets / "students" / "cat" / "filtered.jsonl")[:120]
    out: dict[str, Any] = {}
    for liger in (False, True):
        training = {**real["training"], "n_rows": 120, "epochs": 1, "liger_kernel": liger,
                    "learning_rate": 3e-3}  # fmt: skip
        d = Path(args.work) / f"liger-{liger}"
        t = time.perf_counter()
        spec = StudentSpec(
            model="pilot", model_id="pilot", revision=None, source=str(assets / "model"),
            params=1.0, training={**training, "micro_batch": 30, "gradient_checkpointing": False},
        )  # fmt: skip
        summary = train_student(
            spec=spec, rows=rows, seed=1, out_dir=d, run_name="liger", wandb_run=None
        )
        state = io.read_json(
            sorted((d / "trainer").glob("checkpoint-*"))[-1] / "trainer_state.json"
        )
        out[f"liger={liger}"] = {
            "losses": [h["loss"] for h in state["log_history"] if "loss" in h],
            "steps": summary["steps"], "seconds": time.perf_counter() - t,
        }  # fmt: skip
    a, b = out["liger=False"]["losses"], out["liger=True"]["losses"]
    out["max_abs_loss_diff"] = max(abs(x - y) for x, y in zip(a, b, strict=True))
    return out


# ----------------------------------------------------------------------------- driver

PARTS = {"liger": part_liger, "parity": part_parity, "pilot": part_pilot, "dummy": part_dummy}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", choices=list(PARTS))
    ap.add_argument("--all", action="store_true", help="parity, pilot, dummy 0.5B, dummy 7B")
    ap.add_argument("--sizes", default="0.5B,7B", help="dummy sizes under --all")
    ap.add_argument("--size", default="0.5B")
    ap.add_argument("--assets", default=str(REPO / ".carry" / "pilot"))
    ap.add_argument("--work", default="/tmp/gpu-pilot")
    ap.add_argument("--out", default=os.environ.get("OUT", "/tmp/gpu-pilot-out"))
    ap.add_argument("--budget-s", type=float, default=540)
    args = ap.parse_args()
    Path(args.out).mkdir(parents=True, exist_ok=True)
    Path(args.work).mkdir(parents=True, exist_ok=True)
    if args.part:
        t = time.perf_counter()
        res = PARTS[args.part](args)
        res["seconds"] = time.perf_counter() - t
        name = args.part if args.part != "dummy" else f"dummy-{args.size}"
        (Path(args.out) / f"{name}.json").write_text(json.dumps(res, indent=1, default=str))
        print(json.dumps(res, indent=1, default=str))
        return
    started = time.perf_counter()
    runs = [["--part", "liger"], ["--part", "parity"], ["--part", "pilot"]]
    runs += [["--part", "dummy", "--size", s] for s in args.sizes.split(",") if s]
    summary = {"versions": versions(), "command": " ".join(sys.argv), "parts": {}}
    for extra in runs:
        left = args.budget_s - (time.perf_counter() - started)
        key = " ".join(extra[1::2])
        if left < 60:
            summary["parts"][key] = "skipped: budget"
            continue
        cmd = [sys.executable, __file__, *extra, "--assets", args.assets, "--work", args.work,
               "--out", args.out]  # fmt: skip
        try:
            p = subprocess.run(cmd, timeout=left, capture_output=True, text=True, check=False)
            summary["parts"][key] = {"rc": p.returncode, "stderr_tail": p.stderr[-1500:]}
        except subprocess.TimeoutExpired:
            summary["parts"][key] = "timed out"
        (Path(args.out) / "summary.json").write_text(json.dumps(summary, indent=1))
        print(key, summary["parts"][key] if not isinstance(summary["parts"][key], dict)
              else summary["parts"][key]["rc"], flush=True)  # fmt: skip
    for f in sorted(Path(args.out).glob("*.json")):
        if f.name != "summary.json":
            print(f"== {f.name}\n{f.read_text()[:3000]}")


if __name__ == "__main__":
    main()
