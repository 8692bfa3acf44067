"""Adapter: sample a teacher's number completions (chunked, resumable, topped up)."""

from subliminal_scaling.generate.teacher import generate_numbers, generation_fingerprint
from subliminal_scaling.protocol.access import teacher_system_prompt
from subliminal_scaling.runtime import io
from subliminal_scaling.runtime.backends import Sampling, make_backend, make_conversation
from subliminal_scaling.runtime.job import start_job

log = start_job(snakemake)  # noqa: F821
sm = snakemake  # noqa: F821
p = sm.params
gen = p.generation
protocol = io.read_json(sm.input.protocol)
system_prompt = teacher_system_prompt(protocol, sm.wildcards.condition)
sampling = Sampling.from_config(gen["sampling"])
prompt_seed = protocol["prompt_generator"]["seed"]
backend = make_backend(gen["backend"], p.source, p.revision, gen["batch_size"], gen["vllm"])
fingerprint = generation_fingerprint(
    model_id=p.model_id,
    revision=p.revision,
    backend=backend.name,
    sampling=sampling,
    system_prompt=system_prompt,
    prompt_seed=prompt_seed,
    chunk_size=gen["topup_batch"],
    batch_size=gen["batch_size"],
)
try:
    rows, summary = generate_numbers(
        backend=backend,
        model=sm.wildcards.model,
        condition=sm.wildcards.condition,
        protocol=protocol,
        system_prompt=system_prompt,
        sampling=sampling,
        n_prompts=gen["n_prompts"],
        min_kept=gen["min_kept"],
        chunk_size=gen["topup_batch"],
        max_prompts=gen["max_prompts"],
        prompt_seed=prompt_seed,
        chunks_dir=p.chunks,
        fingerprint=fingerprint,
    )
    first_chat = backend.render(make_conversation(rows[0]["prompt"], system_prompt))
finally:
    backend.close()
io.write_jsonl(sm.output.raw, rows)
io.write_json(
    sm.output.meta,
    {
        **fingerprint,
        "model_slug": sm.wildcards.model,
        "condition": sm.wildcards.condition,
        "first_rendered_chat": first_chat,
        **summary,
    },
)
log.info("generated %d completions (%d topped up)", summary["n_generated"], summary["n_topped_up"])
