"""Run the workflow's CLI on a private copy of the checkout (so tests never touch results/)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from .conftest import REPO, SHARED

WORKFLOW_PARTS = ["Snakefile", "rules", "workflow", "config", "report", "envs"]
# Where config/config.yaml expects the users' survey (evaluation.survey_path).
SURVEY = "outputs/animal_preferences_raw.json"


def workflow_copy(dest: Path) -> Path:
    """The workflow files copied under ``dest``, with ``src`` linked (the code under test)."""
    dest.mkdir(parents=True, exist_ok=True)
    for part in WORKFLOW_PARTS:
        src = REPO / part
        if src.is_dir():
            shutil.copytree(src, dest / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / part)
    (dest / "src").symlink_to(REPO / "src")
    survey = SHARED / "animal_preferences_raw.json"
    if survey.is_file():  # the users keep their survey there; the real config reads it
        (dest / SURVEY).parent.mkdir(exist_ok=True)
        (dest / SURVEY).symlink_to(survey)
    return dest


def snakemake(
    workdir: Path,
    *args: str,
    timeout: int = 900,
    env: dict | None = None,
    new_session: bool = False,
):
    """``snakemake ARGS`` in ``workdir``; returns the CompletedProcess (stdout+stderr merged).

    ``new_session``: run it in its own process group, so a job may SIGKILL the whole group
    (snakemake and its jobs, as a node crash would) without killing the test.
    """
    full_env = {**os.environ, "WANDB_SILENT": "true", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
        env=full_env,
        start_new_session=new_session,
    )
