"""Adapter: apply the reference filter, write filtered rows, the report and metadata."""

from subliminal_scaling.generate.teacher import filter_numbers
from subliminal_scaling.runtime import io
from subliminal_scaling.runtime.job import configure_logging

log = configure_logging(snakemake)  # noqa: F821
sm = snakemake  # noqa: F821
raw = io.read_jsonl(sm.input.raw)
kept, report = filter_numbers(raw, io.read_json(sm.input.protocol))
io.write_jsonl(sm.output.filtered, kept)
io.write_json(sm.output.report, report)
gen = io.read_json(sm.input.meta)
io.write_json(
    sm.output.meta,
    {
        **gen,
        "n_raw": len(raw),
        "n_filtered": len(kept),
        "pass_rate": report["pass_rate"],
        "sha256": {
            "raw.jsonl": io.sha256_file(sm.input.raw),
            "filtered.jsonl": io.sha256_file(sm.output.filtered),
        },
    },
)
log.info("kept %d of %d (pass rate %.3f)", len(kept), len(raw), report["pass_rate"])
