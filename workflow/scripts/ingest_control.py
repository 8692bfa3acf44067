"""Adapter: the user's existing survey as control records (survey_path null: no records)."""

from subliminal_scaling.evaluate.survey import load_survey, survey_for_model, survey_to_eval_record
from subliminal_scaling.runtime import io
from subliminal_scaling.runtime.job import start_job

log = start_job(snakemake)  # noqa: F821
sm = snakemake  # noqa: F821
p = sm.params
path = sm.input[0] if len(sm.input) else None  # the configured survey; none when null
records = []
if path:
    entries = load_survey(path)
    for slug in p.slugs:
        entry = survey_for_model(entries, slug)
        if entry is not None:
            records.append(survey_to_eval_record(entry, p.animals, slug))
    log.info("survey %s: %d of %d models present", path, len(records), len(p.slugs))
else:
    log.info("evaluation.survey_path is null: chart 1 uses the standard control only")
io.write_json(sm.output[0], {"path": path, "present": bool(path), "records": records})
