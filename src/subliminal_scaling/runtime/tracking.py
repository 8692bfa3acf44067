"""wandb runs: one per student (job_type train), resumed by the evaluation to log its
per-epoch results with epoch as the x-axis. Offline in the toy world and tests."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def init_run(
    wandb_cfg: dict[str, Any],
    *,
    run_id: str,
    name: str,
    group: str,
    job_type: str,
    tags: list[str],
    config: dict[str, Any] | None,
    wandb_dir: str | Path,
) -> Any | None:
    """Start or resume the run ``run_id``; ``None`` when wandb is disabled."""
    if wandb_cfg["mode"] == "disabled":
        return None
    import wandb

    Path(wandb_dir).mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("WANDB_SILENT", "true")
    return wandb.init(
        project=wandb_cfg["project"],
        entity=wandb_cfg["entity"],
        mode=wandb_cfg["mode"],
        id=run_id,
        resume="allow",
        name=name,
        group=group,
        job_type=job_type,
        tags=tags,
        config=config,
        dir=str(wandb_dir),
        reinit="finish_previous",
    )


def finish(run: Any | None) -> None:
    if run is not None:
        run.finish()


def log_eval_epochs(run: Any | None, records: list[dict[str, Any]], condition: str) -> None:
    """Per-epoch eval results into a student's run, with ``epoch`` as the x-axis."""
    if run is None:
        return
    import wandb

    run.define_metric("epoch")
    run.define_metric("eval/*", step_metric="epoch")
    for rec in records:
        data: dict[str, Any] = {"epoch": rec["epoch"]}
        for animal, rate in rec["target_rates"].items():
            data[f"eval/rate/{animal}"] = rate
        if condition in rec["target_rates"]:
            data["eval/target_rate"] = rec["target_rates"][condition]
        if rec.get("truncated_share") is not None:
            data["eval/truncated_share"] = rec["truncated_share"]
        data["eval/distribution"] = wandb.Table(  # every normalised answer, most common first
            columns=["answer", "count", "share"],
            data=[[a, c, c / rec["n_answers"]] for a, c in rec["counts"].items()],
        )
        run.log(data)


def log_student_evals(
    wandb_cfg: dict[str, Any],
    *,
    wandb_dir: str | Path,
    students_dir: str | Path,
    model: str,
    condition: str,
    records: dict[tuple[int, int], dict[str, Any]],
) -> list[int]:
    """Each seed's per-epoch evals into its student's run (resumed), one pass per seed.

    Called once all evals of the job are done, so a job killed mid-way has logged nothing
    and its successful rerun logs every seed exactly once. Returns the seeds logged (those
    whose student has a wandb run).
    """
    from subliminal_scaling.runtime import io, layout

    logged = []
    for seed in sorted({s for s, _ in records}):
        summary = io.read_json(layout.seed_dir(students_dir, seed) / layout.SUMMARY_FILE)
        if not summary.get("wandb_run_id"):
            continue
        run = init_run(
            wandb_cfg,
            run_id=summary["wandb_run_id"],
            name=layout.run_name(model, condition, seed),
            group=f"{model}-{condition}",
            job_type="train",
            tags=[model, condition],
            config=None,
            wandb_dir=wandb_dir,
        )
        if run is None:
            continue
        log_eval_epochs(run, [records[k] for k in sorted(records) if k[0] == seed], condition)
        finish(run)
        logged.append(seed)
    return logged
