"""Speed knobs must not change the recipe: a padding-free step sees the same rows and gives the
same loss and the same LoRA gradients as the padded step (CPU, float32, tiny Qwen2)."""

from __future__ import annotations

import json
import traceback

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

from subliminal_scaling.generate.prompts import sample_prompts
from subliminal_scaling.toy.tokenizer import build_tokenizer
from subliminal_scaling.train import kernels
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


def _model(tok, attn: str | None = None):
    torch.manual_seed(0)
    cfg = Qwen2Config(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
    )  # fmt: skip
    if attn is None:
        return Qwen2ForCausalLM(cfg)
    kernels.register_attention(attn)
    return Qwen2ForCausalLM._from_config(cfg, attn_implementation=attn)


def _first_step(world, tmp_path, compile_backend="inductor", **knobs):
    """Loss and LoRA gradients of the first optimizer step (2 micro-batches of 6 rows)."""
    _, tok, rows = world
    attn = knobs.get("attn_implementation")
    trainer = build_trainer(
        model=_model(tok, attn), tokenizer=tok, rows=rows,
        spec=student_spec({**TRAINING, **knobs}), seed=1, output_dir=tmp_path, run_name="t",
        report_to=[], overrides={"max_steps": 1, "save_strategy": "no", "max_grad_norm": 0.0},
        compile_backend=compile_backend,
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


def _assert_same_step(a, b):
    (loss_a, grads_a, _), (loss_b, grads_b, _) = a, b
    assert loss_b == pytest.approx(loss_a, rel=1e-5)
    assert grads_a.keys() == grads_b.keys() and len(grads_a) > 0
    for name in grads_a:
        torch.testing.assert_close(grads_b[name], grads_a[name], rtol=1e-4, atol=1e-6)


def test_compiled_decoder_layers_give_the_same_loss_and_gradients(world, tmp_path):
    """Regional compilation traces every decoder layer (PEFT's LoRA included) into a graph;
    aot_eager runs that graph with autograd, the part of torch.compile this project relies on
    (inductor's kernels are torch's and run on the GPU benchmark)."""
    pad = _first_step(world, tmp_path / "pad")
    torch._dynamo.reset()
    compiled = _first_step(
        world, tmp_path / "compiled", compile_backend="aot_eager", padding_free=True,
        pad_to_multiple_of=64, compile_layers=True,
    )  # fmt: skip
    _assert_same_step(pad, compiled)


def test_compile_decoder_layers_compiles_each_layer_once_in_place():
    tok_cfg = Qwen2Config(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=3,
                          num_attention_heads=2, num_key_value_heads=1)  # fmt: skip
    model = Qwen2ForCausalLM(tok_cfg)
    assert kernels.compile_decoder_layers(model, backend="eager") == 3
    assert all(layer._compiled_call_impl is not None for layer in kernels.decoder_layers(model))
    with pytest.raises(ValueError, match=r"no '\.\.\.DecoderLayer' modules"):
        kernels.compile_decoder_layers(torch.nn.Linear(2, 2))


def _reference_varlen(q, k, v, cu_q, cu_k, max_q, max_k, *, scale=None, is_causal=False):
    """What torch's FlashAttention varlen kernel computes (torch <= 2.11 signature), one packed
    row at a time with SDPA; no GQA option, so the caller must repeat the key/value heads."""
    assert torch.equal(cu_q, cu_k) and cu_q.dtype == torch.int32 and max_q == max_k
    assert q.shape[1] == k.shape[1], "heads must be repeated when the kernel has no enable_gqa"
    assert int((cu_q[1:] - cu_q[:-1]).max()) == max_q
    segs = []
    for a, b in zip(cu_q[:-1].tolist(), cu_q[1:].tolist(), strict=True):
        qs, ks, vs = (t[a:b].transpose(0, 1) for t in (q, k, v))
        segs.append(F.scaled_dot_product_attention(qs, ks, vs, is_causal=is_causal, scale=scale)
                    .transpose(0, 1))  # fmt: skip
    return torch.cat(segs)


@pytest.fixture
def varlen_stand_in(monkeypatch):
    """torch's varlen kernel has no CPU implementation: ``_reference_varlen`` stands in."""
    monkeypatch.setattr(
        kernels, "_KERNEL", (_reference_varlen, {"causal": {"is_causal": True}, "gqa": False})
    )


def test_varlen_attention_gives_the_same_loss_and_gradients(world, tmp_path, varlen_stand_in):
    """The glue around the varlen kernel (layout, GQA heads, causal flag, the collator's
    sequence boundaries) against the padded SDPA step; the kernel is stood in for on the CPU."""
    pad = _first_step(world, tmp_path / "pad")
    varlen = _first_step(
        world, tmp_path / "varlen", padding_free=True, pad_to_multiple_of=64,
        attn_implementation=kernels.VARLEN,
    )  # fmt: skip
    _assert_same_step(pad, varlen)


def test_varlen_attention_needs_padding_free(world, tmp_path, varlen_stand_in):
    with pytest.raises(ValueError, match=r"torch_varlen' needs training\.padding_free: true"):
        _first_step(world, tmp_path, attn_implementation=kernels.VARLEN)


@pytest.mark.parametrize("padding_free", [False, True], ids=["padded", "padding-free"])
def test_sync_free_logging_gives_the_same_loss_and_gradients(world, tmp_path, padding_free):
    """training.sync_free_logging (TRL's metrics summed on the device, read once per logging
    step) computes TRL's loss: the same loss and LoRA gradients over two micro-batches."""
    plain = _first_step(world, tmp_path / "plain", padding_free=padding_free)
    free = _first_step(world, tmp_path / "free", padding_free=padding_free, sync_free_logging=True)
    _assert_same_step(plain, free)


def _two_steps(world, tmp_path, **knobs):
    _, tok, rows = world
    trainer = build_trainer(
        model=_model(tok), tokenizer=tok, rows=rows,
        spec=student_spec({**TRAINING, "micro_batch": 6, "effective_batch": 6, **knobs}),
        seed=1, output_dir=tmp_path, run_name="t", report_to=[],
        overrides={"max_steps": 2, "save_strategy": "no"},
    )  # fmt: skip
    trainer.train()
    return trainer


def _same_logs(first, second) -> list[tuple[dict, dict]]:
    """The two trainers' two training logs, pairwise: loss, entropy, token accuracy and token
    count equal."""
    logs = [[h for h in t.state.log_history if "loss" in h] for t in (first, second)]
    assert len(logs[0]) == len(logs[1]) == 2
    pairs = list(zip(*logs, strict=True))
    for a, b in pairs:
        for key in ("loss", "entropy", "mean_token_accuracy"):
            assert b[key] == pytest.approx(a[key], rel=1e-5), key
        assert b["num_tokens"] == a["num_tokens"] > 0
    return pairs


def test_sync_free_logging_logs_trl_metrics_and_counts_tokens_on_the_cpu(world, tmp_path):
    """With one micro-batch per step both averaging schemes agree: the logged loss, entropy,
    token accuracy and token count equal TRL's own; the CPU token count equals the trainer's."""
    plain = _two_steps(world, tmp_path / "plain", padding_free=True)
    free = _two_steps(world, tmp_path / "free", padding_free=True, sync_free_logging=True)
    for a, b in _same_logs(plain, free):
        assert ("tokens_per_s" in b) == ("tokens_per_s" in a)  # from the second log on
        assert b.get("tokens_per_s", 1) > 0
    # the same count of trained tokens, without sync_free_logging read off the GPU by the
    # Trainer, with it taken from the collator's host count of each batch
    assert plain.token_count.tokens == plain.state.num_input_tokens_seen > 0
    assert free.state.num_input_tokens_seen == plain.state.num_input_tokens_seen
    assert free.token_count.tokens == plain.token_count.tokens


def test_logging_steps_sets_how_often_the_loss_is_logged(world, tmp_path):
    trainer = _two_steps(
        world, tmp_path, padding_free=True, sync_free_logging=True, logging_steps=2
    )
    logged = [h for h in trainer.state.log_history if "loss" in h]
    assert [h["step"] for h in logged] == [2] and logged[0]["entropy"] > 0


class _DeviceReads(TorchDispatchMode):
    """Every read of a tensor's value by the host (``.item()``, ``bool()``, ``float()``: all are
    ``aten._local_scalar_dense``), with the Python frames that asked. On a GPU each one makes
    the host wait for everything queued. The collator's reads (on the host, before the batch
    is copied to the device), the optimizer's step counter (a host tensor) and this file's
    stand-in kernel are not device reads and are left out."""

    NOT_DEVICE = ("torch/utils/data/", "torch/optim/", ":_reference_varlen")

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[list[str]] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            frames = [f"{f.filename}:{f.name}" for f in traceback.extract_stack()[:-1]]
            if not any(skip in f for f in frames for skip in self.NOT_DEVICE):
                self.reads.append(frames)
        return func(*args, **(kwargs or {}))


def _reads_outside_logging(world, tmp_path, **knobs) -> tuple[list[list[str]], int]:
    """Device reads during 2 optimizer steps of 2 micro-batches (a log at step 2 only) that
    no log, and no end-of-training summary, asked for; and all device reads."""
    _, tok, rows = world
    trainer = build_trainer(
        model=_model(tok, kernels.VARLEN), tokenizer=tok, rows=rows,
        spec=student_spec({**TRAINING, "padding_free": True, "pad_to_multiple_of": 16,
                           "attn_implementation": kernels.VARLEN, "logging_steps": 2, **knobs}),
        seed=1, output_dir=tmp_path, run_name="t", report_to=[],
        overrides={"max_steps": 2, "save_strategy": "no"},
    )  # fmt: skip
    with _DeviceReads() as mode:
        trainer.train()
    logging = ("_maybe_log_save_evaluate", "_finalize_training", ":log")
    outside = [r for r in mode.reads if not any(f.endswith(logging) for f in r)]
    return outside, len(mode.reads)


def test_sync_free_logging_reads_the_device_only_when_it_logs(world, tmp_path, varlen_stand_in):
    """The configured path (padding-free rows, the varlen kernel, stood in for on the CPU):
    without sync_free_logging the loop reads the device on every micro-batch (TRL's metrics,
    the Trainer's token count and its NaN/inf check of the loss); with it, only where it logs.
    transformers' packed-sequence check of ``position_ids`` reads in neither (the varlen path
    registers no mask function, so no mask is built)."""
    plain, _ = _reads_outside_logging(world, tmp_path / "plain")
    free, total = _reads_outside_logging(world, tmp_path / "free", sync_free_logging=True)
    where = {f.rsplit(":", 1)[1] for r in plain for f in r[-3:]}
    assert len(plain) >= 4 * 4, where  # 4 micro-batches: metrics, token count, NaN/inf check
    assert {"compute_loss", "_run_epoch"} <= where
    assert not any("find_packed_sequence_indices" in f for r in plain for f in r)
    assert free == [], [r[-3:] for r in free]
    assert total > 0  # the log itself still reads: once per logging step


def test_shared_prefix_gives_the_same_loss_and_gradients(world, tmp_path, varlen_stand_in):
    """training.shared_prefix: the rows' common opening (the chat template's default system
    prompt and user header) is computed once per micro-batch; the loss and the LoRA gradients
    equal the padded step's, and the micro-batches hold the same completion tokens. The same
    with checkpoint_layers (in this test: it reuses the compiled layers)."""
    pad = _first_step(world, tmp_path / "pad")
    varlen = _first_step(
        world, tmp_path / "varlen", padding_free=True, pad_to_multiple_of=16,
        attn_implementation=kernels.VARLEN,
    )  # fmt: skip
    torch._dynamo.reset()
    shared = _first_step(
        world, tmp_path / "shared", padding_free=True, pad_to_multiple_of=16,
        attn_implementation=kernels.VARLEN, shared_prefix=True, compile_layers=True,
        compile_backend="aot_eager",
    )  # fmt: skip
    _assert_same_step(pad, shared)
    # training.checkpoint_layers on this path (32B's): the first layer recomputed in the
    # backward pass, its LoRA weights' gradients too (its input needs no gradient)
    ckpt = _first_step(
        world, tmp_path / "ckpt", padding_free=True, pad_to_multiple_of=16,
        attn_implementation=kernels.VARLEN, shared_prefix=True, compile_layers=True,
        compile_backend="aot_eager", checkpoint_layers=1,
    )  # fmt: skip
    _assert_same_step(pad, ckpt)
    assert any(".layers.0." in name and ckpt[1][name].abs().sum() > 0 for name in ckpt[1])
    for full, short in zip(varlen[2], shared[2], strict=True):
        assert torch.equal(full["labels"][full["labels"] != -100],
                           short["labels"][short["labels"] != -100])  # fmt: skip
        saved = short["shared_gather"].numel() - short["shared_scatter"].numel()
        assert saved >= 5 * 10  # 6 rows: the prefix (>= 10 tokens here) held once, not 6 times
        assert short["input_ids"].shape[1] % 16 == 0
        assert short["input_ids"].shape[1] < full["input_ids"].shape[1]


def test_shared_prefix_needs_the_varlen_kernel(world, tmp_path):
    with pytest.raises(ValueError, match=r"shared_prefix needs training\.attn_implementation"):
        _first_step(world, tmp_path, padding_free=True, shared_prefix=True)


def test_shared_prefix_logs_and_counts_the_rows_tokens(world, tmp_path, varlen_stand_in):
    """With shared_prefix the logged loss, entropy, token accuracy and token count, and the
    Trainer's count of tokens seen (saved in checkpoints), are those of the rows as they are:
    the prefix counts once per row, though computed once per micro-batch."""
    _, tok, rows = world

    def run(path, **knobs):
        trainer = build_trainer(
            model=_model(tok, kernels.VARLEN), tokenizer=tok, rows=rows,
            spec=student_spec({**TRAINING, "micro_batch": 6, "effective_batch": 6,
                               "padding_free": True, "attn_implementation": kernels.VARLEN,
                               "sync_free_logging": True, **knobs}),
            seed=1, output_dir=path, run_name="t", report_to=[],
            overrides={"max_steps": 2, "save_strategy": "no"},
        )  # fmt: skip
        trainer.train()
        return trainer

    whole, shared = run(tmp_path / "whole"), run(tmp_path / "shared", shared_prefix=True)
    _same_logs(whole, shared)
    assert shared.state.num_input_tokens_seen == whole.state.num_input_tokens_seen > 0
    assert shared.token_count.tokens == whole.token_count.tokens


def _saved_bytes(model, ids) -> int:
    """Bytes autograd keeps for the backward pass of one forward pass."""
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(input_ids=ids).logits.sum()
    return total


def test_checkpoint_first_layers_keeps_fewer_activations_and_the_same_names():
    cfg = Qwen2Config(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                      num_attention_heads=4, num_key_value_heads=2)  # fmt: skip
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(cfg).train()
    ids = torch.randint(0, 64, (2, 40))
    names = [n for n, _ in model.named_parameters()]
    kept = _saved_bytes(model, ids)
    assert kernels.checkpoint_first_layers(model, 2) == 2
    assert kernels.checkpoint_first_layers(model, 2) == 2  # idempotent: not wrapped twice
    layers = kernels.decoder_layers(model)
    assert [type(x).__name__ for x in layers] == ["Qwen2DecoderLayer"] * 3
    assert type(layers[0]) is type(layers[1]) and type(layers[0]).__mro__[1] is type(layers[2])
    assert [n for n, _ in model.named_parameters()] == names
    fewer = _saved_bytes(model, ids)
    # two of three layers keep only their inputs: well under the full set
    assert fewer < 0.6 * kept, (fewer, kept)
    with torch.no_grad():  # no gradients, no checkpoint: the plain call
        model(input_ids=ids)
    with pytest.raises(ValueError, match=r"checkpoint_layers: 4 is more than the model's 3"):
        kernels.checkpoint_first_layers(model, 4)


def test_checkpoint_layers_refuses_full_gradient_checkpointing(world, tmp_path):
    with pytest.raises(ValueError, match=r"checkpoint_layers: gradient_checkpointing already"):
        _first_step(world, tmp_path, checkpoint_layers=1, gradient_checkpointing=True)
