"""What code a benchmark ran: the git commit, whether the files differ from it, and a hash of
the files themselves.

Why: a benchmark runs on a copy of the working tree (the device machine), where the commit
git reports can lag the files (the seventh session's reports named the session's first commit
while running a later one). The source hash identifies the code whatever git says."""

from __future__ import annotations

import hashlib
import re
import subprocess
from pathlib import Path
from typing import Any

#: the files whose content decides what a benchmark measures
SOURCE_GLOBS = ("src/subliminal_scaling/**/*.py", "benchmarks/*.py", "config/*.yaml")


def source_sha256(repo: Path, globs: tuple[str, ...] = SOURCE_GLOBS) -> str:
    """First 16 hex digits of a SHA-256 over the files matching ``globs`` (relative paths and
    contents, in sorted order): equal for equal code, whatever the commit."""
    digest = hashlib.sha256()
    files = sorted({p for g in globs for p in repo.glob(g) if p.is_file()})
    for path in files:
        digest.update(path.relative_to(repo).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16]


def _git(repo: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=repo, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout


def code_provenance(repo: Path) -> dict[str, Any]:
    """``git_head`` (None outside git), ``git_dirty`` (tracked files differ from it, or None),
    and ``source_sha256_16`` (``source_sha256``)."""
    head = (_git(repo, "rev-parse", "HEAD") or "").strip()
    status = _git(repo, "status", "--porcelain", "--untracked-files=no")
    return {
        "git_head": head if re.fullmatch(r"[0-9a-f]{40}", head) else None,
        "git_dirty": None if status is None else bool(status.strip()),
        "source_sha256_16": source_sha256(repo),
    }
