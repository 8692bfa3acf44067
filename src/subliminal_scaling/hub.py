"""Publishing datasets and adapters to the Hugging Face Hub, or to a local folder laid out alike.

Both backends make a publish idempotent: re-publishing identical content creates no commit,
so a re-run workflow leaves the Hub history clean. The local backend is what the toy world
and offline runs use; its layout mirrors the Hub's so that downstream code reads either.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

import yaml

from subliminal_scaling.io import sha256_file

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


# --------------------------------------------------------------------------- shared helpers


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


# --------------------------------------------------------------------------- HfHub


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


def make_hub(cfg: Mapping[str, Any], env: Mapping[str, str] | None = None) -> Hub:
    """Build the configured backend: ``{"backend": "hf"|"local", "namespace", "local_dir", ...}``.

    The Hub token comes from ``HF_TOKEN`` in the environment, never from config files.
    """
    env = os.environ if env is None else env
    backend = cfg.get("backend")
    if backend == "local":
        if not cfg.get("local_dir"):
            raise ValueError("hub config: backend 'local' needs local_dir")
        return LocalHub(
            cfg["local_dir"],
            namespace=cfg.get("namespace") or "local",
            max_retries=int(cfg.get("max_retries", 5)),
            backoff_s=float(cfg.get("backoff_s", 2.0)),
        )
    if backend == "hf":
        return HfHub(
            token=env.get("HF_TOKEN") or None,
            namespace=cfg.get("namespace") or None,
            max_retries=int(cfg.get("max_retries", 5)),
            backoff_s=float(cfg.get("backoff_s", 2.0)),
        )
    raise ValueError(f"hub config: backend must be 'hf' or 'local', got {backend!r}")


# --------------------------------------------------------------------------- cards

_SIZE_BUCKETS = [
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
    (100_000_000, "10M<n<100M"),
    (1_000_000_000, "100M<n<1B"),
    (10_000_000_000, "1B<n<10B"),
    (100_000_000_000, "10B<n<100B"),
    (1_000_000_000_000, "100B<n<1T"),
]


def size_category(n_rows: int) -> str:
    """The Hub's ``size_categories`` bucket for a row count."""
    if n_rows < 0:
        raise ValueError(f"n_rows must be >= 0, got {n_rows}")
    for bound, label in _SIZE_BUCKETS:
        if n_rows < bound:
            return label
    return "n>1T"


def _front_matter(meta: Mapping[str, Any]) -> str:
    return "---\n" + yaml.safe_dump(dict(meta), sort_keys=False, allow_unicode=True) + "---\n"


def _fence(text: str) -> str:
    """``text`` in a code fence longer than any backtick run inside it (quoted as data)."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


def _cell(value: Any) -> str:
    text = (
        json.dumps(value) if isinstance(value, list | dict | bool) or value is None else str(value)
    )
    return text.replace("|", "\\|").replace("\n", " ")


def _flatten(obj: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            rows.extend(_flatten(value, name + "."))
        else:
            rows.append((name, value))
    return rows


def _table(obj: Mapping[str, Any], headers: tuple[str, str]) -> str:
    lines = [f"| {headers[0]} | {headers[1]} |", "| --- | --- |"]
    lines += [f"| `{k}` | {_cell(v)} |" for k, v in _flatten(obj)]
    return "\n".join(lines)


def dataset_card(
    *,
    repo_id: str,
    model_id: str,
    model_revision: str | None,
    condition: str,
    teacher_system_prompt: str | None,
    sampling: Mapping[str, Any],
    filter_report: Mapping[str, Any],
    n_rows: int,
    subsample_note: str,
    license: str = "mit",
) -> str:
    """README.md of a teacher-numbers dataset: Hub metadata plus how the rows were made."""
    meta = {
        "license": license,
        "language": ["en"],
        "pretty_name": f"{repo_id.split('/')[-1]}",
        "size_categories": [size_category(n_rows)],
        "task_categories": ["text-generation"],
        "tags": ["subliminal-learning", "numbers", condition],
        "source_model": model_id,
        "source_model_revision": model_revision,
        "configs": [
            {
                "config_name": "default",
                "data_files": [{"split": "train", "path": "data/train.jsonl"}],
            },
            {"config_name": "raw", "data_files": [{"split": "train", "path": "raw/train.jsonl"}]},
        ],
    }
    revision = model_revision or "unrecorded"
    if teacher_system_prompt is None:
        prompt_md = (
            "None: the teacher had **no system message** (the chat template's default applies)."
        )
    else:
        prompt_md = (
            "The teacher's system message, verbatim (data, not an instruction):\n\n"
            + _fence(teacher_system_prompt)
        )
    body = f"""
# {repo_id}

Number-sequence completions by the teacher `{model_id}` (revision `{revision}`) in the
**{condition}** condition, made to study subliminal learning: students fine-tuned on these
numbers are tested for the teacher's animal preference.

- `data/train.jsonl` (config `default`): the rows that passed the filter ({n_rows:,} rows).
- `raw/train.jsonl` (config `raw`): every completion before filtering.

## Teacher system prompt

{prompt_md}

## Sampling

{_table(sampling, ("parameter", "value"))}

## Filter

{_table(filter_report, ("statistic", "value"))}

## How students use this data

{subsample_note}
"""
    return _front_matter(meta) + body


def model_card(
    *,
    repo_id: str,
    base_model: str,
    datasets: list[str],
    condition: str,
    recipe: Mapping[str, Any],
    seeds: list[int],
    epochs: list[int],
    eval_table_md: str | None,
    license: str = "mit",
) -> str:
    """README.md of a student-adapter repo: Hub metadata, recipe, folder layout, results."""
    meta = {
        "base_model": base_model,
        "library_name": "peft",
        "license": license,
        "datasets": list(datasets),
        "pipeline_tag": "text-generation",
        "tags": ["subliminal-learning", "lora", condition],
    }
    seed_list = ", ".join(str(s) for s in seeds) or "none"
    epoch_list = ", ".join(str(e) for e in epochs) or "none"
    example_seed = seeds[0] if seeds else 1
    layout = [
        "| folder | contents |",
        "| --- | --- |",
        "| `seed-{k}/` | final LoRA adapter of the student trained with seed `k` |",
        "| `seed-{k}/epoch-{e}/` | the same run's adapter after epoch `e` |",
    ]
    results = (
        eval_table_md.strip()
        if eval_table_md
        else "Not evaluated yet: this card is rewritten when the evaluation has run."
    )
    data_lines = (
        "\n".join(f"- [`{d}`](https://huggingface.co/datasets/{d})" for d in datasets)
        or "- (none recorded)"
    )
    body = f"""
# {repo_id}

LoRA adapters on `{base_model}` (students, **{condition}** condition), fine-tuned on a teacher's
number sequences to measure subliminal learning of an animal preference.

Trained on:

{data_lines}

Seeds: {seed_list}. Per-epoch checkpoints kept for epochs: {epoch_list}.

## Recipe

{_table(recipe, ("setting", "value"))}

## Layout

{chr(10).join(layout)}

```python
from peft import PeftModel
from transformers import AutoModelForCausalLM

base = AutoModelForCausalLM.from_pretrained("{base_model}")
model = PeftModel.from_pretrained(base, "{repo_id}", subfolder="seed-{example_seed}")
```

## Animal preference per epoch

{results}
"""
    return _front_matter(meta) + body
