"""Adapter: the standard eval on the base model itself (the control)."""

from subliminal_scaling.evaluate.evals import evaluate
from subliminal_scaling.runtime import io
from subliminal_scaling.runtime.backends import make_backend
from subliminal_scaling.runtime.job import configure_logging
from subliminal_scaling.runtime.naming import CONTROL

log = configure_logging(snakemake)  # noqa: F821
sm = snakemake  # noqa: F821
p, wc = sm.params, sm.wildcards
ev = p.evaluation
backend = make_backend(ev["backend"], p.source, p.revision, ev["batch_size"], ev["vllm"])
try:
    record = evaluate(
        backend=backend,
        protocol=io.read_json(sm.input.protocol),
        evaluation=ev,
        animals=p.animals,
        kind="control",
        model=wc.model,
        model_id=p.model_id,
        condition=CONTROL,
        seed=None,
        epoch=None,
        adapter=None,
    )
finally:
    backend.close()
io.write_json(sm.output[0], record)
log.info("control %s: %s", wc.model, record["target_rates"])
