"""Adapter: eval records -> the tidy preference and target-rate tables, and their coverage.

The final scope reads every eval of the sweep (its inputs); the snapshot scope reads those of
the sweep's eval files that exist (not inputs: see snapshot_fingerprint in rules/common.smk).
"""

from subliminal_scaling.report.exact import exact_table
from subliminal_scaling.report.tables import coverage, read_eval_records, tidy_tables
from subliminal_scaling.runtime import io
from subliminal_scaling.runtime.job import start_job

log = start_job(snakemake)  # noqa: F821
sm = snakemake  # noqa: F821
p = sm.params
if p.scope == "snapshot":
    records, absent = read_eval_records(p.candidates, [p.survey], only_existing=True)
    log.info("snapshot of %s; %d files not (yet) there", p.fingerprint, absent)
else:
    records, _ = read_eval_records(sm.input.evals, [sm.input.survey])
preferences, target_rates = tidy_tables(records, p.params, p.animals)
cov = coverage(records, scope=p.scope, **p.sweep)
with io.atomic_path(sm.output.preferences) as tmp:
    preferences.to_parquet(tmp, index=False)
with io.atomic_path(sm.output.preferences_csv) as tmp:
    preferences.to_csv(tmp, index=False)
with io.atomic_path(sm.output.target_rates) as tmp:
    target_rates.to_parquet(tmp, index=False)
with io.atomic_path(sm.output.exact) as tmp:
    exact_table(records, p.params, p.animals).to_parquet(tmp, index=False)
io.write_json(sm.output.coverage, cov)
log.info(
    "%s: %d records, %d of the sweep's %d evals -> %d preference rows",
    p.scope,
    len(records),
    cov["n_evals"],
    cov["n_expected"],
    len(preferences),
)
