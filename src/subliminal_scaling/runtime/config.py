"""Configuration: schema validation with errors that name the key, semantic checks the schema
cannot express, and the values the workflow derives from config (order, priorities, batching).

Validation runs when the Snakefile is parsed, so a bad config fails before any job starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from subliminal_scaling.runtime.backends import check_capture_sizes
from subliminal_scaling.runtime.gpu_pool import SLOTS_PER_GPU
from subliminal_scaling.runtime.naming import CONTROL, NEUTRAL, model_slug
from subliminal_scaling.runtime.seeds import MAX_INDEX, check_distinct, sweep_streams
from subliminal_scaling.runtime.specs import StudentSpec

# Speed knobs (specs.SPEED_KNOBS) default to off in configs that predate them.
SPEED_DEFAULTS: dict[str, Any] = {
    "padding_free": False,
    "pad_to_multiple_of": None,
    "liger_kernel": False,
    "torch_compile": False,
    "compile_layers": False,
    "cuda_alloc_conf": None,
    "logging_steps": 1,
    "sync_free_logging": False,
    "shared_prefix": False,
    "checkpoint_layers": 0,
}

SCHEMA_PATH = Path(__file__).resolve().parents[3] / "config" / "config.schema.yaml"

# Priorities: all generation first (largest model first), then per size, largest first,
# its evaluations just above its trainings so results appear while the sweep runs.
GENERATION_PRIORITY_BASE = 10_000
TRAIN_PRIORITY_BASE = 1_000
# GPU rules and the config section whose backend decides their GPU count (None: always one).
GPU_RULE_SECTIONS: dict[str, str | None] = {
    "generate_numbers": "generation",
    "train_student": None,
    "evaluate_student": "evaluation",
    "evaluate_control": "evaluation",
}


class ConfigError(ValueError):
    """A bad configuration value; the message starts with the key path."""


def _key_path(path: Any) -> str:
    parts = ["config"]
    for p in path:
        parts.append(f"[{p}]" if isinstance(p, int) else f".{p}")
    return "".join(parts)


def load_schema(path: str | Path = SCHEMA_PATH) -> dict[str, Any]:
    """The JSON schema (written as YAML) that every config must satisfy."""
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def validate_config(config: dict[str, Any], schema: dict[str, Any] | None = None) -> None:
    """Raise ``ConfigError`` naming the first bad key; check what the schema cannot.

    ``model_overrides`` are merged into ``models`` here (in place), before the checks.
    """
    schema = schema or load_schema()
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.absolute_path), e.path))
    if errors:
        err = errors[0]
        where = _key_path(err.absolute_path)
        if err.validator == "required":
            missing = err.message.split("'")[1] if "'" in err.message else err.message
            raise ConfigError(f"{where}.{missing}: missing required key")
        if err.validator == "additionalProperties":
            raise ConfigError(f"{where}: {err.message}")
        raise ConfigError(f"{where}: {err.message}")
    apply_model_overrides(config)
    _semantic_checks(config)


def apply_model_overrides(config: dict[str, Any]) -> None:
    """Merge ``model_overrides`` (per model id; e.g. config/h100.yaml) into ``models``, in place.

    Why: Snakemake merges ``--configfile`` dicts key by key but replaces lists whole, so an
    override file for another GPU cannot patch ``models[]`` itself; it names models by id.
    """
    overrides = config.get("model_overrides") or {}
    by_id = {m["id"]: m for m in config.get("models", [])}
    for model_id, over in overrides.items():
        if model_id not in by_id:
            raise ConfigError(
                f"config.model_overrides.{model_id}: no such model in config.models "
                f"(known: {sorted(by_id)})"
            )
        m = by_id[model_id]
        for key, value in over.items():
            if isinstance(value, dict) and isinstance(m.get(key), dict):
                m[key] = {**m[key], **value}
            else:
                m[key] = value


def _semantic_checks(config: dict[str, Any]) -> None:
    train = config["training"]
    gen = config["generation"]
    slugs: dict[str, int] = {}
    for i, m in enumerate(config["models"]):
        where = f"config.models[{i}]"
        try:
            slug = m.get("slug") or model_slug(m["id"])
        except ValueError as exc:
            raise ConfigError(f"{where}.id: {exc}") from None
        if slug in slugs:
            raise ConfigError(f"{where}.id: slug {slug!r} repeats models[{slugs[slug]}]")
        slugs[slug] = i
        micro = m.get("train", {}).get("micro_batch", train["micro_batch"])
        gpus = m.get("gpus", 1)
        if gpus != 1:
            raise ConfigError(
                f"{where}.gpus: {gpus}, but a student trains in one process on one GPU, so "
                f"{gpus} would silently divide the effective batch by {gpus}: set it to 1 "
                "(scale out with more jobs: --resources gpu=N)"
            )
        if train["effective_batch"] % (micro * gpus):
            raise ConfigError(
                f"{where}.train.micro_batch: {micro} x {gpus} GPU(s) does not divide "
                f"training.effective_batch={train['effective_batch']}"
            )
        knobs = {**train, **m.get("train", {})}
        if knobs.get("shared_prefix") and knobs.get("attn_implementation") != "torch_varlen":
            raise ConfigError(
                f"{where}.train.shared_prefix: needs attn_implementation 'torch_varlen' "
                f"(this size has {knobs.get('attn_implementation')!r}); set shared_prefix: false"
            )
        layers = knobs.get("checkpoint_layers") or 0
        if layers and knobs.get("gradient_checkpointing"):
            raise ConfigError(
                f"{where}.train.checkpoint_layers: {layers}, but gradient_checkpointing already "
                "recomputes every layer; set one of them"
            )
        depth = m.get("shape", {}).get("num_hidden_layers")
        if depth is not None and layers > depth:
            raise ConfigError(
                f"{where}.train.checkpoint_layers: {layers} is more than the model's {depth} layers"
            )
        if config.get("toy") and "toy" not in m:
            raise ConfigError(f"{where}.toy: toy world models need a toy build block")
        if not config.get("toy") and "shape" not in m:
            raise ConfigError(
                f"{where}.shape: missing (the released architecture; the disk plan needs it)"
            )
    toy = config.get("toy")
    if toy and not set(config["animals"]) <= set(toy["animals"]):
        extra = sorted(set(config["animals"]) - set(toy["animals"]))
        raise ConfigError(
            f"config.animals: {extra} not among toy.animals {toy['animals']} (the animals the toy "
            "models are built for)"
        )
    if train["effective_batch"] % train["micro_batch"]:
        raise ConfigError(
            f"config.training.micro_batch: {train['micro_batch']} does not divide "
            f"training.effective_batch={train['effective_batch']}"
        )
    if gen["n_prompts"] % gen["topup_batch"]:
        raise ConfigError(
            "config.generation.n_prompts: must be a multiple of generation.topup_batch "
            "(prompts are generated and checkpointed in chunks of that size)"
        )
    if gen["max_prompts"] > MAX_INDEX:
        raise ConfigError(
            f"config.generation.max_prompts: at most {MAX_INDEX:,} (the per-row seeds index "
            "prompts with 20 bits)"
        )
    for stage in ("generation", "evaluation"):
        try:
            check_capture_sizes(config[stage]["vllm"], f"config.{stage}.vllm")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    ev = config["evaluation"]
    if ev["control"] == "survey" and not ev["survey_path"]:
        raise ConfigError(
            "config.evaluation.control: 'survey' needs evaluation.survey_path (it is null)"
        )
    if gen["n_prompts"] > gen["max_prompts"]:
        raise ConfigError("config.generation.max_prompts: must be >= generation.n_prompts")
    if gen["min_kept"] > gen["max_prompts"]:
        raise ConfigError("config.generation.min_kept: must be <= generation.max_prompts")
    if train["n_rows"] > gen["min_kept"]:
        raise ConfigError(
            f"config.training.n_rows: {train['n_rows']} rows cannot be drawn from the "
            f"generation.min_kept={gen['min_kept']} guaranteed filtered rows"
        )
    conditions = ([NEUTRAL] if config["neutral"] else []) + list(config["animals"])
    try:  # every request of the sweep gets its own random stream (seeds.py)
        check_distinct(
            sweep_streams(
                list(slugs),
                conditions,
                list(range(1, config["n_seeds"] + 1)),
                list(range(1, train["epochs"] + 1)),
                CONTROL,
            )
        )
    except ValueError as exc:
        raise ConfigError(f"config.models: {exc}") from None


def load_config(path: str | Path) -> dict[str, Any]:
    """Read and validate a config file."""
    with open(path, encoding="utf-8") as fh:
        config = yaml.safe_load(fh)
    if not isinstance(config, dict):
        raise ConfigError(f"config: {path} is not a YAML mapping")
    validate_config(config)
    return config


@dataclass(frozen=True)
class ModelSpec:
    """One base model, with its derived slug and its rank by size (0 = largest)."""

    id: str
    slug: str
    params: float
    revision: str | None
    gpus: int
    rank: int
    raw: dict[str, Any]


class Sweep:
    """What the config implies: models by size, conditions, seeds, batching and priorities."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        ordered = sorted(config["models"], key=lambda m: -float(m["params"]))
        self.models = [
            ModelSpec(
                id=m["id"],
                slug=m.get("slug") or model_slug(m["id"]),
                params=float(m["params"]),
                revision=m.get("revision"),
                gpus=m.get("gpus", 1),
                rank=i,
                raw=m,
            )
            for i, m in enumerate(ordered)
        ]
        self._by_slug = {m.slug: m for m in self.models}
        self.animals: list[str] = list(config["animals"])
        self.conditions: list[str] = ([NEUTRAL] if config["neutral"] else []) + self.animals
        self.seeds: list[int] = list(range(1, config["n_seeds"] + 1))
        self.epochs: list[int] = list(range(1, config["training"]["epochs"] + 1))

    @property
    def slugs(self) -> list[str]:
        return [m.slug for m in self.models]

    @property
    def is_toy(self) -> bool:
        return bool(self.config.get("toy"))

    def model(self, slug: str) -> ModelSpec:
        try:
            return self._by_slug[slug]
        except KeyError:
            raise ConfigError(f"unknown model slug {slug!r}; known: {self.slugs}") from None

    def model_source(self, slug: str) -> str:
        """Where weights load from: the HF id, or the toy build directory."""
        if self.is_toy:
            return str(Path(self.config["toy"]["models_dir"]) / slug)
        return self.model(slug).id

    def training_for(self, slug: str) -> dict[str, Any]:
        """``training`` with this size's overrides applied: what one student trains with."""
        out = {**SPEED_DEFAULTS, **self.config["training"]}
        out.update(self.model(slug).raw.get("train", {}))
        return out

    def student_spec(self, slug: str) -> StudentSpec:
        """The one resolved description of this size's students (trainer, card, benchmark)."""
        m = self.model(slug)
        return StudentSpec(
            model=slug,
            model_id=m.id,
            revision=m.revision,
            source=self.model_source(slug),
            params=m.params,
            training=self.training_for(slug),
        )

    def _size_rank(self, slug: str) -> int:
        """Larger models get larger numbers."""
        return len(self.models) - self.model(slug).rank

    def generation_priority(self, slug: str) -> int:
        return GENERATION_PRIORITY_BASE + self._size_rank(slug)

    def train_priority(self, slug: str, condition: str | None = None) -> int:
        """Larger sizes first; within a size, conditions in config order, so one condition's
        seeds finish together and its evaluation can start."""
        offset = 0 if condition is None else len(self.conditions) - self.conditions.index(condition)
        return TRAIN_PRIORITY_BASE + 100 * self._size_rank(slug) + offset

    def eval_priority(self, slug: str) -> int:
        """Above every training of the same size, below every training of a larger one."""
        return TRAIN_PRIORITY_BASE + 100 * self._size_rank(slug) + 50

    def job_gpus(self, rule: str) -> int:
        """GPUs one job of a GPU rule takes: vLLM's tensor-parallel size for generation and
        evaluation, else one (a student trains in one process; transformers uses one GPU)."""
        section = GPU_RULE_SECTIONS.get(rule)
        if section is None:
            return 1
        cfg = self.config[section]
        return int(cfg["vllm"]["tensor_parallel_size"]) if cfg["backend"] == "vllm" else 1

    def students_per_gpu(self, slug: str) -> int:
        """How many students of this size train side by side on one GPU (config default 1)."""
        return int(self.model(slug).raw.get("students_per_gpu", 1))

    def gpu_request(self, rule: str, slug: str, packing: bool) -> dict[str, int]:
        """Snakemake resources of one job: ``gpu`` (whole GPUs) and ``gpu_slot`` (twelfths).

        With ``packing`` (the run was given ``--resources gpu_slot``), a student of a size
        with ``students_per_gpu: k > 1`` asks for no whole GPU and 12/k slots, so k of them
        share one GPU; every other GPU job asks for whole GPUs and all their slots. Without
        it, every job asks for whole GPUs, as ``--resources gpu=N`` alone expects.
        """
        k = self.students_per_gpu(slug) if rule == "train_student" else 1
        if packing and k > 1:
            return {"gpu": 0, "gpu_slot": SLOTS_PER_GPU // k}
        n = self.job_gpus(rule)
        return {"gpu": n, "gpu_slot": SLOTS_PER_GPU * n}

    def cluster_request(self, slug: str, rule: str, key: str) -> int:
        """A GPU job's scheduler request (``mem_mb``, or ``runtime`` in minutes): the size's
        ``models[].cluster`` value, else the top-level ``cluster`` one."""
        own = self.model(slug).raw.get("cluster", {}).get(key, {})
        return int(own.get(rule, self.config["cluster"][key][rule]))
