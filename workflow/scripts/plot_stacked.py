"""Adapter: chart 2 for one model size (stacked answer distributions, top answers + other)."""

import pandas as pd

from subliminal_scaling.report.bars import stacked_data
from subliminal_scaling.report.figures import coverage_note, coverage_title
from subliminal_scaling.report.plots_size import plot_stacked
from subliminal_scaling.runtime import io
from subliminal_scaling.runtime.job import start_job

start_job(snakemake)  # noqa: F821
sm = snakemake  # noqa: F821
rep, model = sm.params.report, sm.wildcards.model
cov = io.read_json(sm.input.coverage)
data = stacked_data(
    pd.read_parquet(sm.input.preferences),
    model,
    sm.params.animals,
    epoch=rep["epoch"],
    top_k=rep["top_k"],
)
plot_stacked(
    data,
    sm.output.png,
    sm.output.svg,
    title=coverage_title(cov, f"{model}: favourite-animal answers"),
    note=coverage_note(cov, model),
    final_epoch=cov["final_epoch"] if rep["epoch"] is None else None,
)
