"""Adapter: every condition's dataset and student repo of the size, into its collection."""

from subliminal_scaling.publish.hub_config import make_hub
from subliminal_scaling.publish.repos import fill_collection, namespace
from subliminal_scaling.runtime import io
from subliminal_scaling.runtime.job import start_job

log = start_job(snakemake)  # noqa: F821
sm = snakemake  # noqa: F821
p = sm.params
hub = make_hub(p.hub)
result = fill_collection(
    hub,
    io.read_json(sm.input.collection),
    namespace(hub, p.hub["namespace"]),
    sm.wildcards.model,
    p.conditions,
)
io.write_json(sm.output[0], result)
log.info("collection %s: %d items", result["slug"], len(result["items"]))
