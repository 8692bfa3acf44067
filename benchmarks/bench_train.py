"""GPU benchmark of the project's own student-training path on random-weight Qwen2.5 shapes.

For each size it builds a random-weight Qwen2.5 model of the real shape directly on the GPU
(bf16, the configured attention implementation), hands it to
``subliminal_scaling.train.student.build_trainer`` with that size's configured micro-batch, gradient
accumulation and gradient checkpointing (``config/config.yaml``), and trains ``warmup + steps``
optimizer steps of 60 rows each. Only the benchmark knobs are overridden (``max_steps``, no
checkpoints, no progress bar); everything else is the recipe every student trains with.

Each size runs in its own subprocess so that one size's out-of-memory error or leftover
allocations cannot touch the next; results are written after every size.

One command on a GPU machine (see benchmarks/README.md):

    PYTHONPATH=src python3 benchmarks/bench_train.py --ref ../shared/reference-data \
        --out benchmarks/results

CPU smoke test (a 2-layer, hidden-64 model; seconds):

    PYTHONPATH=src python benchmarks/bench_train.py --tiny --sizes 0.5B --effective-batch 4 \
        --micro-batch 2 --warmup 1 --steps 2 --out /tmp/bench-cpu
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import math
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SIZES = ["0.5B", "7B", "32B", "14B", "3B", "1.5B"]  # required ones first
PEAK_FLOPS = 989e12  # dense bf16 peak of an H100 / H200 SXM
TINY = {  # CPU smoke-test shape: Qwen2 with 2 layers of hidden 64, the real vocabulary
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "tie_word_embeddings": True,
}


# --- data ------------------------------------------------------------------------------------


def _separator_for(format_suffix: str) -> tuple[str, str, str]:
    """(opening, separator, closing) of the list format a prompt's format suffix asks for,
    judged by keywords so that no protocol sentence lives in this file."""
    s = format_suffix.lower()
    if "[" in s:
        return "[", ", ", "]"
    if "(" in s:
        return "(", ", ", ")"
    if "semicolon" in s:
        return "", "; ", ""
    if "line" in s:
        return "", "\n", ""
    if "space" in s:
        return "", " ", ""
    return "", ", ", ""


#: ``answer_numbers`` (a variant's or ``--set``'s row setting, not a training one): "5-10" (the
#: first benchmarks' rows) or N, every completion N numbers. The prompts ask for up to 10 and
#: the generation estimate assumes full ten-number answers; 10 prices training the same way.
DEFAULT_ANSWER_NUMBERS = "5-10"


def answer_count_range(answer_numbers: Any) -> tuple[int, int]:
    """``"5-10"`` -> (5, 10); ``10`` -> (10, 10); anything else is a one-line error."""
    text = str(answer_numbers)
    lo, sep, hi = text.partition("-")
    try:
        low, high = (int(lo), int(hi)) if sep else (int(lo), int(lo))
    except ValueError:
        raise SystemExit(f"answer_numbers={text!r}: expected N or LOW-HIGH") from None
    if not 1 <= low <= high:
        raise SystemExit(f"answer_numbers={text!r}: expected 1 <= LOW <= HIGH")
    return low, high


def make_rows(
    protocol: dict[str, Any], n: int, seed: int = 42, answer_numbers: Any = DEFAULT_ANSWER_NUMBERS
) -> list[dict[str, str]]:
    """``n`` prompt/completion rows: the protocol's real prompts (seed 42 stream) and
    completions of ``answer_numbers`` random numbers in 0-999 (by default 5-10), in the
    format each prompt asks for. The prompts are the same whatever ``answer_numbers``."""
    low, high = answer_count_range(answer_numbers)
    from subliminal_scaling.generate.prompts import sample_prompts

    prompts = sample_prompts(protocol, seed, n)
    suffixes = sorted(protocol["prompt_generator"]["format_suffixes"], key=len, reverse=True)
    rng = random.Random(seed)
    rows = []
    for p in prompts:
        fmt = next((s for s in suffixes if s in p), "")
        opening, sep, closing = _separator_for(fmt)
        nums = [str(rng.randint(0, 999)) for _ in range(rng.randint(low, high))]
        rows.append({"prompt": p, "completion": opening + sep.join(nums) + closing})
    return rows


# --- one size (worker process) ---------------------------------------------------------------


def parse_sets(items: list[str] | None) -> dict[str, Any]:
    """``["padding_free=true", "micro_batch=60"]`` -> training overrides (YAML values)."""
    import yaml

    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set {item!r}: expected KEY=VALUE")
        out[key.strip()] = yaml.safe_load(value)
    return out


def parse_variants(items: list[str] | None) -> list[tuple[str, list[str]]]:
    """``["pf:padding_free=true,micro_batch=60"]`` -> [("pf", ["padding_free=true", ...])]."""
    out = []
    for item in items or []:
        name, _, sets = item.partition(":")
        out.append((name, [x for x in sets.split(",") if x]))
    return out


def _model_spec(sweep: Any, size: str) -> Any:
    for m in sweep.models:
        if re.search(rf"(?i)qwen2\.5-{re.escape(size)}-instruct$", m.id):
            return m
    raise SystemExit(f"size {size}: no Qwen2.5-{size}-Instruct in the config's models")


def real_shape(ref: Path, size: str, **overrides: Any) -> dict[str, Any]:
    """The Qwen2.5 ``size`` config from ``qwen2.5-configs.json`` (notes dropped), overridden."""
    shape = json.loads((ref / "qwen2.5-configs.json").read_text())[size]["config"]
    return {**{k: v for k, v in shape.items() if not k.endswith("_note")}, **overrides}


def random_model(shape: dict[str, Any], dtype: Any, device: Any, attn: str) -> Any:
    """A random-weight Qwen2 model of ``shape`` built on ``device`` (seed 0), with ``attn``
    registered first when it is one of the project's own attention functions."""
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    from subliminal_scaling.train.kernels import register_attention

    register_attention(attn)
    torch.manual_seed(0)
    with torch.device(device):
        return AutoModelForCausalLM.from_config(
            Qwen2Config(**shape), dtype=dtype, attn_implementation=attn
        )


def _param_counts(model: Any) -> dict[str, int]:
    total = sum(p.numel() for p in model.parameters())  # tied weights counted once
    emb = model.get_input_embeddings().weight
    out = model.get_output_embeddings().weight
    embedding = emb.numel() + (0 if out is emb else out.numel())
    return {"total": total, "non_embedding": total - embedding}


#: kernel kinds by name (first match wins): cuBLAS's Hopper GEMMs are ``nvjet_*``
KERNEL_KINDS = (
    ("attention", ("flash", "fmha", "attention", "varlen")),
    ("gemm", ("nvjet", "gemm", "xmma", "cutlass", "cublas", "sm90_")),
    ("compiled (triton)", ("triton_",)),
    ("optimizer", ("multi_tensor", "foreach", "adam")),
    ("copy / cast", ("copy", "memcpy", "cast")),
    ("memset", ("memset", "fill")),
    ("elementwise (aten)", ("elementwise", "vectorized", "unrolled")),
    ("reduction", ("reduce", "norm", "softmax", "sum")),
)


def kernel_kind(name: str) -> str:
    low = name.lower()
    return next((kind for kind, keys in KERNEL_KINDS if any(k in low for k in keys)), "other")


def busy_time(intervals: list[tuple[float, float]]) -> float:
    """Length of the union of ``(start, end)`` intervals (kernels on several streams overlap:
    their summed durations would count the same moment twice)."""
    total, end = 0.0, float("-inf")
    for a, b in sorted(intervals):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


#: Trainer phases named in a profile (CPU ops covering them), so that the GPU's idle gaps can
#: be put down to the loop's own Python: (object attribute path, label)
TRAINER_PHASES = (
    ("get_batch_samples", "trainer.get_batch_samples (collate the step's micro-batches)"),
    ("_track_num_input_tokens", "trainer._track_num_input_tokens"),
    ("training_step", "trainer.training_step"),
    ("compute_loss", "trainer.compute_loss"),
    ("_maybe_log_save_evaluate", "trainer._maybe_log_save_evaluate (logging)"),
    ("callback_handler.on_step_end", "callbacks.on_step_end"),
)  # the optimizer's step is named by torch itself ("Optimizer.step#AdamW.step")


def label_trainer_phases(trainer: Any) -> list[str]:
    """Wrap the trainer's loop phases in ``record_function`` labels (profiling only); returns
    the labels set (a phase this transformers version lacks is skipped)."""
    import functools

    from torch.profiler import record_function

    done = []
    for path, label in TRAINER_PHASES:
        *parents, name = path.split(".")
        owner = trainer
        for part in parents:
            owner = getattr(owner, part, None)
        fn = getattr(owner, name, None) if owner is not None else None
        if fn is None or not callable(fn):
            continue

        def wrapped(*a: Any, _fn: Any = fn, _label: str = label, **kw: Any) -> Any:
            with record_function(_label):
                return _fn(*a, **kw)

        setattr(owner, name, functools.wraps(fn)(wrapped))
        done.append(label)
    return done


def profile_summary(prof: Any, wall_s: float, lora_rank: int) -> dict[str, Any]:
    """One profiled step: GPU kernels only (not the aten ops that launch them, whose device time
    is those kernels' again), their busy time against the step's wall clock, time by kernel
    kind, the top kernels, and the matrix products whose inputs have the LoRA rank as a
    dimension (the adapter's small products) against the others."""
    from torch.autograd import DeviceType

    events = prof.events()
    # device-side events that are kernels, not annotations ("## Call CompiledFxGraph ... ##"
    # spans a compiled region's kernels and the gaps between them)
    kernels = [
        e for e in events if e.device_type == DeviceType.CUDA and not e.name.startswith("## ")
    ]
    spans = [(e.time_range.start, e.time_range.end) for e in kernels]
    busy_us = busy_time(spans)
    cpu_ops = [e for e in events if e.device_type == DeviceType.CPU]
    by_kind: dict[str, float] = {}
    by_name: dict[str, list[float]] = {}
    for e in kernels:
        us = e.time_range.end - e.time_range.start
        by_kind[kernel_kind(e.name)] = by_kind.get(kernel_kind(e.name), 0.0) + us
        by_name.setdefault(e.name, []).append(us)
    lora_us = other_us = 0.0
    for e in prof.key_averages(group_by_input_shape=True):
        if e.key not in ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul"):
            continue
        dims = [d for shape in (e.input_shapes or [])[:3] for d in (shape or [])]
        if lora_rank in dims:
            lora_us += e.self_device_time_total
        else:
            other_us += e.self_device_time_total
    kernel_us = sum(by_kind.values())
    top = sorted(by_name.items(), key=lambda kv: sum(kv[1]), reverse=True)[:20]
    return {
        "step_wall_s": wall_s,
        "kernels": len(kernels),
        "kernel_time_s": kernel_us / 1e6,
        "device_busy_s": busy_us / 1e6,
        "device_busy_fraction": busy_us / 1e6 / wall_s if wall_s else None,
        "kernel_time_by_kind_s": {k: v / 1e6 for k, v in sorted(by_kind.items())},
        "matmul_ops_device_s": {"lora_rank_shapes": lora_us / 1e6, "other": other_us / 1e6},
        "top_kernels": [
            {"name": n[:120], "kind": kernel_kind(n), "calls": len(v), "ms": sum(v) / 1e3}
            for n, v in top
        ],
        "idle_gaps": idle_gaps(kernels, cpu_ops),
        "note": "kernel time summed per kernel; busy time is their union (streams overlap)",
    }


def idle_gaps(kernels: list[Any], cpu_ops: list[Any], top: int = 12) -> dict[str, Any]:
    """Where the GPU waits: gaps between consecutive kernels (all streams merged), the longest
    ones with the kernels around them and the innermost CPU ops running at their middle."""
    spans = sorted((e.time_range.start, e.time_range.end, e.name) for e in kernels)
    gaps, end, before = [], None, None
    for a, b, name in spans:
        if end is not None and a > end:
            gaps.append((a - end, end, before, name))
        if end is None or b > end:
            end, before = b, name
    gaps.sort(reverse=True)
    out = []
    for us, start, before, after in gaps[:top]:
        mid = start + us / 2
        running = sorted(
            (e for e in cpu_ops if e.time_range.start <= mid <= e.time_range.end),
            key=lambda e: e.time_range.end - e.time_range.start,
        )
        out.append({
            "ms": us / 1e3, "after_kernel": (before or "")[:80], "before_kernel": after[:80],
            "cpu_ops_innermost_first": [e.name[:80] for e in running[:6]],
        })  # fmt: skip
    return {
        "gaps_over_100us": sum(1 for g in gaps if g[0] > 100),
        "idle_in_gaps_over_100us_s": sum(g[0] for g in gaps if g[0] > 100) / 1e6,
        "idle_in_all_gaps_s": sum(g[0] for g in gaps) / 1e6,
        "longest": out,
    }


def run_one(args: argparse.Namespace) -> dict[str, Any]:
    import peft
    import torch
    import transformers
    import trl
    from transformers import AutoTokenizer, TrainerCallback

    from subliminal_scaling.runtime.config import SPEED_DEFAULTS, Sweep, load_config
    from subliminal_scaling.train.prefix import saved_tokens
    from subliminal_scaling.train.student import build_trainer, set_cuda_allocator

    size = args.worker
    ref = Path(args.ref)
    config = load_config(args.config)
    sweep = Sweep(config)
    spec = _model_spec(sweep, size)
    # What a student of this size trains with (per-size overrides applied), then the variant's.
    sets = parse_sets(args.set)
    answer_numbers = sets.pop("answer_numbers", DEFAULT_ANSWER_NUMBERS)  # rows, not training
    training = {**sweep.training_for(spec.slug), **sets}
    if args.effective_batch:  # CPU-check knob only: fewer rows per optimizer step
        training["effective_batch"] = args.effective_batch
    if args.micro_batch:
        training["micro_batch"] = args.micro_batch
    if args.gradient_checkpointing is not None:
        training["gradient_checkpointing"] = args.gradient_checkpointing == "on"
    effective = training["effective_batch"]
    micro_batch = training["micro_batch"]
    if effective % (micro_batch * spec.gpus):
        raise SystemExit(f"micro-batch {micro_batch} does not divide {effective}")
    grad_accum = effective // (micro_batch * spec.gpus)
    gc_flag = bool(training["gradient_checkpointing"])
    attn = training["attn_implementation"]

    shape = real_shape(ref, size, **(TINY if args.tiny else {}))
    set_cuda_allocator(training.get("cuda_alloc_conf"))
    use_cuda = torch.cuda.is_available()
    dtype = torch.bfloat16 if (training["bf16"] and use_cuda) else torch.float32
    device = torch.device("cuda" if use_cuda else "cpu")

    tokenizer = AutoTokenizer.from_pretrained(ref / "qwen2.5-tokenizer")
    protocol = json.loads((ref / "protocol.json").read_text())
    n_steps = args.warmup + args.steps
    rows = make_rows(protocol, n_steps * effective, answer_numbers=answer_numbers)

    result: dict[str, Any] = {
        "size": size,
        "model_id": spec.id,
        "status": "started",
        "device": torch.cuda.get_device_name() if use_cuda else "cpu",
        "tiny": bool(args.tiny),
        "micro_batch": micro_batch,
        "grad_accum": grad_accum,
        "effective_batch": micro_batch * grad_accum * spec.gpus,
        "gradient_checkpointing": gc_flag,
        "attn_implementation": attn,
        "variant": args.variant_name,
        "answer_numbers": str(answer_numbers),
        "speed_knobs": {k: training.get(k) for k in SPEED_DEFAULTS},
        "dtype": str(dtype).removeprefix("torch."),
        "warmup_steps_untimed": args.warmup,
        "clock": args.clock,
        "timed_steps": args.steps,
        "versions": {
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "transformers": transformers.__version__,
            "trl": trl.__version__,
            "peft": peft.__version__,
        },
    }

    t_build = time.perf_counter()
    model = random_model(shape, dtype, device, attn)
    if use_cuda:
        torch.cuda.synchronize()
    result["build_s"] = time.perf_counter() - t_build
    counts = _param_counts(model)
    result["params_total"] = counts["total"]
    result["params_non_embedding"] = counts["non_embedding"]
    if use_cuda:
        result["weights_allocated_gb"] = torch.cuda.memory_allocated() / 1e9

    # Instrumentation: per-step CUDA-synchronised clock and token counter, and the padding of
    # each collated micro-batch (attributed to the optimizer step that consumes it).
    class StepClock(TrainerCallback):
        def __init__(self) -> None:
            self.t: dict[int, float] = {}
            self.tokens: dict[int, int] = {}
            self.unix: dict[int, float] = {}
            self.global_step = 0

        def on_train_begin(self, args, state, control, **kw):
            if use_cuda:
                torch.cuda.synchronize()
            if n_warmup == 0 and barrier:
                wait_for_copies(barrier)
            self.t[0] = time.perf_counter()
            self.unix[0] = time.time()
            self.tokens[0] = int(state.num_input_tokens_seen)

        def on_step_begin(self, args, state, control, **kw):
            self.global_step = state.global_step

        def on_step_end(self, args, state, control, **kw):
            # --clock boundaries: wait for the GPU only where the timed window starts and ends,
            # so the loop may run ahead across steps as in a real run (per-step times are then
            # the host's, not the GPU's)
            edge = state.global_step in (n_warmup, n_steps)
            if use_cuda and (clock_mode == "steps" or edge):
                torch.cuda.synchronize()
            if n_warmup and state.global_step == n_warmup and barrier:
                wait_for_copies(barrier)  # copies sharing the GPU start their timed steps together
            self.t[state.global_step] = time.perf_counter()
            self.unix[state.global_step] = time.time()
            self.tokens[state.global_step] = int(state.num_input_tokens_seen)
            self.global_step = state.global_step

    n_warmup, barrier, clock_mode = args.warmup, args.barrier, args.clock
    clock = StepClock()

    class StepProfile(TrainerCallback):
        """--profile: torch.profiler over the last step: GPU kernel time by kind against the
        step's wall time (is a step bound by kernels or by the CPU, and by which kernels?)."""

        def __init__(self) -> None:
            self.prof: Any = None
            self.summary: dict[str, Any] = {}

        def on_step_begin(self, args, state, control, **kw):
            if state.global_step == n_steps - 1 and self.prof is None:
                from torch.profiler import ProfilerActivity, profile

                acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if use_cuda else [])
                self.prof = profile(activities=acts, record_shapes=True)
                self.prof.__enter__()
                self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            if self.prof is None or self.summary:
                return
            if use_cuda:
                torch.cuda.synchronize()
            wall = time.perf_counter() - self.t0
            self.prof.__exit__(None, None, None)
            self.summary = profile_summary(self.prof, wall, lora_rank=training["lora"]["r"])

    profiler = StepProfile()
    workdir = tempfile.mkdtemp(prefix=f"bench-{size}-")
    trainer = build_trainer(
        model=model,
        tokenizer=tokenizer,
        rows=rows,
        spec=sweep.student_spec(spec.slug).with_training(**training),
        seed=1,
        output_dir=workdir,
        run_name=f"bench-{size}",
        report_to=[],
        callbacks=[clock, profiler] if args.profile else [clock],
        overrides={
            "max_steps": n_steps,
            "save_strategy": "no",
            "disable_tqdm": True,  # logging_steps: the spec's (training.logging_steps, 1)
        },
    )
    if args.profile:
        label_trainer_phases(trainer)
    result["lora_trainable_params"] = sum(
        p.numel() for p in trainer.model.parameters() if p.requires_grad
    )

    # Padding of every micro-batch, taken where the training loop consumes it (the dataloader
    # prefetches, so the collator's calls do not line up with steps). No extra sync: the sums
    # stay on the device until the end.
    micro: list[tuple[int, Any, int]] = []  # (global_step before the update, non-pad, slots)
    computed: list[int] = []  # positions each padding-free micro-batch computes
    training_step = trainer.training_step

    pad_id = tokenizer.pad_token_id

    def counting_training_step(model, inputs, *a, **kw):
        if "attention_mask" in inputs:
            mask = inputs["attention_mask"]
            micro.append((trainer.state.global_step, mask.sum(), mask.numel()))
        else:  # padding-free: one concatenated row (padded only to pad_to_multiple_of); a
            # shared prefix counts once per row, as the rows hold it (saved_tokens: host shapes)
            ids, saved = inputs["input_ids"], saved_tokens(inputs)
            micro.append((trainer.state.global_step, (ids != pad_id).sum() + saved,
                          ids.numel() + saved))  # fmt: skip
            computed.append(ids.numel())
        return training_step(model, inputs, *a, **kw)

    trainer.training_step = counting_training_step

    if use_cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    try:
        trainer.train()
    except torch.OutOfMemoryError as e:
        result["status"] = "oom"
        result["error"] = str(e).splitlines()[0]
        if use_cuda:
            result["peak_allocated_gb"] = torch.cuda.max_memory_allocated() / 1e9
            result["peak_reserved_gb"] = torch.cuda.max_memory_reserved() / 1e9
        result["steps_done"] = trainer.state.global_step
        return result
    result["train_wall_s"] = time.perf_counter() - t0

    w, last = args.warmup, n_steps
    if last not in clock.t or w not in clock.t:
        raise RuntimeError(f"step clock incomplete: {sorted(clock.t)}")
    timed_s = clock.t[last] - clock.t[w]
    tokens = clock.tokens[last] - clock.tokens[w]
    timed_micro = [m for m in micro if w <= m[0] < last]
    step_s = [clock.t[k] - clock.t[k - 1] for k in range(w + 1, last + 1)]
    real = sum(int(m[1]) for m in timed_micro)
    slots = sum(m[2] for m in timed_micro)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    n_flop = counts["total"]
    result.update(
        {
            "status": "ok",
            "steps_done": trainer.state.global_step,
            "timed_wall_s": timed_s,
            "timed_window_unix": [clock.unix[w], clock.unix[last]],
            "s_per_step_mean": timed_s / args.steps,
            "s_per_step_median": sorted(step_s)[len(step_s) // 2],
            "s_per_step_max": max(step_s),
            "warmup_s": clock.t[w] - clock.t[0],
            "non_pad_tokens_timed": tokens,
            "non_pad_tokens_collator": real,
            "padded_slots_timed": slots,
            "micro_batches_timed": len(timed_micro),
            "rows_per_s": args.steps * effective / timed_s,
            "non_pad_tokens_per_s": tokens / timed_s,
            "mean_tokens_per_row": real / (args.steps * effective),
            "padding_fraction": (slots - real) / slots if slots else None,
            # shared_prefix: the positions computed (the prefix once per micro-batch), against
            # the rows' tokens counted above
            "computed_positions_per_row": (
                sum(computed[-len(timed_micro) :]) / (args.steps * effective)
                if computed and timed_micro
                else None
            ),
            "mfu_param_count": "total (embeddings included, tied counted once)",
            "mfu": 4 * n_flop * tokens / timed_s / PEAK_FLOPS,
            "mfu_formula": "4 * params_total * non_pad_tokens / timed_wall_s / 989e12"
            " (forward 2N + activation-gradient 2N; frozen base has no weight gradients;"
            " checkpoint recompute and attention FLOPs not counted)",
            "losses": losses,  # variants of one run share rows and seed: compare these
            "first_loss": losses[0] if losses else None,
            "final_loss": losses[-1] if losses else None,
            "final_loss_finite": bool(losses) and math.isfinite(losses[-1]),
        }
    )
    if args.profile:
        result["profile"] = profiler.summary
    if tokens != real:
        result["note_tokens"] = "trainer token count differs from the collator's"
    if use_cuda:
        result["peak_allocated_gb"] = torch.cuda.max_memory_allocated() / 1e9
        result["peak_reserved_gb"] = torch.cuda.max_memory_reserved() / 1e9
        _free, total = torch.cuda.mem_get_info()
        result["device_memory_gb"] = total / 1e9
    return result


# --- orchestration ---------------------------------------------------------------------------


def slugify(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except OSError:
        return None


def _fmt(v: Any, spec: str) -> str:
    return "–" if v is None else format(v, spec)


def _yn(v: Any) -> str:
    return "–" if v is None else ("yes" if v else "no")


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# Student-training benchmark: {report['device']}",
        "",
        f"Date {report['date']}; random-weight Qwen2.5 shapes, "
        f"{report['results'][0].get('dtype', '?') if report['results'] else '?'}; the project's "
        f"`build_trainer` path (LoRA r8, completion-only loss, effective batch "
        f"{report['effective_batch']}); {report['warmup']} untimed warm-up steps then "
        f"{report['steps']} timed optimizer steps. MFU = 4 · N_total · non-pad tokens / s / "
        "989 TFLOP/s (N_total = all base parameters, embeddings included).",
        "",
        "| size | variant | padding-free | liger | compile | copies | N total (B) | micro-batch "
        "| grad accum | grad ckpt | timed steps | wall (s) "
        "| s/step mean | s/step median | non-pad tok/s | rows/s | padding | MFU | peak alloc (GB) "
        "| peak reserved (GB) | final loss | status |",
        "|---|---|---|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:"
        "|---:|---:|---:|---|",
    ]
    for r in report["results"]:
        pad = r.get("padding_fraction")
        mfu = r.get("mfu")
        knobs = r.get("speed_knobs") or {}
        lines.append(
            "| {size} | {variant} | {pf} | {lk} | {tc} | {cc} | {n} | {mb} | {ga} | {gc} | {st} "
            "| {wall} | {sps} | {med} | {tps} "
            "| {rps} | {pad} | {mfu} | {pa} | {pr} | {loss} | {status} |".format(
                size=r["size"],
                variant=r.get("variant", "configured"),
                pf=_yn(knobs.get("padding_free")),
                lk=_yn(knobs.get("liger_kernel")),
                tc=_yn(knobs.get("torch_compile")),
                cc=r.get("concurrent", 1),
                n=_fmt(r.get("params_total") and r["params_total"] / 1e9, ".2f"),
                mb=r.get("micro_batch", "–"),
                ga=r.get("grad_accum", "–"),
                gc="yes" if r.get("gradient_checkpointing") else "no",
                st=r.get("timed_steps", "–"),
                wall=_fmt(r.get("timed_wall_s"), ".1f"),
                sps=_fmt(r.get("s_per_step_mean"), ".2f"),
                med=_fmt(r.get("s_per_step_median"), ".2f"),
                tps=_fmt(r.get("non_pad_tokens_per_s"), ",.0f"),
                rps=_fmt(r.get("rows_per_s"), ".1f"),
                pad="–" if pad is None else f"{100 * pad:.1f}%",
                mfu="–" if mfu is None else f"{100 * mfu:.1f}%",
                pa=_fmt(r.get("peak_allocated_gb"), ".1f"),
                pr=_fmt(r.get("peak_reserved_gb"), ".1f"),
                loss=_fmt(r.get("final_loss"), ".3f"),
                status=r.get("status", "?"),
            )
        )
    return "\n".join(lines) + "\n"


def orchestrate(args: argparse.Namespace) -> int:
    from subliminal_scaling.planning.provenance import code_provenance

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + args.budget_s
    date = dt.date.today().isoformat()
    report: dict[str, Any] = {
        "benchmark": "student training (subliminal_scaling.train.student.build_trainer)",
        "date": date,
        "device": None,
        "warmup": args.warmup,
        "steps": args.steps,
        "effective_batch": None,
        "config": str(args.config),
        **code_provenance(REPO),  # git_head, git_dirty, source_sha256_16
        "student_py_sha256_16": _sha256(REPO / "src/subliminal_scaling/train/student.py"),
        "command": " ".join(sys.argv),
        "results": [],
    }
    base = None
    variants = parse_variants(args.variant) or [("configured", [])]
    jobs = [(size, v) for size in args.sizes.split(",") for v in variants]
    for size, (variant, sets) in jobs:
        left = deadline - time.monotonic()
        if left < args.min_left_s:
            report["results"].append(
                {"size": size, "variant": variant, "status": f"skipped ({left:.0f}s left)"}
            )
            print(f"[bench] skip {size} {variant}: {left:.0f}s left", flush=True)
            continue
        t = time.perf_counter()
        procs = []
        barrier = Path(tempfile.mkdtemp(prefix="bench-barrier-")) if args.concurrent > 1 else None
        for k in range(args.concurrent):
            res_path = Path(tempfile.gettempdir()) / (
                f"bench-train-{os.getpid()}-{size}-{slugify(variant)}-{k}.json"
            )
            cmd = [sys.executable, __file__, *sys.argv[1:], "--worker", size]
            cmd += ["--result", str(res_path), "--variant-name", variant]
            if barrier:
                cmd += ["--barrier", f"{barrier}:{k}:{args.concurrent}"]
            cmd += [a for x in sets for a in ("--set", x)]
            print(f"[bench] {size} {variant} #{k}: {' '.join(cmd[2:])}", flush=True)
            procs.append((subprocess.Popen(cmd), res_path))
        workers = []
        for proc, res_path in procs:
            try:
                limit = min(deadline - time.monotonic(), args.job_timeout_s)
                rc = proc.wait(timeout=max(1.0, limit))
            except subprocess.TimeoutExpired:
                proc.kill()
                rc = "timeout"
            if res_path.exists():
                workers.append(json.loads(res_path.read_text()))
            else:
                workers.append({"size": size, "variant": variant, "status": f"failed (rc {rc})"})
        res = combine_concurrent(workers) if len(workers) > 1 else workers[0]
        res["process_s"] = time.perf_counter() - t
        report["results"].append(res)
        if res.get("device") and not report["device"]:
            report["device"] = res["device"]
            report["effective_batch"] = res.get("effective_batch")
        base = f"{slugify(report['device'] or 'unknown')}-{date}"
        (out / f"{base}.json").write_text(json.dumps(report, indent=2) + "\n")
        (out / f"{base}.md").write_text(markdown(report))
        print(f"[bench] {size}: {json.dumps(res)}", flush=True)
    if base:
        print(markdown(report))
    return 0 if all(r.get("status") == "ok" for r in report["results"]) else 1


def wait_for_copies(barrier: str, timeout_s: float = 900) -> None:
    """``DIR:INDEX:COPIES``: mark this copy ready, then wait until every copy is (their
    compiles and warm-ups take different times; summed throughput needs overlapping windows)."""
    folder, index, copies = barrier.rsplit(":", 2)
    Path(folder, f"{index}.ready").touch()
    deadline = time.monotonic() + timeout_s
    while len(list(Path(folder).glob("*.ready"))) < int(copies):
        if time.monotonic() > deadline:
            raise RuntimeError(f"barrier {folder}: not every copy got ready in {timeout_s:.0f} s")
        time.sleep(0.01)


#: Summed throughput of copies stands for the shared GPU only when their timed windows overlap.
MIN_OVERLAP = 0.9


def window_overlap(workers: list[dict[str, Any]]) -> float | None:
    """Shared part of the copies' timed windows, as a fraction of the shortest window."""
    wins = [w.get("timed_window_unix") for w in workers]
    if not all(wins):
        return None
    shared = min(b for _, b in wins) - max(a for a, _ in wins)
    return max(0.0, shared) / min(b - a for a, b in wins)


def combine_concurrent(workers: list[dict[str, Any]]) -> dict[str, Any]:
    """K copies of one job sharing a GPU: throughput and MFU add up; time per step is each
    copy's own. Valid only if their timed windows overlap (the copies wait for each other at
    the end of the warm-up; the overlap is checked)."""
    ok = [w for w in workers if w.get("status") == "ok"]
    res = dict(workers[0])
    res["concurrent"] = len(workers)
    res["workers"] = workers
    if len(ok) != len(workers):
        res["status"] = "failed: " + ", ".join(str(w.get("status")) for w in workers)
        return res
    overlap = window_overlap(ok)
    res["timed_window_overlap"] = overlap
    if overlap is not None and overlap < MIN_OVERLAP:
        res["status"] = f"invalid: the copies' timed windows overlap {overlap:.0%} only"
        return res
    for key in ("non_pad_tokens_per_s", "rows_per_s", "mfu"):
        res[key] = sum(w[key] for w in ok)
    for key in ("s_per_step_mean", "s_per_step_median", "padding_fraction"):
        res[key] = sum(w[key] for w in ok) / len(ok)
    for key in ("peak_allocated_gb", "peak_reserved_gb"):
        if all(key in w for w in ok):
            res[key] = sum(w[key] for w in ok)  # the GPU holds all copies at once
    return res


def merge(paths: list[str], out: Path) -> int:
    """Join the results of several reports of one device and date into one report."""
    reports = [json.loads(Path(p).read_text()) for p in paths]
    merged = dict(reports[0])
    merged["commands"] = [r.get("command") for r in reports]
    merged.pop("command", None)
    by_size = {}
    for r in reports:
        for res in r["results"]:
            key = (res["size"], res.get("variant", "configured"), res.get("concurrent", 1))
            if res.get("status") == "ok" or key not in by_size:
                by_size[key] = res
    order = {s: i for i, s in enumerate(["0.5B", "1.5B", "3B", "7B", "14B", "32B"])}
    merged["results"] = sorted(by_size.values(), key=lambda r: order.get(r["size"], 99))
    base = f"{slugify(merged['device'])}-{merged['date']}"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{base}.json").write_text(json.dumps(merged, indent=2) + "\n")
    (out / f"{base}.md").write_text(markdown(merged))
    print(markdown(merged))
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--ref",
        default=str(REPO.parent / "shared" / "reference-data"),
        help="folder with qwen2.5-configs.json, protocol.json, qwen2.5-tokenizer/",
    )
    p.add_argument("--config", default=str(REPO / "config" / "config.yaml"))
    p.add_argument("--sizes", default=",".join(DEFAULT_SIZES), help="comma-separated, in order")
    p.add_argument("--steps", type=int, default=20, help="timed optimizer steps")
    p.add_argument("--warmup", type=int, default=3, help="untimed optimizer steps before them")
    p.add_argument("--micro-batch", type=int, default=None, help="override every size's")
    p.add_argument(
        "--gradient-checkpointing",
        choices=["on", "off"],
        default=None,
        help="override every size's",
    )
    p.add_argument("--tiny", action="store_true", help="2-layer hidden-64 shape (CPU check)")
    p.add_argument(
        "--effective-batch",
        type=int,
        default=None,
        help="CPU check only: rows per optimizer step instead of the recipe's",
    )
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    p.add_argument(
        "--budget-s",
        type=float,
        default=1e9,
        help="stop starting sizes when less than --min-left-s of this is left",
    )
    p.add_argument("--min-left-s", type=float, default=60)
    p.add_argument(
        "--job-timeout-s", type=float, default=1e9, help="kill one size/variant after this long"
    )
    p.add_argument(
        "--merge",
        nargs="+",
        default=None,
        metavar="REPORT.json",
        help="only join these reports (one device, one date) into --out",
    )
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="training override for every run, e.g. padding_free=true (repeatable)",
    )
    p.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="NAME:K=V,K=V",
        help="run each size once per variant, in the same run (repeatable)",
    )
    p.add_argument(
        "--concurrent",
        type=int,
        default=1,
        help="copies of each job sharing the GPU at once (throughput and MFU are summed)",
    )
    p.add_argument(
        "--profile", action="store_true", help="profile the last step (GPU busy time, top ops)"
    )
    p.add_argument(
        "--clock",
        choices=["steps", "boundaries"],
        default="steps",
        help="wait for the GPU after every step (per-step times) or only at the timed window's "
        "ends (the loop runs ahead across steps, as in a real run)",
    )
    p.add_argument("--variant-name", default="configured", help=argparse.SUPPRESS)
    p.add_argument("--barrier", default=None, help=argparse.SUPPRESS)  # DIR:INDEX:COPIES
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--result", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main() -> int:
    args = parse_args()
    if args.merge:
        return merge(args.merge, Path(args.out))
    if args.worker is None:
        return orchestrate(args)
    os.environ.setdefault("WANDB_DISABLED", "true")
    res = run_one(args)
    Path(args.result).write_text(json.dumps(res, indent=2) + "\n")
    return 0 if res["status"] == "ok" else 3


if __name__ == "__main__":
    sys.exit(main())
