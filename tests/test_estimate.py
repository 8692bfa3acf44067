"""The sweep estimator: hours from benchmark rows that match the config, a faithful replay of
the workflow's priorities on G GPUs, and a clear error when a size was never measured."""

from __future__ import annotations

import json

import pytest

from subliminal_scaling.planning import estimate
from subliminal_scaling.planning.estimate import EstimateError, wall_clock
from subliminal_scaling.planning.measured import measured_table, read_run_benchmarks
from subliminal_scaling.planning.replay import Job, replay
from subliminal_scaling.runtime.config import SPEED_DEFAULTS, Sweep

from .conftest import REPO

LABELS = ["0.5B", "1.5B", "3B", "7B", "14B", "32B"]


def _train_row(size, sweep, slug, tps, **over):
    t = sweep.training_for(slug)
    row = {
        "size": size, "status": "ok", "variant": "v", "concurrent": 1,
        "micro_batch": t["micro_batch"], "gradient_checkpointing": t["gradient_checkpointing"],
        "attn_implementation": t["attn_implementation"],
        "speed_knobs": {k: t[k] for k in SPEED_DEFAULTS},
        "non_pad_tokens_per_s": tps, "mean_tokens_per_row": 100.0,
    }  # fmt: skip
    row.update(over)
    return row


def _sample_row(size, s_per_token):
    return {
        "size": size,
        "runs": [
            {"workload": w, "completions": 1000, "max_new_tokens": 10,
             "wall_s": s_per_token * 1000 * 10}
            for w in ("numbers", "eval")
        ],
    }  # fmt: skip


@pytest.fixture
def bench(tmp_path, real_config):
    sweep = Sweep(real_config)
    slugs = [m.slug for m in sorted(sweep.models, key=lambda m: m.params)]
    train = {
        "benchmark": "student training (x)", "device": "GPU-X",
        "results": [
            _train_row(lab, sweep, slug, 10_000.0, concurrent=sweep.students_per_gpu(slug))
            for lab, slug in zip(LABELS, slugs, strict=True)
        ] + [_train_row("7B", sweep, slugs[3], 99_999.0, micro_batch=7)],  # other settings
    }  # fmt: skip
    sample = {
        "benchmark": "sampling (TransformersBackend)",
        "device": "GPU-X",
        "results": [_sample_row("0.5B", 1e-3), _sample_row("7B", 2e-3)],
    }
    paths = [tmp_path / "train.json", tmp_path / "sample.json"]
    paths[0].write_text(json.dumps(train))
    paths[1].write_text(json.dumps(sample))
    return sweep, paths


def _vllm_defaults(sweep: Sweep) -> None:
    """The config's vLLM engine settings set back to vLLM's defaults (the shipped config sets
    some), for rows that ran the defaults."""
    for stage in ("generation", "evaluation"):
        sweep.config[stage]["vllm"].update(max_num_seqs=None, max_cudagraph_capture_size=None)


def test_training_hours_follow_the_matching_benchmark_row(bench):
    sweep, paths = bench
    train, sample = estimate.load_benchmarks(paths)
    jobs, notes = estimate.build_jobs(sweep, train, sample)
    t = sweep.config["training"]
    per_student_h = t["n_rows"] * t["epochs"] * 100.0 / 10_000.0 / 3600
    training = [j for j in jobs if j.rule == "training"]
    assert len(training) == 480
    # each row is a GPU's throughput: k students sharing a GPU each take k times as long, on
    # 12/k of its slots, so GPU-hours stay tokens / throughput
    for j in training:
        k = sweep.students_per_gpu(j.wildcards["model"])
        assert j.seconds / 3600 == pytest.approx(k * per_student_h)
        assert (j.gpu, j.need) == ((1, 12) if k == 1 else (0, 12 // k))
    assert {sweep.students_per_gpu(j.wildcards["model"]) for j in training} == {1, 2, 3, 4}
    # the faster 7B row has other settings (micro-batch 7), so it is not used
    hours = sum(row["training"] for row in estimate.summarize(jobs).values())
    assert hours == pytest.approx(480 * per_student_h)
    assert any("GPU-X" in n for n in notes)
    # sampling: measured at 0.5B and 7B, linear in parameters in between
    ev = sweep.config["evaluation"]
    per_eval_05 = 50 * 100 * 1e-3 * ev["sampling"]["max_new_tokens"]
    control = {
        j.wildcards["model"]: j.seconds for j in jobs if j.wildcards["condition"] == "control"
    }
    assert control["qwen-2.5-0.5b-instruct"] == pytest.approx(per_eval_05)
    assert (
        control["qwen-2.5-0.5b-instruct"]
        < control["qwen-2.5-3b-instruct"]
        < control["qwen-2.5-7b-instruct"]
    )


def test_an_unmeasured_setting_is_an_error_not_a_guess(bench, real_config):
    _, paths = bench
    real_config["models"][0]["train"]["micro_batch"] = 5  # 32B with settings never measured
    train, sample = estimate.load_benchmarks(paths)
    with pytest.raises(EstimateError, match=r"32B: no benchmark run with the configured"):
        estimate.build_jobs(Sweep(real_config), train, sample)


def test_training_is_priced_at_full_ten_number_answers(bench, tmp_path):
    """Teachers asked for up to 10 numbers give 10 (the generation price assumes it): a size's
    row of full answers prices it; a size measured only on 5-10-number rows is scaled by the
    full / 5-10 time per row measured in one run, at the nearest size that has such a pair."""
    sweep, paths = bench
    slugs = {estimate.benchmark_size(m.id): m.slug for m in sweep.models}
    t = sweep.config["training"]

    def per_student_h(size, jobs):
        (h,) = {j.seconds for j in jobs if j.rule == "training" and slugs[size] in j.name}
        return h / sweep.students_per_gpu(slugs[size]) / 3600

    train, sample = estimate.load_benchmarks(paths)
    jobs, notes = estimate.build_jobs(sweep, train, sample)
    base = {s: per_student_h(s, jobs) for s in ("7B", "14B", "32B")}
    assert any("full ten-number answers not measured" in n for n in notes)
    # one run at 14B: rows of 5-10 numbers (100 tokens, 10k tok/s) against full ones (110 tokens,
    # 10.5k tok/s: longer rows, a little faster per token) -> 1.0476 of the time per row
    pair = {
        "benchmark": "student training (x)", "device": "GPU-X",
        "results": [
            _train_row("14B", sweep, slugs["14B"], 10_000.0),
            _train_row("14B", sweep, slugs["14B"], 10_500.0, answer_numbers="10",
                       mean_tokens_per_row=110.0),
        ],
    }  # fmt: skip
    (tmp_path / "pair.json").write_text(json.dumps(pair))
    train, sample = estimate.load_benchmarks([*paths, tmp_path / "pair.json"])
    jobs, notes = estimate.build_jobs(sweep, train, sample)
    ratio = (110.0 / 10_500.0) / (100.0 / 10_000.0)
    # 14B: its own full row (not the 5-10 rows, not scaled again)
    assert per_student_h("14B", jobs) == pytest.approx(
        t["n_rows"] * t["epochs"] * 110.0 / 10_500.0 / 3600
    )
    # 7B and 32B: their 5-10 rows scaled by the ratio measured at 14B
    for size in ("7B", "32B"):
        assert per_student_h(size, jobs) == pytest.approx(base[size] * ratio)
        assert any(n.startswith(f"train {size}:") and "measured at 14B" in n for n in notes)


def test_wall_clock_replays_priorities_and_dependencies():
    jobs = [Job(f"t{i}", "training", priority=1, seconds=3600) for i in range(4)]
    assert wall_clock(jobs, 1) == pytest.approx(4 * 3600)
    assert wall_clock(jobs, 2) == pytest.approx(2 * 3600)
    # an evaluation waits for both its students even when a GPU is free
    chain = [
        Job("a", "training", priority=5, seconds=100),
        Job("b", "training", priority=5, seconds=300),
        Job("e", "evaluation", priority=9, seconds=10, needs=["a", "b"]),
    ]
    assert wall_clock(chain, 8) == pytest.approx(310)
    # higher priority first: on one GPU the high-priority job runs first, then the other
    order = [Job("low", "g", priority=1, seconds=50), Job("high", "g", priority=2, seconds=70)]
    assert [j.name for _, _, j in replay(order, 1)] == ["high", "low"]
    assert wall_clock(order, 1) == pytest.approx(120)
    # a two-GPU job waits until two GPUs are free; a job needing what no job makes is an error
    wide = [Job("one", "t", seconds=10), Job("two", "t", gpu=2, seconds=5, priority=9)]
    assert [(s, j.name) for s, _, j in replay(wide, 2)] == [(0.0, "two"), (5.0, "one")]
    with pytest.raises(EstimateError, match="waits on nowhere"):
        wall_clock([Job("x", "t", needs=["nowhere"])], 1)


def test_jobs_that_share_a_gpu_run_side_by_side_and_a_whole_gpu_job_waits_for_them():
    # three 4-slot jobs fill one GPU at once; a fourth waits; a whole-GPU job of higher
    # priority that becomes ready later waits until all slots are free
    small = [Job(f"s{i}", "training", gpu=0, slots=4, seconds=100) for i in range(4)]
    assert wall_clock(small, 1) == pytest.approx(200)
    assert wall_clock(small, 2) == pytest.approx(100)
    mixed = [*small[:3], Job("w", "training", seconds=10, priority=9, needs=["s0"])]
    starts = {j.name: s for s, _, j in replay(mixed, 1)}
    assert starts["w"] == pytest.approx(100)  # s1, s2 end at 100 too: the GPU is whole again


def test_cli_prints_the_table_and_fails_cleanly(bench, capsys):
    _, paths = bench
    cfg = str(REPO / "config" / "config.yaml")
    assert estimate.main(["--config", cfg, "--bench", *map(str, paths)]) == 0
    out = capsys.readouterr().out
    assert "| **sweep** |" in out and "wall-clock on 8 GPU(s)" in out
    assert estimate.main(["--config", cfg, "--bench", str(paths[1])]) == 2
    assert "no student-training benchmark" in capsys.readouterr().err


def test_measured_costs_come_from_the_runs_benchmark_files(tmp_path, toy_config, capsys):
    """The GPU rules' benchmark: files (Snakemake's TSV, seconds in column s) give the cost
    so far and a projection per size and rule."""
    root = tmp_path / "benchmarks"
    header = "s\th:m:s\tmax_rss\n"
    for seed, secs in ((1, 30.0), (2, 50.0)):
        f = root / "train_student" / "qwen-2.5-toy-s-instruct" / "cat" / f"seed{seed}.tsv"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(header + f"{secs}\t0:00:30\t100\n")
    (root / "evaluate_control").mkdir(parents=True)
    (root / "evaluate_control" / "qwen-2.5-toy-s-instruct.tsv").write_text(header + "36\tx\t1\n")
    measured = read_run_benchmarks(root)
    assert measured[("train_student", "qwen-2.5-toy-s-instruct")] == [30.0, 50.0]
    table = measured_table(Sweep(toy_config), measured)
    # 2 of the toy's 4 students per size (neutral + cat, 2 seeds): mean 40 s, 4 x 40 s projected
    assert "| qwen-2.5-toy-s-instruct | train_student | 2 / 4 | 40 | 0.02 | 0.04 |" in table
    assert "| qwen-2.5-toy-s-instruct | evaluate_control | 1 / 1 | 36 | 0.01 | 0.01 |" in table
    assert "| qwen-2.5-toy-l-instruct | train_student | 0 / 4 | – | 0.0 | not measured |" in table
    cfg = str(REPO / "config" / "toy.yaml")
    assert estimate.main(["--config", cfg, "--measured", str(root), "--disk"]) == 0
    assert "measured in" in capsys.readouterr().out


def test_vllm_rows_price_the_expected_lengths_engine_starts_and_the_exact_measure(
    bench, tmp_path, real_config
):
    """vLLM rows (dummy weights run every completion to its limit): seconds per completion per
    token x the expected length, one engine start per GPU job, the exact measure per eval; they
    win over transformers rows when the config samples with vLLM."""
    sweep, paths = bench
    _vllm_defaults(sweep)  # these rows ran vLLM's default engine settings
    assert sweep.config["generation"]["backend"] == sweep.config["evaluation"]["backend"] == "vllm"

    def row(size, start, s_tok, exact):
        runs = [
            {"workload": w, "completions": 5000, "max_new_tokens": n, "wall_s": s_tok * 5000 * n}
            for w, n in (("numbers", 48), ("eval", 16))
        ]
        return {"size": size, "engine_start_s": start,
                "runs": [*runs, {"workload": "exact", "wall_s": exact}]}  # fmt: skip

    vllm = {"benchmark": "sampling (vllm, dummy weights)", "backend": "vllm", "device": "GPU-X",
            "results": [row("7B", 100.0, 1e-4, 6.0), row("32B", 300.0, 3e-4, 16.0)]}  # fmt: skip
    (tmp_path / "vllm.json").write_text(json.dumps(vllm))
    train, sample = estimate.load_benchmarks([*paths, tmp_path / "vllm.json"])
    jobs, notes = estimate.build_jobs(sweep, train, sample)
    by = {(j.rule, j.wildcards["model"], j.wildcards["condition"]): j.seconds for j in jobs}
    n_prompts = sweep.config["generation"]["n_prompts"]
    n_cond = len(sweep.conditions)
    # one generation job per size: one engine start, then every condition's teacher data
    gen_7b = 100.0 + n_cond * 1e-4 * estimate.GEN_TOKENS * n_prompts
    assert by[("generation", "qwen-2.5-7b-instruct", "")] == pytest.approx(gen_7b)
    eval_7b = 1e-4 * estimate.ANSWER_TOKENS * 5000 + 6.0
    assert by[("evaluation", "qwen-2.5-7b-instruct", "control")] == pytest.approx(100 + eval_7b)
    n_evals = len(sweep.seeds) * sweep.config["training"]["epochs"]
    assert by[("evaluation", "qwen-2.5-7b-instruct", "cat")] == pytest.approx(
        100 + n_evals * eval_7b
    )
    # 14B lies between the measured sizes; 0.5B below them costs what 7B does, and says so
    g14 = by[("generation", "qwen-2.5-14b-instruct", "")]
    assert gen_7b < g14 < by[("generation", "qwen-2.5-32b-instruct", "")]
    assert by[("generation", "qwen-2.5-0.5b-instruct", "")] == pytest.approx(gen_7b)
    assert sum(rule == "generation" for rule, _, _ in by) == len(sweep.models)
    note_05 = next(n for n in notes if n.startswith("sample 0.5B"))
    assert "extrapolated" in note_05 and "from vllm" in note_05
    # the bound with every completion at the configured limit is larger
    limits = (sweep.config["generation"]["sampling"]["max_new_tokens"],
              sweep.config["evaluation"]["sampling"]["max_new_tokens"])  # fmt: skip
    bound, _ = estimate.build_jobs(sweep, train, sample, *limits)
    assert sum(j.seconds for j in bound) > sum(j.seconds for j in jobs)


def test_the_shipped_settings_are_the_measured_ones(real_config):
    """Every size of config/config.yaml (H200) and of config/h100.yaml has a committed
    benchmark row with exactly its settings (a config edit without a new benchmark fails
    here), and the estimate of the shipped sweep comes from the committed files."""
    import glob

    import yaml

    from subliminal_scaling.runtime.config import validate_config

    res = REPO / "benchmarks" / "results"
    h200 = sorted(glob.glob(str(res / "h200-2026-12-03-train-*.json")))
    h200 += sorted(glob.glob(str(res / "h200-2026-12-03-shared-*.json")))
    h200 += [str(res / "h200-2026-11-24-speed.json"), str(res / "h200-2026-12-03-vllm.json")]
    h200 += [str(res / "h200-2026-12-03-vllm-0p5b.json")]
    h200 += sorted(glob.glob(str(res / "h200-2026-12-03-s3-*.json")))
    h200 += sorted(glob.glob(str(res / "h200-2026-12-03-s4-vllm-*.json")))
    h200 += sorted(glob.glob(str(res / "h200-2026-12-03-s5-*.json")))
    h200 += sorted(glob.glob(str(res / "h200-2026-12-03-s6-prefix-*.json")))
    h200 += sorted(glob.glob(str(res / "h200-2026-12-03-s7-*.json")))
    h200 += sorted(glob.glob(str(res / "h200-2026-12-04-s8*.json")))
    h200 += sorted(glob.glob(str(res / "h200-2026-12-04-s9*.json")))
    h200 += sorted(glob.glob(str(res / "h200-2026-12-04-s10*.json")))
    h200 += sorted(glob.glob(str(res / "h200-2026-12-04-s11*.json")))
    train, sample = estimate.load_benchmarks(h200)
    jobs, notes = estimate.build_jobs(Sweep(real_config), train, sample)
    assert all("NVIDIA H200" in n for n in notes if n.startswith("train "))
    # sampling is priced by vLLM rows of the shipped engine settings, not stand-ins
    assert not any("stand in" in n for n in notes)
    assert any(n.startswith("sample 7B:") and "beyond" not in n for n in notes)
    # every size from rows of full ten-number answers, none scaled from shorter rows
    rows = {"32B": "s8b-ck-32b.json:full-mb30-ck4", "14B": "s7-full-14b.json:full",
            "7B": "s7-full-7b.json:full", "3B": "s8b-3b2-seg.json:seg",
            "1.5B": "s8b-1p5b3-seg.json:seg", "0.5B": "s8-0p5b4-full.json:full"}  # fmt: skip
    for size, row in rows.items():
        assert any(n.startswith(f"train {size}:") and row in n for n in notes), size
    assert not any(n.startswith("train ") and "for full ten-number answers" in n for n in notes)
    for size in ("0.5B", "14B", "32B"):  # evals at the survey's answer lengths; warm starts
        assert any(n.startswith(f"sample {size}:") and "survey's answer" in n for n in notes)
        assert any(n.startswith(f"sample {size}:") and "warm engine start measured" in n
                   for n in notes)  # fmt: skip
    # generation jobs start the engine without LoRA; measured at every size but 1.5B (between)
    for size in ("0.5B", "3B", "7B", "14B", "32B"):
        assert any(n.startswith(f"sample {size}:") and "the generation engine (no LoRA)" in n
                   for n in notes), size  # fmt: skip
    # 0.5B's evals: samples that each stop at their own draw (tenth session); 1.5B and 3B
    # between sizes measured at their survey lengths; an engine's first eval priced apart
    note05 = next(n for n in notes if n.startswith("sample 0.5B:"))
    assert "each sample runs to its own draw" in note05 and "an engine's first" in note05
    # 32B's too (eleventh session), and one generation engine start per size
    note32 = next(n for n in notes if n.startswith("sample 32B:"))
    assert "each sample runs to its own draw" in note32 and "(one job per size)" in note32
    for size in ("1.5B", "3B"):
        assert any(n.startswith(f"sample {size}:") and "interpolated between sizes measured at "
                   "their survey's answer lengths" in n for n in notes), size  # fmt: skip
    hours = sum(sum(v.values()) for v in estimate.summarize(jobs).values())
    assert 140 < hours <= 150  # issue 14's goal; 149.1 at the last edit (README)
    h100 = [str(res / "h100-2026-11-24-speed.json")]
    real_config.update(yaml.safe_load((REPO / "config" / "h100.yaml").read_text()))
    validate_config(real_config)  # merges model_overrides into models[]
    train, _ = estimate.load_benchmarks(h100)
    jobs, notes = estimate.build_jobs(Sweep(real_config), train, sample)
    assert all("H100" in n for n in notes if n.startswith("train "))


def test_later_jobs_of_a_size_start_from_the_compile_cache(bench, tmp_path):
    """A size's first vLLM job per stage starts cold (torch.compile), later ones at the measured
    warm start; an unmeasured size's warm start scales its cold one by the nearest measured
    ratio; on G GPUs the first G jobs of a stage can all start cold."""
    sweep, paths = bench
    _vllm_defaults(sweep)  # these rows ran vLLM's default engine settings

    def row(size, start, warm=None):
        runs = [
            {"workload": w, "completions": 5000, "max_new_tokens": n, "wall_s": 1.0}
            for w, n in (("numbers", 48), ("eval", 16))
        ]
        out = {"size": size, "engine_start_s": start, "runs": [*runs]}
        if warm is not None:
            out["compile_cache_warm"] = warm
        return out

    rows = [row("7B", 100.0, False), row("7B", 60.0, True), row("32B", 300.0)]
    vllm = {"benchmark": "sampling (vllm, dummy weights)", "backend": "vllm", "device": "GPU-X",
            "results": rows}  # fmt: skip
    (tmp_path / "vllm.json").write_text(json.dumps(vllm))
    train, sample = estimate.load_benchmarks([*paths, tmp_path / "vllm.json"])
    gen_only = 1.0 / 5000 / 48 * estimate.GEN_TOKENS * sweep.config["generation"]["n_prompts"]

    def starts(jobs, slug, rule):
        return [j for j in jobs if j.rule == rule and j.wildcards["model"] == slug]

    jobs, notes = estimate.build_jobs(sweep, train, sample)
    n_cond = len(sweep.conditions)
    # a size's one generation job starts its engine cold (100 s), then writes every condition
    gen7 = starts(jobs, "qwen-2.5-7b-instruct", "generation")
    assert [round(j.seconds - n_cond * gen_only, 6) for j in gen7] == [100.0]
    ev7 = {j.wildcards["condition"]: j.seconds for j in starts(jobs, "qwen-2.5-7b-instruct",
                                                               "evaluation")}  # fmt: skip
    first_condition = sweep.conditions[0]
    # the control (it needs no students) pays the cold start; every condition's job a warm one
    n_evals = len(sweep.seeds) * sweep.config["training"]["epochs"]
    one_eval = 1.0 / 5000 / 16 * estimate.ANSWER_TOKENS * 5000
    assert ev7["control"] == pytest.approx(100.0 + one_eval)
    assert ev7[first_condition] == pytest.approx(60.0 + n_evals * one_eval)
    # 32B: no warm start measured; 300 s x (60 / 100), the ratio at 7B
    ev32 = {j.wildcards["condition"]: j.seconds for j in starts(jobs, "qwen-2.5-32b-instruct",
                                                                "evaluation")}  # fmt: skip
    assert ev32["control"] == pytest.approx(300.0 + one_eval)
    assert ev32[first_condition] == pytest.approx(180.0 + n_evals * one_eval)
    assert any("32B's cold start x 0.60 (warm / cold at 7B)" in n for n in notes)
    # on 8 GPUs, 8 evaluation jobs per size can start before a cache exists
    jobs8, _ = estimate.build_jobs(sweep, train, sample, cold_starts=8)
    ev7_8 = starts(jobs8, "qwen-2.5-7b-instruct", "evaluation")

    def start_of(j):
        return j.seconds - one_eval * (1 if j.wildcards["condition"] == "control" else n_evals)

    assert sum(start_of(j) == pytest.approx(100.0) for j in ev7_8) == min(8, len(ev7_8))
    assert starts(jobs8, "qwen-2.5-7b-instruct", "generation")[0].seconds == gen7[0].seconds
    assert sum(j.seconds for j in jobs8) > sum(j.seconds for j in jobs)


def test_vllm_rows_price_only_the_engine_settings_they_ran(bench, tmp_path):
    """A row of bench_vllm --engine-variant (here max_num_seqs 512) prices a config that sets
    it, and no other; rows without the knobs ran vLLM's defaults (null in the config)."""
    sweep, paths = bench

    def row(size, eval_s, engine):
        runs = [
            {"workload": w, "completions": 5000, "max_new_tokens": n, "wall_s": eval_s}
            for w, n in (("numbers", 48), ("eval", 16))
        ]
        return {"size": size, "engine_start_s": 100.0, "runs": runs, "engine": engine}

    rows = [
        row("7B", 8.0, {"gpu_memory_utilization": 0.9, "max_num_seqs": 512}),
        row("7B", 20.0, {"gpu_memory_utilization": 0.9, "max_num_seqs": None}),
        row("32B", 40.0, {"gpu_memory_utilization": 0.9}),  # before the knobs were recorded
        row("32B", 16.0, {"max_num_seqs": 512}),
    ]
    vllm = {"benchmark": "sampling (vllm, dummy weights)", "backend": "vllm", "results": rows}
    (tmp_path / "vllm.json").write_text(json.dumps(vllm))
    train, sample = estimate.load_benchmarks([*paths, tmp_path / "vllm.json"])

    def control_eval(jobs, slug):
        return next(
            j.seconds for j in jobs
            if j.rule == "evaluation" and j.wildcards == {"model": slug, "condition": "control"}
        )  # fmt: skip

    _vllm_defaults(sweep)
    jobs, _ = estimate.build_jobs(sweep, train, sample)
    assert control_eval(jobs, "qwen-2.5-7b-instruct") == pytest.approx(100.0 + 20.0)
    assert control_eval(jobs, "qwen-2.5-32b-instruct") == pytest.approx(100.0 + 40.0)
    for stage in ("generation", "evaluation"):
        sweep.config[stage]["vllm"]["max_num_seqs"] = 512
    jobs, _ = estimate.build_jobs(sweep, train, sample)
    assert control_eval(jobs, "qwen-2.5-7b-instruct") == pytest.approx(100.0 + 8.0)
    assert control_eval(jobs, "qwen-2.5-32b-instruct") == pytest.approx(100.0 + 16.0)
    # the recorded compilation_config counts as max_cudagraph_capture_size
    knobs = estimate.engine_knobs({"compilation_config": {"max_cudagraph_capture_size": 1024}})
    assert knobs == {"max_num_seqs": None, "max_cudagraph_capture_size": 1024,
                     "cudagraph_capture_sizes": None, "cudagraph_specialize_lora": None,
                     "enforce_eager": None, "engine_in_process": None}  # fmt: skip
    # an in-process engine core is a setting of its own; false (a row's record) the default
    assert estimate.engine_knobs({"engine_in_process": True})["engine_in_process"] is True
    assert estimate.engine_knobs({"engine_in_process": False}) == estimate.engine_knobs({})
    # a list of captured sizes is a setting of its own, whatever its order (a config's list
    # and a benchmark row's recorded compilation_config alike)
    fewer = estimate.engine_knobs({"compilation_config": {"cudagraph_capture_sizes": [8, 1, 4]}})
    assert fewer["cudagraph_capture_sizes"] == [1, 4, 8]
    assert estimate.engine_knobs({"cudagraph_capture_sizes": [4, 8, 1]}) == fewer
    assert fewer != estimate.engine_knobs({})
    # LoRA graphs only is a setting of its own; true is vLLM's default, the same as unset
    lora_only = {"compilation_config": {"cudagraph_specialize_lora": False}}
    assert estimate.engine_knobs(lora_only)["cudagraph_specialize_lora"] is False
    assert estimate.engine_knobs({"cudagraph_specialize_lora": True}) == estimate.engine_knobs({})
    # an eager engine is a setting of its own; false (a benchmark row's record) is the default
    assert estimate.engine_knobs({"enforce_eager": True})["enforce_eager"] is True
    assert estimate.engine_knobs({"enforce_eager": False}) == estimate.engine_knobs({})


def _with_graphs_rows(sweep: Sweep, paths, tmp_path, rows: list[dict]):
    """The bench fixture's files plus these vLLM rows; the config set to the shipped engine
    setting (CUDA graphs up to 1,024 sequences)."""
    vllm = {"benchmark": "sampling (vllm, dummy weights)", "backend": "vllm", "results": rows}
    (tmp_path / "vllm.json").write_text(json.dumps(vllm))
    for stage in ("generation", "evaluation"):
        sweep.config[stage]["vllm"].update(max_num_seqs=None, max_cudagraph_capture_size=1024)
    return estimate.load_benchmarks([*paths, tmp_path / "vllm.json"])


def test_a_setting_is_priced_only_over_the_sizes_it_was_measured_at(bench, tmp_path):
    """An engine setting measured at 0.5B and 7B prices 3B from those rows, but not 32B: beyond
    the measured sizes the rows of vLLM's defaults price it (a gain measured on small models
    need not carry to a larger one), and the note says so."""
    sweep, paths = bench
    graphs = {"compilation_config": {"max_cudagraph_capture_size": 1024}}

    def row(size, eval_s, engine):
        runs = [
            {"workload": w, "completions": 5000, "max_new_tokens": n, "wall_s": eval_s}
            for w, n in (("numbers", 48), ("eval", 16))
        ]
        return {"size": size, "engine_start_s": 100.0, "runs": runs, "engine": engine}

    rows = [row("0.5B", 2.0, graphs), row("7B", 4.0, graphs), row("0.5B", 3.0, {}),
            row("7B", 6.0, {}), row("32B", 30.0, {})]  # fmt: skip
    train, sample = _with_graphs_rows(sweep, paths, tmp_path, rows)
    jobs, notes = estimate.build_jobs(sweep, train, sample)

    def control_eval(slug):
        return next(
            j.seconds for j in jobs
            if j.rule == "evaluation" and j.wildcards == {"model": slug, "condition": "control"}
        )  # fmt: skip

    assert control_eval("qwen-2.5-7b-instruct") == pytest.approx(104.0)
    assert control_eval("qwen-2.5-32b-instruct") == pytest.approx(130.0)  # the default row
    p = {m.slug: m.params for m in sweep.models}
    lo, hi, mid = p["qwen-2.5-0.5b-instruct"], p["qwen-2.5-7b-instruct"], p["qwen-2.5-3b-instruct"]
    assert control_eval("qwen-2.5-3b-instruct") == pytest.approx(
        100.0 + 2.0 + 2.0 * (mid - lo) / (hi - lo)
    )
    note32 = next(n for n in notes if n.startswith("sample 32B:"))
    assert "beyond the sizes measured with the configured engine settings" in note32
    assert "beyond" not in next(n for n in notes if n.startswith("sample 3B:"))


def test_an_eval_at_the_surveys_answer_lengths_prices_its_size_and_each_workload_its_rows(
    bench, tmp_path
):
    """bench_vllm --eval-lengths survey (answers as long as the user's survey's at that size)
    prices that size's evals directly, the slower repeat; sizes without such a row keep the
    fixed-length pricing; a row with only eval and exact runs prices neither the teacher chunk
    nor the range in which the setting's teacher chunks were measured."""
    sweep, paths = bench
    graphs = {"compilation_config": {"max_cudagraph_capture_size": 1024}}

    def fixed(size, s_tok, exact, engine, start=100.0):
        runs = [
            {"workload": w, "completions": 5000, "max_new_tokens": n, "wall_s": s_tok * 5000 * n}
            for w, n in (("numbers", 48), ("eval", 16))
        ]
        return {"size": size, "engine_start_s": start, "engine": engine,
                "runs": [*runs, {"workload": "exact", "wall_s": exact}]}  # fmt: skip

    survey = {
        "size": "32B", "engine_start_s": 300.0, "engine": graphs,
        "runs": [
            {"workload": "eval", "completions": 5000, "max_new_tokens": 4, "wall_s": w,
             "answer_lengths": "survey", "survey_mean_tokens": 3.0}
            for w in (9.0, 12.0)
        ] + [{"workload": "exact", "wall_s": 3.0}],
    }  # fmt: skip
    rows = [fixed("0.5B", 1e-4, 2.0, graphs), fixed("7B", 2e-4, 2.0, graphs),
            fixed("32B", 1e-3, 16.0, {}, start=280.0), survey]  # fmt: skip
    train, sample = _with_graphs_rows(sweep, paths, tmp_path, rows)
    jobs, notes = estimate.build_jobs(sweep, train, sample)
    by = {(j.rule, j.wildcards["model"], j.wildcards["condition"]): j.seconds for j in jobs}
    s32, s7 = "qwen-2.5-32b-instruct", "qwen-2.5-7b-instruct"
    assert by[("evaluation", s32, "control")] == pytest.approx(300.0 + 12.0 + 3.0)
    # the teacher chunk at 32B: the default's row (its own setting's chunks: 0.5B-7B only)
    n_prompts = sweep.config["generation"]["n_prompts"]
    gen32 = 300.0 + len(sweep.conditions) * 1e-3 * estimate.GEN_TOKENS * n_prompts
    assert by[("generation", s32, "")] == pytest.approx(gen32)
    assert by[("evaluation", s7, "control")] == pytest.approx(
        100.0 + 2e-4 * estimate.ANSWER_TOKENS * 5000 + 2.0
    )
    note32 = next(n for n in notes if n.startswith("sample 32B:"))
    assert "survey's answer lengths (3.0 tokens" in note32 and "numbers measured" in note32
    # an assumed answer length (e.g. the bound at the limit) prices every size per token
    jobs, _ = estimate.build_jobs(sweep, train, sample, answer_tokens=16)
    by = {(j.rule, j.wildcards["model"], j.wildcards["condition"]): j.seconds for j in jobs}
    assert by[("evaluation", s32, "control")] == pytest.approx(300.0 + 1e-3 * 16 * 5000 + 3.0)
    # samples that each stop at their own draw (survey-each) price 32B's eval instead
    survey["runs"].insert(0, {"workload": "eval", "completions": 5000, "max_new_tokens": 4,
                              "wall_s": 5.0, "answer_lengths": "survey-each",
                              "survey_mean_tokens": 3.0})  # fmt: skip
    train, sample = _with_graphs_rows(sweep, paths, tmp_path, rows)
    jobs, notes = estimate.build_jobs(sweep, train, sample)
    by = {(j.rule, j.wildcards["model"], j.wildcards["condition"]): j.seconds for j in jobs}
    assert by[("evaluation", s32, "control")] == pytest.approx(300.0 + 5.0 + 3.0)
    assert "each sample runs to its own draw" in next(n for n in notes if "sample 32B" in n)


def test_each_stage_pays_the_engine_starts_of_its_own_settings(bench, tmp_path):
    """evaluation.vllm.enforce_eager: the eval engines are priced by eager rows (their start
    compiles nothing, so every eval job, the first one too, pays it), while the generation
    engines keep the cold and warm starts of the shipped graph settings."""
    sweep, paths = bench
    graphs = {"compilation_config": {"max_cudagraph_capture_size": 1024}}
    eager = {**graphs, "enforce_eager": True}

    def row(size, engine, start, warm, eval_s):
        runs = [
            {"workload": w, "completions": 5000, "max_new_tokens": n, "wall_s": eval_s}
            for w, n in (("numbers", 48), ("eval", 16))
        ]
        return {"size": size, "engine_start_s": start, "compile_cache_warm": warm,
                "runs": runs, "engine": engine}  # fmt: skip

    rows = [row(s, graphs, 200.0, False, 4.0) for s in ("0.5B", "32B")]
    rows += [row(s, graphs, 80.0, True, 4.0) for s in ("0.5B", "32B")]
    rows += [row(s, eager, 30.0, None, 9.0) for s in ("0.5B", "32B")]
    train, sample = _with_graphs_rows(sweep, paths, tmp_path, rows)
    by_stage = {}
    for setting in (None, True):
        sweep.config["evaluation"]["vllm"]["enforce_eager"] = setting
        jobs, notes = estimate.build_jobs(sweep, train, sample)
        by_stage[setting] = {
            (j.rule, j.wildcards["condition"]): j.seconds
            for j in jobs if j.wildcards["model"] == "qwen-2.5-32b-instruct"
        }  # fmt: skip
    graphs_run, eager_run = by_stage[None], by_stage[True]
    n_evals = len(sweep.seeds) * sweep.config["training"]["epochs"]
    # generation: one job per size, its engine started cold, whatever the eval engine does
    per_condition = 4.0 * sweep.config["generation"]["n_prompts"] / 5000
    for run in (graphs_run, eager_run):
        gen = 200.0 + len(sweep.conditions) * per_condition
        assert run[("generation", "")] == pytest.approx(gen)
    assert graphs_run[("evaluation", "control")] == pytest.approx(200.0 + 4.0)
    assert graphs_run[("evaluation", "dolphin")] == pytest.approx(80.0 + 4.0 * n_evals)
    assert eager_run[("evaluation", "control")] == pytest.approx(30.0 + 9.0)
    assert eager_run[("evaluation", "dolphin")] == pytest.approx(30.0 + 9.0 * n_evals)
    assert any("engine starts by stage" in n for n in notes)


def test_generation_jobs_pay_the_generation_engines_starts_where_it_was_measured(bench, tmp_path):
    """Generation starts vLLM without LoRA (fewer CUDA graphs): rows of that engine
    (``bench_vllm.py --sizes gen:SIZE``) price generation jobs' starts and teacher chunks at the
    sizes they cover, never evaluation's; beyond them the LoRA engine's rows stand in."""
    sweep, paths = bench
    graphs = {"compilation_config": {"max_cudagraph_capture_size": 1024}}

    def row(size, start, warm, wall, stage=None):
        works = [("numbers", 48)] if stage else [("numbers", 48), ("eval", 16)]
        runs = [{"workload": w, "completions": 5000, "max_new_tokens": n, "wall_s": wall}
                for w, n in works]  # fmt: skip
        out = {"size": size, "engine_start_s": start, "compile_cache_warm": warm,
               "runs": runs, "engine": graphs}  # fmt: skip
        if stage:
            out["stage"] = stage
        return out

    rows = [row(s, 200.0, False, 4.0) for s in ("0.5B", "32B")]
    rows += [row(s, 80.0, True, 4.0) for s in ("0.5B", "32B")]
    rows += [
        row("0.5B", 120.0, False, 2.0, "generation"),
        row("0.5B", 50.0, True, 2.0, "generation"),
    ]
    train, sample = _with_graphs_rows(sweep, paths, tmp_path, rows)
    jobs, notes = estimate.build_jobs(sweep, train, sample)

    def by(slug):
        return {(j.rule, j.wildcards["condition"]): j.seconds for j in jobs
                if j.wildcards["model"] == f"qwen-2.5-{slug}-instruct"}  # fmt: skip

    chunks = len(sweep.conditions) * sweep.config["generation"]["n_prompts"] / 5000
    small, big = by("0.5b"), by("32b")
    # one generation job per size: the generation engine's cold start, every condition's chunks
    assert small[("generation", "")] == pytest.approx(120.0 + 2.0 * chunks)
    # evaluation keeps the LoRA engine's starts; 32B (no generation-engine row) too
    assert small[("evaluation", "control")] == pytest.approx(200.0 + 4.0)
    assert big[("generation", "")] == pytest.approx(200.0 + 4.0 * chunks)
    note32 = next(n for n in notes if n.startswith("sample 32B"))
    assert "the LoRA engine's rows (the generation engine not measured here)" in note32
    assert "the generation engine (no LoRA)" in next(
        n for n in notes if n.startswith("sample 0.5B")
    )


def test_a_warm_start_between_measured_sizes_is_interpolated_not_scaled(bench, tmp_path):
    """0.5B's cold start was a machine's first (it compiled what every size shares): scaling
    3B's cold start by 0.5B's warm / cold ratio would price 3B's warm start below both measured
    neighbours; between measured warm starts it is interpolated instead."""
    sweep, paths = bench
    _vllm_defaults(sweep)

    def row(size, start, warm):
        runs = [{"workload": w, "completions": 5000, "max_new_tokens": n, "wall_s": 1.0}
                for w, n in (("numbers", 48), ("eval", 16))]  # fmt: skip
        return {"size": size, "engine_start_s": start, "compile_cache_warm": warm, "runs": runs}

    rows = [row("0.5B", 300.0, False), row("0.5B", 60.0, True)]
    rows += [row("7B", 100.0, False), row("7B", 90.0, True)]
    vllm = {"benchmark": "sampling (vllm, dummy weights)", "backend": "vllm", "results": rows}
    (tmp_path / "vllm.json").write_text(json.dumps(vllm))
    _, sample = estimate.load_benchmarks([*paths, tmp_path / "vllm.json"])
    params = {estimate.benchmark_size(m.id): m.params for m in sweep.models}
    cost = estimate.sample_costs(sample, params, "3B", sweep.config)
    frac = (params["3B"] - params["0.5B"]) / (params["7B"] - params["0.5B"])
    assert cost.engine_restart_s == pytest.approx(60.0 + 30.0 * frac)
    assert "interpolated between the measured sizes" in cost.note
    # beyond the measured warm starts the ratio still applies: 32B's cold x (90 / 100)
    big = estimate.sample_costs(sample, params, "32B", sweep.config)
    assert big.engine_restart_s == pytest.approx(big.engine_start_s * 0.9)


def test_an_engines_first_eval_is_priced_apart_from_its_later_ones(bench, tmp_path):
    """Each eval through a new adapter; the first of an engine also compiles kernels on first
    use. A student eval job pays one first eval (repeat 1, the first exact measure) and its
    other 49 at the later evals' time (repeat 2, the exact measure again); the control job one
    first eval. A size between two sizes measured at their survey lengths is interpolated;
    engine settings measured only at survey lengths borrow other settings' fixed-length rows
    for the bound at the answer limit, and say so."""
    sweep, paths = bench
    graphs = {"compilation_config": {"max_cudagraph_capture_size": 1024}}

    def each(size, first, later, exact, exact_again, start=100.0):
        runs = [{"workload": "eval", "completions": 5000, "max_new_tokens": 8, "wall_s": w,
                 "answer_lengths": "survey-each", "survey_mean_tokens": 3.0, "repeat": k,
                 "tokens_generated": 15000}
                for k, w in ((1, first), (2, later))]  # fmt: skip
        runs += [{"workload": "numbers", "completions": 5000, "max_new_tokens": 48,
                  "wall_s": 10.0},
                 {"workload": "exact", "wall_s": exact},
                 {"workload": "exact-repeat", "wall_s": exact_again}]  # fmt: skip
        return {"size": size, "engine_start_s": start, "engine": graphs, "runs": runs}

    rows = [each("0.5B", 10.0, 4.0, 2.0, 1.0), each("7B", 8.0, 6.0, 3.0, 2.0)]
    train, sample = _with_graphs_rows(sweep, paths, tmp_path, rows)
    jobs, notes = estimate.build_jobs(sweep, train, sample)
    by = {(j.rule, j.wildcards["model"], j.wildcards["condition"]): j.seconds for j in jobs}
    s05, s3 = "qwen-2.5-0.5b-instruct", "qwen-2.5-3b-instruct"
    n_evals = len(sweep.seeds) * sweep.config["training"]["epochs"]
    assert by[("evaluation", s05, "control")] == pytest.approx(100.0 + 10.0 + 2.0)
    assert by[("evaluation", s05, "dolphin")] == pytest.approx(
        100.0 + (10.0 + 2.0) + (4.0 + 1.0) * (n_evals - 1)
    )
    p = {m.slug: m.params for m in sweep.models}
    f = (p[s3] - p[s05]) / (p["qwen-2.5-7b-instruct"] - p[s05])
    first, later = 10.0 + (8.0 - 10.0) * f, 4.0 + (6.0 - 4.0) * f
    exact, again = 2.0 + 1.0 * f, 1.0 + 1.0 * f
    assert first > 8.0  # never below the smaller neighbour
    assert by[("evaluation", s3, "dolphin")] == pytest.approx(
        100.0 + first + exact + (later + again) * (n_evals - 1)
    )
    note3 = next(n for n in notes if n.startswith("sample 3B:"))
    assert "interpolated between sizes measured at their survey's answer lengths" in note3
    # 32B lies beyond them: priced per token as before, from the fixture's rows
    assert "survey" not in next(n for n in notes if n.startswith("sample 32B:"))
    # the bound at the answer limit: these settings ran no fixed-length eval; rows of other
    # vLLM settings stand in, not the survey-length evals' cost per token
    fixed = {
        "size": "7B",
        "engine_start_s": 100.0,
        "engine": {},
        "runs": [{"workload": "eval", "completions": 5000, "max_new_tokens": 16, "wall_s": 8.0}],
    }
    train, sample = _with_graphs_rows(sweep, paths, tmp_path, [*rows, fixed])
    jobs, notes = estimate.build_jobs(sweep, train, sample, answer_tokens=256)
    by = {(j.rule, j.wildcards["model"], j.wildcards["condition"]): j.seconds for j in jobs}
    per_token = 8.0 / 5000 / 16
    assert by[("evaluation", "qwen-2.5-7b-instruct", "control")] == pytest.approx(
        100.0 + per_token * 256 * 5000 + 3.0
    )
    assert "rows of other vLLM engine settings stand in" in next(
        n for n in notes if n.startswith("sample 7B:")
    )
