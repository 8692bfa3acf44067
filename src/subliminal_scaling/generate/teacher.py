"""Teacher stage: sample number continuations in resumable chunks, top up until enough pass
the filter, then filter and describe the result.

Chunks (``chunks/chunk-00000.jsonl`` ...) are written atomically into a ``CheckpointDir`` and
reused on a rerun with the same settings, so a job killed mid-way does not redo finished
batches. Chunk ``k`` always holds prompts ``k*B .. (k+1)*B-1`` of the one prompt stream, and
prompt ``i`` is sampled with its own seed derived from (model, condition, ``i``)
(``seeds.teacher_seed``), so a resumed run gives the same rows as an uninterrupted one and no
two rows share a random stream.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from subliminal_scaling.generate.filter import filter_completions
from subliminal_scaling.generate.prompts import sample_prompts
from subliminal_scaling.protocol.access import teacher_system_prompt
from subliminal_scaling.runtime import io
from subliminal_scaling.runtime.backends import Backend, Sampling, make_conversation
from subliminal_scaling.runtime.checkpoint import CheckpointDir
from subliminal_scaling.runtime.seeds import SEED_SCHEME, teacher_seeds

log = logging.getLogger(__name__)

#: a teacher chunk's file in its condition's chunks folder (k = 0, 1, ...)
CHUNK_FILE = "chunk-{:05d}.jsonl"


def generation_fingerprint(
    *,
    model_id: str,
    revision: str | None,
    backend: str,
    sampling: Sampling,
    system_prompt: str | None,
    prompt_seed: int,
    chunk_size: int,
    batch_size: int,
) -> dict[str, Any]:
    """Everything a teacher chunk's rows depend on: a chunk written under another value of
    any of these is discarded, never reused (``CheckpointDir``). The batch size is in it
    because the transformers backend draws a whole batch from one generator."""
    return {
        "model_id": model_id,
        "revision": revision,
        "backend": backend,
        "sampling": sampling.to_dict(),
        "system_prompt": system_prompt,
        "prompt_seed": prompt_seed,
        "seed_scheme": SEED_SCHEME,
        "chunk_size": chunk_size,
        "batch_size": batch_size,
    }


def generate_numbers(
    *,
    backend: Backend,
    model: str,
    condition: str,
    protocol: dict[str, Any],
    system_prompt: str | None,
    sampling: Sampling,
    n_prompts: int,
    min_kept: int,
    chunk_size: int,
    max_prompts: int,
    prompt_seed: int,
    chunks_dir: Path,
    fingerprint: dict[str, Any],
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Generate ``n_prompts`` completions, then more (same stream) until ``min_kept`` pass.

    ``model`` (slug) and ``condition`` name the teacher for the per-row seeds
    (``seeds.teacher_seeds``). Returns all raw rows and a summary. Raises ``RuntimeError``
    if ``max_prompts`` is reached with fewer than ``min_kept`` passing rows.
    """
    chunks = CheckpointDir(chunks_dir, fingerprint)

    rows: list[dict[str, Any]] = []
    n_kept = 0
    k = 0
    reused = 0
    while True:
        generated = len(rows)
        if generated >= n_prompts and n_kept >= min_kept:
            break
        if generated >= max_prompts:
            raise RuntimeError(
                f"only {n_kept} of {generated} completions passed the filter, fewer than "
                f"generation.min_kept={min_kept}, and generation.max_prompts={max_prompts} "
                "is reached: raise max_prompts or inspect the filter report"
            )
        size = min(chunk_size, max_prompts - generated)
        path = chunks.path(CHUNK_FILE.format(k))
        if path.exists():
            chunk = io.read_jsonl(path)
            if len(chunk) != size or (chunk and chunk[0]["id"] != generated):
                raise io.InputFileError(f"{path}: does not hold prompts {generated}..")
            reused += 1
        else:
            prompts = sample_prompts(protocol, prompt_seed, size, start=generated)
            convs = [make_conversation(p, system_prompt) for p in prompts]
            seeds = teacher_seeds(model, condition, range(generated, generated + size))
            outs = backend.chat(convs, sampling, n=1, seeds=seeds)
            chunk = [
                {
                    "id": generated + i,
                    "prompt": p,
                    "system_prompt": system_prompt,
                    "completion": o[0].text,
                    "finish_reason": o[0].finish_reason,
                }
                for i, (p, o) in enumerate(zip(prompts, outs, strict=True))
            ]
            io.write_jsonl(path, chunk)
            log.info("chunk %d: prompts %d..%d written", k, generated, generated + size - 1)
        kept, _ = filter_numbers(chunk, protocol)
        n_kept += len(kept)
        rows.extend(chunk)
        k += 1
    summary = {
        "n_generated": len(rows),
        "n_requested": n_prompts,
        "n_topped_up": len(rows) - n_prompts,
        "n_chunks": k,
        "n_chunks_reused": reused,
        "n_passing": n_kept,
    }
    return rows, summary


def generate_teacher(
    *,
    backend: Backend,
    model: str,
    condition: str,
    protocol: dict[str, Any],
    generation: dict[str, Any],
    model_id: str,
    revision: str | None,
    chunks_dir: Path,
) -> tuple[dict[str, Any], int]:
    """One condition's teacher data, sampled into its chunks on an engine already started;
    returns its ``generation.json`` record and how many chunks were reused.

    A size's conditions share one engine (``generate_numbers`` is one job per size): a
    condition only changes the system prompt, and an engine start costs minutes. The record
    is the same whenever the rows are (their hash, ``rows_sha256``, and no count of reused
    chunks), so Snakemake's checksum of this small file tells its dependants that a condition
    re-assembled from its chunks did not change (``assemble_numbers`` writes ``raw.jsonl``)."""
    system_prompt = teacher_system_prompt(protocol, condition)
    sampling = Sampling.from_config(generation["sampling"])
    prompt_seed = protocol["prompt_generator"]["seed"]
    fingerprint = generation_fingerprint(
        model_id=model_id,
        revision=revision,
        backend=backend.name,
        sampling=sampling,
        system_prompt=system_prompt,
        prompt_seed=prompt_seed,
        chunk_size=generation["topup_batch"],
        batch_size=generation["batch_size"],
    )
    rows, summary = generate_numbers(
        backend=backend,
        model=model,
        condition=condition,
        protocol=protocol,
        system_prompt=system_prompt,
        sampling=sampling,
        n_prompts=generation["n_prompts"],
        min_kept=generation["min_kept"],
        chunk_size=generation["topup_batch"],
        max_prompts=generation["max_prompts"],
        prompt_seed=prompt_seed,
        chunks_dir=Path(chunks_dir),
        fingerprint=fingerprint,
    )
    reused = summary.pop("n_chunks_reused")
    meta = {
        **fingerprint,
        "model_slug": model,
        "condition": condition,
        "first_rendered_chat": backend.render(make_conversation(rows[0]["prompt"], system_prompt)),
        **summary,
        "rows_sha256": io.sha256_jsonl(rows),
    }
    return meta, reused


def assemble_numbers(chunks_dir: str | Path, meta: dict[str, Any]) -> list[dict[str, Any]]:
    """A condition's raw rows from its chunks, checked against its ``generation.json``: the
    chunks ``generate_teacher`` counted, in order, hashing to its ``rows_sha256``."""
    root = Path(chunks_dir)
    rows: list[dict[str, Any]] = []
    for k in range(meta["n_chunks"]):
        rows.extend(io.read_jsonl(root / CHUNK_FILE.format(k)))
    if len(rows) != meta["n_generated"] or io.sha256_jsonl(rows) != meta["rows_sha256"]:
        raise io.InputFileError(
            f"{root}: its chunks are not the rows generation.json describes (rows_sha256): "
            "delete the condition's numbers folder and run its generation again"
        )
    return rows


def filter_numbers(
    raw_rows: list[dict[str, Any]], protocol: dict[str, Any]
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Apply the reference filter plus the truncation rule to raw rows."""
    filt = protocol["filter"]
    return filter_completions(
        raw_rows,
        min_value=filt["min_value"],
        max_value=filt["max_value"],
        max_count=filt["max_count"],
    )


def write_filtered(
    *,
    raw_path: str | Path,
    protocol: dict[str, Any],
    generation_meta: dict[str, Any],
    filtered_path: str | Path,
    report_path: str | Path,
    meta_path: str | Path,
) -> dict[str, Any]:
    """Filter a teacher's raw rows and write the kept rows, the filter report and the numbers
    metadata: the generation's, plus counts and the sha256 of both row files (what
    ``upload_numbers`` checks before it publishes). Returns the report."""
    raw = io.read_jsonl(raw_path)
    kept, report = filter_numbers(raw, protocol)
    io.write_jsonl(filtered_path, kept)
    io.write_json(report_path, report)
    meta = {
        **generation_meta,
        "n_raw": len(raw),
        "n_filtered": len(kept),
        "pass_rate": report["pass_rate"],
        "sha256": {
            Path(raw_path).name: io.sha256_file(raw_path),
            Path(filtered_path).name: io.sha256_file(filtered_path),
        },
    }
    io.write_json(meta_path, meta)
    return report
