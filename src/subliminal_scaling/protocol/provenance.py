"""Where an extracted protocol came from: the reference checkout's commit and licence."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# --------------------------------------------------------------------------- provenance


def _git_commit(reference_dir: Path) -> str | None:
    """HEAD of ``reference_dir`` when it is itself a git checkout (not a folder inside one)."""
    try:
        top = subprocess.run(
            ["git", "-C", str(reference_dir), "rev-parse", "--show-toplevel", "HEAD"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        top = None
    if top is not None and top.returncode == 0:
        lines = top.stdout.split()
        if len(lines) == 2 and Path(lines[0]).resolve() == reference_dir.resolve():
            return lines[1] if re.fullmatch(r"[0-9a-f]{40}", lines[1]) else None
        return None
    return _git_commit_from_files(reference_dir)


def _git_commit_from_files(reference_dir: Path) -> str | None:
    """Read HEAD without git (``.git`` dir or a submodule's ``gitdir:`` file)."""
    dot_git = reference_dir / ".git"
    try:
        if dot_git.is_file():
            text = dot_git.read_text(encoding="utf-8").strip()
            if not text.startswith("gitdir:"):
                return None
            dot_git = (reference_dir / text.split(":", 1)[1].strip()).resolve()
        if not dot_git.is_dir():
            return None
        head = (dot_git / "HEAD").read_text(encoding="utf-8").strip()
        if re.fullmatch(r"[0-9a-f]{40}", head):
            return head
        if not head.startswith("ref:"):
            return None
        ref = head.split(":", 1)[1].strip()
        ref_file = dot_git / ref
        if ref_file.is_file():
            sha = ref_file.read_text(encoding="utf-8").strip()
            return sha if re.fullmatch(r"[0-9a-f]{40}", sha) else None
        packed = dot_git / "packed-refs"
        if packed.is_file():
            for line in packed.read_text(encoding="utf-8").splitlines():
                parts = line.split()
                if len(parts) == 2 and parts[1] == ref and re.fullmatch(r"[0-9a-f]{40}", parts[0]):
                    return parts[0]
    except OSError:
        return None
    return None


def _license(reference_dir: Path, defaults: Mapping[str, Any]) -> str | None:
    for name in ("LICENSE", "LICENSE.md", "LICENSE.txt", "LICENCE", "COPYING"):
        path = reference_dir / name
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            if "MIT License" in text or "Permission is hereby granted, free of charge" in text:
                return "MIT"
            if "Apache License" in text:
                return "Apache-2.0"
    pyproject = reference_dir / "pyproject.toml"
    if pyproject.is_file():
        match = re.search(
            r'^license\s*=\s*(?:\{\s*text\s*=\s*)?"([^"]+)"', pyproject.read_text(), re.M
        )
        if match:
            return match.group(1)
    value = defaults.get("license")
    return str(value) if value else None
