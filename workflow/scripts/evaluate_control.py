"""Adapter: the standard eval on the base model itself (the control)."""

from subliminal_scaling.evaluate.evals import EvalSpec, EvalTarget, evaluate
from subliminal_scaling.runtime import io
from subliminal_scaling.runtime.backends import make_backend
from subliminal_scaling.runtime.job import start_job

log = start_job(snakemake)  # noqa: F821
sm = snakemake  # noqa: F821
p, wc = sm.params, sm.wildcards
ev = p.evaluation
spec = EvalSpec.from_config(io.read_json(sm.input.protocol), ev)
backend = make_backend(ev["backend"], p.source, p.revision, ev["batch_size"], ev["vllm"])
try:
    record = evaluate(
        backend=backend,
        spec=spec,
        target=EvalTarget.control(wc.model, p.model_id),
        animals=p.animals,
    )
finally:
    backend.close()
io.write_json(sm.output[0], record)
log.info("control %s: %s", wc.model, record["target_rates"])
