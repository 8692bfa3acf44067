"""bench_vllm.py's driver (its GPU work runs on the device only): which worker runs for which
size and engine variant, and how an engine start is told cold from warm."""

from __future__ import annotations

import json
import sys

import pytest

from .conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import bench_vllm


def test_each_size_runs_once_per_engine_variant_and_parity_once():
    jobs = bench_vllm.worker_jobs(
        ["0.5B", "parity", "7B"], ['seqs512={"max_num_seqs": 512}', "configured={}"]
    )
    assert [k for k, _ in jobs] == [
        "size-0.5B-seqs512", "size-0.5B-configured", "parity", "size-7B-seqs512",
        "size-7B-configured",
    ]  # fmt: skip
    args = dict(jobs[0][1][i : i + 2] for i in range(0, len(jobs[0][1]), 2))
    assert args["--worker"] == "0.5B" and args["--variant-name"] == "seqs512"
    assert json.loads(args["--engine-json"]) == {"max_num_seqs": 512}
    assert jobs[2][1] == ["--parity-worker"]
    # no variant: the size once, as configured, with no further engine arguments
    ((key, extra),) = bench_vllm.worker_jobs(["32B"], [])
    assert key == "size-32B-configured" and extra[-1] == "{}"


@pytest.mark.parametrize("bad", ["seqs512", "x=[1]", "x={not json}", '={"a": 1}'])
def test_a_malformed_engine_variant_is_one_clear_error(bad):
    with pytest.raises(SystemExit, match="expected NAME="):
        bench_vllm.worker_jobs(["0.5B"], [bad])


def test_compile_caches_are_vllms_per_engine_folders(tmp_path, monkeypatch):
    """A start is warm only if it added no cache folder of its own (another size's folders
    in the cache do not make it warm)."""
    monkeypatch.setenv("VLLM_CACHE_ROOT", str(tmp_path))
    assert bench_vllm.compile_caches() == set()
    (tmp_path / "torch_compile_cache" / "abc123" / "rank_0_0").mkdir(parents=True)
    (tmp_path / "torch_compile_cache" / "note.txt").write_text("x")
    assert bench_vllm.compile_caches() == {"abc123"}
