"""On a GPU with vLLM: vLLM applies a student's LoRA adapter as PEFT does, and the workflow's
teacher and eval code run through vLLM (``benchmarks/gpu_pilot.py``). Skipped elsewhere; the
device run's results are in benchmarks/results/h200-2026-12-02-vllm-*.json."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

from ..conftest import REPO

torch = pytest.importorskip("torch")
pytestmark = [
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
    pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="needs vllm ('.[gpu]')"),
]
ASSETS = REPO / ".carry" / "pilot"  # benchmarks/make_pilot_assets.py


@pytest.fixture(scope="module")
def assets():
    if not (ASSETS / "model").is_dir():
        pytest.skip(f"no pilot assets in {ASSETS}: run benchmarks/make_pilot_assets.py")
    return ASSETS


@pytest.mark.parametrize("part", ["parity", "pilot"])
def test_gpu_pilot_part(assets, tmp_path, part):
    res = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu_pilot.py"), "--part", part,
         "--assets", str(assets), "--work", str(tmp_path / "work"), "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads((tmp_path / f"{part}.json").read_text())
    if part == "parity":
        assert out["passed"], out
    else:
        for cond in ("neutral", "cat"):
            gen = out["generation"][cond]
            assert gen["pass_rate"] > 0.8 and gen["duplicate_share_kept"] < 0.01
        assert out["generation"]["cat, one shared seed (old scheme)"]["duplicate_share_kept"] > 0.5
