"""Stage a repo's files in a scratch folder and publish them: the teacher's numbers as a
dataset, a (model, condition)'s student adapters as one model repo.

The scratch folder sits in ``stage_root`` (beside the upload receipt, on the results disk)
and holds hard links, not copies: staging costs no disk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from subliminal_scaling.evaluate.evals import adapter_hashes
from subliminal_scaling.publish.cards import dataset_card, model_card
from subliminal_scaling.publish.hub import Hub, RepoType
from subliminal_scaling.runtime import io, layout
from subliminal_scaling.runtime.layout import numbers_repo, student_repo

SUBSAMPLE_NOTE = (
    "Each student seed k trains on `random.Random(k).sample(train_rows, {n_rows})`, "
    "as the reference `sl` code subsamples (seeds 1..{n_seeds})."
)


def namespace(hub: Hub, configured: str | None) -> str:
    """The configured namespace, else the token owner's."""
    return configured or hub.whoami()


def check_recorded_jsonl(path: Path, metadata: dict[str, Any]) -> None:
    """``path`` is whole JSON lines and has the sha256 recorded for its name in ``metadata``.

    Raises ``io.InputFileError`` naming the file otherwise.
    """
    io.read_jsonl(path)  # a cut line names the file and says "truncated"
    recorded = metadata.get("sha256", {}).get(Path(path).name)
    if recorded is None:
        raise io.InputFileError(f"{path}: no sha256 recorded for it in the numbers metadata")
    if io.sha256_file(path) != recorded:
        raise io.InputFileError(
            f"{path}: changed since filter_numbers recorded its sha256 (rerun filter_numbers)"
        )


def publish_numbers(
    *,
    hub: Hub,
    ns: str,
    slug: str,
    condition: str,
    filtered: Path,
    raw: Path,
    report: dict[str, Any],
    metadata: dict[str, Any],
    teacher_prompt: str | None,
    n_rows: int,
    n_seeds: int,
    private: bool,
    stage_root: Path,
    leaks: dict[str, Any] | None = None,
    collection: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Dataset repo ``<ns>/<slug>-<condition>-numbers``: train = filtered, raw = all.

    Both files are checked first (complete JSON lines, and the sha256 that filtering recorded
    in ``metadata``), so a truncated or altered file is never published.
    """
    repo_id = numbers_repo(ns, slug, condition)
    for path in (filtered, raw):
        check_recorded_jsonl(path, metadata)
    with io.scratch_dir(stage_root, repo_id.split("/")[-1]) as stage:
        io.link_or_copy(filtered, stage / layout.NUMBERS_FILES["default"])
        io.link_or_copy(raw, stage / layout.NUMBERS_FILES["raw"])
        card = dataset_card(
            repo_id=repo_id,
            model_id=metadata["model_id"],
            model_revision=metadata.get("revision"),
            condition=condition,
            teacher_system_prompt=teacher_prompt,
            sampling=metadata["sampling"],
            filter_report=report,
            n_rows=metadata["n_filtered"],
            subsample_note=SUBSAMPLE_NOTE.format(n_rows=n_rows, n_seeds=n_seeds),
            leaks=leaks,
            related=related_links(
                hub,
                collection,
                [("students trained on it", student_repo(ns, slug, condition), "model")],
            ),
        )
        io.write_text(stage / "README.md", card)
        return hub.publish(repo_id, "dataset", stage, f"numbers: {slug} {condition}", private)


def publish_students(
    *,
    hub: Hub,
    ns: str,
    slug: str,
    model_id: str,
    condition: str,
    students_dir: Path,
    seeds: list[int],
    epochs: list[int],
    recipe: dict[str, Any],
    datasets: list[str],
    eval_table_md: str | None,
    upload_epochs: bool,
    private: bool,
    stage_root: Path,
    collection: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Model repo ``<ns>/<slug>-<condition>-ft``: ``seed-{k}/`` final adapter and, if
    configured, ``seed-{k}/epoch-{e}/`` per-epoch adapters."""
    repo_id = student_repo(ns, slug, condition)
    final = max(epochs)
    for seed in seeds:  # a missing adapter file fails here, naming it, not on the Hub later
        for e in epochs:
            adapter_hashes(layout.epoch_dir(students_dir, seed, e))
    with io.scratch_dir(stage_root, repo_id.split("/")[-1]) as stage:
        for seed in seeds:
            hub_dir = stage / layout.hub_seed_dir(seed)
            io.link_tree(layout.epoch_dir(students_dir, seed, final), hub_dir)
            summary = layout.SUMMARY_FILE
            io.link_or_copy(layout.seed_dir(students_dir, seed) / summary, hub_dir / summary)
            if upload_epochs:
                for e in epochs:
                    io.link_tree(
                        layout.epoch_dir(students_dir, seed, e),
                        stage / layout.hub_epoch_dir(seed, e),
                    )
        card = model_card(
            repo_id=repo_id,
            base_model=model_id,
            datasets=datasets,
            condition=condition,
            recipe=recipe,
            seeds=seeds,
            epochs=epochs,
            eval_table_md=eval_table_md,
            related=related_links(
                hub, collection, [("teacher data", d, "dataset") for d in datasets]
            ),
        )
        io.write_text(stage / "README.md", card)
        return hub.publish(repo_id, "model", stage, f"students: {slug} {condition}", private)


def related_links(
    hub: Hub, collection: dict[str, Any] | None, repos: list[tuple[str, str, RepoType]]
) -> list[tuple[str, str]]:
    """(label, url) for a card's "Related" section: the size's collection, then ``repos``
    (label, repo id, type)."""
    links = []
    if collection:
        links.append((f"collection: {collection['title']}", collection["url"]))
    links += [(f"{label}: {repo_id}", hub.url(repo_id, kind)) for label, repo_id, kind in repos]
    return links


def size_collection(hub: Hub, slug: str, private: bool) -> dict[str, Any]:
    """The collection of one model size (its teachers' datasets and students' repos)."""
    title = f"subliminal-learning {slug}"[:60]
    description = (
        f"Subliminal learning at {slug}: each teacher's number datasets (<cond>-numbers) and "
        "the LoRA students trained on them (<cond>-ft), one pair per condition."
    )[:150]
    return hub.ensure_collection(title, description, private)


def fill_collection(
    hub: Hub, collection: dict[str, Any], ns: str, slug: str, conditions: list[str]
) -> dict[str, Any]:
    """Put every condition's dataset and student repo of the size into its collection."""
    items: list[tuple[str, RepoType]] = []
    for c in conditions:
        items += [(numbers_repo(ns, slug, c), "dataset"), (student_repo(ns, slug, c), "model")]
    return hub.add_to_collection(collection["slug"], items)


def eval_table(records: list[dict[str, Any]], target: str | None) -> str:
    """Markdown table: the target animal's rate per seed and epoch (reference rule)."""
    if not records or target is None:
        return ""
    seeds = sorted({r["seed"] for r in records})
    epochs = sorted({r["epoch"] for r in records})
    rate = {(r["seed"], r["epoch"]): r["target_rates"].get(target) for r in records}
    lines = ["| epoch | " + " | ".join(f"seed {s}" for s in seeds) + " |"]
    lines.append("| --- |" + " --- |" * len(seeds))
    for e in epochs:
        cells = [
            f"{100 * rate[(s, e)]:.1f}%" if rate.get((s, e)) is not None else "–" for s in seeds
        ]
        lines.append(f"| {e} | " + " | ".join(cells) + " |")
    return f"Rate of answers naming **{target}** (reference rule):\n\n" + "\n".join(lines)
