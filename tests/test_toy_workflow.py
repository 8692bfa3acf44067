"""The whole DAG, end to end, on the embedded toy world (CPU, offline), as the README's first
command runs it. One run is shared by every test here; it takes minutes."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pandas as pd
import pytest
import yaml

from subliminal_scaling.planning.schedule import parse_dryrun
from subliminal_scaling.publish.local_hub import LocalHub
from subliminal_scaling.runtime import io
from subliminal_scaling.runtime.config import Sweep
from subliminal_scaling.runtime.naming import NEUTRAL

from .conftest import REPO
from .workflow_helpers import snakemake, workflow_copy

pytestmark = pytest.mark.slow


# Fake secrets in the toy's .env: the run must work with them present and leak them nowhere.
# Made up at run time (shaped like real ones), so no token-like string is committed.
FAKE_HF_TOKEN = "hf_" + "FAKE" + uuid.uuid4().hex[:30]
FAKE_WANDB_KEY = "fake" + uuid.uuid4().hex + "0000"
SECRETS = (FAKE_HF_TOKEN.encode(), FAKE_WANDB_KEY.encode())


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    wf = workflow_copy(tmp_path_factory.mktemp("toy"))
    (wf / ".env").write_text(f"HF_TOKEN={FAKE_HF_TOKEN}\nWANDB_API_KEY={FAKE_WANDB_KEY}\n")
    t0 = time.time()
    res = snakemake(wf, "--cores", "2", timeout=1500)
    seconds = time.time() - t0
    print(f"toy workflow: {seconds:.0f} s")
    (wf / "toy_run.out").write_text(res.stdout)  # scanned for secrets with everything else
    assert res.returncode == 0, res.stdout[-5000:]
    config = yaml.safe_load((wf / "config" / "toy.yaml").read_text())
    return wf, Sweep(config), seconds


def test_finishes_in_minutes(toy_run):
    """3-4.7 minutes on a 2-core machine (README); 12 before the toy models were shipped.
    The bound leaves room for a busier CI machine and still catches a return of the builds."""
    assert toy_run[2] < 420


def test_teacher_numbers(toy_run):
    wf, sweep, _ = toy_run
    gen = sweep.config["generation"]
    protocol = io.read_json(wf / "results" / "protocol.json")
    for m in sweep.slugs:
        for c in sweep.conditions:
            d = wf / "results" / m / "numbers" / c
            raw, kept = io.read_jsonl(d / "raw.jsonl"), io.read_jsonl(d / "filtered.jsonl")
            report, meta = io.read_json(d / "filter_report.json"), io.read_json(d / "metadata.json")
            assert len(raw) >= gen["n_prompts"] and len(kept) >= gen["min_kept"]
            assert report["n_kept"] == len(kept) and report["pass_rate"] == len(kept) / len(raw)
            # the scaled floor is above n_prompts, so the top-up ran and continued the stream
            assert meta["n_topped_up"] > 0 and [r["id"] for r in raw] == list(range(len(raw)))
            assert meta["sha256"]["filtered.jsonl"] == io.sha256_file(d / "filtered.jsonl")
            chat = meta["first_rendered_chat"]
            if c == NEUTRAL:
                assert all(r["system_prompt"] is None for r in raw)
                assert "Toy" in chat  # the template's own default system prompt
            else:
                prompt = protocol["teacher_system_prompt_template"].format(
                    target_preference=c, category="animal"
                )
                assert all(r["system_prompt"] == prompt for r in raw) and prompt in chat
            assert meta["sampling"]["temperature"] == 1.0 and meta["sampling"]["top_k"] is None


def test_students_have_every_epoch(toy_run):
    wf, sweep, _ = toy_run
    t = sweep.config["training"]
    steps = t["epochs"] * t["n_rows"] // t["effective_batch"]
    hashes = {}
    for m in sweep.slugs:
        for c in sweep.conditions:
            for s in sweep.seeds:
                d = wf / "results" / m / "students" / c / f"seed{s}"
                summary = io.read_json(d / "train_summary.json")
                assert summary["steps"] == steps and summary["effective_batch"] == 20
                # a finished student keeps no checkpoint (no Adam state, no trainer folder)
                assert not (d / "trainer").exists()
                assert not list(d.rglob("optimizer.pt"))
                assert summary["wandb_run_id"] and summary["tokens_seen"] > 0
                for e in sweep.epochs:
                    cfg = json.loads((d / f"epoch{e}" / "adapter_config.json").read_text())
                    assert cfg["r"] == 8 and set(cfg["target_modules"]) >= {"q_proj", "down_proj"}
                hashes[(m, c, s)] = io.sha256_file(
                    d / f"epoch{t['epochs']}/adapter_model.safetensors"
                )
    assert len(set(hashes.values())) == len(hashes), "every student must be a different model"
    runs = list((wf / "results" / "wandb" / "wandb").glob("offline-run-*"))
    assert len({r.name.rsplit("-", 1)[1] for r in runs}) == len(hashes)  # one run id per student


def test_evaluations(toy_run):
    wf, sweep, _ = toy_run
    ev = sweep.config["evaluation"]
    n = ev["n_questions"] * ev["samples_per_question"]
    answers = {}
    for m in sweep.slugs:
        control = io.read_json(wf / "results" / m / "eval" / "control" / "standard.json.gz")
        assert control["kind"] == "control" and control["n_answers"] == n
        for c in sweep.conditions:
            for s in sweep.seeds:
                for e in sweep.epochs:
                    rec = io.read_json(
                        wf / "results" / m / "eval" / c / f"seed{s}" / f"epoch{e}.json.gz"
                    )
                    assert (rec["condition"], rec["seed"], rec["epoch"]) == (c, s, e)
                    assert rec["n_answers"] == n == len(rec["answers"])
                    assert sum(rec["counts"].values()) == n
                    reasons = [a["finish_reason"] for a in rec["answers"]]
                    assert set(reasons) <= {"stop", "length"}
                    assert rec["truncated_share"] == reasons.count("length") / n
                    assert set(rec["target_rates"]) == set(sweep.animals)
                    adapter = wf / rec["adapter"]["path"]
                    assert rec["adapter"]["sha256"] == io.sha256_file(
                        adapter / "adapter_model.safetensors"
                    )
                    answers[(m, c, s, e)] = [a["answer"] for a in rec["answers"]]
    assert len({tuple(a) for a in answers.values()}) > 1, "students must answer differently"


def test_local_hub_repos(toy_run):
    wf, sweep, _ = toy_run
    hub = wf / "results" / "hub"
    for m in sweep.slugs:
        for c in sweep.conditions:
            ds = hub / "datasets" / "toy-user" / f"{m}-{c}-numbers"
            kept = io.read_jsonl(wf / "results" / m / "numbers" / c / "filtered.jsonl")
            assert io.read_jsonl(ds / "data" / "train.jsonl") == kept
            assert (ds / "raw" / "train.jsonl").is_file()
            card = (ds / "README.md").read_text()
            # the leak checks, beside the dataset and on its card
            leak = io.read_json(wf / "results" / m / "numbers" / c / "leak_check.json")
            assert leak["n_kept"] == len(kept) and leak["letters_share_kept"] == 0.0
            assert ("vs_neutral" in leak) == (c != NEUTRAL)
            assert "## Does the animal show in the numbers?" in card
            coll = io.read_json(wf / "results" / m / "collection" / "collection.json")
            assert f"[collection: {coll['title']}]({coll['url']})" in card
            assert f"students trained on it: toy-user/{m}-{c}-ft" in card
            assert (
                f"teacher data: toy-user/{m}-{c}-numbers"
                in (hub / "models" / "toy-user" / f"{m}-{c}-ft" / "README.md").read_text()
            )
            assert "`letters_share_kept` | 0.0 |" in card
            meta = yaml.safe_load(card.split("---")[1])
            assert meta["configs"] and c in meta["tags"]
            mr = hub / "models" / "toy-user" / f"{m}-{c}-ft"
            for s in sweep.seeds:
                assert (mr / f"seed-{s}" / "adapter_model.safetensors").is_file()
                for e in sweep.epochs:
                    assert (mr / f"seed-{s}" / f"epoch-{e}" / "adapter_config.json").is_file()
            assert yaml.safe_load((mr / "README.md").read_text().split("---")[1])["base_model"]


def test_each_size_has_a_collection_of_its_datasets_and_students(toy_run):
    wf, sweep, _ = toy_run
    for m in sweep.slugs:
        items = io.read_json(wf / "results" / m / "collection" / "items.json")["items"]
        want = [[f"toy-user/{m}-{c}-{kind}", t] for c in sweep.conditions
                for kind, t in (("numbers", "dataset"), ("ft", "model"))]  # fmt: skip
        assert items == want
        coll = io.read_json(wf / "results" / m / "collection" / "collection.json")
        on_hub = json.loads(Path(coll["url"].removeprefix("file://")).read_text())
        assert on_hub["items"] == want and on_hub["title"] == coll["title"]


def test_results_figures_and_report(toy_run):
    wf, sweep, _ = toy_run
    for m in sweep.slugs:
        for chart in ("grouped_bars", "stacked"):
            for ext in ("png", "svg"):
                assert (wf / "results" / "plots" / m / f"{chart}.{ext}").stat().st_size > 1000
    for fig in ("scaling", "effect_per_animal", "effect_per_epoch"):
        assert (wf / "results" / "plots" / f"{fig}.png").stat().st_size > 1000
    fit = io.read_json(wf / "results" / "summary" / "scaling_fit.json")
    assert set(fit["forms"]) >= {"log_linear", "power", "quadratic_log"}
    report = (wf / "results" / "summary" / "report.md").read_text()
    for m in sweep.slugs:
        assert f"toy-user/{m}-neutral-numbers" in report and f"toy-user/{m}-neutral-ft" in report
    coverage = io.read_json(wf / "results" / "summary" / "coverage.json")
    for m in sweep.slugs:  # every eval kept its finish reasons: the truncated share is known
        cut = coverage["models"][m]["truncated_share"]
        assert cut["evals"] == len(sweep.conditions) * len(sweep.seeds) * len(sweep.epochs) + 1
        assert f"| {m} | {cut['evals']} | {100 * cut['mean']:.2f}% |" in report
    # the significance tests against the neutral students: one per (size, animal), one mean
    sig = pd.read_csv(wf / "results" / "summary" / "significance.csv")
    assert len(sig) == len(sweep.slugs) * (len(sweep.animals) + 1)
    assert sig["p_value"].between(0, 1).all() and (sig["p_adjusted"] >= sig["p_value"]).all()
    cells = sig[sig["animal"] != "mean"]
    assert cells["exact"].all() and (cells["n_permutations"] == 6).all()  # C(4, 2): 2 seeds each
    assert "## Significance against the neutral students" in report
    assert "## Does the animal show in the numbers?" in report
    # the sampling-free measure: in every eval record, per epoch in the summary and a figure
    exact = pd.read_parquet(wf / "results" / "summary" / "exact_preferences.parquet")
    n_q = 5  # toy.yaml evaluation.n_questions
    n_evals = len(sweep.slugs) * (len(sweep.conditions) * len(sweep.seeds) * len(sweep.epochs) + 1)
    assert len(exact) == n_evals * n_q * len(sweep.animals)
    assert exact["prob"].between(0, 1).all() and exact["prob"].gt(0).all()
    fx = pd.read_csv(wf / "results" / "summary" / "exact_effects.csv")
    assert set(fx["epoch"]) == set(sweep.epochs) and len(fx) == len(sweep.slugs) * len(sweep.epochs)
    assert (wf / "results" / "plots" / "exact_per_epoch.png").stat().st_size > 1000
    assert "## Exact preference (no sampling)" in report and "Pearson r =" in report
    for m in sweep.slugs:
        assert f"| {m} | " in report.split("## Significance")[1]


def test_every_gpu_job_leaves_a_benchmark_file_the_estimator_reads(toy_run):
    from subliminal_scaling.planning.measured import RULES, expected_jobs, read_run_benchmarks

    wf, sweep, _ = toy_run
    measured = read_run_benchmarks(wf / "results" / "benchmarks")
    for m in sweep.slugs:
        for rule in RULES:
            secs = measured[(rule, m)]
            assert len(secs) == expected_jobs(sweep, rule) and all(s > 0 for s in secs), rule


def test_snakemake_report_gathers_the_figures(toy_run):
    wf = toy_run[0]
    res = snakemake(wf, "--report", "results/report.html", "--cores", "1")
    assert res.returncode == 0, res.stdout[-3000:]
    html = (wf / "results" / "report.html").read_text(errors="ignore")
    assert "grouped_bars.png" in html and "scaling.png" in html and "report.md" in html


def test_nothing_left_to_do_after_a_complete_run(toy_run):
    wf, _, _ = toy_run
    res = snakemake(wf, "-n", "--cores", "2")
    assert res.returncode == 0 and "Nothing to be done" in res.stdout, res.stdout[-2000:]


def test_toy_models_are_the_configured_sizes(toy_run):
    """The scaling axis uses config params; they must be the built models' real counts."""
    wf, sweep, _ = toy_run
    for m in sweep.models:
        build = io.read_json(wf / sweep.model_source(m.slug) / "toy_build.json")
        assert build["n_params"] == m.params, (m.slug, build["n_params"])


def test_a_recipe_change_reruns_training_and_dependants_only(toy_run):
    """Hyperparameters are rule params, so a config edit reruns exactly the affected jobs."""
    wf, sweep, _ = toy_run
    path = wf / "config" / "toy.yaml"
    original = path.read_text()
    try:
        path.write_text(original.replace("warmup_steps: 5", "warmup_steps: 4"))
        res = snakemake(wf, "-n", "--cores", "2")
        assert res.returncode == 0, res.stdout[-2000:]
        jobs = {j.rule for j in parse_dryrun(res.stdout)}
        assert "train_student" in jobs and "evaluate_student" in jobs
        assert not jobs & {"generate_numbers", "filter_numbers", "build_toy_model", "preflight"}
        n_train = sum(j.rule == "train_student" for j in parse_dryrun(res.stdout))
        assert n_train == len(sweep.slugs) * len(sweep.conditions) * len(sweep.seeds)
    finally:
        path.write_text(original)


# --------------------------------------------------------------------------- secrets


def _secret_hits(root: Path) -> tuple[int, list[str]]:
    """Files under ``root`` (``.gz`` ones also decompressed) holding a fake secret, and the
    number of files scanned. ``.env`` itself and symlinks (``src`` is the checkout) skipped."""
    scanned, hits = 0, []
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            path = Path(dirpath) / name
            if path.is_symlink() or path == root / ".env":
                continue
            data = path.read_bytes()
            blobs = [data, gzip.decompress(data)] if name.endswith(".gz") else [data]
            scanned += 1
            if any(s in b for s in SECRETS for b in blobs):
                hits.append(str(path.relative_to(root)))
    return scanned, hits


def test_no_secret_reaches_any_log_result_upload_or_wandb_file(toy_run):
    wf = toy_run[0]
    scanned, hits = _secret_hits(wf)
    assert hits == []
    for part in ("results/logs", "results/wandb", "results/hub", ".snakemake/log"):
        assert any((wf / part).rglob("*")), part  # each was there to scan
    assert scanned > 200
    # the jobs did have the secrets: every rule script loads .env as this does
    probe = wf.parent / "probe_env.py"
    probe.write_text(
        "import os\nfrom types import SimpleNamespace\n"
        "from subliminal_scaling.runtime.job import start_job\n"
        "start_job(SimpleNamespace(log=[], rule='probe', threads=1), claim_gpus=False)\n"
        "print(os.environ.get('HF_TOKEN') == os.environ['WANT_HF'],"
        " os.environ.get('WANDB_API_KEY') == os.environ['WANT_WANDB'])\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "WANDB_API_KEY")}
    env.update(PYTHONPATH=str(wf / "src"), WANT_HF=FAKE_HF_TOKEN, WANT_WANDB=FAKE_WANDB_KEY)
    seen = subprocess.run(
        [sys.executable, str(probe)], cwd=wf, env=env, capture_output=True, text=True
    )
    assert seen.stdout.split() == ["True", "True"], seen.stderr[-2000:]


def test_env_file_is_git_ignored_and_never_published(toy_run):
    assert ".env" in (REPO / ".gitignore").read_text().splitlines()
    assert subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=REPO).returncode == 0
    assert [p for p in (toy_run[0] / "results" / "hub").rglob(".env*")] == []


# --------------------------------------------------------------------------- faults
# Each test breaks a private copy of the finished toy world, for one (smallest model,
# condition), and drives single targets. Faults are injected from outside: a sitecustomize
# on PYTHONPATH patches the library in every process of that snakemake run.

FAULTS = textwrap.dedent(
    '''
    """Test-only faults for the toy workflow's processes, chosen by TOY_FAULT."""
    import os
    import signal
    from pathlib import Path

    FAULT = os.environ.get("TOY_FAULT", "")
    if FAULT:
        import subliminal_scaling.publish.local_hub as hub
        import subliminal_scaling.runtime.io as io

        kind, _, arg = FAULT.partition(":")

        def crash_when(n_done):
            if n_done >= int(arg):  # the job and snakemake at once, as a node crash
                os.killpg(0, signal.SIGKILL)

        if kind == "kill-after-chunks":
            write_jsonl = io.write_jsonl

            def after_chunk(path, rows):
                n = write_jsonl(path, rows)
                if Path(path).name.startswith("chunk-"):
                    crash_when(len(list(Path(path).parent.glob("chunk-*.jsonl"))))
                return n

            io.write_jsonl = after_chunk
        elif kind == "kill-after-evals":
            write_json = io.write_json

            def after_eval(path, obj):
                write_json(path, obj)
                if ".partial" in Path(path).parts and str(path).endswith(".json.gz"):
                    crash_when(len(list(Path(path).parents[1].glob("seed*/epoch*.json.gz"))))

            io.write_json = after_eval
        elif kind == "hub-down":

            class ServiceUnavailable(Exception):
                status_code = 503

            def down(src, dst):
                raise ServiceUnavailable("503 Service Unavailable (simulated outage)")

            hub._copy_file = down
    '''
)


def _fork(toy_run, dest: Path) -> Path:
    """A private copy of the finished toy world, mtimes and Snakemake metadata kept."""
    shutil.copytree(toy_run[0], dest, symlinks=True, ignore=shutil.ignore_patterns("toy_run.out"))
    return dest


def _faulty(wf: Path, fault: str, *args: str):
    """snakemake ARGS with TOY_FAULT injected, in its own process group."""
    faults = wf.parent / "faults"
    faults.mkdir(exist_ok=True)
    (faults / "sitecustomize.py").write_text(FAULTS)
    path = os.pathsep.join(p for p in (str(faults), os.environ.get("PYTHONPATH")) if p)
    return snakemake(wf, *args, env={"TOY_FAULT": fault, "PYTHONPATH": path}, new_session=True)


def _smallest(sweep: Sweep) -> str:
    return min(sweep.models, key=lambda m: m.params).slug


def _resume_after_kill(wf: Path, *targets: str):
    unlock = snakemake(wf, "--unlock", "--cores", "1")
    assert unlock.returncode == 0, unlock.stdout[-2000:]
    res = snakemake(wf, *targets, "--cores", "1", "--rerun-incomplete")
    assert res.returncode == 0, res.stdout[-4000:]
    return res


def test_killed_generation_resumes_from_its_chunks(toy_run, tmp_path):
    """kill -9 (job and snakemake) after one chunk; the rerun reuses it, generates only the
    rest and writes the very raw.jsonl of the uninterrupted toy run. The size's job also
    writes its other conditions again (one engine per size): from their chunks, unchanged."""
    wf, sweep = _fork(toy_run, tmp_path / "wf"), toy_run[1]
    m = _smallest(sweep)
    d = wf / "results" / m / "numbers" / NEUTRAL
    other = wf / "results" / m / "numbers" / sweep.animals[0]
    other_raw = (other / "raw.jsonl").read_bytes()
    other_chunks = {p: p.stat().st_mtime_ns for p in (other / "chunks").glob("chunk-*")}
    clean, clean_meta = (d / "raw.jsonl").read_bytes(), io.read_json(d / "generation.json")
    assert clean_meta["n_chunks"] >= 3
    (d / "raw.jsonl").unlink()
    (d / "generation.json").unlink()
    shutil.rmtree(d / "chunks")
    target = str((d / "raw.jsonl").relative_to(wf))
    killed = _faulty(wf, "kill-after-chunks:1", target, "--cores", "1")
    assert killed.returncode == -9, killed.stdout[-3000:]
    assert sorted(p.name for p in (d / "chunks").glob("chunk-*")) == ["chunk-00000.jsonl"]
    assert not (d / "raw.jsonl").exists()
    first_mtime = (d / "chunks" / "chunk-00000.jsonl").stat().st_mtime_ns
    _resume_after_kill(wf, target)
    assert (d / "raw.jsonl").read_bytes() == clean  # nothing lost, duplicated or changed
    meta = io.read_json(d / "generation.json")
    assert meta == clean_meta  # the same record as the uninterrupted run's
    assert (d / "chunks" / "chunk-00000.jsonl").stat().st_mtime_ns == first_mtime  # not redone
    assert (other / "raw.jsonl").read_bytes() == other_raw
    assert {p: p.stat().st_mtime_ns for p in (other / "chunks").glob("chunk-*")} == other_chunks


def test_one_condition_sampled_again_reruns_only_its_own_chain(toy_run, tmp_path):
    """generate_numbers is one job per size and writes every condition's generation.json. The
    README's recipe samples one condition again: its folder deleted, its raw.jsonl asked for
    (the size's job runs alone), then the sweep reruns only that condition's chain: the others'
    records are byte-identical, so Snakemake's checksum leaves their students alone."""
    wf, sweep = _fork(toy_run, tmp_path / "wf"), toy_run[1]
    m, c = _smallest(sweep), sweep.animals[0]
    d = wf / "results" / m / "numbers" / c
    neutral = wf / "results" / m / "numbers" / NEUTRAL
    neutral_raw = (neutral / "raw.jsonl").read_bytes()
    shutil.rmtree(d)
    # in one invocation every dependant of the size's job would run (Snakemake cannot know
    # beforehand that the other conditions will not change)
    plain = parse_dryrun(snakemake(wf, "-n", "--cores", "2").stdout)
    assert {j.wildcards["condition"] for j in plain if j.rule == "train_student"} == set(
        sweep.conditions
    )
    gen = snakemake(wf, str((d / "raw.jsonl").relative_to(wf)), "--cores", "1")
    assert gen.returncode == 0, gen.stdout[-3000:]
    assert (neutral / "raw.jsonl").read_bytes() == neutral_raw
    res = snakemake(wf, "-n", "--cores", "2")
    assert res.returncode == 0, res.stdout[-3000:]
    jobs = parse_dryrun(res.stdout)
    trained = {(j.wildcards["model"], j.wildcards["condition"]) for j in jobs
               if j.rule == "train_student"}  # fmt: skip
    assert trained == {(m, c)}
    assert not any(j.wildcards.get("condition") == NEUTRAL for j in jobs)


def _wandb_runs(wf: Path) -> dict[str, int]:
    """Offline wandb run folders per run id (each init, resumes included, makes one)."""
    out: dict[str, int] = {}
    for p in (wf / "results" / "wandb" / "wandb").glob("offline-run-*"):
        run_id = p.name.rsplit("-", 1)[1]
        out[run_id] = out.get(run_id, 0) + 1
    return out


def test_killed_evaluation_reuses_its_finished_evals(toy_run, tmp_path):
    """kill -9 once seed 1's evals are checkpointed; the rerun reuses them, evaluates seed 2,
    writes outputs equal to the uninterrupted run's and logs each seed to wandb once."""
    wf, sweep = _fork(toy_run, tmp_path / "wf"), toy_run[1]
    m, c = _smallest(sweep), sweep.animals[0]
    first, second = sweep.seeds[0], sweep.seeds[1]
    evals = [
        f"results/{m}/eval/{c}/seed{s}/epoch{e}.json.gz" for s in sweep.seeds for e in sweep.epochs
    ]
    clean = {f: (wf / f).read_bytes() for f in evals}
    for f in evals:
        (wf / f).unlink()
    partial = wf / "results" / m / "eval" / c / ".partial"
    shutil.rmtree(partial)
    runs_before = _wandb_runs(wf)
    killed = _faulty(wf, f"kill-after-evals:{len(sweep.epochs)}", *evals, "--cores", "1")
    assert killed.returncode == -9, killed.stdout[-3000:]
    done = sorted(p.relative_to(partial).as_posix() for p in partial.glob("seed*/epoch*.json.gz"))
    assert done == [f"seed{first}/epoch{e}.json.gz" for e in sweep.epochs]
    assert not any((wf / f).exists() for f in evals)
    assert _wandb_runs(wf) == runs_before  # a killed job has logged nothing
    mtimes = {p: p.stat().st_mtime_ns for p in partial.glob("seed*/epoch*.json.gz")}
    _resume_after_kill(wf, *evals)
    assert {f: (wf / f).read_bytes() for f in evals} == clean  # CPU sampling is deterministic
    assert all(p.stat().st_mtime_ns == t for p, t in mtimes.items())  # reused, not recomputed
    log = (wf / "results" / "logs" / "evaluate_student" / m / f"{c}.log").read_text()
    for e in sweep.epochs:
        assert f"seed {first} epoch {e}: reused" in log
        assert f"seed {second} epoch {e}: evaluated" in log
    runs_after = _wandb_runs(wf)
    for s in sweep.seeds:
        summary = io.read_json(
            wf / "results" / m / "students" / c / f"seed{s}" / "train_summary.json"
        )
        run_id = summary["wandb_run_id"]
        assert runs_after[run_id] == runs_before[run_id] + 1, run_id


def test_hub_outage_fails_clearly_keeps_results_and_the_rerun_uploads(toy_run, tmp_path):
    """Every publish attempt fails with a 503: retries with backoff, then one clear error;
    nothing local is touched; without the fault the rerun publishes, and a forced second
    rerun makes no new commit."""
    wf, sweep = _fork(toy_run, tmp_path / "wf"), toy_run[1]
    m, hub_cfg = _smallest(sweep), sweep.config["hub"]
    d = wf / "results" / m / "numbers" / NEUTRAL
    target = str((d / "upload.json").relative_to(wf))
    repo_id = f"{hub_cfg['namespace']}/{m}-{NEUTRAL}-numbers"
    hub = LocalHub(wf / hub_cfg["local_dir"], hub_cfg["namespace"])
    (d / "upload.json").unlink()
    shutil.rmtree(hub.repo_dir(repo_id, "dataset"))
    local = {p.name: p.read_bytes() for p in d.iterdir() if p.is_file()}
    failed = _faulty(wf, "hub-down", target, "--cores", "1")
    assert failed.returncode != 0
    error = (
        f"HubError: local dataset {repo_id}: publish failed after {hub_cfg['max_retries'] + 1} "
        "attempt(s): HTTP 503: 503 Service Unavailable (simulated outage)"
    )
    log = (wf / "results" / "logs" / "upload_numbers" / m / f"{NEUTRAL}.log").read_text()
    assert error in log and error in failed.stdout
    retries = [line for line in log.splitlines() if "; retry " in line]
    assert [r.split("; retry ")[1] for r in retries] == [
        f"{i + 1}/{hub_cfg['max_retries']} in {hub_cfg['backoff_s'] * 2**i:g} s"
        for i in range(hub_cfg["max_retries"])
    ]
    assert {p.name: p.read_bytes() for p in d.iterdir() if p.is_file()} == local
    assert hub.history(repo_id, "dataset") == []
    ok = snakemake(wf, target, "--cores", "1")
    assert ok.returncode == 0, ok.stdout[-3000:]
    assert io.read_json(d / "upload.json")["changed"] is True
    assert len(hub.history(repo_id, "dataset")) == 1
    again = snakemake(wf, target, "--cores", "1", "--forcerun", "upload_numbers")
    assert again.returncode == 0, again.stdout[-3000:]
    assert io.read_json(d / "upload.json")["changed"] is False
    assert len(hub.history(repo_id, "dataset")) == 1


def test_a_truncated_filtered_jsonl_stops_its_upload_naming_the_file(toy_run, tmp_path):
    wf, sweep = _fork(toy_run, tmp_path / "wf"), toy_run[1]
    m, hub_cfg = _smallest(sweep), sweep.config["hub"]
    d = wf / "results" / m / "numbers" / NEUTRAL
    repo_id = f"{hub_cfg['namespace']}/{m}-{NEUTRAL}-numbers"
    hub = LocalHub(wf / hub_cfg["local_dir"], hub_cfg["namespace"])
    published = hub.current_files(repo_id, "dataset")
    data = (d / "filtered.jsonl").read_bytes()
    (d / "filtered.jsonl").write_bytes(data[: len(data) - 7])  # cut inside the last line
    target = str((d / "upload.json").relative_to(wf))
    res = snakemake(wf, target, "--cores", "1")  # the edit makes upload_numbers rerun
    assert res.returncode != 0
    filtered = (d / "filtered.jsonl").relative_to(wf)
    assert f"{filtered}: truncated" in res.stdout, res.stdout[-3000:]
    assert hub.current_files(repo_id, "dataset") == published
    assert len(hub.history(repo_id, "dataset")) == 1
