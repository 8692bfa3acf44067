"""Evaluation (rules/evaluate.smk): the animal-preference eval, scoring, the users' survey."""
