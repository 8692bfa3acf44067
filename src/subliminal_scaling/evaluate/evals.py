"""The standard animal-preference eval: the protocol's questions, each sampled n times as a
user message with no system message (the chat template's default is inserted, as in
training), scored from the raw answers by both views.

An eval is two typed things: ``EvalSpec``, the settings (questions, samples, sampling,
backend), resolved once per job from the protocol and config; and ``EvalTarget``, what is
evaluated (a student's epoch, or a base model). Seeds, fingerprints and records all read them.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from subliminal_scaling.evaluate.exact import exact_preferences
from subliminal_scaling.evaluate.scoring import EvalRecord, make_eval_record
from subliminal_scaling.protocol.access import eval_questions, eval_samples_per_question
from subliminal_scaling.runtime import io, layout
from subliminal_scaling.runtime.backends import Backend, Sampling, make_conversation
from subliminal_scaling.runtime.checkpoint import CheckpointDir
from subliminal_scaling.runtime.layout import ADAPTER_FILES
from subliminal_scaling.runtime.naming import CONTROL, STUDENT
from subliminal_scaling.runtime.seeds import SEED_SCHEME, check_samples, eval_seeds

log = logging.getLogger(__name__)


def _sha256_json(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class EvalSpec:
    """The eval's settings: the protocol's questions and samples unless config narrows them."""

    questions: tuple[str, ...]
    samples_per_question: int
    sampling: Sampling
    backend: str
    batch_size: int
    protocol_sha256: str
    exact: bool = False  # also the sampling-free measure (evaluate.exact)

    @classmethod
    def from_config(cls, protocol: dict[str, Any], evaluation: dict[str, Any]) -> EvalSpec:
        n = evaluation["samples_per_question"] or eval_samples_per_question(protocol)
        check_samples(n)
        return cls(
            questions=tuple(eval_questions(protocol, evaluation["n_questions"])),
            samples_per_question=n,
            sampling=Sampling.from_config(evaluation["sampling"]),
            backend=evaluation["backend"],
            batch_size=evaluation["batch_size"],
            protocol_sha256=_sha256_json(protocol),
            exact=bool(evaluation["exact_preferences"]),
        )

    @property
    def n_answers(self) -> int:
        return len(self.questions) * self.samples_per_question


@dataclass(frozen=True)
class EvalTarget:
    """What one eval measures: a student (seed, epoch, adapter) or a base model's control."""

    kind: str
    model: str
    model_id: str
    condition: str
    seed: int | None = None
    epoch: int | None = None
    adapter: Path | None = None

    @classmethod
    def control(cls, model: str, model_id: str) -> EvalTarget:
        return cls(kind=CONTROL, model=model, model_id=model_id, condition=CONTROL)

    def seeds(self, n_questions: int) -> list[int]:
        """One seed per question, from what this eval is (runtime.seeds)."""
        return eval_seeds(self.model, self.condition, self.seed, self.epoch, range(n_questions))


def sample_answers(
    backend: Backend,
    questions: list[str] | tuple[str, ...],
    n: int,
    sampling: Sampling,
    seeds: list[int],
    adapter: str | None = None,
) -> dict[str, list[Any]]:
    """``n`` answers per question, question ``i`` sampled with ``seeds[i]``.

    Returns parallel lists (question index, question, answer, finish reason). All ``n``
    samples of a question are one request, so the backend can share its prefill.
    """
    outs = backend.chat(
        [make_conversation(q, None) for q in questions],
        sampling,
        n=n,
        seeds=seeds,
        adapter=adapter,
    )
    samples: dict[str, list[Any]] = {
        "question_indices": [],
        "questions": [],
        "answers": [],
        "finish_reasons": [],
    }
    for i, (q, group) in enumerate(zip(questions, outs, strict=True)):
        for c in group:
            samples["question_indices"].append(i)
            samples["questions"].append(q)
            samples["answers"].append(c.text)
            samples["finish_reasons"].append(c.finish_reason)
    return samples


def adapter_hashes(adapter: str | Path) -> dict[str, str]:
    """sha256 of each adapter file. A missing file raises ``InputFileError`` naming it, rather
    than whatever PEFT (or vLLM) would make of a half-present adapter."""
    out = {}
    for name in ADAPTER_FILES:
        path = Path(adapter) / name
        if not path.is_file():
            raise io.InputFileError(f"{path}: adapter file not found (retrain the student)")
        out[name] = io.sha256_file(path)
    return out


def sample_target(backend: Backend, spec: EvalSpec, target: EvalTarget) -> dict[str, list[Any]]:
    """One eval's answers; each question's seed comes from (model, condition, seed, epoch,
    question), so no two questions, epochs, students or conditions share a random stream."""
    adapter = None if target.adapter is None else str(target.adapter)
    seeds = target.seeds(len(spec.questions))
    return sample_answers(
        backend, spec.questions, spec.samples_per_question, spec.sampling, seeds, adapter
    )


def score_target(
    backend: Backend, spec: EvalSpec, target: EvalTarget, animals: list[str]
) -> dict[str, Any]:
    """The eval's sampling-free measure: P(answer starts with each animal), per question."""
    adapter = None if target.adapter is None else str(target.adapter)
    return exact_preferences(backend, spec.questions, animals, adapter)


def make_record(
    samples: dict[str, list[Any]],
    spec: EvalSpec,
    target: EvalTarget,
    animals: list[str],
    hashes: dict[str, str] | None,
) -> EvalRecord:
    """The eval record of ``target`` from its sampled answers."""
    adapter_info = None
    if target.adapter is not None and hashes is not None:
        adapter_info = {"path": str(target.adapter), "sha256": hashes["adapter_model.safetensors"]}
    return make_eval_record(
        kind=target.kind,
        model=target.model,
        model_id=target.model_id,
        condition=target.condition,
        seed=target.seed,
        epoch=target.epoch,
        backend=spec.backend,
        sampling={**spec.sampling.to_dict(), "samples_per_question": spec.samples_per_question},
        max_new_tokens=spec.sampling.max_new_tokens,
        adapter=adapter_info,
        questions=samples["questions"],
        question_indices=samples["question_indices"],
        answers=samples["answers"],
        finish_reasons=samples["finish_reasons"],
        animals=animals,
        exact=samples.get("exact"),
    )


def evaluate(
    *, backend: Backend, spec: EvalSpec, target: EvalTarget, animals: list[str]
) -> EvalRecord:
    """Run one eval and return its record (raw answers, normalised answers, both views)."""
    # a missing adapter file fails here, naming it, before any sampling
    hashes = adapter_hashes(target.adapter) if target.adapter is not None else None
    samples: dict[str, Any] = sample_target(backend, spec, target)
    if spec.exact:
        samples["exact"] = score_target(backend, spec, target, animals)
    return make_record(samples, spec, target, animals, hashes)


def eval_fingerprint(
    *, spec: EvalSpec, model: str, model_id: str, revision: str | None, condition: str
) -> dict[str, Any]:
    """Everything a student's sampled answers depend on besides its adapter and seed.

    The batch size is in it: with the transformers backend it decides how the random stream
    is split across prompts, so it changes the samples.
    """
    return {
        "model": model,
        "model_id": model_id,
        "revision": revision,
        "condition": condition,
        "backend": spec.backend,
        "batch_size": spec.batch_size,
        "seed_scheme": SEED_SCHEME,
        "sampling": spec.sampling.to_dict(),
        "protocol_sha256": spec.protocol_sha256,
        "n_questions": len(spec.questions),
        "samples_per_question": spec.samples_per_question,
    }


def evaluate_students(
    *,
    make_backend: Callable[[], Backend],
    spec: EvalSpec,
    animals: list[str],
    model: str,
    model_id: str,
    revision: str | None,
    condition: str,
    seeds: list[int],
    epochs: list[int],
    students_dir: str | Path,
    partial_dir: str | Path,
) -> dict[tuple[int, int], EvalRecord]:
    """Every (seed, epoch) eval of one (model, condition), resumable; records by (seed, epoch).

    Each eval's sampled answers are checkpointed in ``partial_dir`` (a ``CheckpointDir`` keyed
    by ``eval_fingerprint``; each piece also by its seed, epoch and adapter's hashes), so a
    job killed mid-way redoes only unfinished evals. Records are rebuilt from the answers, so
    a change in scoring never reuses a stale record. ``make_backend`` is called only if an
    eval must run; every adapter is checked first, before a model is loaded.
    """
    targets = {
        (s, e): EvalTarget(
            kind=STUDENT,
            model=model,
            model_id=model_id,
            condition=condition,
            seed=s,
            epoch=e,
            adapter=layout.epoch_dir(students_dir, s, e),
        )
        for s in seeds
        for e in epochs
    }
    hashes = {k: adapter_hashes(t.adapter) for k, t in targets.items()}
    fingerprint = eval_fingerprint(
        spec=spec, model=model, model_id=model_id, revision=revision, condition=condition
    )
    partial = CheckpointDir(partial_dir, fingerprint)
    backend: Backend | None = None
    records = {}
    try:
        for (seed, epoch), target in targets.items():
            name = layout.eval_file(seed, epoch)
            key = {"seed": seed, "epoch": epoch, "adapter_sha256": hashes[(seed, epoch)]}
            samples = partial.load(name, key)
            if samples is None:
                if backend is None:
                    backend = make_backend()
                samples = sample_target(backend, spec, target)
                if spec.exact:  # saved together: a finished piece always has both
                    samples["exact"] = score_target(backend, spec, target, animals)
                partial.save(name, samples, key)
                log.info("seed %d epoch %d: evaluated", seed, epoch)
            elif spec.exact and "exact" not in samples:  # sampled before the measure existed
                if backend is None:
                    backend = make_backend()
                samples["exact"] = score_target(backend, spec, target, animals)
                partial.save(name, samples, key)
                log.info("seed %d epoch %d: reused answers, scored exactly", seed, epoch)
            else:
                log.info("seed %d epoch %d: reused %s", seed, epoch, partial.path(name))
            records[(seed, epoch)] = make_record(
                samples, spec, target, animals, hashes[(seed, epoch)]
            )
    finally:
        if backend is not None:
            backend.close()
    return records
