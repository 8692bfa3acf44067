"""Adapter: chart 1 for one model size (control, survey, neutral and animal bars per animal)."""

import pandas as pd

from subliminal_scaling.report.bars import grouped_bar_data
from subliminal_scaling.report.figures import coverage_note, coverage_title
from subliminal_scaling.report.plots_size import plot_grouped_bars
from subliminal_scaling.runtime import io
from subliminal_scaling.runtime.job import start_job

start_job(snakemake)  # noqa: F821
sm = snakemake  # noqa: F821
rep, model = sm.params.report, sm.wildcards.model
view = rep["view"]
cov = io.read_json(sm.input.coverage)
sig = pd.read_csv(sm.input.significance)
table = pd.read_parquet(sm.input.target_rates if view == "reference" else sm.input.preferences)
data = grouped_bar_data(
    table,
    sm.params.animals,
    epoch=rep["epoch"],
    view=view,
    control_kind="control" if sm.params.control == "standard" else "survey",
    n_boot=rep["n_boot"],
    models=[model],
)
plot_grouped_bars(
    data[data["model"] == model],
    sm.output.png,
    sm.output.svg,
    title=coverage_title(cov, f"{model}: favourite-animal answers ({view} scoring)"),
    note=coverage_note(cov, model),
    final_epoch=cov["final_epoch"] if rep["epoch"] is None else None,
    # the tests score answers as the reference does: stars only on that view's bars
    significance=sig[sig["model"] == model] if view == "reference" else None,
)
