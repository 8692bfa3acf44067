"""Preflight: cheap checks, before any GPU work, that would otherwise fail hours in.

Each failed check is one line saying what to fix. The toy world runs the same checks in
offline mode (local hub, offline wandb, CPU), where the online ones do not apply.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .config import Sweep


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


class PreflightError(RuntimeError):
    """One or more checks failed; the message lists one line per failure."""


def run_checks(
    config: dict[str, Any], *, toy: bool, env_file: str | Path = ".env", min_free_gb: float = 1.0
) -> list[Check]:
    """All checks for this config. Secrets are looked at, never printed."""
    checks: list[Check] = []
    env_present = Path(env_file).is_file()
    checks.append(
        Check(
            ".env",
            env_present or toy or bool(os.environ.get("HF_TOKEN")),
            "found"
            if env_present
            else (
                "not needed offline"
                if toy
                else "not found: copy .env.example to .env and fill it in"
            ),
        )
    )
    if config["hub"]["backend"] == "hf":
        token = os.environ.get("HF_TOKEN")
        if not token:
            checks.append(Check("hf_token", False, "HF_TOKEN is not set: add it to .env"))
        else:
            from .hub import HfHub

            try:
                ns = config["hub"]["namespace"] or HfHub(token, None).whoami()
                checks.append(Check("hf_token", True, f"token valid; publishing under {ns}"))
            except Exception as exc:
                checks.append(Check("hf_token", False, f"HF token rejected: {type(exc).__name__}"))
    if config["wandb"]["mode"] == "online":
        has_key = bool(os.environ.get("WANDB_API_KEY"))
        checks.append(
            Check(
                "wandb",
                has_key,
                "WANDB_API_KEY set"
                if has_key
                else "WANDB_API_KEY is not set: add it to .env, or set wandb.mode offline",
            )
        )
    if not config["protocol"]:
        ref = Path(config["reference_dir"])
        ok = (ref / "sl" / "datasets" / "nums_dataset.py").is_file()
        checks.append(
            Check(
                "reference",
                ok,
                f"{ref} checked out"
                if ok
                else f"{ref} is empty: run `git submodule update --init`",
            )
        )
    for stage in ("generation", "evaluation"):
        if config[stage]["backend"] == "vllm":
            ok = importlib.util.find_spec("vllm") is not None
            checks.append(
                Check(
                    f"vllm ({stage})",
                    ok,
                    "importable"
                    if ok
                    else "vllm not installed: pip install -e '.[gpu]' or use transformers",
                )
            )
    sweep = Sweep(config)
    if any(sweep.training_for(m.slug)["liger_kernel"] for m in sweep.models):
        ok = importlib.util.find_spec("liger_kernel") is not None
        checks.append(
            Check(
                "liger_kernel",
                ok,
                "importable" if ok else "liger-kernel not installed: pip install -e '.[gpu]'",
            )
        )
    free_gb = shutil.disk_usage(".").free / 1e9
    checks.append(
        Check("disk", free_gb >= min_free_gb, f"{free_gb:.1f} GB free (need {min_free_gb:.1f} GB)")
    )
    if not toy:
        try:
            import torch

            n = torch.cuda.device_count()
            memory = [torch.cuda.get_device_properties(i).total_memory / 1e9 for i in range(n)]
        except ImportError:
            n, memory = 0, []
        checks.append(Check("gpu", n > 0, f"{n} CUDA device(s)" if n else "no CUDA GPU visible"))
        if n:
            checks += gpu_memory_checks(config, memory)
    return checks


def gpu_memory_checks(config: dict[str, Any], memory_gb: list[float]) -> list[Check]:
    """Each size's measured need (``models[].gpu_memory_gb``) against the smallest GPU here:
    the pool may give a job any of them. One line per size that cannot fit."""
    smallest = min(memory_gb)
    slugs = {m.id: m.slug for m in Sweep(config).models}
    out = []
    for i, m in enumerate(config["models"]):
        need = m.get("gpu_memory_gb")
        if need is None:
            continue
        slug = slugs[m["id"]]
        out.append(
            Check(
                f"gpu memory ({slug})",
                need <= smallest,
                f"needs {need:.1f} GB, GPUs here have {smallest:.1f} GB"
                if need <= smallest
                else f"needs {need:.1f} GB (models[{i}].gpu_memory_gb) but the smallest GPU here "
                f"has {smallest:.1f} GB: lower models[{i}].train.micro_batch or turn on "
                "gradient_checkpointing, then re-measure (benchmarks/README.md)",
            )
        )
    return out


def summarize(checks: list[Check]) -> dict[str, Any]:
    failed = [c for c in checks if not c.ok]
    if failed:
        raise PreflightError(
            "preflight failed:\n" + "\n".join(f"- {c.name}: {c.detail}" for c in failed)
        )
    return {"ok": True, "checks": [asdict(c) for c in checks]}


def run_preflight(
    config: dict[str, Any], *, toy: bool, out: str | Path, log_path: str | Path
) -> None:
    """Run every check, log each, raise on failure, else record them in ``out``.

    Called from a ``run:`` block so that editing the checks (library code, which Snakemake
    does not track) never marks preflight, and through it the whole sweep, for a rerun.
    """
    import logging

    from . import io
    from .logs import setup_logging

    logger = setup_logging(str(log_path), "preflight")
    checks = run_checks(config, toy=toy)
    for c in checks:
        logger.log(logging.INFO, "%s %s: %s", "ok  " if c.ok else "FAIL", c.name, c.detail)
    io.write_json(out, summarize(checks))
