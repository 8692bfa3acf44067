"""Adapter: the model size's Hub collection (created once, found after)."""

from subliminal_scaling.publish.hub_config import make_hub
from subliminal_scaling.publish.repos import size_collection
from subliminal_scaling.runtime import io
from subliminal_scaling.runtime.job import start_job

log = start_job(snakemake)  # noqa: F821
sm = snakemake  # noqa: F821
hub = make_hub(sm.params.hub)
collection = size_collection(hub, sm.wildcards.model, sm.params.hub["private"])
io.write_json(sm.output[0], collection)
log.info("collection %s (%s)", collection["slug"], collection["url"])
