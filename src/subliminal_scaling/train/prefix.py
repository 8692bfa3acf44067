"""Shared prefix: a padding-free micro-batch with its rows' common opening computed once.

Every training row opens with the same tokens: the chat template's default system prompt and
the user turn's header (24 tokens of Qwen2.5's template, about 16% of a row's tokens). Each row
sees them at the same positions (0 .. P-1) and, attention being causal, computes exactly the
same hidden states for them, none of which is a loss position (they are prompt tokens). So a
micro-batch can hold the prefix once and each row's remaining tokens after it
(``SharedPrefix``); the attention kernel still runs on the rows as they were, each with its own
copy of the prefix's queries, keys and values (``train.kernels``: ``shared_gather`` /
``shared_scatter``). Projections, MLPs, norms and the LM head run on P·(rows-1) fewer tokens.

What a step computes is unchanged: the same rows, the same completion tokens at the same
positions, the same loss; the prefix's gradient is the sum of what each row's copy received
(the CPU tests compare loss and LoRA gradients with the padded step; on the GPU,
``benchmarks/check_levers.py``).
"""

from __future__ import annotations

import itertools
from typing import Any

IGNORE = -100


def common_prefix(rows: list[Any], labels: list[Any]) -> int:
    """Length P of the rows' common opening that no row learns from: every row's tokens
    0 .. P-1 equal the first row's, and every row's labels 0 .. P are ``IGNORE`` (token P, the
    first one after the prefix, is predicted from the prefix's last position)."""
    import torch

    shortest = min(int(r.numel()) for r in rows)
    if len(rows) < 2 or shortest < 2:
        return 0
    head = torch.stack([r[:shortest] for r in rows])
    same = (head == head[0]).all(dim=0)
    n = int(same.long().cumprod(0).sum())
    for lab in labels:  # first learned position of each row; the prefix ends before it
        learned = (lab != IGNORE).nonzero()
        if learned.numel():
            n = min(n, int(learned[0]) - 1)
    return max(n, 0)


def share_prefix(
    batch: dict[str, Any], n_rows: int, pad_id: int, pad_to_multiple_of: int | None = None
) -> dict[str, Any]:
    """``batch`` (TRL's padding-free collation of ``n_rows`` rows: one concatenated row, its
    ``cu_seq_lens``) with the rows' common prefix held once. Adds ``shared_gather`` (for each
    position of the rows as they were, where its token now is) and ``shared_scatter`` (for each
    position now, where it was: the prefix from the first row); ``cu_seq_lens_q``/``_k`` and
    ``max_length_q``/``_k`` keep describing the rows as they were, which is what the attention
    kernel sees. With no common prefix both indexes are identities (the same keys every
    micro-batch, so a compiled layer sees one signature)."""
    import torch

    ids, labels, pos = batch["input_ids"][0], batch["labels"][0], batch["position_ids"][0]
    cu = batch["cu_seq_lens_q"].long()
    if cu.numel() < n_rows + 1 or int(cu[0]) != 0:
        raise ValueError(f"shared_prefix: expected {n_rows} packed rows, got bounds {cu.tolist()}")
    bounds = cu[: n_rows + 1].tolist()
    spans = list(itertools.pairwise(bounds))
    if any(b <= a or not bool((pos[a:b] == torch.arange(b - a)).all()) for a, b in spans):
        raise ValueError("shared_prefix: rows must be packed with positions 0, 1, 2, ...")
    rows, row_labels = [ids[a:b] for a, b in spans], [labels[a:b] for a, b in spans]
    lengths = [b - a for a, b in spans]
    p = common_prefix(rows, row_labels)

    new_ids = [rows[0][:p]] + [r[p:] for r in rows]
    new_labels = [row_labels[0][:p]] + [lab[p:] for lab in row_labels]
    new_pos = [torch.arange(p)] + [torch.arange(p, n) for n in lengths]
    gather, scatter = [], [torch.arange(p)]  # the prefix's output: the first row's copy
    offset = p  # where each row's tokens after the prefix start, now
    for start, n in zip(bounds[:-1], lengths, strict=True):
        gather += [torch.arange(p), torch.arange(offset, offset + n - p)]
        scatter.append(torch.arange(start + p, start + n))
        offset += n - p
    real, before = offset, bounds[-1]  # tokens now, and before
    n_pad = (-real) % pad_to_multiple_of if pad_to_multiple_of else 0
    if n_pad:  # padding after the rows, each pad token its own sequence (as TRL pads)
        new_ids.append(torch.full((n_pad,), pad_id, dtype=ids.dtype))
        new_labels.append(torch.full((n_pad,), IGNORE, dtype=labels.dtype))
        new_pos.append(torch.zeros(n_pad, dtype=torch.long))
        gather.append(torch.arange(real, real + n_pad))
        scatter.append(torch.arange(before, before + n_pad))
    cu_new = torch.tensor(bounds + [before + k + 1 for k in range(n_pad)], dtype=torch.int32)
    out = {k: v for k, v in batch.items() if k != "seq_idx"}  # linear attention only
    out["input_ids"] = torch.cat(new_ids)[None]
    out["labels"] = torch.cat(new_labels)[None]
    out["position_ids"] = torch.cat(new_pos).to(pos.dtype)[None]
    out["cu_seq_lens_q"] = out["cu_seq_lens_k"] = cu_new
    out["max_length_q"] = out["max_length_k"] = max(lengths)
    out["shared_gather"] = torch.cat(gather)
    out["shared_scatter"] = torch.cat(scatter)
    return out


def saved_tokens(batch: dict[str, Any]) -> int:
    """Token positions a shared-prefix micro-batch does not compute (0 for any other batch),
    from the indexes' shapes: known on the host, no read of the device."""
    if "shared_gather" not in batch:
        return 0
    return int(batch["shared_gather"].shape[0] - batch["shared_scatter"].shape[0])


class SharedPrefix:
    """Collator wrapper: ``collate``'s padding-free micro-batch with its rows' common prefix
    held once (``share_prefix``)."""

    def __init__(self, collate: Any, pad_id: int, pad_to_multiple_of: int | None) -> None:
        self.collate, self.pad_id, self.multiple = collate, pad_id, pad_to_multiple_of

    def __call__(self, features: Any) -> Any:
        return share_prefix(self.collate(features), len(features), self.pad_id, self.multiple)
