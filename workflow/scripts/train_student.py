"""Adapter: train (or resume) one student, write its summary, drop its checkpoints."""

from pathlib import Path

from subliminal_scaling.runtime import io, layout, tracking
from subliminal_scaling.runtime.job import start_job
from subliminal_scaling.runtime.specs import StudentSpec
from subliminal_scaling.train.data import subsample
from subliminal_scaling.train.student import finish_student, student_run_id, train_student

log = start_job(snakemake)  # noqa: F821
sm = snakemake  # noqa: F821
p, wc = sm.params, sm.wildcards
spec = StudentSpec.from_dict(p.student)
seed = int(wc.seed)
out_dir = Path(sm.output.summary).parent
rows = subsample(io.read_jsonl(sm.input.filtered), spec.training["n_rows"], seed)
name = layout.run_name(wc.model, wc.condition, seed)
run_id = student_run_id(out_dir)  # survives a crash, so a resumed job continues the run
run = tracking.init_run(
    p.wandb,
    run_id=run_id,
    name=name,
    group=f"{wc.model}-{wc.condition}",
    job_type="train",
    tags=[wc.model, wc.condition, f"params={spec.params:.3g}"],
    config={
        "student": spec.to_dict(),
        "condition": wc.condition,
        "seed": seed,
        "data": sm.input.filtered,
    },
    wandb_dir=p.wandb_dir,
)
try:
    summary = train_student(
        spec=spec, rows=rows, seed=seed, out_dir=out_dir, run_name=name, wandb_run=run
    )
finally:
    tracking.finish(run)
summary["wandb_run_id"] = run_id if run is not None else None
finish_student(out_dir, summary, sm.output.summary)
log.info("trained: %s", summary)
