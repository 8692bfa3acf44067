"""Per-request sampling seeds, derived from what each request is.

Why: vLLM gives every seeded request its own generator seeded with ``SamplingParams.seed``.
One seed shared by all requests of a call makes them share one noise stream: 512 different
number prompts gave 48 distinct completions on an H200 (dummy weights), and peaked real
distributions are coupled the same way. So each request gets its own seed:

* a teacher row: (model, condition, prompt index);
* an eval question: (model, condition, student seed, epoch, question index); the base
  model's control eval uses condition ``"control"`` and no seed or epoch.

Layout of a seed (63 bits, a signed 64-bit int as torch generators and vLLM's msgpack
transport take it), from high to low bits:

* a 35-bit *stream prefix*: BLAKE2b of the job's identity, (model, condition) for a
  teacher, (model, condition, seed, epoch) for an eval;
* a 20-bit request index: the prompt index (teacher) or question index (eval);
* 8 zero bits: for ``n > 1`` vLLM seeds the j-th sample with ``seed + j``, and j < 256.

So two requests of one job never share a seed or a sample's seed, by construction; two jobs
do not as long as their prefixes differ, which ``check_distinct`` verifies for the whole
configured sweep when the workflow is parsed (``Sweep``), before any job runs. A resumed run
derives the same seeds as an uninterrupted one: nothing depends on batching, chunk
boundaries or call order. ``SEED_SCHEME`` names this scheme in the generation and eval
fingerprints, so chunks and answers sampled under another scheme are never reused.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

SEED_SCHEME = "per-request-v1 (35-bit job prefix, 20-bit index, 8-bit sample)"
CHILD_BITS = 8
INDEX_BITS = 20
PREFIX_BITS = 63 - INDEX_BITS - CHILD_BITS
MAX_SAMPLES = 1 << CHILD_BITS  # samples per request (vLLM's n) whose seeds stay disjoint
MAX_INDEX = 1 << INDEX_BITS  # prompts per teacher job, questions per eval
_SEP = "\x1f"  # unit separator: no identity part contains it

Identity = tuple[Any, ...]


def _digest(identity: Iterable[Any], bits: int) -> int:
    text = _SEP.join("" if part is None else str(part) for part in identity)
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> (64 - bits)


def teacher_stream(model: str, condition: str) -> Identity:
    """The identity of a teacher job's seed stream."""
    return ("teacher", model, condition)


def eval_stream(model: str, condition: str, seed: int | None, epoch: int | None) -> Identity:
    """The identity of one eval's seed stream (a student's epoch, or a base model's control)."""
    return ("eval", model, condition, seed, epoch)


def stream_prefix(identity: Identity) -> int:
    """The 35-bit prefix of every seed of a stream."""
    return _digest(identity, PREFIX_BITS)


def request_seeds(identity: Identity, indices: Iterable[int]) -> list[int]:
    """The seeds of requests ``indices`` of a stream."""
    high = stream_prefix(identity) << (INDEX_BITS + CHILD_BITS)
    out = []
    for i in indices:
        if not 0 <= i < MAX_INDEX:
            raise ValueError(f"request index {i} is outside 0..{MAX_INDEX - 1}")
        out.append(high | (i << CHILD_BITS))
    return out


def teacher_seeds(model: str, condition: str, prompt_indices: Iterable[int]) -> list[int]:
    """One seed per teacher row of (``model``, ``condition``), by prompt index."""
    return request_seeds(teacher_stream(model, condition), prompt_indices)


def eval_seeds(
    model: str,
    condition: str,
    seed: int | None,
    epoch: int | None,
    question_indices: Iterable[int],
) -> list[int]:
    """One seed per eval question of (``model``, ``condition``, student ``seed``, ``epoch``).

    The control eval of a base model passes condition ``"control"`` and ``None`` for seed and
    epoch. Each question's ``n`` samples use ``seed + j`` inside vLLM (see module docstring).
    """
    return request_seeds(eval_stream(model, condition, seed, epoch), question_indices)


def sweep_streams(
    models: Sequence[str],
    conditions: Sequence[str],
    seeds: Sequence[int],
    epochs: Sequence[int],
    control: str,
) -> list[Identity]:
    """Every seed stream a sweep draws: teachers, every student eval, every control eval."""
    out: list[Identity] = []
    for m in models:
        out.append(eval_stream(m, control, None, None))
        for c in conditions:
            out.append(teacher_stream(m, c))
            out += [eval_stream(m, c, s, e) for s in seeds for e in epochs]
    return out


def check_distinct(streams: Iterable[Identity]) -> Mapping[int, Identity]:
    """Raise ``ValueError`` naming two streams whose prefixes collide (their seeds would
    repeat); returns prefix -> stream."""
    seen: dict[int, Identity] = {}
    for s in streams:
        p = stream_prefix(s)
        if p in seen and seen[p] != s:
            raise ValueError(
                f"seed streams {seen[p]} and {s} share the prefix {p:#x}: their requests would "
                "share random streams (rename a condition or model slug)"
            )
        seen[p] = s
    return seen


def check_samples(n: int) -> None:
    """Refuse more samples per request than the seed layout keeps disjoint."""
    if not 1 <= n <= MAX_SAMPLES:
        raise ValueError(
            f"{n} samples per request: must be 1..{MAX_SAMPLES}, so that vLLM's per-sample "
            "seeds (seed + j) of different requests never overlap"
        )


def batch_seed(seeds: Sequence[int]) -> int:
    """One seed for a backend that draws a whole batch from one generator (transformers),
    derived from all of the batch's request seeds."""
    return _digest(("batch", *seeds), 63)
