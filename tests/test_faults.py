"""Corrupt or missing inputs, at the functions the rules call: a JSONL cut mid-line or an
adapter file gone gives a one-line error naming the file, and nothing wrong is published."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from subliminal_scaling.evaluate.evals import EvalSpec, EvalTarget, evaluate
from subliminal_scaling.generate.teacher import filter_numbers
from subliminal_scaling.publish.local_hub import LocalHub
from subliminal_scaling.publish.repos import publish_numbers, publish_students
from subliminal_scaling.runtime import io

from .conftest import REPO
from .test_evaluate_resume import ANIMALS, EVALUATION, CountingBackend, make_students

TRAINING = {"epochs": 2, "learning_rate": 3e-3}


@pytest.fixture
def protocol() -> dict:
    return json.loads((REPO / "config" / "toy_protocol.json").read_text())


@pytest.fixture
def numbers(tmp_path: Path, protocol) -> dict:
    """raw.jsonl, filtered.jsonl and metadata as filter_numbers writes them."""
    d = tmp_path / "numbers"
    raw = [
        {"id": i, "prompt": f"p{i}", "system_prompt": None, "completion": f"{100 + i}, 200, 300",
         "finish_reason": "stop"}
        for i in range(20)
    ]  # fmt: skip
    kept, report = filter_numbers(raw, protocol)
    io.write_jsonl(d / "raw.jsonl", raw)
    io.write_jsonl(d / "filtered.jsonl", kept)
    meta = {
        "model_id": "toy/S",
        "revision": None,
        "sampling": {"temperature": 1.0},
        "n_filtered": len(kept),
        "sha256": {n: io.sha256_file(d / n) for n in ("raw.jsonl", "filtered.jsonl")},
    }
    return {"dir": d, "report": report, "meta": meta}


def cut_mid_line(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - len(data.splitlines()[-1]) // 2 - 1])


def publish(hub: LocalHub, numbers: dict) -> dict:
    d = numbers["dir"]
    return publish_numbers(
        hub=hub, ns="me", slug="toy-s", condition="neutral", filtered=d / "filtered.jsonl",
        raw=d / "raw.jsonl", report=numbers["report"], metadata=numbers["meta"],
        teacher_prompt=None, n_rows=10, n_seeds=2, private=False, stage_root=d,
    )  # fmt: skip


@pytest.mark.parametrize("name", ["raw.jsonl", "filtered.jsonl"])
def test_a_jsonl_cut_mid_line_is_named_by_the_reader(numbers, name):
    path = numbers["dir"] / name
    cut_mid_line(path)
    with pytest.raises(io.InputFileError, match=rf"{path}: truncated") as info:
        io.read_jsonl(path)  # what filter_numbers and train_student read their input with
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("name", ["raw.jsonl", "filtered.jsonl"])
def test_upload_refuses_a_truncated_file_and_publishes_nothing(tmp_path, numbers, name):
    hub = LocalHub(tmp_path / "hub", "me", max_retries=0)
    cut_mid_line(numbers["dir"] / name)
    with pytest.raises(io.InputFileError, match=rf"{numbers['dir'] / name}: truncated"):
        publish(hub, numbers)
    assert hub.history("me/toy-s-neutral-numbers", "dataset") == []


def test_upload_refuses_a_file_that_lost_whole_lines(tmp_path, numbers):
    """Cut at a line end, a file still parses: the sha256 filtering recorded catches it."""
    hub = LocalHub(tmp_path / "hub", "me", max_retries=0)
    path = numbers["dir"] / "filtered.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:-2]))
    with pytest.raises(io.InputFileError, match=rf"{path}: changed since filter_numbers"):
        publish(hub, numbers)
    assert hub.history("me/toy-s-neutral-numbers", "dataset") == []
    numbers["meta"]["sha256"]["filtered.jsonl"] = io.sha256_file(path)  # a consistent state
    assert publish(hub, numbers)["changed"] is True


def test_eval_with_a_missing_adapter_file_names_it(tmp_path, protocol):
    students = make_students(tmp_path / "students")
    adapter = students / "seed1" / "epoch2"
    (adapter / "adapter_model.safetensors").unlink()
    backend = CountingBackend()
    with pytest.raises(io.InputFileError, match=rf"{adapter}/adapter_model\.safetensors: .*not"):
        evaluate(
            backend=backend, spec=EvalSpec.from_config(protocol, EVALUATION), animals=ANIMALS,
            target=EvalTarget(kind="student", model="toy-s", model_id="toy/S", condition="cat",
                              seed=1, epoch=2, adapter=adapter),
        )  # fmt: skip
    assert backend.calls == []  # PEFT never saw the half-present adapter


@pytest.mark.parametrize("missing", ["adapter_model.safetensors", "adapter_config.json"])
def test_upload_of_students_with_a_missing_adapter_file_names_it(tmp_path, missing):
    students = make_students(tmp_path / "students")
    gone = students / "seed2" / "epoch1" / missing
    gone.unlink()
    hub = LocalHub(tmp_path / "hub", "me", max_retries=0)
    with pytest.raises(io.InputFileError, match=rf"{gone}: adapter file not found"):
        publish_students(
            hub=hub, ns="me", slug="toy-s", model_id="toy/S", condition="cat",
            students_dir=students, seeds=[1, 2], epochs=[1, 2], recipe=TRAINING,
            datasets=["me/toy-s-cat-numbers"], eval_table_md=None, upload_epochs=True,
            private=False, stage_root=tmp_path,
        )  # fmt: skip
    assert hub.history("me/toy-s-cat-ft", "model") == []
