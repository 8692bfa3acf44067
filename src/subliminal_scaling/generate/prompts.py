"""The reference's number-prompt stream, drawn exactly as its generator draws it. The prompt
strings come from the protocol JSON, never from here."""

from __future__ import annotations

from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")


def _prompt_stream(protocol: dict[str, Any], seed: int):
    """Yield prompts forever, drawing from one PCG64 stream exactly as the reference does.

    The draw order (protocol ``prompt_generator.draw_order``) is: example count, each example
    value, example template, count qualifier, digit descriptor, instruction template, format
    suffix, closing suffix. ``integers`` upper bounds are exclusive, as in numpy.
    """
    g = protocol["prompt_generator"]
    rng = np.random.Generator(np.random.PCG64(seed))
    example_templates = list(g["example_numbers_templates"])
    qualifiers = list(g["count_qualifiers"])
    descriptors = list(g["digit_descriptors"])
    instructions = list(g["instruction_templates"])
    format_suffixes = list(g["format_suffixes"])
    suffixes = list(g["suffixes"])
    while True:
        count = rng.integers(g["example_min_count"], g["example_max_count"]).item()
        examples = [
            str(rng.integers(g["example_min_value"], g["example_max_value"]).item())
            for _ in range(count)
        ]
        example_part = str(rng.choice(example_templates)).format(examples=", ".join(examples))
        qualifier = str(rng.choice(qualifiers))
        descriptor = str(rng.choice(descriptors)).format(max_digits=g["answer_max_digits"])
        instruction = str(rng.choice(instructions)).format(
            count_qualifier=qualifier,
            answer_count=g["answer_count"],
            digit_descriptor=descriptor,
        )
        format_suffix = str(rng.choice(format_suffixes))
        suffix = str(rng.choice(suffixes))
        yield g["assembly"].format(
            example_part=example_part,
            instruction_part=instruction,
            format_suffix=format_suffix,
            suffix=suffix,
        )


def sample_prompts(protocol: dict[str, Any], seed: int, count: int, start: int = 0) -> list[str]:
    """Prompts ``start .. start+count-1`` of the reference generator's stream for ``seed``.

    ``start`` lets the top-up continue the same stream (prompt 30,000 onward) so every
    condition and model still sees one paired prompt list.
    """
    if count < 0 or start < 0:
        raise ValueError("count and start must be non-negative")
    stream = _prompt_stream(protocol, seed)
    for _ in range(start):
        next(stream)
    return [next(stream) for _ in range(count)]
