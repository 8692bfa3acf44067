"""Resumable jobs: finished pieces of a long job kept in an undeclared folder, reused on a rerun.

Snakemake deletes a failed job's declared outputs, so a job that does many expensive pieces
(teacher chunks, per-epoch evals) also writes each piece, atomically, into a folder that is no
output of it. The folder carries ``fingerprint.json``, the settings every piece depends on: a
rerun with other settings discards the folder whole. A piece may carry its own key too (what
only it depends on, such as its adapter's hash) and is reused only when that key matches.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

from subliminal_scaling.runtime import io

log = logging.getLogger(__name__)

FINGERPRINT_FILE = "fingerprint.json"


class CheckpointDir:
    """A folder of finished pieces, valid for one fingerprint (opening it with another wipes it)."""

    def __init__(self, root: str | os.PathLike[str], fingerprint: dict[str, Any]) -> None:
        self.root = Path(root)
        self.fingerprint = fingerprint
        fp_path = self.root / FINGERPRINT_FILE
        if self.root.exists():
            try:
                same = io.read_json(fp_path) == fingerprint
            except io.InputFileError:
                same = False
            if not same:
                log.warning("settings changed since %s was written: discarding it", self.root)
                shutil.rmtree(self.root)
        self.root.mkdir(parents=True, exist_ok=True)
        io.write_json(fp_path, fingerprint)

    def path(self, name: str) -> Path:
        """Where the piece ``name`` lives (for pieces the caller reads and writes itself)."""
        return self.root / name

    def load(self, name: str, key: dict[str, Any]) -> Any | None:
        """The piece's data if it exists and was saved under ``key``; else ``None``.

        A piece that is unreadable or has another key is deleted, so it is recomputed.
        """
        path = self.path(name)
        if not path.exists():
            return None
        try:
            saved = io.read_json(path)
        except io.InputFileError as exc:
            log.warning("discarding unreadable checkpoint (%s)", exc)
            path.unlink()
            return None
        if not isinstance(saved, dict) or saved.get("key") != key or "data" not in saved:
            log.warning("discarding stale checkpoint %s (its inputs changed)", path)
            path.unlink()
            return None
        return saved["data"]

    def save(self, name: str, data: Any, key: dict[str, Any]) -> Path:
        """Save a finished piece atomically (``.gz`` names are compressed); returns its path."""
        path = self.path(name)
        io.write_json(path, {"key": key, "data": data})
        return path
