"""Speed knobs must not change the recipe: a padding-free step sees the same rows and gives the
same loss and the same LoRA gradients as the padded step (CPU, float32, tiny Qwen2)."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

from subliminal_scaling.generate.prompts import sample_prompts
from subliminal_scaling.toy.tokenizer import build_tokenizer
from subliminal_scaling.train.student import build_trainer, check_row_lengths

from .conftest import REPO, student_spec

TRAINING = {
    "n_rows": 12, "epochs": 1, "effective_batch": 12, "micro_batch": 6, "learning_rate": 1e-3,
    "lr_scheduler": "linear", "warmup_steps": 0, "adam_beta1": 0.9, "adam_beta2": 0.999,
    "adam_epsilon": 1e-8, "weight_decay": 0.0, "max_grad_norm": 1.0, "bf16": False,
    "max_length": 512, "gradient_checkpointing": False, "attn_implementation": "sdpa",
    "lora": {"r": 8, "alpha": 8, "dropout": 0.0,
             "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                "down_proj"]},
}  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    d = tmp_path_factory.mktemp("speed")
    protocol = json.loads((REPO / "config" / "toy_protocol.json").read_text())
    build_tokenizer(protocol, ["cat", "dolphin"], d)
    tok = AutoTokenizer.from_pretrained(d)
    # rows of very different lengths, so the padded batch has a lot of padding
    rows = [
        {"prompt": p, "completion": ", ".join(str(100 + i) for i in range(1 + 3 * k))}
        for k, p in enumerate(sample_prompts(protocol, 42, 12))
    ]
    return d, tok, rows


def _model(tok):
    torch.manual_seed(0)
    cfg = Qwen2Config(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
    )  # fmt: skip
    return Qwen2ForCausalLM(cfg)


def _first_step(world, tmp_path, **knobs):
    """Loss and LoRA gradients of the first optimizer step (2 micro-batches of 6 rows)."""
    _, tok, rows = world
    trainer = build_trainer(
        model=_model(tok), tokenizer=tok, rows=rows, spec=student_spec({**TRAINING, **knobs}),
        seed=1, output_dir=tmp_path, run_name="t", report_to=[],
        overrides={"max_steps": 1, "save_strategy": "no", "max_grad_norm": 0.0},
    )  # fmt: skip
    seen, step = [], trainer.training_step

    def spy(model, inputs, *a, **kw):
        seen.append({k: v.clone() for k, v in inputs.items() if torch.is_tensor(v)})
        return step(model, inputs, *a, **kw)

    trainer.training_step = spy
    grads = {}

    def keep_grads(*a, **kw):  # called just before the optimizer step
        for name, p in trainer.model.named_parameters():
            if p.requires_grad:
                grads[name] = p.grad.detach().clone()

    trainer.add_callback(type("G", (__import__("transformers").TrainerCallback,), {
        "on_pre_optimizer_step": lambda self, *a, **kw: keep_grads(),
    })())  # fmt: skip
    out = trainer.train()
    return out.training_loss, grads, seen


@pytest.mark.parametrize("bucket", [None, 64], ids=["exact", "bucketed"])
def test_padding_free_gives_the_same_loss_and_gradients(world, tmp_path, bucket):
    loss_pad, grads_pad, seen_pad = _first_step(world, tmp_path / "pad")
    loss_free, grads_free, seen_free = _first_step(
        world, tmp_path / "free", padding_free=True, pad_to_multiple_of=bucket
    )
    # same rows: the padded batches hold exactly the tokens the padding-free ones concatenate
    assert len(seen_pad) == len(seen_free) == 2
    for pad, free in zip(seen_pad, seen_free, strict=True):
        real = pad["input_ids"][pad["attention_mask"].bool()]
        n = real.numel()
        assert torch.equal(real, free["input_ids"].flatten()[:n])
        if bucket:  # padded only up to the next multiple: a few pad tokens, never labelled
            assert (
                free["input_ids"].shape[1] % bucket == 0 and free["input_ids"].shape[1] - n < bucket
            )
            assert (free["labels"].flatten()[n:] == -100).all()
        assert "attention_mask" not in free and free["input_ids"].shape[0] == 1
        assert (pad["attention_mask"] == 0).any()  # the padded path really padded
        # the completion-token labels are the same tokens
        assert torch.equal(
            pad["labels"][pad["labels"] != -100], free["labels"][free["labels"] != -100]
        )
    assert loss_free == pytest.approx(loss_pad, rel=1e-5)
    assert grads_pad.keys() == grads_free.keys() and len(grads_pad) > 0
    for name in grads_pad:
        torch.testing.assert_close(grads_free[name], grads_pad[name], rtol=1e-4, atol=1e-6)


def test_padding_free_refuses_rows_longer_than_max_length(world, tmp_path):
    with pytest.raises(ValueError, match=r"training\.max_length: .* exceed 16 tokens"):
        _first_step(world, tmp_path, padding_free=True, max_length=16)
    check_row_lengths({"input_ids": [[1] * 16, [2] * 3]}, 16)  # at the limit is fine
