"""Adapter: one engine per size samples every condition's number completions in turn into
their chunks (resumable, topped up) and writes each condition's generation.json."""

from subliminal_scaling.generate.teacher import generate_teacher
from subliminal_scaling.runtime import io
from subliminal_scaling.runtime.backends import make_backend
from subliminal_scaling.runtime.job import start_job

log = start_job(snakemake)  # noqa: F821
sm = snakemake  # noqa: F821
p = sm.params
gen = p.generation
protocol = io.read_json(sm.input.protocol)
todo = list(zip(p.conditions, p.chunks, sm.output.meta, strict=True))
backend = make_backend(gen["backend"], p.source, p.revision, gen["batch_size"], gen["vllm"])
try:
    for i, (condition, chunks, meta_path) in enumerate(todo, 1):
        meta, reused = generate_teacher(
            backend=backend,
            model=sm.wildcards.model,
            condition=condition,
            protocol=protocol,
            generation=gen,
            model_id=p.model_id,
            revision=p.revision,
            chunks_dir=chunks,
        )
        io.write_json(meta_path, meta)
        log.info(
            "condition %d/%d (%s): %d completions (%d topped up), %d of %d chunks reused",
            i, len(todo), condition, meta["n_generated"], meta["n_topped_up"], reused,
            meta["n_chunks"],
        )  # fmt: skip
finally:
    backend.close()
