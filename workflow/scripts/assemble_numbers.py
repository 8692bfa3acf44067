"""Adapter: a condition's raw.jsonl from its teacher chunks, checked against generation.json."""

from subliminal_scaling.generate.teacher import assemble_numbers
from subliminal_scaling.runtime import io
from subliminal_scaling.runtime.job import start_job

log = start_job(snakemake)  # noqa: F821
sm = snakemake  # noqa: F821
rows = assemble_numbers(sm.params.chunks, io.read_json(sm.input.meta))
io.write_jsonl(sm.output.raw, rows)
log.info("%d rows from %s", len(rows), sm.params.chunks)
