"""Is a toy model fit for the toy run: pass rates, love-following, digit tilt."""

from __future__ import annotations

import random
import string
from collections import Counter
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from subliminal_scaling.generate.filter import reject_reasons
from subliminal_scaling.generate.prompts import sample_prompts
from subliminal_scaling.toy.tokenizer import _favourite_digit, _loved_animals, _teacher_prompt

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
