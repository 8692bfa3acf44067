"""How many GPU-hours the configured sweep costs, from measured benchmark results.

    python -m subliminal_scaling.planning.estimate --config config/config.yaml \\
        --bench benchmarks/results/<train>.json benchmarks/results/sample-<device>.json

Training time per student = its tokens (rows x epochs x measured tokens per row) / the
measured non-pad tokens per second of the benchmark run whose settings equal the config's for
that size (micro-batch, checkpointing, speed knobs, allocator) and that ran as many copies per
GPU as the size's ``students_per_gpu`` (a shared GPU's throughput is split between them).
Sampling time comes from the sampling benchmark (transformers backend): seconds per
completion per new token, at the nearest measured size (linear in parameters between
measured sizes, flagged as interpolated).
Wall-clock for G GPUs replays the workflow's priorities (all generation, largest first; then
training, largest first; each condition's evaluation once its students exist) on G GPUs.
Every number printed says where it came from; nothing is made up when a size is unmeasured.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from subliminal_scaling.planning.disk import disk_plan, render_plan
from subliminal_scaling.planning.measured import measured_table, read_run_benchmarks
from subliminal_scaling.planning.replay import Job, ReplayError
from subliminal_scaling.planning.replay import wall_clock as replay_wall_clock
from subliminal_scaling.runtime.config import SPEED_DEFAULTS, Sweep, load_config
from subliminal_scaling.runtime.gpu_pool import SLOTS_PER_GPU

SIZES = ("0.5B", "1.5B", "3B", "7B", "14B", "32B")  # benchmark size labels


class EstimateError(ValueError):
    """A benchmark file or the config cannot support an estimate (one clear line)."""


@dataclass
class TrainRate:
    size: str
    tokens_per_s: float  # per GPU, all concurrent copies together
    copies: int
    tokens_per_row: float
    source: str
    matches_config: bool


def _job(
    stage: str, slug: str, condition: str, seconds: float, priority: int,
    needs: list[str] | None = None, name: str = "", share: int = 1,
) -> Job:  # fmt: skip
    """``share``: jobs of this kind that run side by side on one GPU (students_per_gpu)."""
    return Job(
        name=name, rule=stage, priority=priority, gpu=1 if share == 1 else 0,
        slots=None if share == 1 else SLOTS_PER_GPU // share, seconds=seconds,
        needs=needs or [], wildcards={"model": slug, "condition": condition},
    )  # fmt: skip


def benchmark_size(model_id: str) -> str:
    """The benchmarks' size label of a model id (``Qwen/Qwen2.5-7B-Instruct`` -> ``7B``)."""
    for label in SIZES:
        if f"-{label}-".lower() in model_id.lower():
            return label
    raise EstimateError(f"{model_id}: not a Qwen2.5 size the benchmarks know")


def load_benchmarks(paths: list[str | Path]) -> tuple[list[dict], list[dict]]:
    """(training rows, sampling rows) from benchmark JSON reports, each tagged with its file."""
    train, sample = [], []
    for path in paths:
        try:
            report = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise EstimateError(f"{path}: cannot read benchmark report ({exc})") from None
        kind = str(report.get("benchmark", ""))
        for row in report.get("results", []):
            row = {**row, "_file": Path(path).name, "_device": report.get("device")}
            if kind.startswith("student training"):
                train.append(row)
            elif kind.startswith("sampling"):
                sample.append(row)
    if not train:
        raise EstimateError("no student-training benchmark among --bench files")
    return train, sample


def _comparable(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings a benchmark row must share with the config to stand for it."""
    out = {
        "micro_batch": settings.get("micro_batch"),
        "gradient_checkpointing": bool(settings.get("gradient_checkpointing")),
        "attn_implementation": settings.get("attn_implementation"),
    }
    for key, default in SPEED_DEFAULTS.items():
        value = settings.get(key, default)
        out[key] = bool(value) if isinstance(default, bool) else value
    return out


def _settings(row: dict[str, Any]) -> dict[str, Any]:
    return _comparable({**row, **(row.get("speed_knobs") or {})})


def train_rate(rows: list[dict], size: str, wanted: dict[str, Any], copies: int = 1) -> TrainRate:
    """The benchmark row for ``size`` run with the configured settings (and ``copies`` jobs per
    GPU); the fastest matching one if several. No match is an error, not a guess."""
    want = _comparable(wanted)
    ok = [
        r
        for r in rows
        if r.get("size") == size
        and r.get("status") == "ok"
        and not r.get("tiny")
        and int(r.get("concurrent", 1)) == copies
    ]
    matching = [r for r in ok if _settings(r) == want]
    if not matching:
        seen = sorted({json.dumps(_settings(r), sort_keys=True) for r in ok})
        raise EstimateError(
            f"{size}: no benchmark run with the configured settings {json.dumps(want)}"
            f" and {copies} job(s) per GPU; measured: {seen or 'none'}"
        )
    best = max(matching, key=lambda r: r["non_pad_tokens_per_s"])
    return TrainRate(
        size=size,
        tokens_per_s=float(best["non_pad_tokens_per_s"]),
        copies=copies,
        tokens_per_row=float(best["mean_tokens_per_row"]),
        source=f"{best['_file']}:{best.get('variant', 'configured')} on {best['_device']}",
        matches_config=True,
    )


def sample_seconds(
    rows: list[dict], params: dict[str, int], size: str, workload: str, max_new: int
) -> tuple[float, str]:
    """Seconds per completion at ``max_new`` new tokens for ``size``: measured per token
    (random weights run to the limit, so this is an upper bound), linear in parameters
    between (or beyond) the measured sizes."""
    per_token: dict[str, float] = {}
    for row in rows:
        for run in row.get("runs", []):
            if run.get("workload") != workload or not run.get("completions"):
                continue
            s = run["wall_s"] / run["completions"] / run["max_new_tokens"]
            # keep the measurement nearest the asked length (per-token cost varies with it)
            prev = per_token.get(row["size"])
            if prev is None or abs(run["max_new_tokens"] - max_new) < prev[1]:
                per_token[row["size"]] = (s, abs(run["max_new_tokens"] - max_new))
    if not per_token:
        raise EstimateError(f"no '{workload}' sampling benchmark among --bench files")
    if size in per_token:
        return per_token[size][0] * max_new, "measured"
    pts = sorted((params[s], v[0]) for s, v in per_token.items() if s in params)
    if len(pts) < 2:
        ((_n, v),) = pts
        return v * max_new, "from the one measured size"
    (n0, v0), (n1, v1) = (pts[0], pts[1]) if params[size] < pts[1][0] else (pts[-2], pts[-1])
    v = v0 + (v1 - v0) * (params[size] - n0) / (n1 - n0)
    return max(v, min(v0, v1)) * max_new, "interpolated"


def build_jobs(sweep: Sweep, train: list[dict], sample: list[dict]) -> tuple[list[Job], list[str]]:
    """Every GPU job of the sweep with its estimated seconds, and the provenance notes."""
    cfg = sweep.config
    params = {benchmark_size(m.id): m.params for m in sweep.models}
    notes: list[str] = []
    jobs: list[Job] = []
    gen, ev, tr = cfg["generation"], cfg["evaluation"], cfg["training"]
    n_answers = (ev["n_questions"] or 50) * (ev["samples_per_question"] or 100)
    for m in sweep.models:
        size = benchmark_size(m.id)
        settings = sweep.training_for(m.slug)
        share = sweep.students_per_gpu(m.slug)
        rate = train_rate(train, size, settings, copies=share)
        per_gpu = f", {share} students per GPU" if share > 1 else ""
        notes.append(
            f"train {size}: {rate.tokens_per_s:,.0f} tok/s per GPU{per_gpu} ({rate.source})"
        )
        # one student's wall time: the GPU's throughput is split between the `share` copies
        student_s = tr["n_rows"] * tr["epochs"] * rate.tokens_per_row * share / rate.tokens_per_s
        gen_s, how = sample_seconds(
            sample, params, size, "numbers", gen["sampling"]["max_new_tokens"]
        )
        gen_s *= gen["n_prompts"]
        ev_s, how_ev = sample_seconds(
            sample, params, size, "eval", ev["sampling"]["max_new_tokens"]
        )
        ev_s *= n_answers
        notes.append(
            f"sample {size}: numbers {how}, eval {how_ev} (transformers backend, upper bound)"
        )
        for c in sweep.conditions:
            g = f"gen/{m.slug}/{c}"
            jobs.append(
                _job("generation", m.slug, c, gen_s, sweep.generation_priority(m.slug), name=g)
            )
            students = [f"train/{m.slug}/{c}/{s}" for s in sweep.seeds]
            prio = sweep.train_priority(m.slug, c)
            jobs += [_job("training", m.slug, c, student_s, prio, [g], t, share) for t in students]
            n_evals = len(sweep.seeds) * tr["epochs"]
            ev_prio = sweep.eval_priority(m.slug)
            name = f"eval/{m.slug}/{c}"
            jobs.append(_job("evaluation", m.slug, c, ev_s * n_evals, ev_prio, students, name))
        name = f"eval/{m.slug}/control"
        jobs.append(
            _job("evaluation", m.slug, "control", ev_s, sweep.eval_priority(m.slug), [], name)
        )
    return jobs, notes


def wall_clock(jobs: list[Job], gpus: int) -> float:
    """Seconds to run ``jobs`` on ``gpus`` GPUs as Snakemake schedules them (``replay``)."""
    try:
        return replay_wall_clock(jobs, gpus)
    except ReplayError as exc:
        raise EstimateError(str(exc)) from None


def summarize(jobs: list[Job]) -> dict[str, dict[str, float]]:
    """GPU-hours per size and stage (a job sharing a GPU counts its share of the GPU)."""
    table: dict[str, dict[str, float]] = {}
    for j in jobs:
        row = table.setdefault(
            j.wildcards["model"], {"generation": 0.0, "training": 0.0, "evaluation": 0.0}
        )
        row[j.rule] += j.seconds * j.need / SLOTS_PER_GPU / 3600  # a shared GPU, in part
    return table


def render(sweep: Sweep, jobs: list[Job], notes: list[str], gpus: list[int]) -> str:
    table = summarize(jobs)
    lines = [
        "| size | generation h | training h | evaluation h | total GPU-h |",
        "|---|---:|---:|---:|---:|",
    ]
    tot = {"generation": 0.0, "training": 0.0, "evaluation": 0.0}
    for m in sweep.models:
        row = table[m.slug]
        for k in tot:
            tot[k] += row[k]
        lines.append(
            f"| {m.slug} | {row['generation']:.1f} | {row['training']:.1f} "
            f"| {row['evaluation']:.1f} | {sum(row.values()):.1f} |"
        )
    total = sum(tot.values())
    lines.append(
        f"| **sweep** | {tot['generation']:.1f} | {tot['training']:.1f} "
        f"| {tot['evaluation']:.1f} | **{total:.1f}** |"
    )
    share = (tot["generation"] + tot["evaluation"]) / total if total else 0.0
    lines += ["", f"generation + evaluation: {100 * share:.1f}% of the sweep's GPU time"]
    for g in gpus:
        lines.append(f"wall-clock on {g} GPU(s): {wall_clock(jobs, g) / 3600:.1f} h")
    lines += ["", "sources:"] + [f"- {n}" for n in notes]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", required=True)
    p.add_argument("--bench", nargs="+", help="benchmark JSON reports")
    p.add_argument("--gpus", nargs="+", type=int, default=[1, 8])
    p.add_argument("--disk", action="store_true", help="only the disk plan (needs no --bench)")
    p.add_argument(
        "--measured", help="a run's benchmark: folder (results/benchmarks): its costs so far"
    )
    args = p.parse_args(argv)
    try:
        config = load_config(args.config)
        sweep = Sweep(config)
        if args.measured:
            if not Path(args.measured).is_dir():
                raise EstimateError(f"--measured {args.measured}: no such folder")
            print(f"measured in {args.measured}:")
            print(measured_table(sweep, read_run_benchmarks(args.measured)), end="\n\n")
        if not args.disk and (args.bench or not args.measured):
            if not args.bench:
                raise EstimateError(
                    "--bench is required (or --disk for the disk plan, --measured for a run's)"
                )
            train, sample = load_benchmarks(args.bench)
            jobs, notes = build_jobs(sweep, train, sample)
            print(render(sweep, jobs, notes, args.gpus), end="\n\n")
        for g in sorted(set(args.gpus)):
            print(f"disk, {g} student(s) training at once:")
            print(render_plan(disk_plan(config, concurrent_students=g)), end="\n\n")
    except EstimateError as exc:
        print(f"estimate: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
