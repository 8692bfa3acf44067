"""Preflight: cheap checks, before any GPU work, that would otherwise fail hours in.

Each failed check is one line saying what to fix. The toy world runs the same checks in
offline mode (local hub, offline wandb, CPU), where the online ones do not apply.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from subliminal_scaling.planning.disk import GB, disk_plan
from subliminal_scaling.runtime.config import Sweep

# The oldest Linux driver each CUDA major release runs on (NVIDIA's CUDA release notes).
MIN_DRIVER = {11: (450, 80, 2), 12: (525, 60, 13), 13: (580, 65, 6)}
GPU_ENV = "pip install -e '.[gpu]' -c envs/gpu-constraints.txt"


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


class PreflightError(RuntimeError):
    """One or more checks failed; the message lists one line per failure."""


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__


def driver_version() -> str | None:
    """The NVIDIA driver's version, from ``nvidia-smi`` (``None`` without one)."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = out.stdout.split()
    return lines[0] if out.returncode == 0 and lines else None


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".") if p.isdigit())


def cuda_check(torch: Any = None, driver: str | None = ...) -> Check:  # type: ignore[assignment]
    """CUDA works through torch: a tensor lands on the GPU. On failure, one line names the
    torch build, the driver and the fix (a CPU torch, or a driver older than the build)."""
    if torch is None:
        import torch
    if driver is ...:
        driver = driver_version()
    built = torch.version.cuda
    if built is None:
        return Check("cuda", False, f"torch {torch.__version__} is a CPU build: {GPU_ENV}")
    need = MIN_DRIVER.get(int(built.split(".")[0]))
    too_old = driver is not None and need is not None and _version_tuple(driver) < need
    try:
        torch.cuda.init()
        torch.zeros(1, device="cuda")
    except Exception as exc:
        if driver is None:
            fix = "no NVIDIA driver found (nvidia-smi): run on a GPU node with the driver loaded"
        elif too_old:
            fix = (
                f"driver {driver} is older than CUDA {built} needs "
                f"({'.'.join(map(str, need))}+): update the driver, or install a torch built "
                "for an older CUDA"
            )
        else:
            fix = f"driver {driver}; check CUDA_VISIBLE_DEVICES and that the GPU is not in use"
        return Check(
            "cuda", False, f"CUDA failed in torch {torch.__version__} (CUDA {built}): {fix} "
            f"[{_one_line(exc)}]",
        )  # fmt: skip
    name = torch.cuda.get_device_name()
    return Check("cuda", True, f"torch {torch.__version__} (CUDA {built}), driver {driver}, {name}")


def _tree_bytes(path: Path) -> int:
    if not path.exists():
        return 0
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def _hf_cache_dir() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _cached_model_bytes(cache: Path, model_id: str) -> int:
    return _tree_bytes(cache / f"models--{model_id.replace('/', '--')}")


def disk_checks(
    config: dict[str, Any],
    *,
    concurrent_students: int,
    results_dir: str | Path = "results",
    hf_cache: str | Path | None = None,
) -> list[Check]:
    """Free disk against what the rest of the sweep will write (``disk.disk_plan``): on the
    results volume, and where the Hugging Face cache keeps the base models (one check if both
    are on one filesystem). What already exists there is counted as written."""
    plan = disk_plan(config, concurrent_students)
    results = Path(results_dir)
    results.mkdir(parents=True, exist_ok=True)
    need = {"results": sum(s.bytes for s in plan if s.where == "results")}
    need["results"] = max(0.0, need["results"] - _tree_bytes(results))
    paths = {"results": results}
    weights = [s for s in plan if s.where == "hf_cache"]
    if weights:
        cache = Path(hf_cache) if hf_cache is not None else _hf_cache_dir()
        cache.mkdir(parents=True, exist_ok=True)
        cached = sum(_cached_model_bytes(cache, m["id"]) for m in config["models"])
        need["hf_cache"] = max(0.0, sum(s.bytes for s in weights) - cached)
        paths["hf_cache"] = cache
        if os.stat(cache).st_dev == os.stat(results).st_dev:
            need = {"results": need["results"] + need.pop("hf_cache")}
    checks = []
    for where, n in need.items():
        free = shutil.disk_usage(paths[where]).free
        what = (
            "results and the HF cache"
            if where == "results" and weights and len(need) == 1
            else where
        )
        detail = (
            f"{free / GB:.1f} GB free at {paths[where]}, the rest of the sweep needs "
            f"{n / GB:.1f} GB ({what}; `python -m subliminal_scaling.planning.estimate --disk` "
            "itemises it)"
        )
        if free < n:
            detail += ": free space or point results/ (or HF_HOME) at a larger volume"
        checks.append(Check(f"disk ({where})", free >= n, detail))
    return checks


def run_checks(config: dict[str, Any], *, toy: bool, env_file: str | Path = ".env") -> list[Check]:
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
            from subliminal_scaling.publish.hf_hub import HfHub

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
    n_gpus = 0
    if not toy:
        cuda = cuda_check()
        checks.append(cuda)
        if cuda.ok:
            import torch

            n_gpus = torch.cuda.device_count()
            props = [torch.cuda.get_device_properties(i) for i in range(n_gpus)]
            memory = [p.total_memory / 1e9 for p in props]
            checks.append(Check("gpu", True, f"{n_gpus} CUDA device(s)"))
            checks += gpu_memory_checks(config, memory, [p.name for p in props])
            checks += lever_checks(config, [(p.major, p.minor) for p in props])
    checks += disk_checks(config, concurrent_students=max(1, n_gpus))
    return checks


def lever_checks(config: dict[str, Any], capabilities: list[tuple[int, int]]) -> list[Check]:
    """The training levers a size uses need what this machine has: torch's FlashAttention
    varlen kernel (``torch_varlen``: torch >= 2.10, a GPU of compute capability 8.0 or newer)
    and Triton for compiled layers; found here rather than in a student's first step."""
    sweep = Sweep(config)
    trainings = {m.slug: sweep.training_for(m.slug) for m in sweep.models}
    varlen = [s for s, t in trainings.items() if t["attn_implementation"] == "torch_varlen"]
    compiled = [s for s, t in trainings.items() if t.get("compile_layers")]
    checks = []
    if varlen:
        missing = []
        if importlib.util.find_spec("torch.nn.attention.varlen") is None:
            missing.append("torch >= 2.10 (torch.nn.attention.varlen)")
        old = [c for c in capabilities if c < (8, 0)]
        if old:
            missing.append(f"a GPU of compute capability 8.0+ (found {old[0][0]}.{old[0][1]})")
        detail = (
            f"attn_implementation torch_varlen needs {' and '.join(missing)}: set "
            f"models[].train.attn_implementation: flex_attention for {', '.join(varlen)}"
            if missing
            else f"torch's varlen FlashAttention for {', '.join(varlen)}"
        )
        checks.append(Check("torch_varlen", not missing, detail))
    if compiled:
        ok = importlib.util.find_spec("triton") is not None
        checks.append(
            Check(
                "compile_layers",
                ok,
                f"triton importable ({', '.join(compiled)})"
                if ok
                else "compile_layers needs triton (a CUDA build of torch ships it): set "
                f"models[].train.compile_layers: false for {', '.join(compiled)}",
            )
        )
    return checks


# Settings files measured per GPU model (matched in torch's device name): what to suggest.
GPU_SETTINGS = {
    "H200": "config/config.yaml (its defaults)",
    "H100": "--configfile config/config.yaml config/h100.yaml",
}


def settings_hint(names: list[str]) -> str:
    """Which measured settings fit the GPUs named, or how to make some."""
    for key, how in GPU_SETTINGS.items():
        if names and all(key in n for n in names):
            return f"for {names[0]} use {how}"
    return (
        "no settings were measured on this GPU: benchmark it (benchmarks/README.md) and write "
        "an override file like config/h100.yaml"
    )


def gpu_memory_checks(
    config: dict[str, Any], memory_gb: list[float], names: list[str] | None = None
) -> list[Check]:
    """Each size's measured need against the smallest GPU here (the pool may give a job any of
    them): ``students_per_gpu`` students x ``models[].gpu_memory_gb``. One line per size; a
    GPU other than the one the settings were measured on (``gpu_profile``) is named, with the
    settings file to use."""
    names = names or []
    smallest = min(memory_gb)
    sweep = Sweep(config)
    slugs = {m.id: m.slug for m in sweep.models}
    profile = config.get("gpu_profile")
    out = []
    if profile and names:
        same = all(n == profile["name"] for n in names)
        out.append(
            Check(
                "gpu profile",
                True,
                f"settings measured on {profile['name']}, as the GPUs here"
                if same
                else f"settings measured on {profile['name']} ({profile['memory_gb']:.1f} GB) but "
                f"this host has {names[0]} ({smallest:.1f} GB): {settings_hint(names)}",
            )
        )
    for i, m in enumerate(config["models"]):
        one = m.get("gpu_memory_gb")
        if one is None:
            continue
        slug = slugs[m["id"]]
        k = sweep.students_per_gpu(slug)
        need = one * k
        what = f"{k} students x {one:.1f} GB" if k > 1 else f"{one:.1f} GB"
        fix = (
            f"{settings_hint(names)}; or lower models[{i}].train.micro_batch / students_per_gpu"
            " or turn on gradient_checkpointing, then re-measure (benchmarks/README.md)"
        )
        out.append(
            Check(
                f"gpu memory ({slug})",
                need <= smallest,
                f"needs {what} per GPU, GPUs here have {smallest:.1f} GB"
                if need <= smallest
                else f"needs {what} per GPU (models[{i}]) but the smallest GPU here has "
                f"{smallest:.1f} GB: {fix}",
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

    from subliminal_scaling.runtime import io
    from subliminal_scaling.runtime.job import load_secrets, setup_logging

    load_secrets()
    logger = setup_logging(str(log_path), "preflight")
    checks = run_checks(config, toy=toy)
    for c in checks:
        logger.log(logging.INFO, "%s %s: %s", "ok  " if c.ok else "FAIL", c.name, c.detail)
    io.write_json(out, summarize(checks))
