"""Atomic, checked file I/O.

Every output of the workflow goes through these helpers so that a job killed mid-write
never leaves a file that looks complete, and a corrupt input fails with the file's name.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


class InputFileError(ValueError):
    """An input file is missing, truncated or malformed. The message names the file."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _tmp_sibling(path: Path, suffix: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix + ".tmp", dir=path.parent)
    os.close(fd)
    return Path(name)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only on success."""
    path = Path(path)
    tmp = _tmp_sibling(path)
    try:
        yield tmp
        if tmp.exists():  # mkstemp makes files private; give them the usual mode
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary directory; it replaces ``path`` only when the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write JSON atomically; ``.gz`` paths are gzip-compressed (deterministically, mtime 0)."""
    path = Path(path)
    data = (json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n").encode()
    with atomic_path(path) as tmp:
        if path.suffix == ".gz":
            with (
                open(tmp, "wb") as raw,
                gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as gz,
            ):
                gz.write(data)
        else:
            tmp.write_bytes(data)


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read JSON (gzip if ``.gz``); a missing or malformed file raises ``InputFileError``."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: file not found")
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rt", encoding="utf-8") as fh:
                return json.load(fh)
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, EOFError, OSError) as exc:
        raise InputFileError(f"{path}: not valid JSON ({exc})") from exc


def jsonl_line(row: dict[str, Any]) -> str:
    """One row as ``write_jsonl`` writes it."""
    return json.dumps(row, ensure_ascii=False) + "\n"


def write_jsonl(path: str | os.PathLike[str], rows: Iterable[dict[str, Any]]) -> int:
    """Write rows as JSON lines atomically and return how many were written."""
    n = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(jsonl_line(row))
            n += 1
    return n


def sha256_jsonl(rows: Iterable[dict[str, Any]]) -> str:
    """Hex sha256 of the file ``write_jsonl`` would write for ``rows`` (its ``sha256_file``)."""
    h = hashlib.sha256()
    for row in rows:
        h.update(jsonl_line(row).encode("utf-8"))
    return h.hexdigest()


def read_jsonl(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read JSON lines. A line cut mid-record (or a missing final newline) is an error."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: file not found")
    text = path.read_text(encoding="utf-8")
    if text and not text.endswith("\n"):
        raise InputFileError(f"{path}: truncated (last line has no newline)")
    rows = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputFileError(f"{path}:{lineno}: malformed JSON line ({exc})") from exc
        if not isinstance(row, dict):
            raise InputFileError(f"{path}:{lineno}: expected a JSON object")
        rows.append(row)
    return rows


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_dir(path: str | os.PathLike[str]) -> str:
    """Hash of a directory's files (names and contents), independent of mtimes."""
    root = Path(path)
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(root)).encode() + b"\0" + sha256_file(f).encode())
    return h.hexdigest()


@contextlib.contextmanager
def scratch_dir(parent: str | os.PathLike[str], name: str) -> Iterator[Path]:
    """A temporary folder inside ``parent`` (on the results disk, not /tmp), removed after.

    Publishing stages a repo here with hard links, so a 32B condition's ~15 GB of adapters
    costs no extra disk, and no small /tmp fills up on a pod.
    """
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".stage", dir=parent))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def link_or_copy(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    """Hard-link ``src`` to ``dst`` (same filesystem), else copy it; parents are created."""
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def link_tree(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    """``link_or_copy`` every file under ``src`` to the same place under ``dst``."""
    src = Path(src)
    for f in sorted(p for p in src.rglob("*") if p.is_file()):
        link_or_copy(f, Path(dst) / f.relative_to(src))
