"""What the sweep writes to disk, per stage, from the configured shapes.

Why: a pod's volume is far smaller than what a naive sweep keeps. Every epoch checkpoint of
all 480 students (adapter + Adam state) would be about 1.4 TB; the workflow keeps only a
running student's last checkpoint and deletes it when the student is done (``student.py``),
and publishing stages repos with hard links (``publish.py``). What remains is computed here,
from each size's LoRA parameter count (exact, from its shape), and ``preflight`` checks the
free space against it before any GPU job starts.

Sizes are bytes. LoRA weights are saved in fp32 (PEFT upcasts adapters of a bf16 model);
Adam keeps two fp32 moments per trainable parameter; the trainer also saves the tokenizer
into every checkpoint.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from subliminal_scaling.runtime.config import Sweep

GB = 1e9
FP32 = 4
BF16 = 2
# Saved into every checkpoint besides weights and Adam state: the tokenizer (Qwen2.5's
# tokenizer.json, vocab and merges, about 11 MB), trainer state, scheduler and RNG.
CHECKPOINT_EXTRA = 12e6
# Measured on the toy world and protocol rows: a raw teacher row is about 450 bytes of JSON
# (prompt, completion, finish reason); chunks hold the same rows again.
TEACHER_ROW_BYTES = 450
# gzip'd eval record per answer (raw answer, normalised forms, finish reason), and the same
# again for its resumable partial.
EVAL_ANSWER_BYTES = 120


@dataclass(frozen=True)
class Shape:
    """The dimensions LoRA adapters depend on (a Qwen2 decoder)."""

    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int

    @classmethod
    def from_mapping(cls, m: Mapping[str, Any]) -> Shape:
        return cls(**{k: int(m[k]) for k in cls.__dataclass_fields__})

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads


def lora_params(shape: Shape, target_modules: list[str], r: int) -> int:
    """Trainable parameters of a rank-``r`` LoRA on ``target_modules`` of every layer:
    ``r * (in + out)`` per projection."""
    h, i, hd = shape.hidden_size, shape.intermediate_size, shape.head_dim
    q, kv = shape.num_attention_heads * hd, shape.num_key_value_heads * hd
    dims = {
        "q_proj": (h, q),
        "k_proj": (h, kv),
        "v_proj": (h, kv),
        "o_proj": (q, h),
        "gate_proj": (h, i),
        "up_proj": (h, i),
        "down_proj": (i, h),
    }
    per_layer = sum(r * sum(dims[m]) for m in target_modules)
    return per_layer * shape.num_hidden_layers


def model_shape(sweep: Sweep, slug: str) -> Shape:
    """A size's shape: ``models[].shape`` (real sizes) or its toy build's ``arch``."""
    raw = sweep.model(slug).raw
    if "shape" in raw:
        return Shape.from_mapping(raw["shape"])
    if "toy" in raw:
        return Shape.from_mapping(raw["toy"]["arch"])
    raise ValueError(f"models[{slug}]: no shape (add models[].shape to the config)")


@dataclass(frozen=True)
class StageDisk:
    stage: str
    where: str  # "results" or "hf_cache"
    bytes: float
    note: str


def disk_plan(config: dict[str, Any], concurrent_students: int = 1) -> list[StageDisk]:
    """Disk per stage for the whole sweep, with ``concurrent_students`` trainings at once."""
    sweep = Sweep(config)
    gen, train, ev = config["generation"], config["training"], config["evaluation"]
    lora = train["lora"]
    n_cond, n_seeds, n_epochs = len(sweep.conditions), len(sweep.seeds), len(sweep.epochs)
    plan: list[StageDisk] = []
    teacher = len(sweep.models) * n_cond * gen["max_prompts"] * TEACHER_ROW_BYTES * 3
    plan.append(
        StageDisk(
            "teacher data",
            "results",
            teacher,
            f"raw + chunks + filtered rows, up to max_prompts={gen['max_prompts']:,} per teacher",
        )
    )
    adapters = 0.0
    ckpt = 0.0
    for m in sweep.models:
        n = lora_params(model_shape(sweep, m.slug), lora["target_modules"], lora["r"])
        adapters += n * FP32 * n_cond * n_seeds * n_epochs
        ckpt = max(ckpt, n * (FP32 + 2 * FP32) + CHECKPOINT_EXTRA)
    plan.append(
        StageDisk(
            "student adapters",
            "results",
            adapters,
            f"every epoch's adapter of {len(sweep.models) * n_cond * n_seeds} students (fp32)",
        )
    )
    # while a new checkpoint is written the previous one still exists: two per running student
    plan.append(
        StageDisk(
            "running checkpoints",
            "results",
            2 * ckpt * concurrent_students,
            f"last checkpoint (adapter + Adam state) of {concurrent_students} running "
            "student(s), two while saving; deleted when a student is done",
        )
    )
    # null means the protocol's count: the reference asks 50 questions, 100 samples each
    n_answers = (ev["n_questions"] or 50) * (ev["samples_per_question"] or 100)
    n_evals = len(sweep.models) * (n_cond * n_seeds * n_epochs + 1)
    plan.append(
        StageDisk(
            "eval records",
            "results",
            2 * n_evals * n_answers * EVAL_ANSWER_BYTES,
            f"{n_evals:,} evals (records + resumable partials)",
        )
    )
    if not sweep.is_toy:
        weights = sum(m.params * BF16 for m in sweep.models)
        plan.append(
            StageDisk(
                "base model weights",
                "hf_cache",
                weights,
                "bf16 safetensors of every size in the Hugging Face cache",
            )
        )
    return plan


def render_plan(plan: list[StageDisk]) -> str:
    """A table of the plan, in GB."""
    lines = ["| stage | on | GB | what |", "|---|---|---:|---|"]
    lines += [f"| {s.stage} | {s.where} | {s.bytes / GB:.1f} | {s.note} |" for s in plan]
    for where in ("results", "hf_cache"):
        total = sum(s.bytes for s in plan if s.where == where)
        if total:
            lines.append(f"| **total** | {where} | **{total / GB:.1f}** | |")
    return "\n".join(lines)
