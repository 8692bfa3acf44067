"""Adapter: publish a (model, condition)'s student adapters as one Hub model repo."""

from pathlib import Path

from subliminal_scaling.publish.hub_config import make_hub
from subliminal_scaling.publish.repos import eval_table, namespace, publish_students
from subliminal_scaling.runtime import io
from subliminal_scaling.runtime.job import start_job
from subliminal_scaling.runtime.naming import NEUTRAL
from subliminal_scaling.runtime.specs import StudentSpec

log = start_job(snakemake)  # noqa: F821
sm = snakemake  # noqa: F821
p, wc = sm.params, sm.wildcards
hub = make_hub(p.hub)
spec = StudentSpec.from_dict(p.student)
records = [io.read_json(f) for f in sm.input.evals]
receipt = publish_students(
    hub=hub,
    ns=namespace(hub, p.hub["namespace"]),
    slug=wc.model,
    model_id=spec.model_id,
    condition=wc.condition,
    students_dir=Path(sm.output[0]).parent,
    seeds=p.seeds,
    epochs=p.epochs,
    recipe=spec.card_recipe(),
    datasets=[io.read_json(sm.input.numbers)["repo_id"]],
    eval_table_md=eval_table(records, None if wc.condition == NEUTRAL else wc.condition),
    upload_epochs=p.hub["upload_epochs"],
    private=p.hub["private"],
    stage_root=Path(sm.output[0]).parent,
    collection=io.read_json(sm.input.collection),
)
io.write_json(sm.output[0], receipt)
log.info("published %s (changed: %s)", receipt["repo_id"], receipt["changed"])
