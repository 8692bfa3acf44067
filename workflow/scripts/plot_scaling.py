"""Adapter: the scaling figure, per-animal small multiples and per-epoch curves."""

import pandas as pd

from subliminal_scaling.report.figures import coverage_note, coverage_title
from subliminal_scaling.report.plots_scaling import (
    plot_effect_per_animal,
    plot_effect_per_epoch,
    plot_exact_per_epoch,
    plot_scaling,
    read_peer,
)
from subliminal_scaling.runtime import io
from subliminal_scaling.runtime.job import start_job

start_job(snakemake)  # noqa: F821
sm = snakemake  # noqa: F821
cov = io.read_json(sm.input.coverage)
effects = pd.read_csv(sm.input.effects)
plot_scaling(
    effects,
    io.read_json(sm.input.fit),
    sm.output.scaling,
    sm.output.scaling_svg,
    title=coverage_title(cov, "Subliminal transfer vs model size (mean over animals)"),
    note=coverage_note(cov),
    peer=read_peer(sm.input.peer) if sm.input.peer else None,
)
plot_effect_per_animal(
    effects,
    sm.output.per_animal,
    sm.output.per_animal_svg,
    title=coverage_title(cov, "Transfer effect per animal vs model size (grey dashed: mean)"),
    animals=sm.params.animals,
    note=coverage_note(cov),
)
plot_effect_per_epoch(
    pd.read_csv(sm.input.effects_per_epoch),
    sm.output.per_epoch,
    sm.output.per_epoch_svg,
    title=coverage_title(cov, "Transfer effect over training, by model size (mean over animals)"),
    note=coverage_note(cov, latest_epoch=False),
)
plot_exact_per_epoch(
    pd.read_csv(sm.input.exact_effects),
    sm.output.exact,
    sm.output.exact_svg,
    title=coverage_title(cov, "Exact preference effect over training, by model size"),
    note=coverage_note(cov, latest_epoch=False),
)
