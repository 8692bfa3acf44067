"""The Hub interface both transports implement, their shared helpers, and the configured one
(make_hub)."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

from subliminal_scaling.runtime.io import sha256_file

RepoType = Literal["dataset", "model"]
HISTORY_FILE = ".commits.jsonl"
HF_ENDPOINT = "https://huggingface.co"
_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]*/[A-Za-z0-9][A-Za-z0-9._\-]*")
_T = TypeVar("_T")
log = logging.getLogger(__name__)


class HubError(RuntimeError):
    """A publish failed; the one-line message names the repo and the last error (never a token)."""


class Hub(Protocol):
    """Where the workflow publishes: ``HfHub`` (the real Hub) or ``LocalHub`` (a folder)."""

    def whoami(self) -> str:
        """The namespace repos are created under."""
        ...

    def publish(
        self,
        repo_id: str,
        repo_type: RepoType,
        folder: Path,
        commit_message: str,
        private: bool = False,
    ) -> dict[str, Any]:
        """Make the repo's files equal the folder's; return a receipt (see ``LocalHub.publish``)."""
        ...

    def url(self, repo_id: str, repo_type: RepoType) -> str:
        """Where a reader finds the repo (for cards)."""
        ...

    def ensure_collection(self, title: str, description: str, private: bool) -> dict[str, Any]:
        """Create the collection ``title`` in the namespace, or find it: ``{"slug", "url",
        "title"}``. Idempotent."""
        ...

    def add_to_collection(self, slug: str, items: list[tuple[str, RepoType]]) -> dict[str, Any]:
        """Add repos (id, type) to the collection; ones already in it are left as they are.
        Returns ``{"slug", "items"}``, the items as they are now."""
        ...


# --------------------------------------------------------------------------- shared helpers


def collection_name(title: str) -> str:
    """A collection title as a file-safe name (the local hub's collection slug)."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def _check_repo(repo_id: str, repo_type: str) -> None:
    if repo_type not in ("dataset", "model"):
        raise ValueError(f"repo_type must be 'dataset' or 'model', got {repo_type!r}")
    if not _REPO_ID.fullmatch(repo_id) or ".." in repo_id:
        raise ValueError(f"invalid repo id {repo_id!r} (expected 'namespace/name')")


def _is_ignored(rel: str) -> bool:
    """Paths ``upload_folder`` never uploads (``.git`` folders, the HF cache folder)."""
    parts = rel.split("/")
    return ".git" in parts or ".cache/huggingface" in rel


def local_files(folder: str | os.PathLike[str]) -> dict[str, str]:
    """``{posix relpath: sha256}`` of the files a publish of ``folder`` would upload."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: folder to publish not found")
    files = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            rel = path.relative_to(folder).as_posix()
            if not _is_ignored(rel):
                files[rel] = sha256_file(path)
    if not files:
        raise ValueError(f"{folder}: nothing to publish (no files)")
    return files


def content_id(files: Mapping[str, str]) -> str:
    """Content address of a file set: sha256 over the sorted ``relpath\\0sha256`` lines."""
    h = hashlib.sha256()
    for rel in sorted(files):
        h.update(f"{rel}\0{files[rel]}\n".encode())
    return h.hexdigest()


def git_blob_sha1(path: str | os.PathLike[str]) -> str:
    """Git's blob id of a file: what the Hub reports as ``blob_id`` for non-LFS files."""
    size = os.path.getsize(path)
    h = hashlib.sha1(f"blob {size}\0".encode(), usedforsecurity=False)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _receipt(
    repo_id: str, repo_type: str, commit: str | None, changed: bool, url: str, files: dict
) -> dict[str, Any]:
    return {
        "repo_id": repo_id,
        "repo_type": repo_type,
        "commit": commit,
        "changed": changed,
        "url": url,
        "files": dict(sorted(files.items())),
    }


# --------------------------------------------------------------------------- retries


def _status_code(exc: BaseException) -> int | None:
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if status is None:
        status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


_TRANSIENT_NAMES = {
    "TimeoutException",  # httpx / httpx2
    "NetworkError",
    "RemoteProtocolError",
    "Timeout",  # requests
    "ConnectionError",
    "ChunkedEncodingError",
}


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: HTTP 5xx (and 429, the Hub's rate limit), timeouts, dropped connections.

    Other 4xx (bad token, missing repo, forbidden) will fail the same way again, so they are
    never retried. Classes are recognised by name so both httpx- and requests-based
    huggingface_hub versions are covered.
    """
    status = _status_code(exc)
    if status is not None:
        return status >= 500 or status == 429
    if isinstance(exc, TimeoutError | ConnectionError):
        return True
    return any(cls.__name__ in _TRANSIENT_NAMES for cls in type(exc).__mro__)


def call_with_retries(
    what: str,
    fn: Callable[[], _T],
    *,
    max_retries: int,
    backoff_s: float,
    sleep: Callable[[float], None] = time.sleep,
    scrub: Callable[[str], str] = lambda text: text,
) -> _T:
    """Run ``fn``; retry transient failures (``is_transient``) with exponential backoff.

    Each retry is logged as a warning. The final failure, or any non-transient one, raises a
    one-line ``HubError`` that says what failed, after how many attempts, and why; ``scrub``
    removes secrets from every message. Both hub backends publish through this.
    """
    attempts = max_retries + 1
    for attempt in range(attempts):
        try:
            return fn()
        except Exception as exc:
            transient = is_transient(exc)
            detail = " ".join(str(exc).split()) or type(exc).__name__
            status = _status_code(exc)
            kind = f"HTTP {status}" if status is not None else type(exc).__name__
            if transient and attempt < attempts - 1:
                delay = backoff_s * 2**attempt
                log.warning(
                    scrub(
                        f"{what}: {kind}: {detail}; retry {attempt + 1}/{max_retries} "
                        f"in {delay:g} s"
                    )
                )
                sleep(delay)
                continue
            tries = f"after {attempt + 1} attempt(s)" if transient else "(not retried)"
            raise HubError(scrub(f"{what} failed {tries}: {kind}: {detail}")) from None
    raise AssertionError("unreachable")  # pragma: no cover
