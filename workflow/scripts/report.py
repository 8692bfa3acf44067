"""Adapter: write the provenance report (also embedded in `snakemake --report`)."""

import pandas as pd

from subliminal_scaling.report.provenance import report_markdown
from subliminal_scaling.runtime import io
from subliminal_scaling.runtime.job import start_job

start_job(snakemake)  # noqa: F821
sm = snakemake  # noqa: F821
text = report_markdown(
    models=sm.params.models,
    protocol_source=io.read_json(sm.input.protocol)["source"],
    numbers=[io.read_json(f) for f in sm.input.numbers_meta],
    numbers_uploads=[io.read_json(f) for f in sm.input.numbers_uploads],
    leaks=[io.read_json(f) for f in sm.input.leaks],
    student_uploads=[io.read_json(f) for f in sm.input.student_uploads],
    fit=io.read_json(sm.input.fit),
    significance=pd.read_csv(sm.input.significance),
    exact_effects=pd.read_csv(sm.input.exact_effects),
    exact_vs_sampled=io.read_json(sm.input.exact_vs_sampled),
    plots=list(sm.input.plots),
    coverage=io.read_json(sm.input.coverage),
)
io.write_text(sm.output[0], text)
