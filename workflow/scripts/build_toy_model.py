"""Adapter: provide one tiny toy Qwen2 model (the shipped weights if they match, else train)."""

from subliminal_scaling.runtime import io
from subliminal_scaling.runtime.job import start_job
from subliminal_scaling.toy.model import provide_model

log = start_job(snakemake)  # noqa: F821
p = snakemake.params  # noqa: F821
stats = provide_model(
    snakemake.input.tokenizer,  # noqa: F821
    io.read_json(snakemake.input.protocol),  # noqa: F821
    p.animals,
    p.build["arch"],
    p.build["train"],
    p.seed,
    snakemake.output[0],  # noqa: F821
    shipped_dir=p.shipped,
    rebuild=p.rebuild,
)
log.info("toy model (%s): %s", stats["source"], stats)
