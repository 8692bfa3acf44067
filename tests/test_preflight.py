"""Preflight turns each problem into one line that says what to fix, and passes offline."""

from __future__ import annotations

import pytest

from subliminal_scaling.runtime.preflight import PreflightError, run_checks, summarize


def test_toy_world_passes_offline(toy_config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert summarize(run_checks(toy_config, toy=True))["ok"] is True


def test_each_failure_is_one_actionable_line(real_config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no .env, no reference checkout here
    for var in ("HF_TOKEN", "WANDB_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(PreflightError) as err:
        summarize(run_checks(real_config, toy=False))
    lines = str(err.value).splitlines()[1:]
    text = "\n".join(lines)
    assert "- .env: not found: copy .env.example to .env" in text
    assert "- hf_token: HF_TOKEN is not set" in text
    assert "- wandb: WANDB_API_KEY is not set" in text
    assert "git submodule update --init" in text
    assert "pip install -e '.[gpu]'" in text  # vLLM is the configured backend
    assert all(line.startswith("- ") for line in lines)


def test_the_h200_defaults_fit_an_h200_and_an_h100_is_told_its_settings_file(real_config):
    from subliminal_scaling.runtime.preflight import gpu_memory_checks

    h200 = gpu_memory_checks(real_config, [150.1], ["NVIDIA H200"])
    assert all(c.ok for c in h200), [c.detail for c in h200 if not c.ok]
    h100 = {c.name: c for c in gpu_memory_checks(real_config, [85.0], ["NVIDIA H100 80GB HBM3"])}
    big = h100["gpu memory (qwen-2.5-32b-instruct)"]
    assert not big.ok and "131.8 GB per GPU (models[0])" in big.detail and "85.0 GB" in big.detail
    assert "config/h100.yaml" in big.detail and "config/h100.yaml" in h100["gpu profile"].detail
    # a shared GPU must hold all its students: 4 x 11.3 GB of 0.5B
    small = h100["gpu memory (qwen-2.5-0.5b-instruct)"]
    assert small.ok and "4 students x 18.5 GB" in small.detail


def test_the_h100_override_file_fits_an_h100(real_config):
    import yaml

    from subliminal_scaling.runtime.config import validate_config
    from subliminal_scaling.runtime.preflight import gpu_memory_checks

    from .conftest import REPO

    real_config.update(yaml.safe_load((REPO / "config" / "h100.yaml").read_text()))
    validate_config(real_config)
    checks = gpu_memory_checks(real_config, [85.0], ["NVIDIA H100 80GB HBM3"])
    assert all(c.ok for c in checks), [c.detail for c in checks if not c.ok]
    assert "as the GPUs here" in checks[0].detail


#: Sizes whose measured need is known to miss the 10% bar (issue 14 stays open for them):
#: the entry must go, and this test says so, once a re-measured setting meets it.
#: (1.5B's three students reserved 138.1 GB until expandable segments: h200-2026-12-04-s8b-*.)
SHORT_OF_A_TENTH: dict[str, float] = {}


def test_every_default_leaves_a_tenth_of_its_gpu_free(real_config):
    """The issue's bar for the shipped settings: measured need <= 90% of the profiled GPU; a
    size known to miss it still fits the GPU, and each of its students its capped share."""
    from subliminal_scaling.runtime.config import Sweep

    sweep = Sweep(real_config)
    gpu = real_config["gpu_profile"]["memory_gb"]
    for m in sweep.models:
        k = sweep.students_per_gpu(m.slug)
        need = m.raw["gpu_memory_gb"] * k
        if m.slug in SHORT_OF_A_TENTH:
            assert 0.9 * gpu < need <= gpu, (m.slug, need, "meets the bar now: drop the entry")
            assert m.raw["gpu_memory_gb"] <= gpu / k  # limit_to_gpu_share's cap
            assert need == pytest.approx(SHORT_OF_A_TENTH[m.slug], abs=0.1)
        else:
            assert need <= 0.9 * gpu, (m.slug, need, 0.9 * gpu)


def test_liger_is_required_only_when_configured(real_config, tmp_path, monkeypatch):
    import importlib.util

    monkeypatch.chdir(tmp_path)
    real_find = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "liger_kernel" else real_find(n, *a)
    )
    real_config["training"]["liger_kernel"] = False
    for m in real_config["models"]:
        m.get("train", {}).pop("liger_kernel", None)
    assert "liger_kernel" not in {c.name for c in run_checks(real_config, toy=False)}
    real_config["models"][2].setdefault("train", {})["liger_kernel"] = True
    (check,) = [c for c in run_checks(real_config, toy=False) if c.name == "liger_kernel"]
    assert not check.ok and "pip install -e '.[gpu]'" in check.detail


def test_the_levers_are_checked_against_the_gpus_and_torch(real_config, monkeypatch):
    import importlib.util

    from subliminal_scaling.runtime.preflight import lever_checks

    real_find = importlib.util.find_spec
    levers = {"torch.nn.attention.varlen", "triton"}
    have = set(levers)

    def find_spec(name, *a):
        if name in levers:
            return object() if name in have else None
        return real_find(name, *a)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    checks = {c.name: c for c in lever_checks(real_config, [(9, 0)])}  # an H200
    assert checks["torch_varlen"].ok and checks["compile_layers"].ok
    assert "qwen-2.5-32b-instruct" in checks["torch_varlen"].detail
    (old,) = [c for c in lever_checks(real_config, [(9, 0), (7, 5)]) if c.name == "torch_varlen"]
    assert not old.ok and "compute capability 8.0+ (found 7.5)" in old.detail
    have.clear()  # an old torch without the varlen kernel, and no triton
    checks = {c.name: c for c in lever_checks(real_config, [(9, 0)])}
    assert not checks["torch_varlen"].ok and "torch >= 2.10" in checks["torch_varlen"].detail
    assert (
        not checks["compile_layers"].ok
        and "compile_layers: false" in checks["compile_layers"].detail
    )
    for m in real_config["models"]:  # no size uses the levers: nothing to check
        m.get("train", {}).update(attn_implementation="flex_attention", compile_layers=False)
    assert lever_checks(real_config, [(7, 5)]) == []
