"""Students (rules/train.smk): the recipe on TRL + PEFT, per-epoch adapters, resume."""
