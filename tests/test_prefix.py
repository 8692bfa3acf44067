"""The shared-prefix layout (train/prefix.py): the rows' common opening held once, and the two
indexes that give the attention kernel the rows as they were."""

from __future__ import annotations

import pytest
import torch

from subliminal_scaling.train.prefix import common_prefix, saved_tokens, share_prefix

PAD = 0


def _packed(rows, prompt_lens, multiple=None):
    """TRL's padding-free collation of ``rows`` (token lists), prompts unlearned."""
    ids = torch.tensor([t for r in rows for t in r])
    pairs = zip(rows, prompt_lens, strict=True)
    labels = torch.tensor([-100 if i < n else t for r, n in pairs for i, t in enumerate(r)])
    pos = torch.cat([torch.arange(len(r)) for r in rows])
    n_pad = (-len(ids)) % multiple if multiple else 0
    ids = torch.cat([ids, torch.full((n_pad,), PAD)])
    labels = torch.cat([labels, torch.full((n_pad,), -100)])
    pos = torch.cat([pos, torch.zeros(n_pad, dtype=torch.long)])
    labels[pos == 0] = -100
    starts = (pos == 0).nonzero().flatten()
    cu = torch.cat([starts, torch.tensor([len(ids)])]).to(torch.int32)
    return {"input_ids": ids[None], "labels": labels[None], "position_ids": pos[None],
            "cu_seq_lens_q": cu, "cu_seq_lens_k": cu, "max_length_q": int(cu.diff().max()),
            "max_length_k": int(cu.diff().max()), "seq_idx": torch.zeros(1, len(ids))}  # fmt: skip


ROWS = [[7, 7, 8, 9, 1, 2, 3], [7, 7, 8, 9, 4, 5], [7, 7, 8, 9, 9, 1, 1, 2]]
PROMPTS = [5, 5, 6]  # the completions start at token 5, 5 and 6


@pytest.mark.parametrize("multiple", [None, 8])
def test_the_rows_as_they_were_are_gathered_back(multiple):
    before = _packed(ROWS, PROMPTS, multiple)
    after = share_prefix(before, n_rows=3, pad_id=PAD, pad_to_multiple_of=multiple)
    g, s = after["shared_gather"], after["shared_scatter"]
    n_rows = sum(map(len, ROWS))
    assert saved_tokens(after) == 2 * 4  # prefix [7, 7, 8, 9] held once instead of three times
    assert after["input_ids"].shape[1] == (16 if multiple else n_rows - 8)
    # the kernel's view: every row whole, at its old positions, with its old labels
    for key in ("input_ids", "labels", "position_ids"):
        assert torch.equal(after[key][0][g][:n_rows], before[key][0][:n_rows]), key
    assert torch.equal(after["cu_seq_lens_q"][:4], before["cu_seq_lens_q"][:4])
    assert after["max_length_q"] == 8 and "seq_idx" not in after
    # each position now takes its output from one copy of itself
    assert torch.equal(g[s], torch.arange(after["input_ids"].shape[1]))
    # the same tokens are learned, in the same order, each after the same context
    lab = after["labels"][0]
    assert torch.equal(lab[lab != -100], before["labels"][0][before["labels"][0] != -100])
    if multiple:
        assert after["input_ids"].shape[1] % multiple == 0
        assert int(after["cu_seq_lens_q"][-1]) == g.numel()


def test_the_prefix_stops_before_any_learned_token():
    rows = [[7, 7, 8, 9, 1], [7, 7, 8, 9, 2]]
    ids = [torch.tensor(r) for r in rows]
    unlearned = [torch.full((5,), -100), torch.full((5,), -100)]
    assert common_prefix(ids, unlearned) == 4
    learned = [torch.tensor([-100, -100, -100, 9, 1]), unlearned[1]]  # row 0 learns token 3
    assert common_prefix(ids, learned) == 2  # token 2 predicts token 3: not shared
    assert common_prefix([ids[0]], unlearned[:1]) == 0  # one row: nothing to share


def test_no_common_prefix_gives_identity_indexes():
    before = _packed([[1, 2, 3], [4, 5, 6, 7]], [2, 2])
    after = share_prefix(before, n_rows=2, pad_id=PAD)
    assert torch.equal(after["input_ids"], before["input_ids"])
    assert torch.equal(after["shared_gather"], torch.arange(7))
    assert torch.equal(after["shared_scatter"], torch.arange(7)) and saved_tokens(after) == 0


def test_rows_not_packed_from_position_zero_are_refused():
    before = _packed(ROWS, PROMPTS)
    before["position_ids"] = before["position_ids"] + 1
    with pytest.raises(ValueError, match="positions 0, 1, 2"):
        share_prefix(before, n_rows=3, pad_id=PAD)
