"""The DAG as Snakemake sees it: lint-clean, the real sweep's job counts and the user's order
(all generation first, largest model first; then training, largest first), bad configs
rejected before any job starts, and the `plots` snapshot built from partial results."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from collections import Counter

import pytest
import yaml

from subliminal_scaling.evaluate.scoring import make_eval_record
from subliminal_scaling.planning.schedule import gpu_order, parse_dryrun
from subliminal_scaling.runtime import io

from .conftest import SIZES
from .workflow_helpers import snakemake, workflow_copy


@pytest.fixture(scope="module")
def wf(tmp_path_factory):
    return workflow_copy(tmp_path_factory.mktemp("wf"))


@pytest.fixture(scope="module")
def real_dryrun(wf, shared_protocol_path):
    res = snakemake(
        wf, "-n", "--cores", "4", "--resources", "gpu=1",
        "--configfile", "config/config.yaml",
        "--config", f"protocol={shared_protocol_path}",
    )  # fmt: skip
    assert res.returncode == 0, res.stdout[-3000:]
    return parse_dryrun(res.stdout)


def test_real_sweep_job_counts(real_dryrun):
    counts = Counter(j.rule for j in real_dryrun)
    assert counts["generate_numbers"] == 6  # one engine per size writes all 16 conditions
    assert counts["filter_numbers"] == 96
    assert counts["upload_numbers"] == 96
    assert counts["train_student"] == 480  # x 5 seeds
    assert counts["upload_student"] == 96
    assert counts["evaluate_student"] == 96  # one job per (size, condition): 5 seeds x 10 epochs
    assert counts["evaluate_control"] == 6
    assert counts["plot_grouped_bars"] == 6 and counts["plot_stacked"] == 6
    for rule in ("extract_protocol", "preflight", "aggregate", "fit_scaling", "plot_scaling"):
        assert counts[rule] == 1
    gens = [j for j in real_dryrun if j.rule == "generate_numbers"]
    assert all(len(j.outputs) == 16 for j in gens)  # each condition's generation.json
    assert counts["assemble_numbers"] == 96  # raw.jsonl per condition, from its chunks
    evals = [j for j in real_dryrun if j.rule == "evaluate_student"]
    assert all(len(j.outputs) == 50 for j in evals)  # every epoch of every seed
    assert all(j.gpu == 1 for j in real_dryrun if j.rule in ("generate_numbers", "train_student"))
    # --resources gpu=1 alone: no job shares a GPU, whatever students_per_gpu says
    assert all(j.need == 12 for j in real_dryrun if j.gpu)


def test_small_students_share_a_gpu_when_the_run_counts_slots(wf, shared_protocol_path):
    res = snakemake(
        wf, "-n", "--cores", "4", "--resources", "gpu=1", "gpu_slot=12",
        "--configfile", "config/config.yaml",
        "--config", f"protocol={shared_protocol_path}",
    )  # fmt: skip
    assert res.returncode == 0, res.stdout[-3000:]
    jobs = parse_dryrun(res.stdout)
    per_gpu = {"qwen-2.5-3b-instruct": 2, "qwen-2.5-1.5b-instruct": 3, "qwen-2.5-0.5b-instruct": 4}
    for j in jobs:
        if j.rule == "train_student" and j.wildcards["model"] in per_gpu:
            assert (j.gpu, j.slots) == (0, 12 // per_gpu[j.wildcards["model"]]), j
        elif j.rule in ("generate_numbers", "train_student", "evaluate_student"):
            assert (j.gpu, j.slots) == (1, 12), j
    # the user's order holds with shared GPUs too
    order = [j for j in gpu_order(jobs) if j.rule == "train_student"]
    sizes = [SIZES.index(j.wildcards["model"]) for j in order]
    assert sizes == sorted(sizes)


def test_slots_that_do_not_match_the_gpus_fail_before_any_job(wf):
    res = snakemake(wf, "-n", "--cores", "1", "--resources", "gpu=2", "gpu_slot=12")
    assert res.returncode != 0
    assert "--resources gpu_slot=12 must go with gpu=N and equal 12 x N" in res.stdout


def test_real_sweep_runs_in_the_users_order(real_dryrun):
    order = gpu_order(real_dryrun)
    rules = [j.rule for j in order]
    last_gen = max(i for i, r in enumerate(rules) if r == "generate_numbers")
    first_train = rules.index("train_student")
    assert last_gen < first_train, "all generation must come before any fine-tuning"
    gen_sizes = [SIZES.index(j.wildcards["model"]) for j in order if j.rule == "generate_numbers"]
    assert gen_sizes == sorted(gen_sizes), "generation must go biggest to smallest"
    train_sizes = [SIZES.index(j.wildcards["model"]) for j in order if j.rule == "train_student"]
    assert train_sizes == sorted(train_sizes), "fine-tuning must go biggest first"
    # each condition's seeds train together, and its evaluation follows straight away
    train = [j for j in order if j.rule == "train_student"]
    blocks = [(j.wildcards["model"], j.wildcards["condition"]) for j in train]
    assert all(len(set(blocks[i : i + 5])) == 1 for i in range(0, len(blocks), 5))
    for i, job in enumerate(order):
        if job.rule == "evaluate_student":
            prev = order[i - 1]
            assert prev.rule == "train_student"
            assert prev.wildcards["condition"] == job.wildcards["condition"]


@pytest.mark.parametrize("configfile", ["config/toy.yaml", "config/config.yaml"])
def test_lint_is_clean(wf, configfile, shared_protocol_path):
    res = snakemake(
        wf, "--lint", "--configfile", configfile, "--config",
        f"protocol={shared_protocol_path}",
    )  # fmt: skip
    assert res.returncode == 0, res.stdout[-3000:]
    assert "Lints for" not in res.stdout, res.stdout[-3000:]


def test_a_missing_survey_fails_before_any_job(wf, tmp_path, shared_protocol_path):
    cfg = yaml.safe_load((wf / "config" / "config.yaml").read_text())
    cfg["evaluation"]["survey_path"] = "outputs/not-there.json"
    bad = tmp_path / "no-survey.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    res = snakemake(
        wf, "-n", "--cores", "1", "--configfile", str(bad),
        "--config", f"protocol={shared_protocol_path}",
    )  # fmt: skip
    assert res.returncode != 0
    assert (
        "Invalid configuration: config.evaluation.survey_path: outputs/not-there.json does "
        "not exist" in res.stdout
    ), res.stdout[-2000:]


@pytest.mark.parametrize(
    ("mutation", "key"),
    [
        ({"animals": ["dog", "unicorn"]}, "config.animals[1]"),
        ({"n_seeds": -2}, "config.n_seeds"),
        ({"training": {"micro_batch": 7}}, "config.training.micro_batch"),
        ({"hub": None}, "config.hub"),  # missing, not inherited from the toy default
    ],
)
def test_bad_config_fails_before_any_job(wf, tmp_path, mutation, key):
    cfg = yaml.safe_load((wf / "config" / "toy.yaml").read_text())
    for k, v in mutation.items():
        if v is None:
            del cfg[k]
        elif isinstance(v, dict):
            cfg[k].update(v)
        else:
            cfg[k] = v
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    res = snakemake(wf, "--cores", "1", "--configfile", str(bad))
    assert res.returncode != 0
    assert f"Invalid configuration: {key}" in res.stdout, res.stdout[-2000:]
    assert "Building DAG" not in res.stdout and not (wf / "results").exists()


# --- `plots`: a snapshot of partial results -------------------------------------------------

TOY_L, TOY_M, TOY_S = (f"qwen-2.5-toy-{x}-instruct" for x in "lms")
TOY_ANIMALS = ["cat"]  # config/toy.yaml
SNAPSHOT_RULES = {
    "aggregate_snapshot",
    "fit_scaling",
    "plot_grouped_bars",
    "plot_stacked",
    "plot_scaling",
    "snapshot_report",
    "plots",
}


def _write_eval(wf, model, condition, seed=None, epoch=None):
    """A valid eval record, built by the library's own record builder, where the sweep puts it."""
    rnd = random.Random(f"{model}/{condition}/{seed}/{epoch}")
    words = [*TOY_ANIMALS, "owl", "fox", "lion"] + [condition] * 3 * (epoch or 0)
    answers = [f"{rnd.choice(words).title()}." for _ in range(50)]
    kind = "control" if condition == "control" else "student"
    record = make_eval_record(
        kind=kind, model=model, model_id=None, condition=condition, seed=seed, epoch=epoch,
        backend="transformers", sampling=None, max_new_tokens=16, adapter=None,
        questions=[f"q{i // 10}" for i in range(50)],
        question_indices=[i // 10 for i in range(50)],
        answers=answers, animals=TOY_ANIMALS,
    )  # fmt: skip
    rel = (
        f"results/{model}/eval/control/standard.json.gz"
        if kind == "control"
        else f"results/{model}/eval/{condition}/seed{seed}/epoch{epoch}.json.gz"
    )
    io.write_json(wf / rel, record)
    return rel


@pytest.fixture(scope="module")
def snapshot_wf(tmp_path_factory):
    """Mid-sweep: the largest toy size fully evaluated, the middle one partly, the smallest not.

    15 of the toy sweep's 27 evals: L's control and 8 student evals; M's neutral and cat
    students, seed 2 evaluated at epoch 1 only (a partial student each).
    """
    wf = workflow_copy(tmp_path_factory.mktemp("snapshot"))
    _write_eval(wf, TOY_L, "control")
    for c in ["neutral", *TOY_ANIMALS]:
        for seed in (1, 2):
            for epoch in (1, 2):
                _write_eval(wf, TOY_L, c, seed, epoch)
    for c in ["neutral", "cat"]:
        for seed, epoch in ((1, 1), (1, 2), (2, 1)):
            _write_eval(wf, TOY_M, c, seed, epoch)
    return wf


def test_plots_schedules_no_gpu_job_and_all_still_needs_the_sweep(snapshot_wf):
    res = snakemake(snapshot_wf, "-n", "plots", "--cores", "1")
    assert res.returncode == 0, res.stdout[-3000:]
    jobs = parse_dryrun(res.stdout)
    assert {j.rule for j in jobs} == SNAPSHOT_RULES
    assert all(j.gpu == 0 for j in jobs)
    assert all(o.startswith("results/snapshot/") for j in jobs for o in j.outputs)
    # one chart pair per size, including the size with no data yet
    bars = {j.wildcards["model"] for j in jobs if j.rule == "plot_grouped_bars"}
    assert bars == {TOY_L, TOY_M, TOY_S}
    # the default target still builds the final figures from the complete sweep only
    res = snakemake(snapshot_wf, "-n", "--cores", "2")
    assert res.returncode == 0, res.stdout[-3000:]
    counts = Counter(j.rule for j in parse_dryrun(res.stdout))
    assert counts["evaluate_student"] == 6 and counts["evaluate_control"] == 3
    assert counts["aggregate"] == 1 and counts["plot_grouped_bars"] == 3
    assert not counts.keys() & {"aggregate_snapshot", "snapshot_report"}


HOLD_SNAKEFILE = """
rule all:
    input: "hold.done"

rule produce:
    output: "{out}"
    shell: "cp staged.json.gz {{output}}"

rule hold:
    input: "{out}"
    output: "hold.done"
    shell: "for i in $(seq 600); do [ -f release ] && break; sleep 0.5; done; touch {{output}}"
"""


@pytest.mark.slow
def test_plots_runs_beside_a_sweep_and_reruns_on_new_evals(snapshot_wf):
    wf = snapshot_wf
    # Another Snakemake holds the directory's lock while one of its outputs, S's control
    # eval, already exists: as the sweep does for every eval it has written since it started.
    s_control = f"results/{TOY_S}/eval/control/standard.json.gz"
    (wf / "staged.json.gz").write_bytes((wf / _write_eval(wf, TOY_S, "control")).read_bytes())
    (wf / s_control).unlink()
    (wf / "hold.smk").write_text(HOLD_SNAKEFILE.format(out=s_control))
    hold = subprocess.Popen(
        [sys.executable, "-m", "snakemake", "-s", "hold.smk", "--cores", "1"],
        cwd=wf, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.time() + 120
        while not (wf / s_control).exists():
            assert hold.poll() is None and time.time() < deadline, "helper run did not start"
            time.sleep(0.5)
        res = snakemake(wf, "--cores", "2", "plots")
        assert res.returncode == 0, res.stdout[-3000:]
        assert hold.poll() is None, "the other run must hold its lock throughout"
    finally:
        (wf / "release").touch()
        hold.wait(timeout=120)

    snap = wf / "results" / "snapshot"
    for m in (TOY_L, TOY_M, TOY_S):
        for chart in ("grouped_bars", "stacked"):
            for ext in ("png", "svg"):
                assert (snap / "plots" / m / f"{chart}.{ext}").stat().st_size > 1000
    for fig in ("scaling", "effect_per_animal", "effect_per_epoch"):
        for ext in ("png", "svg"):
            assert (snap / "plots" / f"{fig}.{ext}").stat().st_size > 1000
    assert not (wf / "results" / "plots").exists() and not (wf / "results" / "summary").exists()
    cov = io.read_json(snap / "summary" / "coverage.json")
    assert (cov["scope"], cov["n_evals"], cov["n_expected"]) == ("snapshot", 16, 27)
    assert cov["models"][TOY_M]["students_partial"] == 2 and cov["models"][TOY_S]["control"]
    assert cov["models_without_data"] == [TOY_S]
    fit = io.read_json(snap / "summary" / "scaling_fit.json")
    assert fit["n_points"] == 2 and fit["preferred"] is None  # too few sizes: flagged, no fit
    report = (snap / "summary" / "report.md").read_text()
    assert "snapshot (sweep in progress)" in report and "16 of 27 evaluations" in report
    svg = (snap / "plots" / TOY_S / "grouped_bars.svg").read_text()
    assert "SNAPSHOT (16/27 evals)" in svg and ">missing<" in svg  # S: control only
    assert "ep 1" in (snap / "plots" / TOY_M / "grouped_bars.svg").read_text()

    # nothing new: nothing to do; a new eval file: the snapshot reruns, still without GPU jobs
    res = snakemake(wf, "-n", "plots")
    assert res.returncode == 0 and "Nothing to be done" in res.stdout, res.stdout[-2000:]
    _write_eval(wf, TOY_M, "cat", 2, 2)
    res = snakemake(wf, "-n", "plots")
    assert res.returncode == 0, res.stdout[-3000:]
    jobs = parse_dryrun(res.stdout)
    assert (
        "aggregate_snapshot" in {j.rule for j in jobs} and {j.rule for j in jobs} <= SNAPSHOT_RULES
    )
    # the new file is what changed: 16 evals before, 17 now
    assert "Params have changed" in res.stdout, res.stdout[-4000:]
    assert "before: '16 eval files" in res.stdout and "now: '17 eval files" in res.stdout
