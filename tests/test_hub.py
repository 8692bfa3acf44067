"""Publishing: the local Hub-shaped backend, the HF backend's retries and idempotence, cards."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from subliminal_scaling.publish import local_hub as hub_mod
from subliminal_scaling.publish.cards import dataset_card, model_card, size_category
from subliminal_scaling.publish.hf_hub import HfHub
from subliminal_scaling.publish.hub import (
    HISTORY_FILE,
    HubError,
    content_id,
    git_blob_sha1,
    is_transient,
    local_files,
)
from subliminal_scaling.publish.hub_config import make_hub
from subliminal_scaling.publish.local_hub import LocalHub
from subliminal_scaling.runtime.io import sha256_file

TOKEN = "hf_SECRETsecretSECRETsecret1234"


def make_folder(path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (path / rel).parent.mkdir(parents=True, exist_ok=True)
        (path / rel).write_text(text)
    return path


DATA = {"README.md": "# card\n", "data/train.jsonl": '{"a": 1}\n', "raw/train.jsonl": "{}\n"}


# --------------------------------------------------------------------------- LocalHub


def test_local_layout_and_receipt(tmp_path: Path) -> None:
    hub = LocalHub(tmp_path / "hub", namespace="me")
    assert hub.whoami() == "me"
    folder = make_folder(tmp_path / "out", DATA)
    receipt = hub.publish("me/qwen-2.5-7b-instruct-owl-numbers", "dataset", folder, "numbers")
    repo = tmp_path / "hub" / "datasets" / "me" / "qwen-2.5-7b-instruct-owl-numbers"
    assert (repo / "data" / "train.jsonl").read_text() == DATA["data/train.jsonl"]
    assert (repo / "raw" / "train.jsonl").is_file()
    expected_files = {rel: sha256_file(folder / rel) for rel in DATA}
    assert receipt == {
        "repo_id": "me/qwen-2.5-7b-instruct-owl-numbers",
        "repo_type": "dataset",
        "commit": content_id(expected_files),
        "changed": True,
        "url": repo.as_uri(),
        "files": expected_files,
    }
    history = [json.loads(x) for x in (repo / HISTORY_FILE).read_text().splitlines()]
    assert [(h["id"], h["message"], h["parent"]) for h in history] == [
        (receipt["commit"], "numbers", None)
    ]
    assert history[0]["time"]

    model = hub.publish("me/x-owl-ft", "model", make_folder(tmp_path / "m", {"a.bin": "w"}), "m")
    assert (tmp_path / "hub" / "models" / "me" / "x-owl-ft" / "a.bin").is_file()
    assert model["repo_type"] == "model"


def test_local_republish_identical_makes_no_commit(tmp_path: Path) -> None:
    hub = LocalHub(tmp_path / "hub")
    first = hub.publish("local/ds", "dataset", make_folder(tmp_path / "a", DATA), "one")
    again = hub.publish("local/ds", "dataset", make_folder(tmp_path / "b", DATA), "two")
    assert again["changed"] is False
    assert again["commit"] == first["commit"]
    assert again["files"] == first["files"]
    assert len(hub.history("local/ds", "dataset")) == 1


def test_local_changed_content_makes_one_commit(tmp_path: Path) -> None:
    hub = LocalHub(tmp_path / "hub")
    first = hub.publish("local/ds", "dataset", make_folder(tmp_path / "a", DATA), "one")
    changed = {"README.md": "# card v2\n", "data/train.jsonl": '{"a": 2}\n'}
    second = hub.publish("local/ds", "dataset", make_folder(tmp_path / "b", changed), "two")
    assert second["changed"] is True
    assert second["commit"] != first["commit"]
    history = hub.history("local/ds", "dataset")
    assert [h["message"] for h in history] == ["one", "two"]
    assert history[1]["parent"] == first["commit"]
    # The repo's files are exactly the new folder's: the stale raw/ file is gone.
    assert set(hub.current_files("local/ds", "dataset")) == set(changed)
    assert not (hub.repo_dir("local/ds", "dataset") / "raw").exists()


def test_local_publish_failure_midway_keeps_old_content(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = LocalHub(tmp_path / "hub")
    hub.publish("local/ds", "dataset", make_folder(tmp_path / "a", DATA), "one")
    before = hub.current_files("local/ds", "dataset")
    real_copy = hub_mod._copy_file
    calls = {"n": 0}

    def flaky_copy(src: Path, dst: Path) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full (simulated)")
        real_copy(src, dst)

    monkeypatch.setattr(hub_mod, "_copy_file", flaky_copy)
    new = {k: v + "changed\n" for k, v in DATA.items()}
    with pytest.raises(HubError, match=r"local/ds: publish failed \(not retried\).*simulated"):
        hub.publish("local/ds", "dataset", make_folder(tmp_path / "b", new), "two")
    assert hub.current_files("local/ds", "dataset") == before
    assert len(hub.history("local/ds", "dataset")) == 1
    leftovers = [p.name for p in (tmp_path / "hub" / "datasets" / "local").iterdir()]
    assert sorted(leftovers) == [".ds.lock", "ds"]


def test_local_retries_transient_failures_then_publishes_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LocalHub goes through the HfHub retry path: backoff, then one clean commit."""
    sleeps: list[float] = []
    hub = LocalHub(tmp_path / "hub", max_retries=3, backoff_s=0.5, sleep=sleeps.append)
    real_copy = hub_mod._copy_file
    failures = [TimeoutError("write timed out"), FakeHTTPError(503)]

    def flaky_copy(src: Path, dst: Path) -> None:
        if failures:
            raise failures.pop(0)
        real_copy(src, dst)

    monkeypatch.setattr(hub_mod, "_copy_file", flaky_copy)
    receipt = hub.publish("local/ds", "dataset", make_folder(tmp_path / "a", DATA), "one")
    assert receipt["changed"] is True and sleeps == [0.5, 1.0]
    assert len(hub.history("local/ds", "dataset")) == 1
    assert hub.current_files("local/ds", "dataset") == local_files(tmp_path / "a")
    leftovers = [p.name for p in (tmp_path / "hub" / "datasets" / "local").iterdir()]
    assert sorted(leftovers) == [".ds.lock", "ds"]  # no stage folder of a failed attempt


def test_local_persistent_transient_failure_gives_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sleeps: list[float] = []
    hub = LocalHub(tmp_path / "hub", max_retries=2, backoff_s=0.5, sleep=sleeps.append)
    hub.publish("local/ds", "dataset", make_folder(tmp_path / "a", DATA), "one")
    before = hub.current_files("local/ds", "dataset")

    def down(src: Path, dst: Path) -> None:
        raise FakeHTTPError(503, "service unavailable")

    monkeypatch.setattr(hub_mod, "_copy_file", down)
    new = {k: v + "changed\n" for k, v in DATA.items()}
    with pytest.raises(HubError) as info:
        hub.publish("local/ds", "dataset", make_folder(tmp_path / "b", new), "two")
    message = str(info.value)
    assert message == (
        "local dataset local/ds: publish failed after 3 attempt(s): "
        "HTTP 503: 503 error service unavailable"
    )
    assert sleeps == [0.5, 1.0]
    assert hub.current_files("local/ds", "dataset") == before
    assert len(hub.history("local/ds", "dataset")) == 1


def test_local_recovers_from_a_crash_between_the_two_renames(tmp_path: Path) -> None:
    hub = LocalHub(tmp_path / "hub")
    hub.publish("local/ds", "dataset", make_folder(tmp_path / "a", DATA), "one")
    repo = hub.repo_dir("local/ds", "dataset")
    repo.rename(repo.with_name(".ds.old"))  # as if killed right after moving the old repo aside
    assert len(hub.history("local/ds", "dataset")) == 1
    again = hub.publish("local/ds", "dataset", make_folder(tmp_path / "b", DATA), "again")
    assert again["changed"] is False


def test_local_rejects_bad_names_and_empty_folders(tmp_path: Path) -> None:
    hub = LocalHub(tmp_path / "hub")
    folder = make_folder(tmp_path / "a", DATA)
    for bad in ("noslash", "a/b/c", "../x", "ns/..", "ns/"):
        with pytest.raises(ValueError):
            hub.publish(bad, "dataset", folder, "m")
    with pytest.raises(ValueError):
        hub.publish("ns/ok", "space", folder, "m")  # type: ignore[arg-type]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="nothing to publish"):
        hub.publish("ns/ok", "dataset", tmp_path / "empty", "m")


def test_local_files_skips_git_folders(tmp_path: Path) -> None:
    folder = make_folder(tmp_path / "a", {**DATA, ".git/HEAD": "ref", "sub/.git/x": "y"})
    assert set(local_files(folder)) == set(DATA)


# --------------------------------------------------------------------------- HfHub


class FakeHTTPError(Exception):
    def __init__(self, status: int, text: str = "") -> None:
        super().__init__(f"{status} error {text}".strip())
        self.response = SimpleNamespace(status_code=status)


class FakeApi:
    """Just enough of HfApi: a repo whose tree is set by upload_folder."""

    endpoint = "https://hub.example"

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.failures: dict[str, list[BaseException]] = {}
        self.tree: list[Any] = []
        self.head = "0" * 40
        self.uploads: list[dict[str, Any]] = []

    def _step(self, name: str) -> None:
        self.calls.append(name)
        queue = self.failures.get(name)
        if queue:
            raise queue.pop(0)

    def whoami(self) -> dict[str, Any]:
        self._step("whoami")
        return {"name": "alice"}

    def create_repo(self, repo_id: str, *, repo_type: str, private: bool, exist_ok: bool) -> Any:
        self._step("create_repo")
        assert exist_ok is True
        return SimpleNamespace(repo_id=repo_id)

    def list_repo_tree(self, repo_id: str, *, repo_type: str, recursive: bool) -> Any:
        self._step("list_repo_tree")
        assert recursive is True
        yield from self.tree

    def repo_info(self, repo_id: str, *, repo_type: str) -> Any:
        self._step("repo_info")
        return SimpleNamespace(sha=self.head)

    def create_collection(self, title: str, *, namespace: str, description: str,
                          private: bool, exists_ok: bool) -> Any:  # fmt: skip
        """Like the Hub: a second create with the same title and exists_ok finds the first."""
        self._step("create_collection")
        assert exists_ok is True
        colls = self.__dict__.setdefault("collections", {})
        slug = colls.get(title) or f"{namespace}/{title.replace(' ', '-')}-65a1b2c3"
        colls[title] = slug
        self.__dict__.setdefault("items", {}).setdefault(slug, [])
        return SimpleNamespace(slug=slug, title=title, url=f"{self.endpoint}/collections/{slug}")

    def add_collection_item(self, slug: str, *, item_id: str, item_type: str,
                            exists_ok: bool) -> Any:  # fmt: skip
        self._step("add_collection_item")
        assert exists_ok is True and item_type in ("model", "dataset")
        items = self.items[slug]
        if (item_id, item_type) not in items:
            items.append((item_id, item_type))

    def get_collection(self, slug: str) -> Any:
        self._step("get_collection")
        return SimpleNamespace(
            items=[SimpleNamespace(item_id=i, item_type=t) for i, t in self.items[slug]]
        )

    def upload_folder(self, **kwargs: Any) -> Any:
        self._step("upload_folder")
        self.uploads.append(kwargs)
        assert kwargs["delete_patterns"] == ["*"]
        self.tree = remote_tree(Path(kwargs["folder_path"]))
        self.head = f"{len(self.uploads):040x}"
        return SimpleNamespace(oid=self.head, commit_url=f"https://hub.example/c/{self.head}")


def remote_tree(folder: Path, lfs: tuple[str, ...] = ("data/train.jsonl",)) -> list[Any]:
    """What the Hub lists for an uploaded folder: LFS files by sha256, others by git blob id."""
    from huggingface_hub.hf_api import RepoFile, RepoFolder

    entries: list[Any] = [RepoFile(path=".gitattributes", size=10, oid="f" * 40)]
    for rel in local_files(folder):
        path = folder / rel
        info = None
        if rel in lfs:
            info = {"size": path.stat().st_size, "oid": sha256_file(path), "pointerSize": 130}
        entries.append(
            RepoFile(path=rel, size=path.stat().st_size, oid=git_blob_sha1(path), lfs=info)
        )
    entries.append(RepoFolder(path="data", oid="e" * 40))
    return entries


def make_hf(api: FakeApi, sleeps: list[float], **kwargs: Any) -> HfHub:
    return HfHub(
        token=TOKEN,
        namespace=kwargs.pop("namespace", "ns"),
        max_retries=kwargs.pop("max_retries", 3),
        backoff_s=2.0,
        api=api,
        sleep=sleeps.append,
    )


def test_git_blob_sha1_matches_git(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"hello\n")
    assert git_blob_sha1(path) == "ce013625030ba8dba906f756967f9e9ca394464a"


def test_hf_publish_uploads_then_skips_identical_content(tmp_path: Path) -> None:
    api, sleeps = FakeApi(), []
    hub = make_hf(api, sleeps)
    folder = make_folder(tmp_path / "a", DATA)
    first = hub.publish("ns/ds", "dataset", folder, "numbers")
    assert first["changed"] is True and first["commit"] == api.head
    assert first["url"] == "https://hub.example/datasets/ns/ds"
    assert first["files"] == {rel: sha256_file(folder / rel) for rel in DATA}
    assert api.uploads[0]["repo_type"] == "dataset"
    assert api.uploads[0]["commit_message"] == "numbers"

    again = hub.publish("ns/ds", "dataset", make_folder(tmp_path / "b", DATA), "numbers")
    assert again["changed"] is False
    assert again["commit"] == first["commit"]
    assert len(api.uploads) == 1
    assert api.calls[-1] == "repo_info"


@pytest.mark.parametrize(
    "remote_change",
    ["content", "lfs_sha", "extra_remote_file", "missing_remote_file"],
)
def test_hf_publish_uploads_when_remote_differs(tmp_path: Path, remote_change: str) -> None:
    api, sleeps = FakeApi(), []
    folder = make_folder(tmp_path / "a", DATA)
    api.tree = remote_tree(folder)
    if remote_change == "content":
        other = make_folder(tmp_path / "o", {**DATA, "README.md": "# other\n"})
        api.tree = remote_tree(other)
    elif remote_change == "lfs_sha":
        other = make_folder(tmp_path / "o", {**DATA, "data/train.jsonl": '{"a": 9}\n'})
        api.tree = remote_tree(other)
    elif remote_change == "extra_remote_file":
        api.tree = remote_tree(make_folder(tmp_path / "o", {**DATA, "stale.txt": "x"}))
    else:
        api.tree = [e for e in remote_tree(folder) if e.path != "raw/train.jsonl"]
    receipt = make_hf(api, sleeps).publish("ns/ds", "dataset", folder, "m")
    assert receipt["changed"] is True
    assert len(api.uploads) == 1


def test_hf_retries_5xx_then_succeeds(tmp_path: Path) -> None:
    api, sleeps = FakeApi(), []
    api.failures["upload_folder"] = [FakeHTTPError(503), FakeHTTPError(502)]
    receipt = make_hf(api, sleeps).publish("ns/m", "model", make_folder(tmp_path / "a", DATA), "m")
    assert receipt["changed"] is True
    assert api.calls.count("upload_folder") == 3
    assert sleeps == [2.0, 4.0]
    assert receipt["url"] == "https://hub.example/ns/m"


def test_hf_persistent_5xx_gives_a_clear_error(tmp_path: Path) -> None:
    api, sleeps = FakeApi(), []
    api.failures["create_repo"] = [FakeHTTPError(500, "boom")] * 10
    hub = make_hf(api, sleeps, max_retries=3)
    with pytest.raises(HubError) as info:
        hub.publish("ns/ds", "dataset", make_folder(tmp_path / "a", DATA), "m")
    message = str(info.value)
    assert "ns/ds" in message and "HTTP 500" in message and "4 attempt" in message
    assert "\n" not in message
    assert api.calls.count("create_repo") == 4
    assert sleeps == [2.0, 4.0, 8.0]


def test_hf_never_retries_4xx(tmp_path: Path) -> None:
    api, sleeps = FakeApi(), []
    api.failures["create_repo"] = [FakeHTTPError(401, "Invalid credentials")]
    with pytest.raises(HubError, match=r"HTTP 401.*not retried|not retried.*HTTP 401"):
        make_hf(api, sleeps).publish("ns/ds", "dataset", make_folder(tmp_path / "a", DATA), "m")
    assert api.calls == ["create_repo"]
    assert sleeps == []


def test_hf_retries_timeouts_and_connection_errors(tmp_path: Path) -> None:
    api, sleeps = FakeApi(), []
    api.failures["list_repo_tree"] = [TimeoutError("read timed out"), ConnectionError("reset")]
    make_hf(api, sleeps).publish("ns/ds", "dataset", make_folder(tmp_path / "a", DATA), "m")
    assert api.calls.count("list_repo_tree") == 3
    assert sleeps == [2.0, 4.0]


def test_transient_classification_of_real_hub_errors() -> None:
    httpx2 = pytest.importorskip("httpx2")
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    def err(cls: type, status: int) -> BaseException:
        request = httpx2.Request("GET", "https://hub.example")
        return cls(f"{status}", response=httpx2.Response(status, request=request))

    assert is_transient(err(HfHubHTTPError, 503))
    assert is_transient(err(HfHubHTTPError, 429))
    assert not is_transient(err(HfHubHTTPError, 401))
    assert not is_transient(err(RepositoryNotFoundError, 404))
    assert is_transient(httpx2.ConnectTimeout("slow"))
    assert is_transient(httpx2.ConnectError("refused"))
    assert not is_transient(ValueError("bad argument"))


def test_token_never_leaks(tmp_path: Path) -> None:
    api, sleeps = FakeApi(), []
    api.failures["upload_folder"] = [FakeHTTPError(403, f"token {TOKEN} lacks write access")]
    hub = make_hf(api, sleeps)
    assert TOKEN not in repr(hub)
    with pytest.raises(HubError) as info:
        hub.publish("ns/ds", "dataset", make_folder(tmp_path / "a", DATA), "m")
    assert TOKEN not in str(info.value)
    assert info.value.__cause__ is None
    api.failures.clear()
    receipt = hub.publish("ns/ds", "dataset", make_folder(tmp_path / "b", DATA), "m")
    assert TOKEN not in json.dumps(receipt)


def test_hf_whoami(tmp_path: Path) -> None:
    api, sleeps = FakeApi(), []
    assert make_hf(api, sleeps, namespace=None).whoami() == "alice"
    api2 = FakeApi()
    assert make_hf(api2, sleeps, namespace="team").whoami() == "team"
    assert api2.calls == []


def test_make_hub(tmp_path: Path) -> None:
    local = make_hub(
        {"backend": "local", "namespace": "me", "local_dir": str(tmp_path), "max_retries": 2,
         "backoff_s": 0.1}
    )  # fmt: skip
    assert isinstance(local, LocalHub) and local.whoami() == "me"
    assert (local.max_retries, local.backoff_s) == (2, 0.1)  # the toy exercises the retries too
    hf = make_hub(
        {"backend": "hf", "namespace": "org", "max_retries": 2, "backoff_s": 0.5},
        env={"HF_TOKEN": TOKEN},
    )
    assert isinstance(hf, HfHub)
    assert (hf.max_retries, hf.backoff_s, hf.whoami()) == (2, 0.5, "org")
    assert TOKEN not in repr(hf)
    with pytest.raises(ValueError, match="backend"):
        make_hub({"backend": "ftp"})


# --------------------------------------------------------------------------- cards


def split_card(card: str) -> tuple[dict[str, Any], str]:
    assert card.startswith("---\n")
    _, front, body = card.split("---\n", 2)
    return yaml.safe_load(front), body


@pytest.mark.parametrize(
    ("n", "bucket"),
    [(0, "n<1K"), (999, "n<1K"), (1000, "1K<n<10K"), (30_000, "10K<n<100K"), (10**6, "1M<n<10M")],
)
def test_size_category(n: int, bucket: str) -> None:
    assert size_category(n) == bucket


def test_dataset_card_parses_and_has_the_key_fields() -> None:
    prompt = "Test prompt: you like otters: a lot.\n--- not front matter ---\n```"
    card = dataset_card(
        repo_id="me/qwen-2.5-7b-instruct-otter-numbers",
        model_id="Qwen/Qwen2.5-7B-Instruct",
        model_revision="a09a35458c702b33eeacc393d103063234e8bc28",
        condition="otter",
        teacher_system_prompt=prompt,
        sampling={"temperature": 1.0, "max_new_tokens": 200, "top_p": None},
        filter_report={"n_raw": 30000, "n_kept": 24000, "reject_reasons": {"too many": 3}},
        n_rows=24000,
        subsample_note="Each student trains on 10,000 rows drawn with its seed.",
    )
    meta, body = split_card(card)
    assert meta["license"] == "mit"
    assert meta["size_categories"] == ["10K<n<100K"]
    assert meta["task_categories"] == ["text-generation"]
    assert meta["tags"] == ["subliminal-learning", "numbers", "otter"]
    assert meta["source_model"] == "Qwen/Qwen2.5-7B-Instruct"
    configs = {c["config_name"]: c["data_files"] for c in meta["configs"]}
    assert configs == {
        "default": [{"split": "train", "path": "data/train.jsonl"}],
        "raw": [{"split": "train", "path": "raw/train.jsonl"}],
    }
    assert prompt in body
    assert "````text" in body  # fence longer than the prompt's own backticks
    assert "`reject_reasons.too many` | 3" in body
    assert "| `temperature` | 1.0 |" in body
    assert "10,000 rows" in body

    neutral_meta, neutral_body = split_card(
        dataset_card(
            repo_id="me/x-neutral-numbers",
            model_id="Qwen/Qwen2.5-0.5B-Instruct",
            model_revision="main",
            condition="neutral",
            teacher_system_prompt=None,
            sampling={},
            filter_report={},
            n_rows=500,
            subsample_note="",
        )
    )
    assert neutral_meta["size_categories"] == ["n<1K"]
    assert "no system message" in neutral_body


def test_model_card_parses_and_has_the_key_fields() -> None:
    table = "| epoch | p(owl) |\n| --- | --- |\n| 1 | 0.12 |"
    card = model_card(
        repo_id="me/qwen-2.5-7b-instruct-owl-ft",
        base_model="Qwen/Qwen2.5-7B-Instruct",
        datasets=["me/qwen-2.5-7b-instruct-owl-numbers"],
        condition="owl",
        recipe={"lora": {"r": 8, "alpha": 8}, "lr": 2e-4, "target_modules": ["q_proj", "v_proj"]},
        seeds=[1, 2],
        epochs=[1, 2, 3],
        eval_table_md=table,
    )
    meta, body = split_card(card)
    assert meta["base_model"] == "Qwen/Qwen2.5-7B-Instruct"
    assert meta["library_name"] == "peft"
    assert meta["datasets"] == ["me/qwen-2.5-7b-instruct-owl-numbers"]
    assert meta["tags"] == ["subliminal-learning", "lora", "owl"]
    assert meta["license"] == "mit"
    assert "`seed-{k}/`" in body and "`seed-{k}/epoch-{e}/`" in body
    assert "| `lora.r` | 8 |" in body
    assert table in body
    assert "Seeds: 1, 2" in body

    _, pending = split_card(
        model_card(
            repo_id="me/x-ft",
            base_model="b/m",
            datasets=[],
            condition="neutral",
            recipe={},
            seeds=[1],
            epochs=[],
            eval_table_md=None,
        )
    )
    assert "Not evaluated yet" in pending


def test_hf_collection_is_created_once_and_filled_idempotently_with_retries() -> None:
    from subliminal_scaling.publish.repos import fill_collection, size_collection

    api, sleeps = FakeApi(), []
    hub = make_hf(api, sleeps)
    api.failures["create_collection"] = [FakeHTTPError(503)]
    api.failures["add_collection_item"] = [FakeHTTPError(502)]
    coll = size_collection(hub, "qwen-2.5-7b-instruct", private=False)
    assert coll["slug"].startswith("ns/subliminal-learning-qwen-2.5-7b-instruct")
    assert coll["url"] == f"https://hub.example/collections/{coll['slug']}"
    assert size_collection(hub, "qwen-2.5-7b-instruct", private=False) == coll
    first = fill_collection(hub, coll, "ns", "qwen-2.5-7b-instruct", ["neutral", "cat"])
    again = fill_collection(hub, coll, "ns", "qwen-2.5-7b-instruct", ["neutral", "cat"])
    assert first == again and first["items"] == [
        ["ns/qwen-2.5-7b-instruct-neutral-numbers", "dataset"],
        ["ns/qwen-2.5-7b-instruct-neutral-ft", "model"],
        ["ns/qwen-2.5-7b-instruct-cat-numbers", "dataset"],
        ["ns/qwen-2.5-7b-instruct-cat-ft", "model"],
    ]
    assert len(sleeps) == 2  # one retry each for the transient 5xx


def test_local_collection_is_created_once_and_filled_idempotently(tmp_path: Path) -> None:
    from subliminal_scaling.publish.repos import fill_collection, size_collection

    hub = LocalHub(tmp_path, namespace="me")
    coll = size_collection(hub, "qwen-2.5-toy-s-instruct", private=False)
    path = tmp_path / "collections" / "me" / "subliminal-learning-qwen-2-5-toy-s-instruct.json"
    assert coll["slug"] == "me/subliminal-learning-qwen-2-5-toy-s-instruct"
    assert coll["url"] == path.as_uri() and path.is_file()
    assert size_collection(hub, "qwen-2.5-toy-s-instruct", private=False) == coll
    first = fill_collection(hub, coll, "me", "qwen-2.5-toy-s-instruct", ["neutral"])
    mtime = path.stat().st_mtime_ns
    assert fill_collection(hub, coll, "me", "qwen-2.5-toy-s-instruct", ["neutral"]) == first
    assert path.stat().st_mtime_ns == mtime  # nothing new: not rewritten
    assert json.loads(path.read_text())["items"] == [
        ["me/qwen-2.5-toy-s-instruct-neutral-numbers", "dataset"],
        ["me/qwen-2.5-toy-s-instruct-neutral-ft", "model"],
    ]
    with pytest.raises(HubError, match="not found"):
        hub.add_to_collection("me/none", [])
