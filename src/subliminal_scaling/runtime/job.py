"""Route a rule script's logging, warnings and traceback to the rule's ``log:`` file."""

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


def setup_logging(
    log_file: str | None, name: str, threads: int = 1, level: int = logging.INFO
) -> logging.Logger:
    """Send the root logger and uncaught exceptions to ``log_file`` (and stderr).

    Also loads ``.env`` so secrets come from there or the environment, never from config,
    and limits CPU threads to the job's ``threads``.
    """
    from dotenv import load_dotenv

    limit_threads(threads)
    load_dotenv(override=False)
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


def configure_logging(snakemake: Any, level: int = logging.INFO) -> logging.Logger:
    """``setup_logging`` for a rule script: its ``log:`` file, rule name and threads.

    A job that asks for ``resources: gpu=N`` also claims N GPUs of this host here, before any
    CUDA use, and pins itself to them (``CUDA_VISIBLE_DEVICES``, logged): Snakemake counts
    GPUs but never says which one a job gets. See ``subliminal_scaling.runtime.gpu_pool``.
    """
    from subliminal_scaling.runtime.gpu_pool import claim_for_job

    log = getattr(snakemake, "log", None)
    logger = setup_logging(
        str(log[0]) if log else None,
        getattr(snakemake, "rule", "workflow"),
        int(getattr(snakemake, "threads", 1) or 1),
        level,
    )
    claim_for_job(snakemake, logger)
    return logger
