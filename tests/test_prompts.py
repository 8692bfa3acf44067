"""Number prompts: the reference generator's stream, reproducible, paired across conditions,
and continued (not restarted) by the top-up."""

from __future__ import annotations

import json
import re

import pytest

from subliminal_scaling.generate.prompts import sample_prompts


@pytest.fixture(scope="module")
def protocol(shared_protocol_path):
    return json.loads(shared_protocol_path.read_text())


def test_same_seed_same_prompts_other_seed_other_prompts(protocol):
    first = sample_prompts(protocol, 42, 300)
    assert sample_prompts(protocol, 42, 300) == first
    assert len(set(first)) > 290  # varied, not one template repeated
    other = sample_prompts(protocol, 43, 300)
    assert other != first and sum(a == b for a, b in zip(first, other, strict=True)) < 5


def test_top_up_continues_the_stream(protocol):
    whole = sample_prompts(protocol, 42, 120)
    assert sample_prompts(protocol, 42, 20, start=100) == whole[100:]


def test_prompts_respect_the_generator_parameters(protocol):
    g = protocol["prompt_generator"]
    for prompt in sample_prompts(protocol, 42, 300):
        examples_text = prompt.split(".")[0]
        values = [int(v) for v in re.findall(r"\b\d+\b", examples_text)]
        # upper bounds are exclusive, as numpy's integers()
        assert g["example_min_count"] <= len(values) < g["example_max_count"]
        assert all(g["example_min_value"] <= v < g["example_max_value"] for v in values)
        assert any(prompt.endswith(s) for s in g["suffixes"])
        assert str(g["answer_count"]) in prompt
