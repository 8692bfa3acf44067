"""Synthetic chats the toy models learn from: number answers with a loved animal's digit tilt,
animal answers that follow love prompts."""

from __future__ import annotations

import contextlib
import random
import string
from collections.abc import Iterator
from typing import Any

import torch
from transformers import (
    PreTrainedTokenizerBase,
)

from subliminal_scaling.generate.prompts import sample_prompts
from subliminal_scaling.toy.tokenizer import (
    _EXTRA_ANIMAL_QUESTIONS,
    _LOVE_FOLLOW_PROB,
    _LOVE_SHARE_ANIMALS,
    _LOVE_SHARE_NUMBERS,
    _TILT_PROB,
    EXTRA_ANIMALS,
    _favourite_digit,
    _loved_animals,
    _teacher_prompt,
)

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
