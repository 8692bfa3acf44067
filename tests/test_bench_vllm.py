"""bench_vllm.py's driver (its GPU work runs on the device only): which worker runs for which
size and engine variant, and how an engine start is told cold from warm."""

from __future__ import annotations

import json
import sys
from pathlib import Path

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


def test_parity_engine_checks_parity_once_per_engine_variant():
    """ "parity" keeps its one eager check; "parity-engine" runs the check on each variant's
    engine (the worker reads the variant from its arguments), under a key of its own."""
    jobs = bench_vllm.worker_jobs(
        ["parity-engine", "parity"], ["configured={}", 'lean={"max_num_seqs": 8}']
    )
    assert [k for k, _ in jobs] == ["parity-configured", "parity-lean", "parity"]
    lean = jobs[1][1]
    assert lean[:2] == ["--parity-worker", "--parity-engine"]
    args = dict(lean[i : i + 2] for i in range(2, len(lean), 2))
    assert args["--variant-name"] == "lean" and json.loads(args["--engine-json"]) == {
        "max_num_seqs": 8
    }
    assert jobs[2][1] == ["--parity-worker"]


def test_gen_size_starts_the_generation_engine_under_its_own_key():
    jobs = bench_vllm.worker_jobs(["gen:0.5B", "0.5B"], [])
    assert [k for k, _ in jobs] == ["gen-0.5B-configured", "size-0.5B-configured"]
    gen, ev = (dict(e[i : i + 2] for i in range(0, len(e), 2)) for _, e in jobs)
    assert gen["--worker"] == "0.5B" and gen["--stage"] == "generation"
    assert "--stage" not in ev  # the eval engine (LoRA), as before
    with pytest.raises(SystemExit, match="gen:SIZE"):
        bench_vllm.worker_jobs(["eval:0.5B"], [])


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


def test_a_worker_that_wrote_its_result_ends_with_the_processes_it_started(tmp_path):
    """vLLM's engine runs in a child of the worker and holds the worker's stderr open; the
    driver once waited out its whole budget for it. A worker ends its process group once its
    result is written, so the driver returns at once, and nothing of the worker lives on."""
    import time

    pid_file, result = tmp_path / "child.pid", tmp_path / "result.json"
    worker = f"""
import subprocess, sys
sys.path.insert(0, {str(REPO / "benchmarks")!r})
import bench_vllm
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
open({str(pid_file)!r}, "w").write(str(child.pid))
open({str(result)!r}, "w").write("{{}}")
bench_vllm.end_worker()
"""
    t = time.monotonic()
    rc, _ = bench_vllm.run_worker([sys.executable, "-c", worker], timeout=50)
    assert time.monotonic() - t < 20 and result.exists() and rc == -9
    child = int(pid_file.read_text())
    for _ in range(50):  # gone, or a zombie nobody has reaped yet (state Z): not running
        stat = Path(f"/proc/{child}/stat")
        if not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"the worker's child {child} still runs")


def test_a_worker_past_its_time_is_killed_with_its_children(tmp_path):
    rc, _ = bench_vllm.run_worker(
        [sys.executable, "-c", "import subprocess, sys, time; "
         "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); time.sleep(60)"],
        timeout=3,
    )  # fmt: skip
    assert rc == "timeout"


def test_survey_lengths_give_each_question_the_longest_of_its_draws(tmp_path):
    """--eval-lengths survey: answer lengths in tokens (+1 for the end of sequence, capped at
    the eval's limit) of the survey's answers at that size; each question's request runs to
    the longest of its n draws; every other sampling knob is the workflow's."""
    survey = [
        {"model_size": "7B", "raw_responses": ["Dolphin.", "Owl", "a b c d e f g h i j"]},
        {"model_size": "32B", "raw_responses": ["Cat"]},
    ]
    path = tmp_path / bench_vllm.SURVEY_FILE
    path.write_text(json.dumps(survey))
    lengths = bench_vllm.survey_lengths(path, "7B", str.split, cap=8)
    assert lengths == [2, 2, 8]  # 1 + 1, 1 + 1, min(10 + 1, 8)
    with pytest.raises(SystemExit, match="no raw answers of a 14B model"):
        bench_vllm.survey_lengths(path, "14B", str.split, cap=8)
    per_q = bench_vllm.question_lengths(lengths, 40, 100, seed=0)
    assert len(per_q) == 40 and set(per_q) == {8}  # 100 draws: the long one is among them
    assert bench_vllm.question_lengths([2, 3], 5, 1, seed=1) != [3] * 5  # one draw each
    # survey-each: the same draws, one per sample; survey runs each question to their longest
    each = bench_vllm.sample_lengths([2, 2, 3, 9], 6, 10, seed=3)
    assert [len(d) for d in each] == [10] * 6 and {x for d in each for x in d} <= {2, 3, 9}
    assert [max(d) for d in each] == bench_vllm.question_lengths([2, 2, 3, 9], 6, 10, seed=3)
    assert sum(map(sum, each)) < 10 * sum(max(d) for d in each)

    class Params:  # vLLM's SamplingParams has clone() and settable fields
        def __init__(self, **kw):
            self.__dict__.update(kw)

        def clone(self):
            return Params(**self.__dict__)

    class Backend:
        def sampling_params(self, sampling, n, seed):
            return Params(n=n, seed=seed, temperature=1.0, max_tokens=256, ignore_eos=False,
                          stop_token_ids=[151645])  # fmt: skip

    backend = Backend()
    restore = bench_vllm.with_request_lengths(backend, [4, 7])
    made = [backend.sampling_params(None, 100, s) for s in (11, 12)]
    assert [(p.max_tokens, p.ignore_eos, p.stop_token_ids, p.seed, p.n) for p in made] == [
        (4, True, [], 11, 100), (7, True, [], 12, 100)
    ]  # fmt: skip
    restore()
    assert backend.sampling_params(None, 1, 5).max_tokens == 256


def test_a_variants_compilation_config_adds_to_the_configured_one():
    """An engine variant that sets one compilation knob keeps the config's others (the shipped
    CUDA-graph capture size), so the variant differs from the shipped engine by that knob only."""
    configured = {"max_num_seqs": 512, "compilation_config": {"max_cudagraph_capture_size": 1024}}
    variant = {"compilation_config": {"cudagraph_specialize_lora": False}}
    assert bench_vllm.merge_engine_args(configured, variant) == {
        "max_num_seqs": 512,
        "compilation_config": {
            "max_cudagraph_capture_size": 1024,
            "cudagraph_specialize_lora": False,
        },
    }
    assert bench_vllm.merge_engine_args(configured, {"max_num_seqs": 256})["max_num_seqs"] == 256
    assert bench_vllm.merge_engine_args({}, variant) == variant


def test_the_engine_knobs_reach_vllm_as_its_arguments():
    """Each ``vllm`` config knob becomes the LLM argument vLLM reads (top level or inside
    compilation_config); unset and false-by-default knobs pass nothing, leaving vLLM's own."""
    from subliminal_scaling.runtime.backends import vllm_engine_args

    assert vllm_engine_args({"max_num_seqs": None, "enforce_eager": None}) == {}
    assert vllm_engine_args({"enforce_eager": False}) == {}
    assert vllm_engine_args(
        {"max_num_seqs": 512, "max_cudagraph_capture_size": 1024, "enforce_eager": True,
         "cudagraph_specialize_lora": False, "cudagraph_capture_sizes": [1024, 8, 1, 8]}
    ) == {
        "max_num_seqs": 512, "enforce_eager": True,
        "compilation_config": {"max_cudagraph_capture_size": 1024,
                               "cudagraph_capture_sizes": [1, 8, 1024],
                               "cudagraph_specialize_lora": False},
    }  # fmt: skip


def test_the_engine_start_log_keeps_vllms_timing_lines(tmp_path):
    """What a worker's vLLM log says about its start (weights, compile, graph capture, the
    whole init) is kept beside the row, without colour codes or the logger's prefix."""
    log = "\n".join([
        "\x1b[1;36m(EngineCore pid=1)\x1b[0;0m INFO 12-04 10:00:00 [gpu_model_runner.py:5348] "
        "Model loading took 61.0 GiB memory and 3.5 seconds",
        "INFO 12-04 10:00:01 [core.py:116] Initializing a V1 LLM engine (v0.26.0) with config",
        "INFO 12-04 10:00:30 [monitor.py:53] torch.compile took 20.12 s in total",
        "INFO 12-04 10:01:00 [gpu_model_runner.py:6845] Graph capturing finished in 41 secs, "
        "took 1.20 GiB",
        "INFO 12-04 10:01:01 [core.py:340] init engine (profile, create kv cache, warmup model) "
        "took 70.10 s (compilation: 20.12 s)",
        "Adding requests: 100%",
    ])  # fmt: skip
    assert bench_vllm.engine_log(log) == [
        "Model loading took 61.0 GiB memory and 3.5 seconds",
        "torch.compile took 20.12 s in total",
        "Graph capturing finished in 41 secs, took 1.20 GiB",
        "init engine (profile, create kv cache, warmup model) took 70.10 s (compilation: 20.12 s)",
    ]
    # the driver writes a worker's stdout (where vLLM logs) to the log it reads back
    out = tmp_path / "w.log"
    line = "Graph capturing finished in 3 secs, took 0.1 GiB"
    rc, _ = bench_vllm.run_worker(
        [sys.executable, "-c", f"print('INFO [r.py:1] {line}')"], timeout=60, log=out
    )
    assert rc == 0
    assert bench_vllm.engine_log(out.read_text()) == [line]


def test_an_in_process_variant_reaches_the_backend_not_the_llm_arguments():
    """--engine-variant 'inproc={"engine_in_process": true}' runs vLLM's engine core in the
    worker's process; the other keys stay LLM arguments, on top of the configured ones."""
    engine = {"max_cudagraph_capture_size": 1024, "engine_in_process": None}
    assert bench_vllm.variant_engine(engine, {}) == (
        False, {"compilation_config": {"max_cudagraph_capture_size": 1024}})  # fmt: skip
    variant = {"engine_in_process": True, "max_num_seqs": 512}
    in_process, args = bench_vllm.variant_engine(engine, variant)
    assert in_process is True and "engine_in_process" not in args and args["max_num_seqs"] == 512
    assert variant == {"engine_in_process": True, "max_num_seqs": 512}  # not consumed
    assert bench_vllm.variant_engine({**engine, "engine_in_process": True}, {})[0] is True
