"""A folder laid out like the Hub, with the same idempotent publishing: the toy world and offline
runs use it."""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from subliminal_scaling.publish.hub import (
    HISTORY_FILE,
    HubError,
    RepoType,
    _check_repo,
    _receipt,
    call_with_retries,
    collection_name,
    content_id,
    local_files,
)
from subliminal_scaling.runtime.io import sha256_file, write_json

# --------------------------------------------------------------------------- LocalHub


def _copy_file(src: Path, dst: Path) -> None:
    """One file copy of a publish (a seam the tests use to fail a publish midway)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)


class LocalHub:
    """A folder laid out like the Hub: ``root/{datasets|models}/{namespace}/{name}/<files>``.

    Each repo keeps its history in ``.commits.jsonl``. A publish stages the new content with
    the extended history in a sibling temp folder and swaps it in with two renames; a crash
    between them is repaired on the next access, so a reader sees the old or the new repo,
    never a mix.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        namespace: str = "local",
        max_retries: int = 5,
        backoff_s: float = 2.0,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._\-]*", namespace):
            raise ValueError(f"invalid namespace {namespace!r}")
        if max_retries < 0 or backoff_s < 0:
            raise ValueError("max_retries and backoff_s must be >= 0")
        self.root = Path(root).resolve()
        self.namespace = namespace
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"LocalHub(root={str(self.root)!r}, namespace={self.namespace!r})"

    def whoami(self) -> str:
        """The configured namespace."""
        return self.namespace

    def repo_dir(self, repo_id: str, repo_type: RepoType) -> Path:
        """Where a repo's files live."""
        _check_repo(repo_id, repo_type)
        namespace, name = repo_id.split("/")
        return self.root / f"{repo_type}s" / namespace / name

    def url(self, repo_id: str, repo_type: RepoType) -> str:
        return self.repo_dir(repo_id, repo_type).as_uri()

    def _collection_path(self, slug: str) -> Path:
        ns, _, name = slug.partition("/")
        if ns != self.namespace or not re.fullmatch(r"[a-z0-9][a-z0-9\-]*", name):
            raise ValueError(f"invalid collection slug {slug!r} for namespace {self.namespace!r}")
        return self.root / "collections" / ns / f"{name}.json"

    def ensure_collection(self, title: str, description: str, private: bool) -> dict[str, Any]:
        """``root/collections/<namespace>/<name>.json`` (title, description, items); a second
        call finds the first's and changes nothing."""
        slug = f"{self.namespace}/{collection_name(title)}"
        path = self._collection_path(slug)
        with self._lock(path):
            if not path.is_file():
                data = {"title": title, "description": description, "private": private,
                        "items": []}  # fmt: skip
                write_json(path, data)
        return {"slug": slug, "url": path.as_uri(), "title": title}

    def add_to_collection(self, slug: str, items: list[tuple[str, RepoType]]) -> dict[str, Any]:
        path = self._collection_path(slug)
        with self._lock(path):
            if not path.is_file():
                raise HubError(f"local collection {slug}: not found (ensure_collection first)")
            data = json.loads(path.read_text(encoding="utf-8"))
            have = [tuple(i) for i in data["items"]]
            for repo_id, repo_type in items:
                _check_repo(repo_id, repo_type)
                if (repo_id, repo_type) not in have:
                    have.append((repo_id, repo_type))
            if [list(i) for i in have] != data["items"]:
                data["items"] = [list(i) for i in have]
                write_json(path, data)
        return {"slug": slug, "items": data["items"]}

    def history(self, repo_id: str, repo_type: RepoType) -> list[dict[str, Any]]:
        """The repo's commits, oldest first (empty for a repo never published)."""
        repo = self.repo_dir(repo_id, repo_type)
        self._recover(repo)
        return _read_history(repo / HISTORY_FILE)

    def current_files(self, repo_id: str, repo_type: RepoType) -> dict[str, str]:
        """``{relpath: sha256}`` of the repo's files now (the history file excluded)."""
        repo = self.repo_dir(repo_id, repo_type)
        self._recover(repo)
        return _repo_files(repo)

    def publish(
        self,
        repo_id: str,
        repo_type: RepoType,
        folder: Path,
        commit_message: str,
        private: bool = False,
    ) -> dict[str, Any]:
        """Replace the repo's files with ``folder``'s; no commit if they are already equal.

        Returns ``{repo_id, repo_type, commit, changed, url, files}``. ``private`` is recorded
        in the commit entry only (a local folder has no visibility). Failures go through the
        same retries as ``HfHub``'s (``call_with_retries``): a failed attempt leaves the repo
        as it was, so the next one starts clean.
        """
        repo = self.repo_dir(repo_id, repo_type)
        files = local_files(folder)
        if HISTORY_FILE in files:
            raise ValueError(f"{folder}: may not contain {HISTORY_FILE} (the local history file)")
        return call_with_retries(
            f"local {repo_type} {repo_id}: publish",
            lambda: self._publish_once(
                repo_id, repo_type, repo, Path(folder), files, commit_message, private
            ),
            max_retries=self.max_retries,
            backoff_s=self.backoff_s,
            sleep=self._sleep,
        )

    def _publish_once(
        self,
        repo_id: str,
        repo_type: RepoType,
        repo: Path,
        folder: Path,
        files: dict[str, str],
        commit_message: str,
        private: bool,
    ) -> dict[str, Any]:
        with self._lock(repo):
            self._recover(repo)
            history = _read_history(repo / HISTORY_FILE)
            if history and _repo_files(repo) == files:
                return _receipt(repo_id, repo_type, history[-1]["id"], False, repo.as_uri(), files)
            entry = {
                "id": content_id(files),
                "message": commit_message,
                "time": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                "private": bool(private),
                "parent": history[-1]["id"] if history else None,
                "files": files,
            }
            self._swap_in(repo, Path(folder), files, [*history, entry])
        return _receipt(repo_id, repo_type, entry["id"], True, repo.as_uri(), files)

    # -- internals

    @staticmethod
    def _backup(repo: Path) -> Path:
        return repo.with_name(f".{repo.name}.old")

    def _recover(self, repo: Path) -> None:
        """Finish or undo a swap that a crash interrupted."""
        backup = self._backup(repo)
        if backup.exists():
            if repo.exists():
                shutil.rmtree(backup)
            else:
                os.replace(backup, repo)

    @contextlib.contextmanager
    def _lock(self, repo: Path) -> Iterator[None]:
        repo.parent.mkdir(parents=True, exist_ok=True)
        lock_path = repo.with_name(f".{repo.name}.lock")
        with open(lock_path, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _swap_in(
        self, repo: Path, folder: Path, files: Mapping[str, str], history: list[dict[str, Any]]
    ) -> None:
        stage = Path(tempfile.mkdtemp(prefix=f".{repo.name}.", suffix=".stage", dir=repo.parent))
        try:
            for rel in files:
                _copy_file(folder / rel, stage / rel)
            staged = _repo_files(stage)
            if staged != dict(files):
                raise HubError(f"local publish {repo.name}: folder changed while it was copied")
            text = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in history)
            (stage / HISTORY_FILE).write_text(text, encoding="utf-8")
            backup = self._backup(repo)
            if repo.exists():
                os.replace(repo, backup)
            os.replace(stage, repo)
            if backup.exists():
                shutil.rmtree(backup)
        finally:
            if stage.exists():
                shutil.rmtree(stage)


def _read_history(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _repo_files(repo: Path) -> dict[str, str]:
    if not repo.is_dir():
        return {}
    out = {}
    for path in sorted(repo.rglob("*")):
        rel = path.relative_to(repo).as_posix()
        if path.is_file() and rel != HISTORY_FILE:
            out[rel] = sha256_file(path)
    return out
