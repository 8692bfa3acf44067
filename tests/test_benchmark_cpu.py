"""The GPU benchmark's code path (the students' build_trainer with the real tokenizer and
protocol prompts) runs on a tiny shape on the CPU, so it cannot rot between GPU sessions."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from .conftest import REPO, SHARED

pytestmark = pytest.mark.slow


def test_bench_train_runs_on_a_tiny_shape(tmp_path):
    if not (SHARED / "qwen2.5-tokenizer").is_dir():
        pytest.skip("../shared/reference-data is not present")
    res = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "bench_train.py"), "--ref", str(SHARED),
         "--tiny", "--sizes", "0.5B", "--effective-batch", "4", "--micro-batch", "2",
         "--warmup", "1", "--steps", "2", "--out", str(tmp_path),
         # Liger needs Triton (CUDA) and flex attention compiles for the GPU: the rest of the
         # configured path (padding-free, bucketed lengths) runs here as on the GPU
         "--set", "liger_kernel=false", "--set", "attn_implementation=sdpa",
         # a loss at every step: the shipped log every 10 steps logs none in 3
         "--set", "logging_steps=1"],
        capture_output=True, text=True, timeout=600, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    (report,) = tmp_path.glob("*.json")
    result = json.loads(report.read_text())["results"][0]
    assert result["status"] == "ok" and result["final_loss_finite"]
    assert result["non_pad_tokens_per_s"] > 0 and 0 <= result["padding_fraction"] < 1
    knobs = result["speed_knobs"]
    assert knobs["padding_free"] is True and knobs["pad_to_multiple_of"] == 128


def test_check_levers_compares_a_lever_with_the_reference(tmp_path):
    """check_levers.py on the CPU: float32, one layer of the 0.5B shape, the real tokenizer; the
    padding-free step is the same function as the padded one, so its first-step gradient and
    its losses match the reference to float32 rounding."""
    if not (SHARED / "qwen2.5-tokenizer").is_dir():
        pytest.skip("../shared/reference-data is not present")
    sdpa = "attn_implementation=sdpa,liger_kernel=false"
    res = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "check_levers.py"), "--ref", str(SHARED),
         "--size", "0.5B", "--layers", "1", "--steps", "2", "--rows-per-step", "4",
         "--micro-batch", "2", "--out", str(tmp_path),
         "--variant", f"padded:bf16=false,padding_free=false,{sdpa}",
         "--variant", f"padding-free:{sdpa},pad_to_multiple_of=null"],
        capture_output=True, text=True, timeout=600, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads((tmp_path / "check-levers-0.5b.json").read_text())
    assert len(report["source_sha256_16"]) == 16  # the code that ran, whatever git says
    ref, free = report["variants"]
    assert "error" not in ref and "error" not in free, (ref.get("error"), free.get("error"))
    assert ref["dtype"] == free["dtype"] == "float32" and free["padding_free"]
    assert free["first_grad_rel_err"] < 1e-4 and free["first_grad_cosine"] > 0.9999
    assert free["first_grad_norm"] > 0
    assert free["losses"] == pytest.approx(ref["losses"], rel=1e-5) and len(ref["losses"]) == 2
