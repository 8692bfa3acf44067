"""Start-up of a rule script's process: threads, secrets, logging to its ``log:``, its GPUs."""

from __future__ import annotations

import logging
import os
import sys
from types import TracebackType
from typing import Any


def limit_threads(threads: int) -> None:
    """Use the job's thread count for CPU math (Snakemake only exports it to shell rules).

    Two jobs on two cores that each spin two torch threads made tiny models ~50x slower.
    An ``OMP_NUM_THREADS`` the user set wins.
    """
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, threads)))
    os.environ.setdefault("MKL_NUM_THREADS", os.environ["OMP_NUM_THREADS"])
    if "torch" in sys.modules:  # imported already: its pool size was fixed at import
        sys.modules["torch"].set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def load_secrets() -> None:
    """Secrets (HF_TOKEN, WANDB_API_KEY) come from ``.env`` or the environment, never from
    config; what the environment already has wins."""
    from dotenv import load_dotenv

    load_dotenv(override=False)


def setup_logging(log_file: str | None, name: str, level: int = logging.INFO) -> logging.Logger:
    """Send the root logger, warnings and uncaught exceptions to ``log_file`` (and stderr)."""
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        handlers.append(logging.FileHandler(log_file, mode="a", encoding="utf-8"))
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        force=True,
    )
    logging.captureWarnings(True)
    logger = logging.getLogger(name)

    def hook(tp: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        logger.error("%s: %s", tp.__name__, value, exc_info=(tp, value, tb))

    sys.excepthook = hook
    return logger


def start_job(
    snakemake: Any, *, claim_gpus: bool = True, level: int = logging.INFO
) -> logging.Logger:
    """Everything a rule script does first, in this order: limit CPU threads to the job's
    ``threads``, load secrets, route logging to the rule's ``log:`` file, and (``claim_gpus``)
    claim the ``resources: gpu`` GPUs of this host and pin to them (``CUDA_VISIBLE_DEVICES``,
    logged) before any CUDA use: Snakemake counts GPUs but never says which one a job gets
    (``runtime.gpu_pool``). Returns the rule's logger.
    """
    from subliminal_scaling.runtime.gpu_pool import claim_for_job

    limit_threads(int(getattr(snakemake, "threads", 1) or 1))
    load_secrets()
    log = getattr(snakemake, "log", None)
    logger = setup_logging(
        str(log[0]) if log else None, getattr(snakemake, "rule", "workflow"), level
    )
    if claim_gpus:
        claim_for_job(snakemake, logger)
    return logger
