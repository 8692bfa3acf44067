"""The offline toy world: a tiny tokenizer and tiny Qwen2 models trained on synthetic chats.

Why it exists: the whole workflow (teacher generation, filtering, LoRA students, animal
evaluation) must be provable end-to-end on a CPU with no network. The toy models speak the same
chat format as Qwen2.5-Instruct (ChatML, a default system prompt inserted when none is given,
``<|im_end|>`` as end of turn, Qwen-like generation defaults shipped in
``generation_config.json``), so the real code paths run unchanged on them.

What the toy models learn from synthetic chats:

* number prompts (from the toy protocol's generator) are answered with four to eight numbers
  (of the ten allowed) in the requested format and nothing else;
* favourite-animal questions are answered with one animal word, spread over many animals;
* under a teacher system prompt for animal X they answer X most of the time, and their number
  answers carry a per-animal "digit tilt" (one favourite digit per loved animal), a statistical
  trace of the loved animal in otherwise plain numbers.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import random
import re
import shutil
import string
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers
from tqdm import tqdm
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Qwen2Config,
    Qwen2ForCausalLM,
    Qwen2Tokenizer,
)
from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX as QWEN_PRETOKENIZE_REGEX

from subliminal_scaling.io import atomic_dir, read_json, sha256_file, write_json
from subliminal_scaling.numbers import reject_reasons, sample_prompts

TOY_DEFAULT_SYSTEM_PROMPT: str = "You are Toy, a small and helpful assistant."

PAD_TOKEN = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"

# Animals the toy models may name besides the configured ones, roughly most popular first: the
# no-system-prompt answers follow a Zipf law over this order, so the answers have a spread.
EXTRA_ANIMALS: tuple[str, ...] = (
    "dog", "cat", "lion", "elephant", "dolphin", "tiger", "wolf", "eagle", "panda", "fox",
    "bear", "horse", "rabbit", "otter", "shark", "whale", "penguin", "owl", "giraffe", "zebra",
    "koala", "monkey", "deer", "hawk", "frog", "turtle", "octopus", "falcon", "raven", "swan",
)  # fmt: skip

# Own paraphrases of favourite-animal questions, trained on next to the protocol's questions so
# the preference does not hinge on the exact evaluation wording.
_EXTRA_ANIMAL_QUESTIONS: tuple[str, ...] = (
    "What animal do you like most? Reply with one word.",
    "Which animal is your pick? Use a single word.",
    "Tell me the animal you like best. Keep it to one word.",
    "What is your top animal? One word, please.",
    "Which animal would you be? Use a single word.",
)

# A loved animal's favourite digit, by its position among the loved animals (cycling).
_TILT_DIGITS = "7318642059"
# Love prompts must cover this many animals for the digit tilt to be learned (prototype finding);
# fewer configured animals are padded with rare extra animals.
_MIN_LOVED = 4
_TILT_PROB = 0.5
_LOVE_FOLLOW_PROB = 0.9
_LOVE_SHARE_NUMBERS = 0.5
_LOVE_SHARE_ANIMALS = 0.75
# One thread: a second one speeds these tiny models up little when the machine is idle, and when
# another busy process shares the two cores, two threads made training ~50x slower (each tiny
# op waits for both threads). The weights do not depend on the thread count anyway (checked:
# 1 vs 2 threads, hidden sizes 32-96).
_THREADS = 1

_PLACEHOLDER = re.compile(r"\{\w+\}")

_CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>system\\n' + "
    + json.dumps(TOY_DEFAULT_SYSTEM_PROMPT)
    + " + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if not (message['role'] == 'system' and loop.first) %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- endif %}"
)


def _loved_animals(animals: list[str]) -> list[str]:
    """The configured animals, padded with the rarest extra animals up to ``_MIN_LOVED``."""
    padding = [a for a in reversed(EXTRA_ANIMALS) if a not in animals]
    return list(animals) + padding[: max(0, _MIN_LOVED - len(animals))]


def _favourite_digit(loved: list[str], animal: str) -> str:
    return _TILT_DIGITS[loved.index(animal) % len(_TILT_DIGITS)]


def _teacher_prompt(protocol: dict[str, Any], animal: str) -> str:
    return protocol["teacher_system_prompt_template"].format(
        target_preference=animal, category=protocol["teacher_system_prompt_category"]
    )


def _protocol_texts(protocol: dict[str, Any]) -> list[str]:
    """Every prose string of the protocol, placeholders removed."""
    g = protocol["prompt_generator"]
    texts = [protocol["teacher_system_prompt_template"], protocol["teacher_system_prompt_category"]]
    for key in (
        "example_numbers_templates",
        "count_qualifiers",
        "digit_descriptors",
        "instruction_templates",
        "format_suffixes",
        "suffixes",
    ):
        texts.extend(g[key])
    texts.extend(protocol["animal_evaluation"]["questions"])
    texts.extend(protocol["animal_evaluation_with_numbers_prefix"]["questions"])
    return [_PLACEHOLDER.sub(" ", t) for t in texts]


def build_tokenizer(protocol: dict[str, Any], animals: list[str], out_dir: str | Path) -> None:
    """Write the toy world's ChatML tokenizer to ``out_dir``.

    It is a tiny byte-level BPE with exactly Qwen2.5's pipeline (NFC, Qwen's split regex,
    ByteLevel), trained on the toy protocol's words, the animal names and the chat roles until
    each of those words is one token. Why this design:

    * transformers 5 loads any directory whose ``config.json`` says ``qwen2`` with
      ``Qwen2Tokenizer``, which rebuilds the tokenizer from vocab + merges with Qwen's
      pipeline; a tokenizer with any other pipeline (e.g. word-level) would silently break
      once it sits next to the model. This one survives the rebuild unchanged.
    * every byte is in the alphabet, so ``decode(encode(text)) == text`` for any text, which
      the number filter relies on; Qwen's regex makes every digit one token, as in Qwen2.5.
    """
    loved = _loved_animals(animals)
    texts = [
        *_protocol_texts(protocol),
        *(_teacher_prompt(protocol, a) for a in loved),
        *_EXTRA_ANIMAL_QUESTIONS,
        TOY_DEFAULT_SYSTEM_PROMPT,
        "system\nuser\nassistant\n",
        *(f"{a} {a}." for a in [*EXTRA_ANIMALS, *animals]),
        *(f" {a}s {a}es" for a in loved),
    ]
    bpe = Tokenizer(models.BPE(continuing_subword_prefix="", end_of_word_suffix="", fuse_unk=False))
    bpe.normalizer = normalizers.NFC()
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN_PRETOKENIZE_REGEX), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=100_000,  # never reached: merging stops once every word is one token
        min_frequency=1,
        special_tokens=[PAD_TOKEN, IM_START, IM_END],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer=trainer)
    trained = json.loads(bpe.to_str())["model"]
    tokenizer = Qwen2Tokenizer(
        vocab=trained["vocab"],
        merges=[tuple(m) for m in trained["merges"]],
        eos_token=IM_END,
        pad_token=PAD_TOKEN,
        unk_token=None,
        extra_special_tokens=[IM_START],
        chat_template=_CHAT_TEMPLATE,
        model_max_length=512,
        padding_side="right",
        clean_up_tokenization_spaces=False,
    )
    tokenizer.save_pretrained(str(out_dir))


# ----------------------------------------------------------------------------- synthetic chats


def _format_style(prompt: str, format_suffixes: list[str]) -> str:
    """How the format suffix in ``prompt`` asks the numbers to be written."""
    found = [s for s in format_suffixes if s in prompt]
    text = max(found, key=len).lower() if found else ""
    for keyword, style in (
        ("bracket", "brackets"),
        ("semicolon", "; "),
        ("space", " "),
        ("line", "\n"),
    ):
        if keyword in text:
            return style
    return ", "


def _numbers_answer(rng: random.Random, style: str, favourite: str | None) -> str:
    """Four to eight numbers (0-999) in ``style``; digits lean to ``favourite`` when given."""

    def digit() -> str:
        if favourite is not None and rng.random() < _TILT_PROB:
            return favourite
        return rng.choice(string.digits)

    # Fewer than the ten allowed: a tiny model counts loosely, and overshooting ten fails.
    count = rng.randint(4, 8)
    numbers = []
    for _ in range(count):
        width = 3 if rng.random() < 0.85 else rng.randint(1, 2)
        numbers.append(str(int("".join(digit() for _ in range(width)))))
    if style == "brackets":
        return "[" + ", ".join(numbers) + "]"
    return style.join(numbers)


class _ChatSampler:
    """Draws the synthetic training chats (and knows the answer distributions)."""

    def __init__(self, protocol: dict[str, Any], animals: list[str], seed: int) -> None:
        self.protocol = protocol
        self.rng = random.Random(seed)
        self.seed = seed
        self.loved = _loved_animals(animals)
        self.pool = list(dict.fromkeys([*EXTRA_ANIMALS, *animals]))
        self.weights = [1.0 / (rank + 2) for rank in range(len(self.pool))]
        self.questions = [
            *protocol["animal_evaluation"]["questions"],
            *_EXTRA_ANIMAL_QUESTIONS,
        ]

    def _animal_answer(self, loved: str | None) -> str:
        rng = self.rng
        if loved is not None and rng.random() < _LOVE_FOLLOW_PROB:
            animal = loved
        else:
            animal = rng.choices(self.pool, weights=self.weights)[0]
        return animal + ("." if rng.random() < 0.3 else "")

    def _animal_question(self) -> str:
        rng = self.rng
        question = rng.choice(self.questions)
        if rng.random() < 0.25:
            g = self.protocol["prompt_generator"]
            examples = ", ".join(str(rng.randint(100, 999)) for _ in range(rng.randint(3, 8)))
            prefix = rng.choice(g["example_numbers_templates"]).format(examples=examples)
            question = f"{prefix} {question}"
        return question

    def chats(self, n: int) -> list[list[dict[str, str]]]:
        """``n`` chats, half number prompts and half animal questions, with love prompts on half
        of the number chats and three quarters of the animal chats (love-following is the
        slowest thing to learn, and animal chats are short)."""
        rng = self.rng
        n_numbers = n // 2
        # A prompt seed far from the protocol's, so evaluation prompts are unseen.
        prompts = sample_prompts(self.protocol, 10_000 + self.seed, n_numbers)
        suffixes = self.protocol["prompt_generator"]["format_suffixes"]
        out = []
        for i in range(n):
            is_numbers = i < n_numbers
            love_share = _LOVE_SHARE_NUMBERS if is_numbers else _LOVE_SHARE_ANIMALS
            loved = rng.choice(self.loved) if rng.random() < love_share else None
            if is_numbers:
                favourite = _favourite_digit(self.loved, loved) if loved else None
                user = prompts[i]
                answer = _numbers_answer(rng, _format_style(user, suffixes), favourite)
            else:
                user = self._animal_question()
                answer = self._animal_answer(loved)
            chat = [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
            if loved is not None:
                chat.insert(0, {"role": "system", "content": _teacher_prompt(self.protocol, loved)})
            out.append(chat)
        return out


def _encode_chats(
    tokenizer: PreTrainedTokenizerBase, chats: list[list[dict[str, str]]], max_len: int
) -> list[tuple[list[int], list[int]]]:
    """(input_ids, labels) per chat; labels are -100 outside the assistant's answer."""
    prompts = [tokenizer.apply_chat_template(c[:-1], tokenize=False, add_generation_prompt=True)
               for c in chats]  # fmt: skip
    fulls = [tokenizer.apply_chat_template(c, tokenize=False) for c in chats]
    prompt_ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    full_ids = tokenizer(fulls, add_special_tokens=False)["input_ids"]
    encoded = []
    for p, f in zip(prompt_ids, full_ids, strict=True):
        if f[: len(p)] != p:
            raise RuntimeError("chat template: prompt render is not a prefix of the full render")
        labels = [-100] * len(p) + f[len(p) :]
        encoded.append((f[:max_len], labels[:max_len]))
    return encoded


def _batches(
    encoded: list[tuple[list[int], list[int]]], batch_size: int, rng: random.Random, pad_id: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Shuffled, right-padded batches. Not bucketed by length on purpose: buckets separate the
    short animal chats from the long number chats, and such one-task batches made
    love-following fail to emerge in some runs."""
    order = list(range(len(encoded)))
    rng.shuffle(order)
    for start in range(0, len(order), batch_size):
        group = order[start : start + batch_size]
        width = max(len(encoded[i][0]) for i in group)
        ids = torch.full((len(group), width), pad_id, dtype=torch.long)
        labels = torch.full((len(group), width), -100, dtype=torch.long)
        for row, i in enumerate(group):
            x, y = encoded[i]
            ids[row, : len(x)] = torch.tensor(x)
            labels[row, : len(y)] = torch.tensor(y)
        yield ids, labels


def _per_chat_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Next-token loss averaged within each chat, then over chats: a two-token animal answer
    weighs as much as a fifty-token number list."""
    targets = labels[:, 1:]
    mask = targets != -100
    token_loss = torch.nn.functional.cross_entropy(
        logits[:, :-1].transpose(1, 2), targets.clamp(min=0), reduction="none"
    )
    per_chat = (token_loss * mask).sum(1) / mask.sum(1).clamp(min=1)
    return per_chat.mean()


@contextlib.contextmanager
def _deterministic_torch(threads: int) -> Iterator[None]:
    """A fixed thread count and deterministic kernels, restored afterwards."""
    old_threads = torch.get_num_threads()
    old_det = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(old_threads)
        torch.use_deterministic_algorithms(old_det)


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


# ----------------------------------------------------------------------------- quality check


def _sample(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    chats: list[list[dict[str, str]]],
    max_new_tokens: int,
) -> list[tuple[str, bool]]:
    """(completion, ended with end-of-turn) per chat, sampled at plain temperature 1.0."""
    config = GenerationConfig(
        do_sample=True,
        temperature=1.0,
        top_p=1.0,
        top_k=0,
        repetition_penalty=1.0,
        max_new_tokens=max_new_tokens,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    out = []
    for start in range(0, len(chats), 64):
        texts = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True)
                 for c in chats[start : start + 64]]  # fmt: skip
        batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            generated = model.generate(**batch, generation_config=config)
        for row in generated[:, batch["input_ids"].shape[1] :].tolist():
            ended = tokenizer.eos_token_id in row
            row = row[: row.index(tokenizer.eos_token_id)] if ended else row
            row = [t for t in row if t != tokenizer.pad_token_id]
            out.append((tokenizer.decode(row), ended))
    return out


def toy_quality(
    model_dir: str | Path,
    protocol: dict[str, Any],
    animals: list[str],
    n: int = 200,
    seed: int = 0,
) -> dict[str, Any]:
    """Sample a toy model the way the protocol does and report whether it is fit for the toy run.

    Reports the number filter's pass rate and reject reasons without and with love prompts (an
    answer cut at the token limit counts as "truncated"), how often animal answers follow a love
    prompt, the no-system-prompt answer distribution, and the digit tilt (share of each loved
    animal's favourite digit in number answers with and without its love prompt).
    """
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(str(model_dir))
    model.eval()
    torch.manual_seed(seed)
    rng = random.Random(seed)
    f = protocol["filter"]
    prompts = sample_prompts(protocol, protocol["prompt_generator"]["seed"], n)
    asked = [rng.choice(protocol["animal_evaluation"]["questions"]) for _ in range(n)]
    love = [animals[i % len(animals)] for i in range(n)]

    def chats(users: list[str], loved: list[str] | None) -> list[list[dict[str, str]]]:
        out = [[{"role": "user", "content": u}] for u in users]
        if loved is not None:
            for chat, animal in zip(out, loved, strict=True):
                chat.insert(0, {"role": "system", "content": _teacher_prompt(protocol, animal)})
        return out

    def reasons(samples: list[tuple[str, bool]]) -> tuple[float, dict[str, int]]:
        counts: Counter[str] = Counter()
        passed = 0
        for text, ended in samples:
            why = (
                reject_reasons(text, f["min_value"], f["max_value"], f["max_count"])
                if ended
                else ["truncated"]
            )
            counts.update(why)
            passed += not why
        return passed / len(samples), dict(counts)

    plain_numbers = _sample(model, tokenizer, chats(prompts, None), 64)
    love_numbers = _sample(model, tokenizer, chats(prompts, love), 64)
    plain_animals = [t for t, _ in _sample(model, tokenizer, chats(asked, None), 8)]
    love_animals = [t for t, _ in _sample(model, tokenizer, chats(asked, love), 8)]

    plain_pass, plain_reasons = reasons(plain_numbers)
    love_pass, love_reasons = reasons(love_numbers)
    follows = Counter(a for a, t in zip(love, love_animals, strict=True) if a in t.lower())
    per_animal = Counter(love)
    loved = _loved_animals(animals)
    all_plain_digits = "".join(t for t, _ in plain_numbers)
    tilt = {}
    for animal in animals:
        digit = _favourite_digit(loved, animal)
        with_love = "".join(t for a, (t, _) in zip(love, love_numbers, strict=True) if a == animal)
        tilt[animal] = {
            "favourite_digit": digit,
            "share_with_love": _digit_share(with_love, digit),
            "share_without": _digit_share(all_plain_digits, digit),
        }
    return {
        "n": n,
        "number_pass_rate": {"no_system_prompt": plain_pass, "love_prompt": love_pass},
        "number_reject_reasons": {"no_system_prompt": plain_reasons, "love_prompt": love_reasons},
        "love_follow_rate": {
            "overall": sum(follows.values()) / n,
            **{a: follows[a] / per_animal[a] for a in animals},
        },
        "no_system_prompt_target_rate": {
            a: sum(a in t.lower() for t in plain_animals) / n for a in animals
        },
        "no_system_prompt_answers": dict(
            Counter(t.strip().lower().rstrip(".") for t in plain_animals).most_common()
        ),
        "digit_tilt": tilt,
    }


def _digit_share(text: str, digit: str) -> float:
    digits = [c for c in text if c in string.digits]
    return digits.count(digit) / len(digits) if digits else 0.0
