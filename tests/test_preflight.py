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


def test_gpu_memory_is_checked_against_each_sizes_measured_need(real_config):
    from subliminal_scaling.runtime.preflight import gpu_memory_checks

    real_config["models"][0]["gpu_memory_gb"] = 120.0  # the 32B entry
    real_config["models"][1]["gpu_memory_gb"] = 70.0
    checks = {c.name: c for c in gpu_memory_checks(real_config, [85.0, 150.0])}
    big, mid = (
        checks["gpu memory (qwen-2.5-32b-instruct)"],
        checks["gpu memory (qwen-2.5-14b-instruct)"],
    )
    assert not big.ok and "models[0].gpu_memory_gb" in big.detail and "85.0 GB" in big.detail
    assert mid.ok
    assert all(c.ok for c in gpu_memory_checks(real_config, [150.0]))


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
