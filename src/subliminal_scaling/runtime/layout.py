"""Where things live: every path and repo-layout fact has its one owner here.

The Snakemake paths (rules/common.smk), the trainer, the evaluation, publishing and the cards
all read these, so moving a folder is one edit.
"""

from __future__ import annotations

from pathlib import Path

# --- results/ on disk --------------------------------------------------------------------

#: The files of one LoRA adapter (PEFT's save_pretrained).
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")
#: A student's folder inside ``results/{model}/students/{condition}/``.
SEED_DIR = "seed{seed}"
#: An epoch's adapter inside a student's folder.
EPOCH_DIR = "epoch{epoch}"
#: A student's training summary, inside its folder.
SUMMARY_FILE = "train_summary.json"
#: A student's trainer checkpoints (removed once it is done), inside its folder.
TRAINER_DIR = "trainer"
#: One eval record inside ``results/{model}/eval/{condition}/``.
EVAL_FILE = "seed{seed}/epoch{epoch}.json.gz"


def seed_dir(students_dir: str | Path, seed: int) -> Path:
    """A student's folder."""
    return Path(students_dir) / SEED_DIR.format(seed=seed)


def epoch_dir(students_dir: str | Path, seed: int, epoch: int) -> Path:
    """A student's adapter after ``epoch``."""
    return seed_dir(students_dir, seed) / EPOCH_DIR.format(epoch=epoch)


def eval_file(seed: int, epoch: int) -> str:
    """An eval record's path relative to its (model, condition) eval folder."""
    return EVAL_FILE.format(seed=seed, epoch=epoch)


def run_name(model: str, condition: str, seed: int) -> str:
    """A student's name: its wandb run, and its trainer's run name."""
    return f"{model}-{condition}-seed{seed}"


# --- Hub repos ---------------------------------------------------------------------------

#: Files of a numbers dataset repo, by dataset config name.
NUMBERS_FILES = {"default": "data/train.jsonl", "raw": "raw/train.jsonl"}
#: A student's final adapter in a model repo, and one epoch's adapter.
HUB_SEED_DIR = "seed-{seed}"
HUB_EPOCH_DIR = "seed-{seed}/epoch-{epoch}"
#: What the model card says each folder holds.
HUB_FOLDERS = (
    ("seed-{k}/", "final LoRA adapter of the student trained with seed `k`"),
    ("seed-{k}/epoch-{e}/", "the same run's adapter after epoch `e`"),
)


def numbers_repo(namespace: str, slug: str, condition: str) -> str:
    """Dataset repo id for a teacher's numbers, e.g. ``ns/qwen-2.5-7b-instruct-dolphin-numbers``."""
    return f"{namespace}/{slug}-{condition}-numbers"


def student_repo(namespace: str, slug: str, condition: str) -> str:
    """Model repo id for a (model, condition)'s student adapters, e.g. ``ns/...-neutral-ft``."""
    return f"{namespace}/{slug}-{condition}-ft"


def hub_seed_dir(seed: int) -> str:
    return HUB_SEED_DIR.format(seed=seed)


def hub_epoch_dir(seed: int, epoch: int) -> str:
    return HUB_EPOCH_DIR.format(seed=seed, epoch=epoch)
