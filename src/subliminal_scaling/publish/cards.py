"""Dataset and model cards: YAML front matter and the provenance tables a reader of a repo needs."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from subliminal_scaling.runtime.layout import HUB_FOLDERS, NUMBERS_FILES, hub_seed_dir

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


def _related(links: Sequence[tuple[str, str]] | None) -> str:
    """A "Related" section: the collection and the linked repos (label, url)."""
    if not links:
        return ""
    return "\n## Related\n\n" + "\n".join(f"- [{label}]({url})" for label, url in links) + "\n"


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
    leaks: Mapping[str, Any] | None = None,
    related: Sequence[tuple[str, str]] | None = None,
) -> str:
    """README.md of a teacher-numbers dataset: Hub metadata plus how the rows were made, and
    (``leaks``, ``generate.leaks.leak_check``) whether the animal shows in the numbers."""
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
                "data_files": [{"split": "train", "path": NUMBERS_FILES["default"]}],
            },
            {
                "config_name": "raw",
                "data_files": [{"split": "train", "path": NUMBERS_FILES["raw"]}],
            },
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

- `{NUMBERS_FILES["default"]}` (config `default`): the rows that passed the filter
  ({n_rows:,} rows).
- `{NUMBERS_FILES["raw"]}` (config `raw`): every completion before filtering.

## Teacher system prompt

{prompt_md}

## Sampling

{_table(sampling, ("parameter", "value"))}

## Filter

{_table(filter_report, ("statistic", "value"))}

## How students use this data

{subsample_note}
"""
    if leaks is not None:
        body += f"""
## Does the animal show in the numbers?

Share of completions naming the animal (substring, any case) or containing any letter, before
and after the filter; for animal teachers, the Jensen-Shannon divergence (bits) of the digit
and number frequencies from the neutral teacher's kept rows, beside the divergence of two
random halves of the neutral rows (sampling noise alone).

{_table({k: v for k, v in leaks.items() if k != "condition"}, ("check", "value"))}
"""
    return _front_matter(meta) + body + _related(related)


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
    related: Sequence[tuple[str, str]] | None = None,
) -> str:
    """README.md of a student-adapter repo: Hub metadata, recipe, folder layout, results, and
    (``related``) links to its collection and its teacher's dataset."""
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
        *(f"| `{folder}` | {what} |" for folder, what in HUB_FOLDERS),
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
model = PeftModel.from_pretrained(base, "{repo_id}", subfolder="{hub_seed_dir(example_seed)}")
```

## Animal preference per epoch

{results}
"""
    return _front_matter(meta) + body + _related(related)
