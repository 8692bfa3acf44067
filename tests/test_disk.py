"""The disk plan: exact LoRA sizes from the configured shapes (checked against PEFT and the
released Qwen2.5 configs), and preflight's disk and CUDA checks as one-line failures."""

from __future__ import annotations

import json
import types

import pytest
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from subliminal_scaling.planning import disk
from subliminal_scaling.runtime import preflight
from subliminal_scaling.runtime.config import Sweep

from .conftest import SHARED


def test_lora_params_equal_peft_on_a_real_model():
    from peft import LoraConfig, get_peft_model

    shape = disk.Shape(96, 200, 3, 6, 2)
    model = Qwen2ForCausalLM(
        Qwen2Config(vocab_size=50, hidden_size=96, intermediate_size=200, num_hidden_layers=3,
                    num_attention_heads=6, num_key_value_heads=2)
    )  # fmt: skip
    modules = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    peft = get_peft_model(model, LoraConfig(r=8, lora_alpha=8, target_modules=modules))
    trainable = sum(p.numel() for p in peft.parameters() if p.requires_grad)
    assert disk.lora_params(shape, modules, 8) == trainable
    assert disk.lora_params(shape, ["q_proj"], 4) == 3 * 4 * (96 + 96)


def test_configured_shapes_are_the_released_ones(real_config):
    path = SHARED / "qwen2.5-configs.json"
    if not path.is_file():
        pytest.skip("../shared/reference-data/qwen2.5-configs.json is not present")
    released = json.loads(path.read_text())
    sweep = Sweep(real_config)
    for m in sweep.models:
        label = m.id.split("-")[1]  # Qwen/Qwen2.5-7B-Instruct -> 7B
        cfg = released[label]["config"]
        shape = disk.model_shape(sweep, m.slug)
        assert shape == disk.Shape.from_mapping(cfg), m.id
        assert shape.head_dim == cfg.get(
            "head_dim", cfg["hidden_size"] // cfg["num_attention_heads"]
        )


def test_real_plan_keeps_adapters_not_checkpoints(real_config):
    plan = {s.stage: s for s in disk.disk_plan(real_config, concurrent_students=8)}
    lora = real_config["training"]["lora"]
    n32 = disk.lora_params(disk.Shape(5120, 27648, 64, 40, 8), lora["target_modules"], 8)
    assert n32 == 67_108_864  # 32B: 0.27 GB of fp32 adapter per epoch
    # 480 students x 10 epochs of adapters: about half a terabyte
    assert 450e9 < plan["student adapters"].bytes < 500e9
    # only 2 checkpoints (adapter + Adam) per running student, of the largest size
    assert plan["running checkpoints"].bytes == pytest.approx(2 * 8 * (n32 * 12 + 12e6))
    assert plan["base model weights"].where == "hf_cache"


def test_preflight_disk_names_what_is_needed_and_free(real_config, tmp_path, monkeypatch):
    results, cache = tmp_path / "results", tmp_path / "hf"
    free = types.SimpleNamespace(total=0, used=0, free=int(100e9))
    monkeypatch.setattr(preflight.shutil, "disk_usage", lambda path: free)
    (check,) = preflight.disk_checks(
        real_config, concurrent_students=1, results_dir=results, hf_cache=cache
    )
    assert not check.ok
    assert check.detail.startswith("100.0 GB free at ")
    assert "the rest of the sweep needs 620.6 GB (results and the HF cache" in check.detail
    assert "larger volume" in check.detail and "\n" not in check.detail
    # what is already written counts as written
    (results / "big.bin").write_bytes(b"\0" * 1000)
    free.free = int(700e9)
    assert all(c.ok for c in preflight.disk_checks(
        real_config, concurrent_students=1, results_dir=results, hf_cache=cache))  # fmt: skip


def test_toy_disk_check_passes(toy_config, tmp_path):
    (check,) = preflight.disk_checks(toy_config, concurrent_students=2, results_dir=tmp_path)
    assert check.ok and check.name == "disk (results)"


def _fake_torch(cuda: str | None, init_error: Exception | None = None):
    def init():
        if init_error is not None:
            raise init_error

    return types.SimpleNamespace(
        __version__="2.11.0+cu130",
        version=types.SimpleNamespace(cuda=cuda),
        cuda=types.SimpleNamespace(init=init, get_device_name=lambda: "NVIDIA H200"),
        zeros=lambda *a, **k: None,
    )


def test_cuda_check_names_the_fix():
    cpu = preflight.cuda_check(_fake_torch(None), driver=None)
    assert not cpu.ok and "CPU build" in cpu.detail and "envs/gpu-constraints.txt" in cpu.detail
    old = preflight.cuda_check(
        _fake_torch("13.0", RuntimeError("The NVIDIA driver on your system is too old")),
        driver="550.54.15",
    )
    assert not old.ok and "\n" not in old.detail
    assert "driver 550.54.15 is older than CUDA 13.0 needs (580.65.6+)" in old.detail
    none = preflight.cuda_check(_fake_torch("12.8", RuntimeError("no driver")), driver=None)
    assert "no NVIDIA driver found" in none.detail
    ok = preflight.cuda_check(_fake_torch("13.0"), driver="580.159.04")
    assert ok.ok and "NVIDIA H200" in ok.detail


def test_cuda_check_on_this_machine():
    check = preflight.cuda_check(torch)
    assert check.ok == torch.cuda.is_available()
