"""Adapter: transfer effects (final and per epoch) and the scaling-law fits."""

import pandas as pd

from subliminal_scaling.report.effects import transfer_effect
from subliminal_scaling.report.exact import exact_effects, exact_vs_sampled
from subliminal_scaling.report.scaling import fit_scaling
from subliminal_scaling.report.significance import significance_table
from subliminal_scaling.runtime import io
from subliminal_scaling.runtime.job import start_job

log = start_job(snakemake)  # noqa: F821
sm = snakemake  # noqa: F821
rep, animals = sm.params.report, sm.params.animals
table = pd.read_parquet(sm.input.target_rates)
effects = transfer_effect(table, animals, epoch=rep["epoch"], n_boot=rep["n_boot"])
per_epoch = transfer_effect(table, animals, epoch="all", n_boot=rep["n_boot"])
fit = fit_scaling(effects, n_boot=rep["n_boot"])
sig = significance_table(table, animals, epoch=rep["epoch"], n_resamples=rep["n_permutations"])
exact = pd.read_parquet(sm.input.exact)
exact_fx = exact_effects(exact, table, animals)
io.write_json(sm.output.exact_vs_sampled, exact_vs_sampled(exact, table, animals))
outputs = (
    (exact_fx, sm.output.exact_effects),
    (effects, sm.output.effects),
    (per_epoch, sm.output.effects_per_epoch),
    (sig, sm.output.significance),
)
for df, out in outputs:
    with io.atomic_path(out) as tmp:
        df.to_csv(tmp, index=False)
io.write_json(sm.output.fit, fit)
log.info("fit: preferred form %s", fit.get("preferred"))
log.info("significant after correction: %d of %d tests", int(sig["significant"].sum()), len(sig))
