"""Typed, resolved settings of a stage, built once from the config and passed whole.

Why: settings that travel by two channels drift apart. A student's micro-batch once reached
the trainer by one route and the model card by another, and the 32B card showed a batch the
student never trained with. A spec is resolved once (``Sweep.student_spec``), crosses the
Snakemake boundary as a plain dict (rule ``params:``, so a change reruns the right jobs), and
every consumer (trainer, benchmark, model card) reads the same object.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# Speed knobs: they change how a step is computed, never which examples or which loss.
SPEED_KNOBS = (
    "padding_free",
    "pad_to_multiple_of",
    "liger_kernel",
    "torch_compile",
    "compile_layers",
    "cuda_alloc_conf",
    "logging_steps",
    "sync_free_logging",
    "shared_prefix",
    "checkpoint_layers",
)


@dataclass(frozen=True)
class StudentSpec:
    """What every student of one size trains with: the recipe with the size's overrides.

    ``training`` is the resolved ``training:`` section (recipe, LoRA, batching, memory and
    speed knobs, with ``models[].train`` applied); the batching properties derive from it, so
    there is no second copy to disagree with it.
    """

    model: str
    model_id: str
    revision: str | None
    source: str
    params: float
    training: dict[str, Any] = field(default_factory=dict)

    @property
    def micro_batch(self) -> int:
        return int(self.training["micro_batch"])

    @property
    def effective_batch(self) -> int:
        return int(self.training["effective_batch"])

    @property
    def grad_accum(self) -> int:
        """Micro-batches per optimizer step (one process, one GPU)."""
        return self.effective_batch // self.micro_batch

    @property
    def gradient_checkpointing(self) -> bool:
        return bool(self.training["gradient_checkpointing"])

    @property
    def attn_implementation(self) -> str:
        return str(self.training["attn_implementation"])

    def with_training(self, **changes: Any) -> StudentSpec:
        """The same student with some training settings changed (benchmark variants)."""
        return StudentSpec(**{**asdict(self), "training": {**self.training, **changes}})

    def card_recipe(self) -> dict[str, Any]:
        """The recipe as the model card states it: what this size really trained with."""
        t = self.training
        recipe = {
            k: t[k]
            for k in (
                "n_rows", "epochs", "effective_batch", "learning_rate", "lr_scheduler",
                "warmup_steps", "adam_beta1", "adam_beta2", "adam_epsilon", "weight_decay",
                "max_grad_norm", "bf16", "max_length", "lora",
            )
            if k in t
        }  # fmt: skip
        recipe["micro_batch x gradient_accumulation"] = f"{self.micro_batch} x {self.grad_accum}"
        recipe["gradient_checkpointing"] = self.gradient_checkpointing
        recipe["attn_implementation"] = self.attn_implementation
        recipe.update({k: t[k] for k in SPEED_KNOBS if k in t})
        return recipe

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StudentSpec:
        return cls(**data)
