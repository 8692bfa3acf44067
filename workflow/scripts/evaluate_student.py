"""Adapter: evaluate every epoch adapter of every seed of one (model, condition), loading the
base model once (and only if some eval is not checkpointed yet), then log each seed's epochs
into the student's own wandb run."""

from subliminal_scaling.evaluate.evals import EvalSpec, evaluate_students
from subliminal_scaling.runtime import io, tracking
from subliminal_scaling.runtime.backends import make_backend
from subliminal_scaling.runtime.job import start_job

log = start_job(snakemake)  # noqa: F821
sm = snakemake  # noqa: F821
p, wc = sm.params, sm.wildcards
ev = p.evaluation
records = evaluate_students(
    make_backend=lambda: make_backend(
        ev["backend"],
        p.source,
        p.revision,
        ev["batch_size"],
        ev["vllm"],
        enable_lora=True,
        max_lora_rank=p.lora_r,
    ),
    spec=EvalSpec.from_config(io.read_json(sm.input.protocol), ev),
    animals=p.animals,
    model=wc.model,
    model_id=p.model_id,
    revision=p.revision,
    condition=wc.condition,
    seeds=p.seeds,
    epochs=p.epochs,
    students_dir=p.students_dir,
    partial_dir=p.partial_dir,
)
expected = set(sm.output.evals)
for (seed, epoch), record in records.items():
    out = p.eval_pattern.format(model=wc.model, condition=wc.condition, seed=seed, epoch=epoch)
    assert out in expected, f"{out} is not an output of this job"
    io.write_json(out, record)
    log.info("seed %d epoch %d: %s", seed, epoch, record["target_rates"])
tracking.log_student_evals(
    p.wandb,
    wandb_dir=p.wandb_dir,
    students_dir=p.students_dir,
    model=wc.model,
    condition=wc.condition,
    records=records,
)
