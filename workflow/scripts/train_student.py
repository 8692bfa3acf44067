"""Adapter: train (or resume) one student and write its summary."""

from pathlib import Path

from subliminal_scaling.runtime import io, tracking
from subliminal_scaling.runtime.job import configure_logging
from subliminal_scaling.train.data import subsample
from subliminal_scaling.train.student import finish_student, new_run_id, train_student

log = configure_logging(snakemake)  # noqa: F821
sm = snakemake  # noqa: F821
p, wc = sm.params, sm.wildcards
seed = int(wc.seed)
out_dir = Path(sm.output.summary).parent
rows = subsample(io.read_jsonl(sm.input.filtered), p.training["n_rows"], seed)

# One wandb run per student; its id survives a crash so a resumed job continues the run.
id_file = out_dir / "trainer" / "wandb_run_id.txt"
if id_file.exists():
    run_id = id_file.read_text().strip()
else:
    run_id = new_run_id()
    io.write_text(id_file, run_id + "\n")
run = tracking.init_run(
    p.wandb,
    run_id=run_id,
    name=f"{wc.model}-{wc.condition}-seed{seed}",
    group=f"{wc.model}-{wc.condition}",
    job_type="train",
    tags=[wc.model, wc.condition, f"params={p.params_count:.3g}"],
    config={
        "model_id": p.model_id,
        "revision": p.revision,
        "condition": wc.condition,
        "seed": seed,
        "training": p.training,
        "micro_batch": p.micro_batch,
        "grad_accum": p.grad_accum,
        "gradient_checkpointing": p.gradient_checkpointing,
        "attn_implementation": p.attn_implementation,
        "data": sm.input.filtered,
    },
    wandb_dir=p.wandb_dir,
)
try:
    summary = train_student(
        model_source=p.source,
        revision=p.revision,
        rows=rows,
        training=p.training,
        micro_batch=p.micro_batch,
        grad_accum=p.grad_accum,
        gradient_checkpointing=p.gradient_checkpointing,
        attn_implementation=p.attn_implementation,
        seed=seed,
        out_dir=out_dir,
        run_name=f"{wc.model}-{wc.condition}-seed{seed}",
        wandb_run=run,
    )
finally:
    tracking.finish(run)
summary["wandb_run_id"] = run_id if run is not None else None
finish_student(out_dir, summary, sm.output.summary)
log.info("trained: %s", summary)
