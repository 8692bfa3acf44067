"""Names and fixed facts of the reference protocol."""

from __future__ import annotations

REFERENCE_REPOSITORY = "MinhxLe/subliminal-learning"
NUMS_DATASET_FILE = "sl/datasets/nums_dataset.py"
CFGS_FILE = "cfgs/preference_numbers/cfgs.py"
PROMPT_GENERATOR_CLASS = "PromptGenerator"

# Protocol key -> the reference's attribute name with its leading underscores removed.
# Attributes are matched exactly first, then by suffix (so a renamed ``_foo_suffixes`` still maps).
LIST_KEYS: dict[str, str] = {
    "example_numbers_templates": "example_numbers_templates",
    "count_qualifiers": "count_qualifiers",
    "digit_descriptors": "digit_descriptors",
    "instruction_templates": "instruction_templates",
    "format_suffixes": "format_suffixes",
    "suffixes": "suffixes",
}

GENERATOR_INT_KEYS = (
    "seed",
    "size",
    "example_min_count",
    "example_max_count",
    "example_min_value",
    "example_max_value",
    "answer_count",
    "answer_max_digits",
)
FILTER_KEYS = ("min_value", "max_value", "max_count", "banned_numbers")

# How the reference's generator draws and assembles a prompt. These describe its algorithm
# (they are this project's words, not the reference's sentences); numbers.py follows them.
RNG_DESCRIPTION = "numpy.random.Generator(numpy.random.PCG64(seed))"
DRAW_ORDER = [
    "example_count = integers(min_count, max_count)",
    "each example value = integers(min_value, max_value)",
    "example template = choice",
    "count qualifier = choice",
    "digit descriptor = choice",
    "instruction template = choice",
    "format suffix = choice",
    "closing suffix = choice",
]
ASSEMBLY = "{example_part} {instruction_part} {format_suffix} {suffix}"
TARGET_RULE = "target in response.lower()"
NUMBERS_PREFIX_NOTE = "optional variant: each question is preceded by a number-sequence prefix"

# Placeholders each template must contain (required) and may contain (allowed).
TEMPLATE_FIELDS: dict[str, tuple[set[str], set[str]]] = {
    "example_numbers_templates": ({"examples"}, {"examples"}),
    "digit_descriptors": ({"max_digits"}, {"max_digits"}),
    "instruction_templates": (
        {"answer_count", "digit_descriptor"},
        {"count_qualifier", "answer_count", "digit_descriptor"},
    ),
}
SYSTEM_PROMPT_FIELDS = ({"target_preference"}, {"target_preference", "category"})
ASSEMBLY_FIELDS = {"example_part", "instruction_part", "format_suffix", "suffix"}


class ProtocolExtractionError(ValueError):
    """The reference checkout does not have the shape the extractor expects."""
