"""Teacher data (rules/generate.smk): prompts, sampling in resumable chunks, the filter."""
