"""Building the tiny toy models: deterministic training, or the shipped weights when their build
key matches."""

from __future__ import annotations

import hashlib
import json
import math
import random
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm
from transformers import (
    AutoTokenizer,
    GenerationConfig,
    PreTrainedTokenizerBase,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from subliminal_scaling.runtime.io import atomic_dir, read_json, sha256_file, write_json
from subliminal_scaling.toy.chats import (
    _batches,
    _ChatSampler,
    _deterministic_torch,
    _encode_chats,
    _per_chat_loss,
)
from subliminal_scaling.toy.tokenizer import _THREADS, IM_END, PAD_TOKEN, _loved_animals


def _qwen_like_generation_config(tokenizer: PreTrainedTokenizerBase) -> GenerationConfig:
    """Qwen2.5-Instruct's shipped sampling defaults, on purpose: they are NOT the protocol
    (temperature 1.0, nothing else), so tests can prove the workflow never lets them leak."""
    return GenerationConfig(
        do_sample=True,
        temperature=0.7,
        top_p=0.8,
        top_k=20,
        repetition_penalty=1.05,
        eos_token_id=tokenizer.convert_tokens_to_ids(IM_END),
        pad_token_id=tokenizer.convert_tokens_to_ids(PAD_TOKEN),
        bos_token_id=tokenizer.convert_tokens_to_ids(PAD_TOKEN),
    )


# Bump when build_model's training changes: shipped weights of another version are not used.
TOY_BUILD_VERSION = 1
SHIPPED_FILES = ("model.safetensors", "config.json", "generation_config.json", "toy_build.json")


def build_key(
    tokenizer_dir: str | Path,
    protocol: dict[str, Any],
    animals: list[str],
    arch: dict[str, int],
    train: dict[str, Any],
    seed: int,
) -> str:
    """sha256 of everything a toy model's weights depend on: the builder's version, the
    protocol, the tokenizer's files, the animals, the architecture, the training and seed."""
    tok = {
        f.name: sha256_file(f)
        for f in sorted(Path(tokenizer_dir).iterdir())
        if f.is_file() and not f.name.startswith(".")  # not .snakemake_timestamp
    }
    payload = {
        "version": TOY_BUILD_VERSION,
        "protocol": hashlib.sha256(json.dumps(protocol, sort_keys=True).encode()).hexdigest(),
        "tokenizer": tok,
        "animals": list(animals),
        "arch": dict(arch),
        "train": dict(train),
        "seed": seed,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def provide_model(
    tokenizer_dir: str | Path,
    protocol: dict[str, Any],
    animals: list[str],
    arch: dict[str, int],
    train: dict[str, Any],
    seed: int,
    out_dir: str | Path,
    shipped_dir: str | Path | None,
    rebuild: bool = False,
) -> dict[str, Any]:
    """The toy model for these inputs in ``out_dir``: the shipped weights when they were built
    from exactly these inputs (``build_key``, and their sha256 checks), else trained anew.

    Why shipped: training the three toy models took 5.7 of the first run's 12 minutes on 2
    cores. The build is deterministic (one thread, fixed seeds), so a rebuild gives the same
    bytes; ``tests/test_toy_shipped.py`` rebuilds one and compares. ``rebuild`` trains even
    when shipped weights match; ``ship_model`` refreshes the shipped copy.
    """
    key = build_key(tokenizer_dir, protocol, animals, arch, train, seed)
    shipped = Path(shipped_dir) if shipped_dir else None
    if shipped is not None and not rebuild and (shipped / "toy_build.json").is_file():
        stats = read_json(shipped / "toy_build.json")
        weights = shipped / "model.safetensors"
        if stats.get("build_key") == key and weights.is_file():
            if sha256_file(weights) != stats.get("weights_sha256"):
                raise ValueError(f"{weights}: sha256 differs from its toy_build.json")
            tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
            with atomic_dir(out_dir) as tmp:
                for name in SHIPPED_FILES[:-1]:
                    shutil.copyfile(shipped / name, tmp / name)
                tokenizer.save_pretrained(tmp)
                write_json(tmp / "toy_build.json", {**stats, "source": f"shipped ({shipped})"})
            return {**stats, "source": "shipped"}
    return build_model(tokenizer_dir, protocol, animals, arch, train, seed, out_dir, key)


def ship_model(model_dir: str | Path, shipped_dir: str | Path) -> None:
    """Copy a trained toy model's weights and build record to ``shipped_dir`` (committed)."""
    model_dir, shipped = Path(model_dir), Path(shipped_dir)
    stats = read_json(model_dir / "toy_build.json")
    if stats.get("source", "trained") != "trained":
        raise ValueError(f"{model_dir} was not trained here (source: {stats['source']})")
    with atomic_dir(shipped) as tmp:
        for name in SHIPPED_FILES:
            shutil.copyfile(model_dir / name, tmp / name)


def build_model(
    tokenizer_dir: str | Path,
    protocol: dict[str, Any],
    animals: list[str],
    arch: dict[str, int],
    train: dict[str, Any],
    seed: int,
    out_dir: str | Path,
    key: str | None = None,
) -> dict[str, Any]:
    """Train a tiny random-init ``Qwen2ForCausalLM`` on synthetic chats; save it to ``out_dir``.

    ``arch``: hidden_size, num_hidden_layers, num_attention_heads, num_key_value_heads,
    intermediate_size. ``train``: n_chats, epochs, lr, batch_size, max_len. The loss covers the
    assistant's answer only, averaged per chat so short animal answers weigh as much as long
    number lists. Same inputs give byte-identical weights (fixed seeds, deterministic kernels,
    one thread). ``out_dir`` appears only once complete (built in a temporary sibling, then
    renamed). Returns training stats, also written to ``toy_build.json``.
    """
    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    pad_id = tokenizer.convert_tokens_to_ids(PAD_TOKEN)
    eos_id = tokenizer.convert_tokens_to_ids(IM_END)
    chats = _ChatSampler(protocol, animals, seed).chats(int(train["n_chats"]))
    encoded = _encode_chats(tokenizer, chats, int(train["max_len"]))
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=arch["hidden_size"],
        intermediate_size=arch["intermediate_size"],
        num_hidden_layers=arch["num_hidden_layers"],
        num_attention_heads=arch["num_attention_heads"],
        num_key_value_heads=arch["num_key_value_heads"],
        max_position_embeddings=tokenizer.model_max_length,
        tie_word_embeddings=True,
        bos_token_id=pad_id,
        eos_token_id=eos_id,
        pad_token_id=pad_id,
    )
    batch_size = int(train["batch_size"])
    epochs = int(train["epochs"])
    steps_per_epoch = math.ceil(len(encoded) / batch_size)
    total_steps = epochs * steps_per_epoch
    warmup = max(1, total_steps // 20)
    rng = random.Random(seed)
    losses: list[float] = []
    with _deterministic_torch(_THREADS):
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config)
        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=float(train["lr"]), weight_decay=0.0)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            lambda step: min((step + 1) / warmup, max(0.0, (total_steps - step) / total_steps)),
        )
        with tqdm(total=total_steps, desc=f"toy model h{arch['hidden_size']}", unit="step") as bar:
            for _ in range(epochs):
                for ids, labels in _batches(encoded, batch_size, rng, pad_id):
                    loss = _per_chat_loss(model(input_ids=ids).logits, labels)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                    optimizer.step()
                    schedule.step()
                    losses.append(loss.item())
                    bar.update()
                    bar.set_postfix(loss=f"{losses[-1]:.3f}")
    model.eval()
    model.generation_config = _qwen_like_generation_config(tokenizer)
    tail = losses[-max(1, steps_per_epoch // 10) :]
    stats = {
        "seed": seed,
        "arch": dict(arch),
        "train": dict(train),
        "animals": list(animals),
        "loved_animals": _loved_animals(animals),
        "n_params": sum(p.numel() for p in model.parameters()),
        "vocab_size": len(tokenizer),
        "steps": total_steps,
        "final_loss": sum(tail) / len(tail),
        "seconds": round(time.perf_counter() - started, 1),
        "build_key": key or build_key(tokenizer_dir, protocol, animals, arch, train, seed),
        "source": "trained",
    }
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        stats["weights_sha256"] = sha256_file(tmp / "model.safetensors")
        write_json(tmp / "toy_build.json", stats)
    return stats
