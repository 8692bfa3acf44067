"""The toy models' committed weights (config/toy_models/): the toy run uses them only when
they were built from exactly its inputs, a rebuild reproduces them (to float rounding: CPUs
with different vector units round differently, so a 1,125-step build is not bit-identical from
one machine to the next), and a changed or damaged copy is never used silently."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml
from safetensors.torch import load_file

from subliminal_scaling.runtime import io
from subliminal_scaling.toy.model import build_key, provide_model, ship_model
from subliminal_scaling.toy.tokenizer import build_tokenizer

from .conftest import REPO

TOY = yaml.safe_load((REPO / "config" / "toy.yaml").read_text())
SHIPPED = REPO / TOY["toy"]["shipped_dir"]
TINY_ARCH = {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
             "num_key_value_heads": 1, "intermediate_size": 32}  # fmt: skip
TINY_TRAIN = {"n_chats": 32, "epochs": 1, "lr": 3e-3, "batch_size": 16, "max_len": 256}


@pytest.fixture(scope="module")
def protocol():
    return json.loads((REPO / "config" / "toy_protocol.json").read_text())


@pytest.fixture(scope="module")
def tokenizer_dir(protocol, tmp_path_factory):
    d = tmp_path_factory.mktemp("shipped") / "tokenizer"
    build_tokenizer(protocol, TOY["toy"]["animals"], d)
    return d


def _slug(model):
    return model["id"].split("/")[-1].lower().replace("qwen2.5", "qwen-2.5")


def test_every_toy_model_is_shipped_for_the_toy_config(protocol, tokenizer_dir):
    for m in TOY["models"]:
        stats = io.read_json(SHIPPED / _slug(m) / "toy_build.json")
        key = build_key(tokenizer_dir, protocol, TOY["toy"]["animals"], m["toy"]["arch"],
                        m["toy"]["train"], TOY["toy"]["build_seed"])  # fmt: skip
        assert stats["build_key"] == key, _slug(m)
        assert stats["n_params"] == m["params"]
        weights = SHIPPED / _slug(m) / "model.safetensors"
        assert io.sha256_file(weights) == stats["weights_sha256"]


@pytest.mark.slow
def test_a_rebuild_reproduces_the_shipped_weights(protocol, tokenizer_dir, tmp_path):
    small = min(TOY["models"], key=lambda m: m["params"])
    out = tmp_path / "rebuilt"
    provide_model(tokenizer_dir, protocol, TOY["toy"]["animals"], small["toy"]["arch"],
                  small["toy"]["train"], TOY["toy"]["build_seed"], out,
                  shipped_dir=SHIPPED / _slug(small), rebuild=True)  # fmt: skip
    rebuilt = io.read_json(out / "toy_build.json")
    shipped = io.read_json(SHIPPED / _slug(small) / "toy_build.json")
    assert rebuilt["source"] == "trained" and rebuilt["build_key"] == shipped["build_key"]
    assert rebuilt["final_loss"] == pytest.approx(shipped["final_loss"], rel=1e-3)
    a = load_file(out / "model.safetensors")
    b = load_file(SHIPPED / _slug(small) / "model.safetensors")
    assert a.keys() == b.keys()
    # Same build: the difference is rounding (0.27% of the norm, measured on a CPU other than
    # the one that shipped them); the 2% bound leaves room for other CPUs.
    diff = sum(float((a[k].float() - b[k].float()).pow(2).sum()) for k in a)
    norm = sum(float(b[k].float().pow(2).sum()) for k in b)
    assert (diff / norm) ** 0.5 < 0.02


def test_shipped_weights_are_used_only_for_their_own_inputs(protocol, tokenizer_dir, tmp_path):
    trained = tmp_path / "trained"
    stats = provide_model(tokenizer_dir, protocol, TOY["toy"]["animals"], TINY_ARCH, TINY_TRAIN, 0,
                          trained, shipped_dir=None)  # fmt: skip
    assert stats["source"] == "trained"
    ship_model(trained, tmp_path / "shipped")
    used = tmp_path / "used"
    args = (tokenizer_dir, protocol, TOY["toy"]["animals"], TINY_ARCH, TINY_TRAIN)
    assert provide_model(*args, 0, used, shipped_dir=tmp_path / "shipped")["source"] == "shipped"
    assert io.sha256_file(used / "model.safetensors") == io.sha256_file(
        trained / "model.safetensors"
    )
    assert (used / "tokenizer.json").is_file()
    with pytest.raises(ValueError, match="was not trained here"):
        ship_model(used, tmp_path / "again")
    # another seed is another model: trained, not copied
    other = provide_model(*args, 1, tmp_path / "seed1", shipped_dir=tmp_path / "shipped")
    assert other["source"] == "trained"
    # a damaged shipped copy is refused, not used
    (tmp_path / "shipped" / "model.safetensors").write_bytes(b"damaged")
    with pytest.raises(ValueError, match="sha256 differs"):
        provide_model(*args, 0, tmp_path / "x", shipped_dir=tmp_path / "shipped")
    shutil.rmtree(tmp_path / "shipped")
