"""The toy world's ChatML tokenizer: a tiny byte-level BPE on Qwen2.5's pipeline."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers
from transformers import (
    Qwen2Tokenizer,
)
from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX as QWEN_PRETOKENIZE_REGEX

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
