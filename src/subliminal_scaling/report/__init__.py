"""Results (rules/report.smk): tables, bootstrap, effects, scaling fits, figures and the report."""
