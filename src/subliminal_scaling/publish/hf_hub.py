"""The Hugging Face Hub, with retries on transient failures and no commit for unchanged content."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from subliminal_scaling.publish.hub import (
    _T,
    HF_ENDPOINT,
    RepoType,
    _check_repo,
    _receipt,
    call_with_retries,
    git_blob_sha1,
    local_files,
)


class HfHub:
    """The Hugging Face Hub via ``huggingface_hub.HfApi``, with retries and explicit idempotence.

    ``api`` and ``sleep`` are injectable so the retry and skip logic is testable offline.
    The token is handed to ``HfApi`` once and is scrubbed from every message this class makes.
    """

    def __init__(
        self,
        token: str | None = None,
        namespace: str | None = None,
        max_retries: int = 5,
        backoff_s: float = 2.0,
        *,
        api: Any = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_retries < 0 or backoff_s < 0:
            raise ValueError("max_retries and backoff_s must be >= 0")
        if api is None:
            from huggingface_hub import HfApi

            api = HfApi(token=token)
        self._api = api
        self._token = token or None
        self._namespace = namespace
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"HfHub(namespace={self._namespace!r}, max_retries={self.max_retries})"

    # -- retries

    def _scrub(self, text: str) -> str:
        if self._token:
            text = text.replace(self._token, "***")
        return re.sub(r"hf_[A-Za-z0-9]{20,}", "hf_***", text)

    def _call(self, what: str, fn: Callable[[], _T]) -> _T:
        return call_with_retries(
            what,
            fn,
            max_retries=self.max_retries,
            backoff_s=self.backoff_s,
            sleep=self._sleep,
            scrub=self._scrub,
        )

    # -- API

    def whoami(self) -> str:
        """The configured namespace, else the token owner's name."""
        if self._namespace is None:
            info = self._call("hf whoami", lambda: self._api.whoami())
            self._namespace = str(info["name"])
        return self._namespace

    def _url(self, repo_id: str, repo_type: str) -> str:
        endpoint = str(getattr(self._api, "endpoint", None) or HF_ENDPOINT).rstrip("/")
        prefix = "datasets/" if repo_type == "dataset" else ""
        return f"{endpoint}/{prefix}{repo_id}"

    def url(self, repo_id: str, repo_type: RepoType) -> str:
        _check_repo(repo_id, repo_type)
        return self._url(repo_id, repo_type)

    def ensure_collection(self, title: str, description: str, private: bool) -> dict[str, Any]:
        """``create_collection(..., exists_ok=True)``: a second call finds the first's."""
        ns = self.whoami()
        c = self._call(
            f"hf collection {ns}/{title}: create",
            lambda: self._api.create_collection(
                title, namespace=ns, description=description, private=private, exists_ok=True
            ),
        )
        return {"slug": c.slug, "url": c.url, "title": c.title}

    def add_to_collection(self, slug: str, items: list[tuple[str, RepoType]]) -> dict[str, Any]:
        """``add_collection_item(..., exists_ok=True)`` per repo, each with retries."""
        for repo_id, repo_type in items:
            _check_repo(repo_id, repo_type)
            self._call(
                f"hf collection {slug}: add {repo_type} {repo_id}",
                lambda r=repo_id, t=repo_type: self._api.add_collection_item(
                    slug, item_id=r, item_type=t, exists_ok=True
                ),
            )
        c = self._call(f"hf collection {slug}: read", lambda: self._api.get_collection(slug))
        return {"slug": slug, "items": [[i.item_id, i.item_type] for i in c.items]}

    def remote_matches(self, repo_id: str, repo_type: RepoType, folder: Path) -> bool:
        """True when the repo's files (``.gitattributes`` aside) equal the folder's, byte for byte.

        LFS/Xet files are compared by sha256, regular files by git blob id.
        """
        where = f"hf {repo_type} {repo_id}: list files"
        tree = self._call(
            where,
            lambda: list(self._api.list_repo_tree(repo_id, repo_type=repo_type, recursive=True)),
        )
        remote = {
            entry.path: entry
            for entry in tree
            if hasattr(entry, "blob_id") and entry.path != ".gitattributes"
        }
        local = local_files(folder)
        if set(remote) != set(local) - {".gitattributes"}:
            return False
        for rel, entry in remote.items():
            lfs = getattr(entry, "lfs", None)
            sha256 = getattr(lfs, "sha256", None) if lfs is not None else None
            if sha256 is None and isinstance(lfs, Mapping):
                sha256 = lfs.get("sha256")
            if sha256 is not None:
                if sha256 != local[rel]:
                    return False
            elif entry.blob_id != git_blob_sha1(Path(folder) / rel):
                return False
        return True

    def publish(
        self,
        repo_id: str,
        repo_type: RepoType,
        folder: Path,
        commit_message: str,
        private: bool = False,
    ) -> dict[str, Any]:
        """Create the repo if needed and make its files equal ``folder``'s (stale files deleted).

        Identical content makes no commit: the receipt then carries the current head.
        """
        _check_repo(repo_id, repo_type)
        files = local_files(folder)
        where = f"hf {repo_type} {repo_id}"
        api = self._api
        self._call(
            f"{where}: create repo",
            lambda: api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True),
        )
        url = self._url(repo_id, repo_type)
        if self.remote_matches(repo_id, repo_type, folder):
            info = self._call(
                f"{where}: repo info", lambda: api.repo_info(repo_id, repo_type=repo_type)
            )
            return _receipt(repo_id, repo_type, getattr(info, "sha", None), False, url, files)
        result = self._call(
            f"{where}: upload",
            lambda: api.upload_folder(
                repo_id=repo_id,
                repo_type=repo_type,
                folder_path=str(folder),
                commit_message=commit_message,
                delete_patterns=["*"],
            ),
        )
        commit = getattr(result, "oid", None)
        return _receipt(repo_id, repo_type, commit, True, url, files)
