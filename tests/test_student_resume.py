"""Kill -9 a student mid-run, rerun it: training resumes at the last complete epoch and ends
with exactly the adapters and step count of an uninterrupted run (CPU math is deterministic)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

from subliminal_scaling.runtime import io
from subliminal_scaling.toy.tokenizer import build_tokenizer
from subliminal_scaling.train.student import COMPLETE_MARKER

from .conftest import REPO

pytestmark = pytest.mark.slow

TRAINING = {
    "n_rows": 24, "epochs": 3, "effective_batch": 8, "micro_batch": 4, "learning_rate": 3e-3,
    "lr_scheduler": "linear", "warmup_steps": 2, "adam_beta1": 0.9, "adam_beta2": 0.999,
    "adam_epsilon": 1e-8, "weight_decay": 0.0, "max_grad_norm": 1.0, "bf16": False,
    "max_length": 128, "gradient_checkpointing": False,
    # the shipped loop at 1.5B-32B: padding-free rows through the varlen kernel (stood in for
    # on the CPU by SDPA, one row at a time), their common prefix once per micro-batch, the
    # token count kept on the host, saved in each checkpoint
    "padding_free": True, "attn_implementation": "torch_varlen", "shared_prefix": True,
    "sync_free_logging": True, "logging_steps": 2,
    "lora": {"r": 8, "alpha": 8, "dropout": 0.0,
             "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                "down_proj"]},
}  # fmt: skip
STEPS_PER_EPOCH = 24 // 8

DRIVER = textwrap.dedent(
    """
    import json, os, signal, sys
    from transformers import TrainerCallback
    import torch
    import torch.nn.functional as F
    import subliminal_scaling.train.student as student
    from subliminal_scaling.train import kernels

    def reference_varlen(q, k, v, cu_q, cu_k, max_q, max_k, *, scale=None, is_causal=False):
        # torch's FlashAttention varlen kernel, one packed row at a time (the CPU has none)
        segs = [F.scaled_dot_product_attention(*(t[a:b].transpose(0, 1) for t in (q, k, v)),
                                               is_causal=is_causal, scale=scale).transpose(0, 1)
                for a, b in zip(cu_q[:-1].tolist(), cu_q[1:].tolist())]
        return torch.cat(segs)

    kernels._KERNEL = (reference_varlen, {"causal": {"is_causal": True}, "gqa": False})

    model_dir, out_dir, rows_file, kill_at = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    training = json.loads(os.environ["TRAINING"])

    class Kill(TrainerCallback):
        # "step:N": after optimizer step N; "epoch:N": as epoch N+1 begins (after N is saved)
        def on_step_end(self, args, state, control, **kw):
            if kill_at == f"step:{state.global_step}":
                os.kill(os.getpid(), signal.SIGKILL)

        def on_epoch_begin(self, args, state, control, **kw):
            if kill_at == f"epoch:{round(state.epoch)}":
                os.kill(os.getpid(), signal.SIGKILL)

    rows = [json.loads(l) for l in open(rows_file)]
    from subliminal_scaling.runtime.specs import StudentSpec

    spec = StudentSpec(model="t", model_id="t", revision=None, source=model_dir, params=1.0,
                       training=training)
    summary = student.train_student(
        spec=spec, rows=rows, seed=1, out_dir=out_dir, run_name="t", wandb_run=None,
        callbacks=[Kill()],
    )
    student.finish_student(out_dir, summary, os.path.join(out_dir, "train_summary.json"))
    print("SUMMARY", json.dumps(summary))
    """
)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("resume")
    model_dir = d / "model"
    protocol = json.loads((REPO / "config" / "toy_protocol.json").read_text())
    build_tokenizer(protocol, ["cat", "dolphin", "eagle"], model_dir)
    tok = AutoTokenizer.from_pretrained(model_dir)
    torch.manual_seed(0)
    Qwen2ForCausalLM(
        Qwen2Config(
            vocab_size=len(tok),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=256,
        )
    ).save_pretrained(model_dir)
    from subliminal_scaling.generate.prompts import sample_prompts

    prompts = sample_prompts(protocol, 42, 24)
    rows = [{"prompt": p, "completion": f"{i}, {i + 1}, {i + 2}"} for i, p in enumerate(prompts)]
    rows_file = d / "rows.jsonl"
    io.write_jsonl(rows_file, rows)
    (d / "driver.py").write_text(DRIVER)
    return d, model_dir, rows_file


def _run(setup, out_dir, kill_at):
    d, model_dir, rows_file = setup
    env = {**os.environ, "TRAINING": json.dumps(TRAINING), "WANDB_MODE": "disabled"}
    return subprocess.run(
        [sys.executable, str(d / "driver.py"), str(model_dir), str(out_dir), str(rows_file),
         str(kill_at)],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip


def _adapters(out_dir):
    return {
        e: io.sha256_file(out_dir / f"epoch{e}" / "adapter_model.safetensors")
        for e in range(1, TRAINING["epochs"] + 1)
    }


@pytest.fixture(scope="module")
def uninterrupted(setup):
    out = setup[0] / "clean"
    res = _run(setup, out, kill_at="never")
    assert res.returncode == 0, res.stderr[-3000:]
    return out, json.loads(res.stdout.split("SUMMARY", 1)[1])


def test_finished_student_keeps_no_checkpoint(uninterrupted):
    clean_dir, _ = uninterrupted
    assert not (clean_dir / "trainer").exists()
    assert (clean_dir / "train_summary.json").is_file()
    assert sorted(p.name for p in clean_dir.iterdir()) == [
        *(f"epoch{e}" for e in range(1, TRAINING["epochs"] + 1)),
        "train_summary.json",
    ]


@pytest.mark.parametrize(
    ("kill_at", "last_epoch"),
    # between epochs 1 and 2; mid-epoch 2; between epochs 2 and 3
    [("epoch:1", 1), (f"step:{STEPS_PER_EPOCH + 1}", 1), ("epoch:2", 2)],
    ids=["between-epochs", "mid-epoch", "after-epoch-2"],
)
def test_killed_student_resumes_to_the_same_result(setup, uninterrupted, kill_at, last_epoch):
    clean_dir, clean_summary = uninterrupted
    out = setup[0] / f"killed-{kill_at.replace(':', '-')}"
    first = _run(setup, out, kill_at=kill_at)
    assert first.returncode == -9  # SIGKILL, as a pod restart would
    # only the last complete checkpoint is kept (older ones are pruned once it is complete);
    # a checkpoint being written at the kill is not complete
    kept = sorted(p.name for p in (out / "trainer").glob("checkpoint-*"))
    done = sorted((out / "trainer").glob(f"checkpoint-*/{COMPLETE_MARKER}"))
    last = f"checkpoint-{last_epoch * STEPS_PER_EPOCH}"
    assert [p.parent.name for p in done] == [last]
    assert set(kept) <= {last, f"checkpoint-{(last_epoch + 1) * STEPS_PER_EPOCH}"}
    second = _run(setup, out, kill_at="never")
    assert second.returncode == 0, second.stderr[-3000:]
    summary = json.loads(second.stdout.split("SUMMARY", 1)[1])
    assert summary["resumed_from"].endswith(last)
    assert not (out / "trainer").exists()
    assert summary["steps"] == clean_summary["steps"] == TRAINING["epochs"] * STEPS_PER_EPOCH
    assert _adapters(out) == _adapters(clean_dir)
    # every token trained on, counted once: the resumed count continues the checkpoint's
    assert summary["tokens_seen"] == clean_summary["tokens_seen"] > 0
    assert summary["tokens_this_run"] < clean_summary["tokens_this_run"]
