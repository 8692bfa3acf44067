"""Shared test fixtures: paths to the repo, its configs and the shared reference data."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from subliminal_scaling.runtime.specs import StudentSpec

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "reference-data"
# The real sweep's model slugs, largest first.
SIZES = [
    "qwen-2.5-32b-instruct",
    "qwen-2.5-14b-instruct",
    "qwen-2.5-7b-instruct",
    "qwen-2.5-3b-instruct",
    "qwen-2.5-1.5b-instruct",
    "qwen-2.5-0.5b-instruct",
]


@pytest.fixture
def real_config() -> dict:
    return copy.deepcopy(yaml.safe_load((REPO / "config" / "config.yaml").read_text()))


@pytest.fixture
def toy_config() -> dict:
    return copy.deepcopy(yaml.safe_load((REPO / "config" / "toy.yaml").read_text()))


@pytest.fixture(scope="session")
def shared_protocol_path() -> Path:
    path = SHARED / "protocol.json"
    if not path.is_file():
        pytest.skip("../shared/reference-data/protocol.json is not present")
    return path


def student_spec(training: dict, source: str = "unused", model: str = "test-model") -> StudentSpec:
    """A student spec for tests that build a trainer from a hand-written ``training``."""
    return StudentSpec(
        model=model, model_id=f"test/{model}", revision=None, source=source, params=1.0,
        training=dict(training),
    )  # fmt: skip
