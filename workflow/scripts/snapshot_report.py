"""Adapter: the snapshot's report (what the `plots` figures were built from, and the fit)."""

import pandas as pd

from subliminal_scaling.report.provenance import snapshot_markdown
from subliminal_scaling.runtime import io
from subliminal_scaling.runtime.job import start_job

start_job(snakemake)  # noqa: F821
sm = snakemake  # noqa: F821
text = snapshot_markdown(
    coverage=io.read_json(sm.input.coverage),
    fit=io.read_json(sm.input.fit),
    significance=pd.read_csv(sm.input.significance),
    plots=list(sm.input.plots),
)
io.write_text(sm.output[0], text)
