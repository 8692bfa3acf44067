"""How many GPU-hours the configured sweep costs, from measured benchmark results.

    python -m subliminal_scaling.planning.estimate --config config/config.yaml \\
        --bench benchmarks/results/<train>.json benchmarks/results/sample-<device>.json

Training time per student = its tokens (rows x epochs x measured tokens per row) / the
measured non-pad tokens per second of the benchmark run whose settings equal the config's for
that size (micro-batch, checkpointing, speed knobs). Sampling time comes from the sampling
benchmark (transformers backend): seconds per completion per new token, at the nearest
measured size (linear in parameters between measured sizes, flagged as interpolated).
Wall-clock for G GPUs replays the workflow's priorities (all generation, largest first; then
training, largest first; each condition's evaluation once its students exist) on G GPUs.
Every number printed says where it came from; nothing is made up when a size is unmeasured.
"""

from __future__ import annotations

import argparse
import heapq
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from subliminal_scaling.planning.disk import disk_plan, render_plan
from subliminal_scaling.runtime.config import SPEED_DEFAULTS, Sweep, load_config

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


@dataclass
class Job:
    stage: str
    slug: str
    condition: str
    seconds: float
    priority: int
    needs: list[str] = field(default_factory=list)
    name: str = ""


def size_label(model_id: str) -> str:
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
    params = {size_label(m.id): m.params for m in sweep.models}
    notes: list[str] = []
    jobs: list[Job] = []
    gen, ev, tr = cfg["generation"], cfg["evaluation"], cfg["training"]
    n_answers = (ev["n_questions"] or 50) * (ev["samples_per_question"] or 100)
    for m in sweep.models:
        size = size_label(m.id)
        settings = sweep.training_for(m.slug)
        rate = train_rate(train, size, settings)
        notes.append(f"train {size}: {rate.tokens_per_s:,.0f} tok/s ({rate.source})")
        student_s = tr["n_rows"] * tr["epochs"] * rate.tokens_per_row / rate.tokens_per_s
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
                Job("generation", m.slug, c, gen_s, sweep.generation_priority(m.slug), name=g)
            )
            students = [f"train/{m.slug}/{c}/{s}" for s in sweep.seeds]
            prio = sweep.train_priority(m.slug, c)
            jobs += [Job("training", m.slug, c, student_s, prio, [g], t) for t in students]
            n_evals = len(sweep.seeds) * tr["epochs"]
            ev_prio = sweep.eval_priority(m.slug)
            name = f"eval/{m.slug}/{c}"
            jobs.append(Job("evaluation", m.slug, c, ev_s * n_evals, ev_prio, students, name))
        name = f"eval/{m.slug}/control"
        jobs.append(
            Job("evaluation", m.slug, "control", ev_s, sweep.eval_priority(m.slug), [], name)
        )
    return jobs, notes


def wall_clock(jobs: list[Job], gpus: int) -> float:
    """Seconds to run ``jobs`` on ``gpus`` GPUs, each free GPU taking the highest-priority
    job whose inputs are done (how Snakemake schedules them with --resources gpu=G)."""
    done_at: dict[str, float] = {}
    pending = list(jobs)
    free = [0.0] * gpus
    running: list[tuple[float, str]] = []
    now = 0.0
    while pending:
        ready = [j for j in pending if all(done_at.get(n, 1e30) <= now for n in j.needs)]
        slots = [i for i, t in enumerate(free) if t <= now]
        if ready and slots:
            job = max(ready, key=lambda j: (j.priority, j.seconds))
            free[slots[0]] = now + job.seconds
            done_at[job.name] = now + job.seconds
            heapq.heappush(running, (now + job.seconds, job.name))
            pending.remove(job)
            continue
        later = [t for t in free if t > now] + [t for t, _ in running if t > now]
        if not later:
            raise EstimateError("a job waits on an input no job makes")
        now = min(later)
    return max(done_at.values(), default=0.0)


def summarize(jobs: list[Job]) -> dict[str, dict[str, float]]:
    """GPU-hours per size and stage."""
    table: dict[str, dict[str, float]] = {}
    for j in jobs:
        row = table.setdefault(j.slug, {"generation": 0.0, "training": 0.0, "evaluation": 0.0})
        row[j.stage] += j.seconds / 3600
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
    args = p.parse_args(argv)
    try:
        config = load_config(args.config)
        sweep = Sweep(config)
        if not args.disk:
            if not args.bench:
                raise EstimateError("--bench is required (or --disk for the disk plan only)")
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
