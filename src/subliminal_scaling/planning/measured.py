"""What a run has cost so far, from the ``benchmark:`` files Snakemake writes for GPU jobs.

Every GPU rule declares ``benchmark: results/benchmarks/<rule>/<model>/...tsv``: Snakemake
records each finished job's wall time (column ``s``), model loading included. This reads them
and projects each (stage, size) to the whole sweep at its measured mean, beside the
benchmark-based estimate, so a user sees mid-sweep what the rest will take.

    python -m subliminal_scaling.planning.estimate --config config/config.yaml \\
        --measured results/benchmarks
"""

from __future__ import annotations

import csv
from pathlib import Path

from subliminal_scaling.runtime.config import Sweep

#: GPU rules and the estimate's stage each belongs to
RULES = {
    "generate_numbers": "generation",
    "train_student": "training",
    "evaluate_student": "evaluation",
    "evaluate_control": "evaluation",
}


def read_run_benchmarks(root: str | Path) -> dict[tuple[str, str], list[float]]:
    """Seconds of every finished GPU job, by (rule, model slug)."""
    out: dict[tuple[str, str], list[float]] = {}
    root = Path(root)
    for rule in RULES:
        for tsv in sorted((root / rule).rglob("*.tsv")):
            rel = tsv.relative_to(root / rule).parts
            model = rel[0] if len(rel) > 1 else tsv.stem  # evaluate_control/<model>.tsv
            with open(tsv, newline="", encoding="utf-8") as fh:
                rows = list(csv.DictReader(fh, delimiter="\t"))
            out.setdefault((rule, model), []).extend(float(r["s"]) for r in rows if r.get("s"))
    return out


def expected_jobs(sweep: Sweep, rule: str) -> int:
    """Jobs of ``rule`` per size in the configured sweep."""
    n_cond = len(sweep.conditions)
    return {
        "generate_numbers": 1,  # one job per size: every condition on one engine
        "train_student": n_cond * len(sweep.seeds),
        "evaluate_student": n_cond,
        "evaluate_control": 1,
    }[rule]


def measured_table(sweep: Sweep, measured: dict[tuple[str, str], list[float]]) -> str:
    """Done / expected jobs, mean seconds, GPU-hours so far and projected, per size and rule."""
    lines = [
        "| size | rule | jobs done | mean s/job | GPU-h so far | GPU-h projected (sweep) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    done_h = projected_h = 0.0
    for m in sweep.models:
        for rule in RULES:
            secs = measured.get((rule, m.slug), [])
            n = expected_jobs(sweep, rule)
            gpus = sweep.job_gpus(rule)
            if not secs:
                lines.append(f"| {m.slug} | {rule} | 0 / {n} | – | 0.0 | not measured |")
                continue
            mean = sum(secs) / len(secs)
            so_far, projected = gpus * sum(secs) / 3600, gpus * mean * n / 3600
            done_h += so_far
            projected_h += projected
            lines.append(
                f"| {m.slug} | {rule} | {len(secs)} / {n} | {mean:.0f} | {so_far:.2f} | "
                f"{projected:.2f} |"
            )
    lines.append(f"| **measured** | | | | **{done_h:.2f}** | **{projected_h:.2f}** |")
    lines.append("")
    lines.append(
        "GPU-hours count each job's GPUs (tensor-parallel jobs several); projected = the mean "
        "of the finished jobs x all of that size's jobs of the rule; unmeasured rows add nothing."
    )
    return "\n".join(lines)
