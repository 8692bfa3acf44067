"""Adapter: chart 1 for one model size (control, survey, neutral and animal bars per animal)."""

import pandas as pd

from subliminal_scaling import io
from subliminal_scaling.analysis import grouped_bar_data
from subliminal_scaling.logs import configure_logging
from subliminal_scaling.plots import coverage_note, coverage_title, plot_grouped_bars

configure_logging(snakemake)  # noqa: F821
sm = snakemake  # noqa: F821
rep, model = sm.params.report, sm.wildcards.model
view = rep["view"]
cov = io.read_json(sm.input.coverage)
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
)
