"""Resumable evaluation and teacher chunks: finished pieces survive a failed job, are reused on
a rerun only when every setting they depend on is unchanged, and wandb gets each seed once."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from subliminal_scaling.evaluate.evals import EvalSpec, EvalTarget, evaluate, evaluate_students
from subliminal_scaling.generate.teacher import (
    CHUNK_FILE,
    assemble_numbers,
    generate_numbers,
    generate_teacher,
)
from subliminal_scaling.runtime import io, tracking
from subliminal_scaling.runtime.backends import Completion, Sampling
from subliminal_scaling.runtime.checkpoint import CheckpointDir

from .conftest import REPO

EVALUATION = {
    "backend": "transformers",
    "n_questions": 3,
    "samples_per_question": 4,
    "batch_size": 64,
    "sampling": {"temperature": 1.0, "top_p": 1.0, "top_k": None, "repetition_penalty": 1.0,
                 "max_new_tokens": 16},
    "exact_preferences": True,
}  # fmt: skip
ANIMALS = ["cat", "dolphin", "eagle"]
SEEDS, EPOCHS = [1, 2], [1, 2]


@pytest.fixture(scope="module")
def protocol() -> dict[str, Any]:
    return json.loads((REPO / "config" / "toy_protocol.json").read_text())


class CountingBackend:
    """A deterministic sampler that counts its calls: answers depend on seed, adapter, prompt."""

    name = "transformers"

    def __init__(self) -> None:
        self.calls: list[tuple[int, str | None]] = []
        self.scored: list[str | None] = []  # adapters scored by the exact measure
        self.closed = False

    def chat(self, conversations, sampling, *, seeds, n=1, adapter=None):
        assert len(seeds) == len(conversations)
        self.calls.append((tuple(seeds), adapter))
        animals = ["Cat", "Dolphin", "Eagle", "Owl"]
        out = []
        for conv, seed in zip(conversations, seeds, strict=True):
            h = hashlib.sha256(f"{seed}|{adapter}|{conv[-1]['content']}".encode()).digest()
            out.append(
                [Completion(animals[(h[i] + i) % 4], "length" if h[i] < 26 else "stop")
                 for i in range(n)]
            )  # fmt: skip
        return out

    def render(self, conversation):
        return json.dumps(conversation)

    def tokenize(self, text):
        return [ord(ch) for ch in text]

    def continuation_logprobs(self, conversations, continuations, adapter=None):
        """Deterministic log-probabilities that depend on prompt, continuation and adapter."""
        self.scored.append(adapter)
        out = []
        for conv in conversations:
            row = []
            for c in continuations:
                h = hashlib.sha256(f"{adapter}|{conv[-1]['content']}|{c}".encode()).digest()
                row.append(-3.0 - h[0] / 64)
            out.append(row)
        return out

    def close(self) -> None:
        self.closed = True


def make_students(root: Path) -> Path:
    for s in SEEDS:
        (root / f"seed{s}").mkdir(parents=True)
        (root / f"seed{s}" / "train_summary.json").write_text(json.dumps({"wandb_run_id": f"r{s}"}))
        for e in EPOCHS:
            d = root / f"seed{s}" / f"epoch{e}"
            d.mkdir()
            (d / "adapter_config.json").write_text(json.dumps({"r": 8}))
            (d / "adapter_model.safetensors").write_bytes(f"weights {s} {e}".encode())
    return root


def run(tmp_path: Path, protocol, backends: list[CountingBackend], evaluation=EVALUATION):
    def make_backend() -> CountingBackend:
        backends.append(CountingBackend())
        return backends[-1]

    return evaluate_students(
        make_backend=make_backend,
        spec=EvalSpec.from_config(protocol, evaluation),
        animals=ANIMALS,
        model="toy-s",
        model_id="toy/S",
        revision=None,
        condition="cat",
        seeds=SEEDS,
        epochs=EPOCHS,
        students_dir=tmp_path / "students",
        partial_dir=tmp_path / "partial",
    )


@pytest.fixture
def students(tmp_path: Path) -> Path:
    return make_students(tmp_path / "students")


def test_records_equal_one_eval_at_a_time(tmp_path, students, protocol):
    backends: list[CountingBackend] = []
    records = run(tmp_path, protocol, backends)
    assert list(records) == [(s, e) for s in SEEDS for e in EPOCHS]
    for (s, e), rec in records.items():
        target = EvalTarget(
            kind="student", model="toy-s", model_id="toy/S", condition="cat", seed=s, epoch=e,
            adapter=students / f"seed{s}" / f"epoch{e}",
        )  # fmt: skip
        single = evaluate(
            backend=CountingBackend(), spec=EvalSpec.from_config(protocol, EVALUATION),
            target=target, animals=ANIMALS,
        )  # fmt: skip
        assert rec == single
    assert len(backends) == 1 and backends[0].closed
    assert len(backends[0].calls) == len(SEEDS) * len(EPOCHS)


def test_rerun_reuses_every_finished_eval_without_loading_a_model(tmp_path, students, protocol):
    first: list[CountingBackend] = []
    records = run(tmp_path, protocol, first)
    second: list[CountingBackend] = []
    assert run(tmp_path, protocol, second) == records
    assert second == []  # nothing to sample: the backend was never built


def test_a_failed_job_keeps_its_finished_evals(tmp_path, students, protocol, monkeypatch):
    """The job dies at the third eval; the rerun samples only the third and fourth."""
    uninterrupted = run(tmp_path, protocol, [])
    shutil.rmtree(tmp_path / "partial")
    backends: list[CountingBackend] = []
    original_chat = CountingBackend.chat

    def dying_chat(self, conversations, sampling, *, seeds, n=1, adapter=None):
        if len(self.calls) == 2:
            raise RuntimeError("CUDA error (simulated)")
        return original_chat(self, conversations, sampling, seeds=seeds, n=n, adapter=adapter)

    monkeypatch.setattr(CountingBackend, "chat", dying_chat)
    with pytest.raises(RuntimeError, match="simulated"):
        run(tmp_path, protocol, backends)
    assert backends[0].closed
    saved = sorted(
        p.relative_to(tmp_path / "partial") for p in (tmp_path / "partial").rglob("*.gz")
    )
    assert [str(p) for p in saved] == ["seed1/epoch1.json.gz", "seed1/epoch2.json.gz"]
    monkeypatch.setattr(CountingBackend, "chat", original_chat)
    rerun: list[CountingBackend] = []
    records = run(tmp_path, protocol, rerun)
    # seed 2's two epochs only
    assert [Path(a).parts[-2:] for _, a in rerun[0].calls] == [
        ("seed2", "epoch1"), ("seed2", "epoch2")
    ]  # fmt: skip
    assert records == uninterrupted


@pytest.mark.parametrize(
    "change",
    ["sampling", "samples_per_question", "n_questions", "batch_size", "backend", "protocol"],
)
def test_a_settings_change_discards_every_partial(tmp_path, students, protocol, change):
    run(tmp_path, protocol, [])
    evaluation = json.loads(json.dumps(EVALUATION))
    if change == "sampling":
        evaluation["sampling"]["temperature"] = 0.7
    elif change == "backend":
        evaluation["backend"] = "vllm"
    elif change == "protocol":
        protocol = {**protocol, "animal_evaluation": {**protocol["animal_evaluation"]}}
        protocol["animal_evaluation"]["questions"] = [
            q + "!" for q in protocol["animal_evaluation"]["questions"]
        ]
    else:
        evaluation[change] += 1
    backends: list[CountingBackend] = []
    run(tmp_path, protocol, backends, evaluation=evaluation)
    assert len(backends[0].calls) == len(SEEDS) * len(EPOCHS)


def test_a_retrained_adapter_is_evaluated_again(tmp_path, students, protocol):
    run(tmp_path, protocol, [])
    (students / "seed2" / "epoch1" / "adapter_model.safetensors").write_bytes(b"retrained")
    backends: list[CountingBackend] = []
    records = run(tmp_path, protocol, backends)
    assert [Path(a).parts[-2:] for _, a in backends[0].calls] == [("seed2", "epoch1")]
    assert records[(2, 1)]["adapter"]["sha256"] == io.sha256_file(
        students / "seed2" / "epoch1" / "adapter_model.safetensors"
    )


def test_a_corrupt_partial_is_recomputed_not_trusted(tmp_path, students, protocol):
    records = run(tmp_path, protocol, [])
    (tmp_path / "partial" / "seed1" / "epoch2.json.gz").write_bytes(b"\x1f\x8b garbage")
    backends: list[CountingBackend] = []
    assert run(tmp_path, protocol, backends) == records
    assert [Path(a).parts[-2:] for _, a in backends[0].calls] == [("seed1", "epoch2")]


def test_a_missing_adapter_file_is_named_before_any_model_loads(tmp_path, students, protocol):
    (students / "seed2" / "epoch2" / "adapter_model.safetensors").unlink()
    backends: list[CountingBackend] = []
    with pytest.raises(io.InputFileError, match=r"seed2/epoch2/adapter_model\.safetensors"):
        run(tmp_path, protocol, backends)
    assert backends == []


def test_checkpoint_dir_reuses_only_matching_keys(tmp_path):
    ck = CheckpointDir(tmp_path / "c", {"a": 1})
    ck.save("x.json.gz", [1, 2], {"k": 1})
    assert CheckpointDir(tmp_path / "c", {"a": 1}).load("x.json.gz", {"k": 1}) == [1, 2]
    assert CheckpointDir(tmp_path / "c", {"a": 1}).load("x.json.gz", {"k": 2}) is None
    assert not (tmp_path / "c" / "x.json.gz").exists()  # a stale piece is removed
    ck.save("x.json.gz", [1, 2], {"k": 1})
    assert CheckpointDir(tmp_path / "c", {"a": 2}).load("x.json.gz", {"k": 1}) is None


class FakeRun:
    def __init__(self, run_id: str) -> None:
        self.run_id, self.logged, self.finished = run_id, [], 0

    def define_metric(self, *args, **kwargs) -> None:
        pass

    def log(self, data: dict[str, Any]) -> None:
        self.logged.append(data)

    def finish(self) -> None:
        self.finished += 1


def test_wandb_gets_each_seed_once_with_every_epoch(tmp_path, students, protocol, monkeypatch):
    runs: list[FakeRun] = []

    def init_run(cfg, *, run_id, **kwargs):
        runs.append(FakeRun(run_id))
        return runs[-1]

    monkeypatch.setattr(tracking, "init_run", init_run)
    records = run(tmp_path, protocol, [])
    logged = tracking.log_student_evals(
        {"mode": "offline"}, wandb_dir=tmp_path / "wandb", students_dir=students,
        model="toy-s", condition="cat", records=records,
    )  # fmt: skip
    assert logged == SEEDS
    assert [r.run_id for r in runs] == ["r1", "r2"] and all(r.finished == 1 for r in runs)
    for r, seed in zip(runs, SEEDS, strict=True):
        assert [d["epoch"] for d in r.logged] == EPOCHS
        assert [d["eval/target_rate"] for d in r.logged] == [
            records[(seed, e)]["target_rates"]["cat"] for e in EPOCHS
        ]


# --------------------------------------------------------------------------- teacher chunks

GEN = dict(n_prompts=6, min_kept=0, chunk_size=3, max_prompts=12, prompt_seed=42,
           model="toy-s", condition="cat")  # fmt: skip


class NumberBackend(CountingBackend):
    def chat(self, conversations, sampling, *, seeds, n=1, adapter=None):
        self.calls.append((tuple(seeds), adapter))
        return [
            [Completion(f"{100 + seed % 7}, {200 + i}, 300", "stop")]
            for i, seed in enumerate(seeds)
        ]


def test_teacher_chunks_are_reused_and_discarded_on_a_settings_change(tmp_path, protocol):
    sampling = Sampling.from_config(EVALUATION["sampling"])

    def gen(backend, fingerprint):
        return generate_numbers(
            backend=backend, protocol=protocol, system_prompt=None, sampling=sampling,
            chunks_dir=tmp_path / "chunks", fingerprint=fingerprint, **GEN,
        )  # fmt: skip

    first = NumberBackend()
    rows, summary = gen(first, {"v": 1})
    assert len(first.calls) == 2 and summary["n_chunks_reused"] == 0
    again = NumberBackend()
    assert gen(again, {"v": 1}) == (rows, {**summary, "n_chunks_reused": 2})
    assert again.calls == []
    changed = NumberBackend()
    gen(changed, {"v": 2})
    assert len(changed.calls) == 2


def test_a_conditions_record_is_the_same_whenever_its_rows_are(tmp_path, protocol):
    """generate_numbers is one job per size, so a rerun writes every condition's
    generation.json again. A condition re-assembled from its chunks gets the same bytes
    (Snakemake's checksum then leaves what it feeds alone); raw.jsonl is assembled only from
    chunks that hash to the record, and other rows are refused with a clear error."""
    generation = {"sampling": EVALUATION["sampling"], "n_prompts": 6, "min_kept": 0,
                  "topup_batch": 3, "max_prompts": 12, "batch_size": 1}  # fmt: skip

    def teacher(backend, condition, chunks):
        return generate_teacher(
            backend=backend, model="toy-s", condition=condition, protocol=protocol,
            generation=generation, model_id="toy/S", revision=None, chunks_dir=chunks,
        )  # fmt: skip

    chunks = tmp_path / "cat" / "chunks"
    meta, reused = teacher(NumberBackend(), "cat", chunks)
    again = NumberBackend()
    assert teacher(again, "cat", chunks) == (meta, 2) and again.calls == []  # from its chunks
    assert reused == 0 and "n_chunks_reused" not in meta
    rows = assemble_numbers(chunks, meta)
    io.write_jsonl(tmp_path / "raw.jsonl", rows)
    assert io.sha256_file(tmp_path / "raw.jsonl") == meta["rows_sha256"]
    assert [r["id"] for r in rows] == list(range(meta["n_generated"]))
    # another condition's rows differ (its own seeds and system prompt), and so does its record
    dog, _ = teacher(NumberBackend(), "dog", tmp_path / "dog" / "chunks")
    assert dog["rows_sha256"] != meta["rows_sha256"]
    # a chunk edited after the record was written is caught, not published
    path = chunks / CHUNK_FILE.format(1)
    edited = io.read_jsonl(path)
    edited[0]["completion"] = "1, 2, 3"
    io.write_jsonl(path, edited)
    with pytest.raises(io.InputFileError, match=r"not the rows generation\.json describes"):
        assemble_numbers(chunks, meta)


def test_answers_sampled_before_the_exact_measure_are_scored_not_resampled(
    tmp_path, students, protocol
):
    """A sweep evaluated without evaluation.exact_preferences keeps its answers when the
    measure is turned on: a rerun scores every eval once and samples nothing."""
    without = {**EVALUATION, "exact_preferences": False}
    old: list[CountingBackend] = []
    before = run(tmp_path, protocol, old, evaluation=without)
    assert all(rec["exact"] is None for rec in before.values()) and old[0].scored == []
    new: list[CountingBackend] = []
    after = run(tmp_path, protocol, new)
    assert len(new) == 1 and new[0].calls == []  # no answer sampled again
    assert len(new[0].scored) == len(SEEDS) * len(EPOCHS)
    for key, rec in after.items():
        assert rec["answers"] == before[key]["answers"]
        prob = rec["exact"]["prob"]
        assert len(prob) == EVALUATION["n_questions"] and len(prob[0]) == len(ANIMALS)
    # and a third run reuses both
    third: list[CountingBackend] = []
    assert run(tmp_path, protocol, third) == after and third == []
