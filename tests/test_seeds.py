"""Per-request seeds: every teacher row and every eval question of the shipped sweep draws its
own random stream, the n samples of a request (vLLM: seed + j) never reach another request's
seeds, and a resumed or re-chunked run derives the same seeds."""

from __future__ import annotations

import itertools
import json

import pytest

from subliminal_scaling.evaluate.evals import EvalSpec, eval_fingerprint
from subliminal_scaling.generate.teacher import generate_numbers, generation_fingerprint
from subliminal_scaling.runtime import seeds as sd
from subliminal_scaling.runtime.backends import Completion, Sampling
from subliminal_scaling.runtime.config import ConfigError, Sweep, validate_config
from subliminal_scaling.runtime.naming import CONTROL

from .conftest import REPO


def _sweep_streams(config):
    sweep = Sweep(config)
    return sd.sweep_streams(sweep.slugs, sweep.conditions, sweep.seeds, sweep.epochs, CONTROL)


def test_every_stream_of_the_real_sweep_is_distinct(real_config):
    streams = _sweep_streams(real_config)
    # 6 sizes x (16 teachers + 16 x 5 x 10 student evals) + 6 controls
    assert len(streams) == 6 * (16 + 16 * 50) + 6 == len(set(streams))
    assert len(sd.check_distinct(streams)) == len(streams)


def test_seeds_within_a_stream_leave_room_for_every_sample():
    seeds = sd.teacher_seeds("qwen-2.5-7b-instruct", "dolphin", range(90_000))
    assert len(set(seeds)) == 90_000
    assert all(s % sd.MAX_SAMPLES == 0 and 0 <= s < 2**63 for s in seeds)
    # vLLM's n samples of a request use seed .. seed + n - 1: never the next request's seed
    assert min(b - a for a, b in itertools.pairwise(seeds)) == sd.MAX_SAMPLES
    evals = sd.eval_seeds("qwen-2.5-7b-instruct", "dolphin", 1, 3, range(50))
    children = {s + j for s in evals for j in range(100)}
    assert len(children) == 50 * 100


def test_epochs_seeds_conditions_and_stages_share_no_seed():
    """The old scheme gave epoch e and e+1 of a student 99 of their 100 sample seeds."""
    m = "qwen-2.5-7b-instruct"
    groups = {
        **{
            ("eval", c, s, e): sd.eval_seeds(m, c, s, e, range(50))
            for c in ("neutral", "dolphin")
            for s in (1, 2)
            for e in (1, 2, 3)
        },
        ("control",): sd.eval_seeds(m, CONTROL, None, None, range(50)),
        ("teacher", "dolphin"): sd.teacher_seeds(m, "dolphin", range(5000)),
        ("teacher", "neutral"): sd.teacher_seeds(m, "neutral", range(5000)),
        ("teacher", "other model"): sd.teacher_seeds("qwen-2.5-3b-instruct", "dolphin", range(50)),
    }
    samples = {k: {s + j for s in v for j in range(100)} for k, v in groups.items()}
    keys = list(samples)
    for i, a in enumerate(keys):
        for b in keys[i + 1 :]:
            assert not samples[a] & samples[b], (a, b)


def test_seeds_are_a_function_of_identity_only():
    a = sd.teacher_seeds("m", "cat", [0, 1, 2, 3])
    assert sd.teacher_seeds("m", "cat", [2, 3]) == a[2:]  # no dependence on chunking or order
    assert sd.eval_seeds("m", "cat", 1, 2, [5]) == sd.eval_seeds("m", "cat", 1, 2, range(6))[5:]
    with pytest.raises(ValueError, match="outside"):
        sd.teacher_seeds("m", "cat", [sd.MAX_INDEX])


def test_a_prefix_collision_is_named(monkeypatch):
    monkeypatch.setattr(sd, "stream_prefix", lambda identity: 7)
    with pytest.raises(ValueError, match=r"seed streams .* share the prefix 0x7"):
        sd.check_distinct([sd.teacher_stream("m", "a"), sd.teacher_stream("m", "b")])


def test_the_config_check_runs_the_collision_check(real_config, monkeypatch):
    monkeypatch.setattr(sd, "stream_prefix", lambda identity: 7)
    with pytest.raises(ConfigError, match=r"^config\.models: seed streams"):
        validate_config(real_config)


class RecordingBackend:
    name = "vllm"

    def __init__(self):
        self.seeds: list[int] = []

    def chat(self, conversations, sampling, *, seeds, n=1, adapter=None):
        self.seeds += list(seeds)
        return [[Completion("101, 202, 303", "stop")] for _ in seeds]


def test_teacher_rows_get_their_prompt_seed_whatever_the_chunking(tmp_path):
    protocol = json.loads((REPO / "config" / "toy_protocol.json").read_text())
    sampling = Sampling(1.0, 1.0, None, 1.0, 16)
    got = []
    for chunk in (3, 6):
        backend = RecordingBackend()
        generate_numbers(
            backend=backend, model="toy-s", condition="cat", protocol=protocol,
            system_prompt=None, sampling=sampling, n_prompts=12, min_kept=0, chunk_size=chunk,
            max_prompts=12, prompt_seed=42, chunks_dir=tmp_path / f"c{chunk}",
            fingerprint={"chunk": chunk},
        )  # fmt: skip
        got.append(backend.seeds)
    assert got[0] == got[1] == sd.teacher_seeds("toy-s", "cat", range(12))


def test_fingerprints_name_the_seed_scheme(toy_config):
    """Chunks and eval answers drawn under another scheme are discarded, never reused."""
    gen = generation_fingerprint(
        model_id="m", revision=None, backend="vllm", sampling=Sampling(1.0, 1.0, None, 1.0, 8),
        system_prompt=None, prompt_seed=42, chunk_size=10, batch_size=1,
    )  # fmt: skip
    protocol = json.loads((REPO / "config" / "toy_protocol.json").read_text())
    ev = eval_fingerprint(
        spec=EvalSpec.from_config(protocol, toy_config["evaluation"]), model="m", model_id="m",
        revision=None, condition="cat",
    )  # fmt: skip
    assert gen["seed_scheme"] == ev["seed_scheme"] == sd.SEED_SCHEME
