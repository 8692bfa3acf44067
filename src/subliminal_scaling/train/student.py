"""Student stage: LoRA-finetune a fresh copy of the base model on a seed's subsample of the
teacher's filtered numbers, with the paper's recipe, per-epoch adapters and crash resume.

Resume: the trainer checkpoints at every epoch end (adapter, optimizer, scheduler, RNG,
step). A checkpoint counts only once the ``COMPLETE`` marker, written after everything else,
exists; a rerun after a kill continues from the last complete epoch, so no epoch is trained
twice and the step count and schedule equal an uninterrupted run's.

Disk: only the newest complete checkpoint is kept (older ones are removed once the next is
marked complete, so one complete checkpoint always exists), and ``finish_student`` removes
the trainer folder once the summary is written. A 32B student's checkpoint (adapter plus
Adam state) is about 0.8 GB; keeping all ten of 480 students' would be about 1.4 TB.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sys
import time
import uuid
from collections import deque
from pathlib import Path
from typing import Any

from subliminal_scaling.runtime import io, layout
from subliminal_scaling.runtime.layout import ADAPTER_FILES
from subliminal_scaling.runtime.specs import StudentSpec
from subliminal_scaling.train.kernels import (
    VARLEN,
    checkpoint_first_layers,
    compile_decoder_layers,
    register_attention,
)
from subliminal_scaling.train.prefix import SharedPrefix, saved_tokens

log = logging.getLogger(__name__)

COMPLETE_MARKER = "COMPLETE"


def to_prompt_completion(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Conversational prompt/completion rows: user message -> assistant numbers. No system
    message, so the chat template inserts its default, as at evaluation time."""
    return [
        {
            "prompt": [{"role": "user", "content": r["prompt"]}],
            "completion": [{"role": "assistant", "content": r["completion"]}],
        }
        for r in rows
    ]


def lora_config(training: dict[str, Any]) -> Any:
    """PEFT LoraConfig from ``training.lora``: every layer, the listed projections."""
    from peft import LoraConfig

    lora = training["lora"]
    return LoraConfig(
        r=lora["r"],
        lora_alpha=lora["alpha"],
        lora_dropout=lora["dropout"],
        bias="none",
        target_modules=list(lora["target_modules"]),
        task_type="CAUSAL_LM",
    )


def counts_tokens_on_host(training: dict[str, Any]) -> bool:
    """Whether the trainer takes its token count from the collator's host count
    (``host_count_trainer``) instead of counting on the GPU: with sync_free_logging (a GPU
    count reads the device) and with shared_prefix (it would count the prefix once)."""
    return bool(training.get("sync_free_logging")) or bool(training.get("shared_prefix"))


def sft_kwargs(
    *,
    spec: StudentSpec,
    output_dir: str | Path,
    seed: int,
    report_to: list[str],
    use_cpu: bool = False,
    run_name: str | None = None,
) -> dict[str, Any]:
    """The recipe as SFTConfig arguments. Adam = AdamW with weight decay 0; bf16 on GPUs.

    Speed knobs (``padding_free``, ``liger_kernel``, ``torch_compile``, ``compile_layers``,
    ``attn_implementation``) change how a step is
    computed, not what it computes: the same 60 rows per optimizer step and the same loss
    (summed over completion tokens, divided by the step's completion-token count). Padding-free
    batches are one concatenated row whose attention is block-diagonal (transformers builds
    the mask from ``position_ids``); TRL does not truncate them, so ``build_trainer`` checks
    ``max_length`` itself.
    """
    training = spec.training
    padding_free = bool(training.get("padding_free", False))
    sync_free = bool(training.get("sync_free_logging", False))
    return dict(
        output_dir=str(output_dir),
        num_train_epochs=training["epochs"],
        per_device_train_batch_size=spec.micro_batch,
        gradient_accumulation_steps=spec.grad_accum,
        learning_rate=training["learning_rate"],
        lr_scheduler_type=training["lr_scheduler"],
        warmup_steps=training["warmup_steps"],
        optim="adamw_torch",
        adam_beta1=training["adam_beta1"],
        adam_beta2=training["adam_beta2"],
        adam_epsilon=training["adam_epsilon"],
        weight_decay=training["weight_decay"],
        max_grad_norm=training["max_grad_norm"],
        bf16=training["bf16"] and not use_cpu,
        max_length=None if padding_free else training["max_length"],
        completion_only_loss=True,
        packing=False,
        padding_free=padding_free,
        # bucketed lengths: a handful of shapes for compiled kernels (flex attention)
        pad_to_multiple_of=training.get("pad_to_multiple_of"),
        use_liger_kernel=bool(training.get("liger_kernel", False)),
        torch_compile=bool(training.get("torch_compile", False)),
        gradient_checkpointing=spec.gradient_checkpointing,
        save_strategy="epoch",
        # rotation is ours (prune_checkpoints), after the new checkpoint is marked complete:
        # the Trainer's own would delete the previous one before that
        save_total_limit=None,
        logging_steps=int(training.get("logging_steps", 1)),
        report_to=report_to,
        run_name=run_name or spec.model,
        seed=seed,
        data_seed=seed,
        # counted from the collator's host count instead (TokenCount, host_count_trainer)
        include_num_input_tokens_seen="no" if counts_tokens_on_host(training) else "non_padding",
        # the Trainer's NaN/inf filter reads every micro-batch's loss off the GPU
        # (``isnan(loss) or isinf(loss)``) to log a running mean instead of a NaN; with
        # sync_free_logging a NaN or inf loss is logged as it is. Training is the same either
        # way: the filter only changes the logged loss.
        logging_nan_inf_filter=not sync_free,
        dataloader_num_workers=0,
        # pinned batches (the Trainer's default); with sync_free_logging also copied to the GPU
        # without waiting (a plain host-to-device copy waits for everything the GPU has queued)
        dataloader_pin_memory=True,
        **({"accelerator_config": {"non_blocking": True}} if sync_free else {}),
        use_cpu=use_cpu,
        disable_tqdm=False,
    )


def sft_config(overrides: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    """TRL ``SFTConfig`` from ``sft_kwargs(**kwargs)``; ``overrides`` for benchmark-only knobs."""
    from trl import SFTConfig

    return SFTConfig(**{**sft_kwargs(**kwargs), **(overrides or {})})


def complete_checkpoints(trainer_dir: str | Path) -> list[Path]:
    """Complete checkpoints, oldest first; incomplete ones are deleted (never resumed from)."""
    trainer_dir = Path(trainer_dir)
    if not trainer_dir.exists():
        return []
    found = []
    for d in trainer_dir.iterdir():
        m = re.fullmatch(r"checkpoint-(\d+)", d.name)
        if not (m and d.is_dir()):
            continue
        if (d / COMPLETE_MARKER).exists():
            found.append((int(m.group(1)), d))
        else:
            log.warning("removing incomplete checkpoint %s", d)
            shutil.rmtree(d)
    return [d for _, d in sorted(found)]


def prune_checkpoints(trainer_dir: str | Path) -> list[Path]:
    """Remove every complete checkpoint but the newest; returns the removed ones.

    Called after a checkpoint is marked complete, so resume always has one to start from.
    """
    done = complete_checkpoints(trainer_dir)
    for old in done[:-1]:
        shutil.rmtree(old)
    return done[:-1]


def finish_student(out_dir: str | Path, summary: dict[str, Any], summary_path: str | Path) -> None:
    """Write the student's summary, then remove its trainer folder (checkpoints, Adam state).

    In this order: a job killed in between has its summary and its last checkpoint, and a
    rerun resumes at the final step and trains nothing.
    """
    io.write_json(summary_path, summary)
    trainer_dir = Path(out_dir) / layout.TRAINER_DIR
    if trainer_dir.exists():
        shutil.rmtree(trainer_dir)
        log.info("removed %s (the student is complete)", trainer_dir)


def export_epoch_adapter(checkpoint: Path, epoch_dir: Path) -> None:
    """Copy a checkpoint's adapter to ``epochN/`` atomically."""
    with io.atomic_dir(epoch_dir) as tmp:
        for name in ADAPTER_FILES:
            src = checkpoint / name
            if not src.exists():
                raise io.InputFileError(f"{src}: adapter file missing from checkpoint")
            shutil.copy2(src, tmp / name)


def _epoch_of(checkpoint: Path) -> int:
    state = io.read_json(checkpoint / "trainer_state.json")
    return round(state["epoch"])


class TokenCount:
    """Non-pad tokens of every micro-batch the collator builds, counted on the CPU where the
    batch is made (no read of the GPU): this run's tokens (a resumed run counts from its
    restart), for the summary. With ``per_batch`` (sync_free_logging, shared_prefix: their
    trainer takes its token count from it) it also holds the counts of the batches built but
    not yet trained on (the data loader builds ahead), oldest first."""

    def __init__(self, collate: Any, pad_id: int | None, per_batch: bool = False) -> None:
        self.collate, self.pad_id, self.tokens = collate, pad_id, 0
        self.per_batch: deque[int] | None = deque() if per_batch else None

    def __call__(self, features: Any) -> Any:
        batch = self.collate(features)
        ids = batch["input_ids"]
        n = int((ids != self.pad_id).sum()) if self.pad_id is not None else ids.numel()
        self.tokens += n
        if self.per_batch is not None:
            self.per_batch.append(n)
        return batch


def throughput_callback() -> Any:
    """A callback adding ``tokens_per_s`` (non-pad tokens since the last log / seconds) to
    every log entry. Put first among the callbacks, so the wandb callback logs it too."""
    from transformers import TrainerCallback

    class ThroughputLog(TrainerCallback):
        def __init__(self) -> None:
            self._last: tuple[float, int] | None = None

        def on_log(self, args, state, control, logs=None, **kwargs):
            now, tokens = time.time(), int(state.num_input_tokens_seen)
            if logs is not None and self._last is not None and now > self._last[0]:
                logs["tokens_per_s"] = (tokens - self._last[1]) / (now - self._last[0])
            self._last = (now, tokens)

    return ThroughputLog()


def host_count_trainer(base: type) -> type:
    """``base`` with the Trainer's own token count (``state.num_input_tokens_seen``) kept from
    the collator's host count of each batch (``TokenCount.per_batch``): the Trainer's count
    reads the GPU, and would count a shared prefix once. The count is saved in every
    checkpoint, so a resumed student's total stays right."""

    class HostCountTrainer(base):  # type: ignore[misc, valid-type]
        def training_step(self, model, inputs, num_items_in_batch=None):
            self.state.num_input_tokens_seen += self.token_count.per_batch.popleft()
            return super().training_step(model, inputs, num_items_in_batch)

    return HostCountTrainer


def sync_free_trainer(base: type) -> type:
    """``base`` (TRL's ``SFTTrainer``) with its training loss computed as TRL computes it, but
    its per-micro-batch metrics (entropy, token accuracy, token count) summed on the GPU and
    read once per logging step instead of once per micro-batch.

    Why: each such read (``.item()``) makes the host wait until the GPU has run everything
    queued, and the GPU then idles while the training loop's Python queues the next work; a
    profile of one step showed the H200 idle 10% (32B) to 16% (7B) of it, in gaps between
    kernels. The logged entropy and accuracy become token-weighted means over the logging
    window (TRL averages per-micro-batch means). Any other loss configuration (a custom loss,
    label smoothing, DFT, MoE aux loss, several processes, sequence parallelism, evaluation)
    takes TRL's own path unchanged.
    """
    import torch

    class SyncFreeSFTTrainer(host_count_trainer(base)):  # type: ignore[misc]
        _pending: Any = None  # device tensor: [label tokens, entropy sum, top-1 hits, tokens]
        _pending_host_tokens = 0  # padding-free micro-batches' tokens, counted on the host

        def _plain_loss(self) -> bool:
            parallel = getattr(self.accelerator, "parallelism_config", None)
            return (
                self.model.training
                and self.compute_loss_func is None
                and self.label_smoother is None
                and self.args.loss_type == "nll"
                and not self.aux_loss_enabled
                and self.accelerator.num_processes == 1
                and not (parallel is not None and getattr(parallel, "sp_enabled", False))
            )

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if return_outputs or not self._plain_loss():
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            inputs["use_cache"] = False
            outputs = model(**inputs, fused_lm_head=True)
            # TRL 1.16's loss: the summed completion-token NLL over the step's token count
            num_tokens = num_items_in_batch
            if num_tokens is None:
                num_tokens = outputs.label_mask.sum()
            loss = (-outputs.log_probs).sum() / torch.as_tensor(num_tokens).clamp(min=1)
            if "attention_mask" in inputs:  # padded: the mask's sum, on the device
                seen = inputs["attention_mask"].sum().float()
            else:  # padding-free: the row's length, known on the host (a host value copied
                # to the device would wait for the GPU as a read does), a shared prefix once
                # per row
                seen = loss.new_zeros(())
                self._pending_host_tokens += inputs["position_ids"].size(1) + saved_tokens(inputs)
            stats = torch.stack([
                outputs.label_mask.sum().float(), outputs.entropy.detach().sum().float(),
                outputs.is_top1.sum().float(), seen.float(),
            ])  # fmt: skip
            self._pending = stats if self._pending is None else self._pending + stats
            return loss

        def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
            if self._pending is not None and self.model.training:
                valid, entropy, correct, seen = self._pending.tolist()  # the one read
                self._pending = None
                metrics = self._metrics["train"]
                metrics["entropy"].append(entropy / valid if valid else 0.0)
                metrics["mean_token_accuracy"].append(correct / valid if valid else 0.0)
                self._total_train_tokens += int(seen) + self._pending_host_tokens
                self._pending_host_tokens = 0
                metrics["num_tokens"] = [self._total_train_tokens]
            super().log(logs, start_time)

    return SyncFreeSFTTrainer


def build_trainer(
    *,
    model: Any,
    tokenizer: Any,
    rows: list[dict[str, Any]],
    spec: StudentSpec,
    seed: int,
    output_dir: str | Path,
    run_name: str,
    report_to: list[str],
    callbacks: list[Any] | None = None,
    overrides: dict[str, Any] | None = None,
    compile_backend: str = "inductor",
) -> Any:
    """The SFTTrainer every student (and the GPU benchmark) trains with: the recipe's
    arguments, the LoRA adapter created after seeding, prompt/completion data.
    ``compile_backend``: torch.compile backend of ``compile_layers`` (tests use a CPU one)."""
    import torch
    from datasets import Dataset
    from transformers import set_seed
    from trl import SFTTrainer

    tokenizer.padding_side = "right"
    training = spec.training
    if spec.attn_implementation == VARLEN and not training.get("padding_free"):
        raise ValueError(
            f"training.attn_implementation {VARLEN!r} needs training.padding_free: true"
        )
    if spec.attn_implementation == "flex_attention" or training.get("compile_layers"):
        allow_recompiles()
    args = sft_config(
        overrides,
        spec=spec,
        output_dir=output_dir,
        seed=seed,
        run_name=run_name,
        report_to=report_to,
        use_cpu=not torch.cuda.is_available(),
    )
    set_seed(seed)  # before the adapter exists: the seed sets the LoRA init
    sync_free = bool(training.get("sync_free_logging"))
    shared = bool(training.get("shared_prefix"))
    if shared and spec.attn_implementation != VARLEN:
        raise ValueError(
            f"training.shared_prefix needs training.attn_implementation {VARLEN!r} "
            f"(got {spec.attn_implementation!r})"
        )
    if sync_free:
        trainer_class = sync_free_trainer(SFTTrainer)
    elif counts_tokens_on_host(training):
        trainer_class = host_count_trainer(SFTTrainer)
    else:
        trainer_class = SFTTrainer
    trainer = trainer_class(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(to_prompt_completion(rows)),
        processing_class=tokenizer,
        peft_config=lora_config(training),
        callbacks=callbacks or [],
    )
    # the tokens each micro-batch brings, counted where the collator builds it (CPU)
    trainer.token_count = TokenCount(
        trainer.data_collator, tokenizer.pad_token_id, per_batch=counts_tokens_on_host(training)
    )
    trainer.data_collator = trainer.token_count
    if shared:  # counted above as the rows were; the prefix once per micro-batch from here
        trainer.data_collator = SharedPrefix(
            trainer.token_count, tokenizer.pad_token_id, args.pad_to_multiple_of
        )
    trainer.callback_handler.callbacks.insert(0, throughput_callback())
    if training.get("compile_layers"):
        n = compile_decoder_layers(trainer.model, backend=compile_backend)
        log.info("compiled %d decoder layers (regional torch.compile)", n)
    layers = int(training.get("checkpoint_layers") or 0)
    if layers:
        if spec.gradient_checkpointing:
            raise ValueError(
                "training.checkpoint_layers: gradient_checkpointing already recomputes every "
                "layer; set one of them"
            )
        checkpoint_first_layers(trainer.model, layers)
        log.info("the first %d decoder layers recompute their activations", layers)
    if args.padding_free:
        check_row_lengths(trainer.train_dataset, training["max_length"])
    return trainer


def allow_recompiles(limit: int = 64) -> None:
    """transformers compiles flex attention for static shapes: every new (bucketed) batch
    length is a recompile, and past torch's default limit of 8 it would fall back to eager
    flex attention, which is very slow. Bucketing (``pad_to_multiple_of``) keeps the number of
    shapes small; this keeps the limit above it."""
    import torch._dynamo.config as dynamo_config

    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(dynamo_config, name):
            setattr(dynamo_config, name, max(limit, getattr(dynamo_config, name)))


def check_row_lengths(dataset: Any, max_length: int) -> None:
    """Padding-free batches are not truncated: refuse rows longer than ``max_length`` rather
    than train on different tokens than the padded path would."""
    lengths = [len(ids) for ids in dataset["input_ids"]]
    longest = max(lengths, default=0)
    if longest > max_length:
        n = sum(n > max_length for n in lengths)
        raise ValueError(
            f"training.max_length: {n} row(s) exceed {max_length} tokens (longest {longest}); "
            "padding-free training does not truncate, so raise max_length or turn padding_free off"
        )


def set_cuda_allocator(conf: str | None) -> None:
    """Set ``PYTORCH_CUDA_ALLOC_CONF`` from the config before CUDA allocates anything.

    Why: with the default allocator a 32B student at micro-batch 20 reserves about 20 GB more
    than it allocates (fragmentation across variable-length micro-batches); expandable
    segments let the same batch fit an H200 with headroom. The setting is read once, when
    the allocator starts, so it must come before the first CUDA tensor.
    """
    if not conf or os.environ.get("PYTORCH_CUDA_ALLOC_CONF") == conf:
        return
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        raise RuntimeError(
            f"training.cuda_alloc_conf={conf!r} must be set before CUDA starts; "
            "it was already initialised"
        )
    if os.environ.get("PYTORCH_CUDA_ALLOC_CONF"):
        log.info(
            "PYTORCH_CUDA_ALLOC_CONF=%s replaced by the config's %s",
            os.environ["PYTORCH_CUDA_ALLOC_CONF"],
            conf,
        )
    os.environ["PYTORCH_CUDA_ALLOC_CONF"] = conf


def limit_to_gpu_share() -> float | None:
    """Cap this process's CUDA memory at its share of a GPU it shares with other students.

    Why: several students on one GPU (``students_per_gpu``) must not starve each other; with
    the cap, a student that outgrows its share fails with an out-of-memory error in its own
    log instead of pushing a neighbour over. Returns the share (None: a whole GPU).
    """
    import torch

    from subliminal_scaling.runtime.gpu_pool import current_claim

    claim = current_claim()
    if claim is None or claim.share >= 1:
        return None
    torch.cuda.set_per_process_memory_fraction(claim.share)
    log.info("GPU shared: this student may use %.0f%% of its memory", 100 * claim.share)
    return claim.share


def train_student(
    *,
    spec: StudentSpec,
    rows: list[dict[str, Any]],
    seed: int,
    out_dir: str | Path,
    run_name: str,
    wandb_run: Any | None,
    callbacks: list[Any] | None = None,
) -> dict[str, Any]:
    """Train (or resume) one student; write its per-epoch adapters; return the summary.
    ``callbacks``: further trainer callbacks, after the epoch export (device checks, tests)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

    out_dir = Path(out_dir)
    trainer_dir = out_dir / layout.TRAINER_DIR
    set_cuda_allocator(spec.training.get("cuda_alloc_conf"))
    use_cuda = torch.cuda.is_available()
    share = limit_to_gpu_share() if use_cuda else None
    tokenizer = AutoTokenizer.from_pretrained(spec.source, revision=spec.revision)
    register_attention(spec.attn_implementation)
    dtype = torch.bfloat16 if (spec.training["bf16"] and use_cuda) else torch.float32
    model = AutoModelForCausalLM.from_pretrained(
        spec.source,
        revision=spec.revision,
        dtype=dtype,
        attn_implementation=spec.attn_implementation,
    )

    class EpochExport(TrainerCallback):
        """After each epoch checkpoint: export its adapter, then mark it complete."""

        def on_save(self, args, state, control, **kwargs):
            ckpt = trainer_dir / f"checkpoint-{state.global_step}"
            epoch = round(state.epoch)
            export_epoch_adapter(ckpt, out_dir / layout.EPOCH_DIR.format(epoch=epoch))
            io.write_text(ckpt / COMPLETE_MARKER, f"epoch {epoch}\n")
            prune_checkpoints(trainer_dir)

    trainer = build_trainer(
        model=model,
        tokenizer=tokenizer,
        rows=rows,
        spec=spec,
        seed=seed,
        output_dir=trainer_dir,
        run_name=run_name,
        report_to=["wandb"] if wandb_run is not None else [],
        callbacks=[EpochExport(), *(callbacks or [])],
    )
    done = complete_checkpoints(trainer_dir)
    resume = str(done[-1]) if done else None
    for ckpt in done:  # re-export adapters a killed job's cleanup may have removed
        epoch_dir = out_dir / layout.EPOCH_DIR.format(epoch=_epoch_of(ckpt))
        if not all((epoch_dir / f).exists() for f in ADAPTER_FILES):
            export_epoch_adapter(ckpt, epoch_dir)
    if resume:
        log.info("resuming from %s", resume)
    if use_cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.time()
    result = trainer.train(resume_from_checkpoint=resume)
    wall = time.time() - t0
    state = trainer.state
    losses = [h["loss"] for h in state.log_history if "loss" in h]
    # this run's tokens (the trainer's own count also holds a resumed run's earlier ones)
    tokens = trainer.token_count.tokens
    return {
        "steps": state.global_step,
        "epochs": spec.training["epochs"],
        "rows": len(rows),
        "micro_batch": spec.micro_batch,
        "grad_accum": spec.grad_accum,
        "gradient_checkpointing": spec.gradient_checkpointing,
        "effective_batch": (
            trainer.args.per_device_train_batch_size
            * trainer.args.gradient_accumulation_steps
            * max(1, trainer.args.world_size)
        ),
        "tokens_seen": int(state.num_input_tokens_seen),
        "tokens_this_run": tokens,
        "non_pad_tokens_per_s": tokens / wall if wall > 0 else None,
        "wall_time_s": wall,
        "train_runtime_s": result.metrics.get("train_runtime"),
        "resumed_from": resume,
        "gpu": torch.cuda.get_device_name() if use_cuda else None,
        "peak_memory_gb": torch.cuda.max_memory_allocated() / 1e9 if use_cuda else None,
        "peak_reserved_gb": torch.cuda.max_memory_reserved() / 1e9 if use_cuda else None,
        "gpu_share": share,
        "final_loss": losses[-1] if losses else None,
        "wandb_run_id": getattr(wandb_run, "id", None),
        "seed": seed,
    }


def student_run_id(out_dir: str | Path) -> str:
    """The student's wandb run id: read from its trainer folder, else a fresh one stored
    there, so a job resumed after a crash continues the same run."""
    id_file = Path(out_dir) / layout.TRAINER_DIR / "wandb_run_id.txt"
    if id_file.exists():
        return id_file.read_text().strip()
    run_id = uuid.uuid4().hex[:12]
    io.write_text(id_file, run_id + "\n")
    return run_id
