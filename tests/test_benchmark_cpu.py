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
         "--set", "liger_kernel=false", "--set", "attn_implementation=sdpa"],
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
