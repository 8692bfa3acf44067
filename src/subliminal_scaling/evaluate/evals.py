"""The standard animal-preference eval: the protocol's questions, each sampled n times as a
user message with no system message (the chat template's default is inserted, as in
training), scored from the raw answers by both views."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from subliminal_scaling.evaluate.scoring import make_eval_record
from subliminal_scaling.protocol.access import eval_questions, eval_samples_per_question
from subliminal_scaling.runtime import io
from subliminal_scaling.runtime.backends import Backend, Sampling, make_conversation
from subliminal_scaling.runtime.checkpoint import CheckpointDir
from subliminal_scaling.runtime.seeds import SEED_SCHEME, eval_seeds
from subliminal_scaling.train.student import ADAPTER_FILES

log = logging.getLogger(__name__)


def eval_plan(protocol: dict[str, Any], evaluation: dict[str, Any]) -> tuple[list[str], int]:
    """Questions and samples per question: the protocol's, unless config narrows them."""
    questions = eval_questions(protocol, evaluation["n_questions"])
    n = evaluation["samples_per_question"] or eval_samples_per_question(protocol)
    return questions, n


def sample_answers(
    backend: Backend,
    questions: list[str],
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


def _sample(
    backend: Backend,
    protocol: dict[str, Any],
    evaluation: dict[str, Any],
    adapter: str | None,
    *,
    model: str,
    condition: str,
    seed: int | None,
    epoch: int | None,
) -> dict[str, list[Any]]:
    """One eval's answers; each question's seed comes from (model, condition, seed, epoch,
    question), so no two questions, epochs, students or conditions share a random stream."""
    questions, n = eval_plan(protocol, evaluation)
    sampling = Sampling.from_config(evaluation["sampling"])
    seeds = eval_seeds(model, condition, seed, epoch, range(len(questions)))
    return sample_answers(backend, questions, n, sampling, seeds, adapter)


def _record(
    samples: dict[str, list[Any]],
    *,
    backend_name: str,
    evaluation: dict[str, Any],
    protocol: dict[str, Any],
    animals: list[str],
    kind: str,
    model: str,
    model_id: str,
    condition: str,
    seed: int | None,
    epoch: int | None,
    adapter: str | Path | None,
    hashes: dict[str, str] | None,
) -> dict[str, Any]:
    _, n = eval_plan(protocol, evaluation)
    sampling = Sampling.from_config(evaluation["sampling"])
    adapter_info = None
    if adapter is not None and hashes is not None:
        adapter_info = {"path": str(adapter), "sha256": hashes["adapter_model.safetensors"]}
    return make_eval_record(
        kind=kind,
        model=model,
        model_id=model_id,
        condition=condition,
        seed=seed,
        epoch=epoch,
        backend=backend_name,
        sampling={**sampling.to_dict(), "samples_per_question": n},
        max_new_tokens=sampling.max_new_tokens,
        adapter=adapter_info,
        questions=samples["questions"],
        question_indices=samples["question_indices"],
        answers=samples["answers"],
        finish_reasons=samples["finish_reasons"],
        animals=animals,
    )


def evaluate(
    *,
    backend: Backend,
    protocol: dict[str, Any],
    evaluation: dict[str, Any],
    animals: list[str],
    kind: str,
    model: str,
    model_id: str,
    condition: str,
    seed: int | None,
    epoch: int | None,
    adapter: str | Path | None,
) -> dict[str, Any]:
    """Run one eval and return its record (raw answers, normalised answers, both views)."""
    # a missing adapter file fails here, naming it, before any sampling
    hashes = adapter_hashes(adapter) if adapter is not None else None
    samples = _sample(
        backend,
        protocol,
        evaluation,
        None if adapter is None else str(adapter),
        model=model,
        condition=condition,
        seed=seed,
        epoch=epoch,
    )
    return _record(
        samples,
        backend_name=backend.name,
        evaluation=evaluation,
        protocol=protocol,
        animals=animals,
        kind=kind,
        model=model,
        model_id=model_id,
        condition=condition,
        seed=seed,
        epoch=epoch,
        adapter=adapter,
        hashes=hashes,
    )


def _sha256_json(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def eval_fingerprint(
    *,
    protocol: dict[str, Any],
    evaluation: dict[str, Any],
    model: str,
    model_id: str,
    revision: str | None,
    condition: str,
) -> dict[str, Any]:
    """Everything a student's sampled answers depend on besides its adapter and seed.

    The batch size is in it: with the transformers backend it decides how the random stream
    is split across prompts, so it changes the samples.
    """
    questions, n = eval_plan(protocol, evaluation)
    return {
        "model": model,
        "model_id": model_id,
        "revision": revision,
        "condition": condition,
        "backend": evaluation["backend"],
        "batch_size": evaluation["batch_size"],
        "seed_scheme": SEED_SCHEME,
        "sampling": Sampling.from_config(evaluation["sampling"]).to_dict(),
        "protocol_sha256": _sha256_json(protocol),
        "n_questions": len(questions),
        "samples_per_question": n,
    }


def evaluate_students(
    *,
    make_backend: Callable[[], Backend],
    protocol: dict[str, Any],
    evaluation: dict[str, Any],
    animals: list[str],
    model: str,
    model_id: str,
    revision: str | None,
    condition: str,
    seeds: list[int],
    epochs: list[int],
    students_dir: str | Path,
    partial_dir: str | Path,
) -> dict[tuple[int, int], dict[str, Any]]:
    """Every (seed, epoch) eval of one (model, condition), resumable; records by (seed, epoch).

    Each eval's sampled answers are checkpointed in ``partial_dir`` (a ``CheckpointDir`` keyed
    by ``eval_fingerprint``; each piece also by its seed, epoch and adapter's hashes), so a
    job killed mid-way redoes only unfinished evals. Records are rebuilt from the answers, so
    a change in scoring never reuses a stale record. ``make_backend`` is called only if an
    eval must run; every adapter is checked first, before a model is loaded.
    """
    students_dir = Path(students_dir)
    adapters = {(s, e): students_dir / f"seed{s}" / f"epoch{e}" for s in seeds for e in epochs}
    hashes = {k: adapter_hashes(path) for k, path in adapters.items()}
    fingerprint = eval_fingerprint(
        protocol=protocol,
        evaluation=evaluation,
        model=model,
        model_id=model_id,
        revision=revision,
        condition=condition,
    )
    partial = CheckpointDir(partial_dir, fingerprint)
    backend: Backend | None = None
    records = {}
    try:
        for (seed, epoch), adapter in adapters.items():
            name = f"seed{seed}/epoch{epoch}.json.gz"
            key = {"seed": seed, "epoch": epoch, "adapter_sha256": hashes[(seed, epoch)]}
            samples = partial.load(name, key)
            if samples is None:
                if backend is None:
                    backend = make_backend()
                samples = _sample(
                    backend,
                    protocol,
                    evaluation,
                    str(adapter),
                    model=model,
                    condition=condition,
                    seed=seed,
                    epoch=epoch,
                )
                partial.save(name, samples, key)
                log.info("seed %d epoch %d: evaluated", seed, epoch)
            else:
                log.info("seed %d epoch %d: reused %s", seed, epoch, partial.path(name))
            records[(seed, epoch)] = _record(
                samples,
                backend_name=fingerprint["backend"],
                evaluation=evaluation,
                protocol=protocol,
                animals=animals,
                kind="student",
                model=model,
                model_id=model_id,
                condition=condition,
                seed=seed,
                epoch=epoch,
                adapter=adapter,
                hashes=hashes[(seed, epoch)],
            )
    finally:
        if backend is not None:
            backend.close()
    return records
