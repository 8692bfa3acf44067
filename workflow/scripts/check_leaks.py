"""Adapter: did the animal leak into the numbers? (mentions, digit and number divergence)"""

from subliminal_scaling.generate.leaks import leak_check
from subliminal_scaling.runtime import io
from subliminal_scaling.runtime.job import start_job

log = start_job(snakemake)  # noqa: F821
sm = snakemake  # noqa: F821


def completions(path):
    return [row["completion"] for row in io.read_jsonl(path)]


result = leak_check(
    condition=sm.wildcards.condition,
    animals=sm.params.animals,
    raw=completions(sm.input.raw),
    kept=completions(sm.input.filtered),
    neutral_kept=completions(sm.input.neutral) if sm.input.neutral else None,
)
io.write_json(sm.output[0], result)
shown = {k: v for k, v in result.items() if k.startswith(("mentions", "letters"))}
log.info("leak check: %s", shown)
