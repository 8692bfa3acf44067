"""Adapter: build the toy world's small byte-level BPE tokenizer (Qwen2.5's pipeline)."""

from subliminal_scaling.runtime import io
from subliminal_scaling.runtime.job import start_job
from subliminal_scaling.toy.tokenizer import build_tokenizer

start_job(snakemake)  # noqa: F821
protocol = io.read_json(snakemake.input.protocol)  # noqa: F821
with io.atomic_dir(snakemake.output[0]) as tmp:  # noqa: F821
    build_tokenizer(protocol, snakemake.params.animals, tmp)  # noqa: F821
