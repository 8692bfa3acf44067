"""Adapter: apply the reference filter, write filtered rows, the report and metadata."""

from subliminal_scaling.generate.teacher import write_filtered
from subliminal_scaling.runtime import io
from subliminal_scaling.runtime.job import start_job

log = start_job(snakemake)  # noqa: F821
sm = snakemake  # noqa: F821
report = write_filtered(
    raw_path=sm.input.raw,
    protocol=io.read_json(sm.input.protocol),
    generation_meta=io.read_json(sm.input.meta),
    filtered_path=sm.output.filtered,
    report_path=sm.output.report,
    meta_path=sm.output.meta,
)
log.info("kept %d of %d (pass rate %.3f)", report["n_kept"], report["n_total"], report["pass_rate"])
