"""Adapter: publish a teacher's numbers as a Hub dataset (idempotent, retried)."""

from pathlib import Path

from subliminal_scaling.protocol.access import teacher_system_prompt
from subliminal_scaling.publish.hub_config import make_hub
from subliminal_scaling.publish.repos import namespace, publish_numbers
from subliminal_scaling.runtime import io
from subliminal_scaling.runtime.job import start_job

log = start_job(snakemake)  # noqa: F821
sm = snakemake  # noqa: F821
p, wc = sm.params, sm.wildcards
hub = make_hub(p.hub)
receipt = publish_numbers(
    hub=hub,
    ns=namespace(hub, p.hub["namespace"]),
    slug=wc.model,
    condition=wc.condition,
    filtered=Path(sm.input.filtered),
    raw=Path(sm.input.raw),
    report=io.read_json(sm.input.report),
    leaks=io.read_json(sm.input.leaks),
    metadata=io.read_json(sm.input.meta),
    teacher_prompt=teacher_system_prompt(io.read_json(sm.input.protocol), wc.condition),
    n_rows=p.n_rows,
    n_seeds=p.n_seeds,
    private=p.hub["private"],
    stage_root=Path(sm.output[0]).parent,
    collection=io.read_json(sm.input.collection),
)
io.write_json(sm.output[0], receipt)
log.info("published %s (changed: %s)", receipt["repo_id"], receipt["changed"])
