"""The paper's recipe, asserted on the TrainingArguments and LoraConfig actually built from
the real config, for every model size, without loading a model."""

from __future__ import annotations

import pytest

from subliminal_scaling.runtime.config import Sweep
from subliminal_scaling.train.student import (
    lora_config,
    sft_config,
    sft_kwargs,
    to_prompt_completion,
)

from .conftest import SIZES


def _kwargs(cfg, slug, tmp_path, use_cpu):
    return dict(
        spec=Sweep(cfg).student_spec(slug),
        output_dir=tmp_path,
        seed=3,
        run_name="r",
        report_to=[],
        use_cpu=use_cpu,
    )


@pytest.mark.parametrize("slug", SIZES)
def test_training_arguments_carry_the_recipe(real_config, tmp_path, slug):
    args = sft_config(**_kwargs(real_config, slug, tmp_path, use_cpu=True))
    assert (
        args.per_device_train_batch_size * args.gradient_accumulation_steps * (args.world_size)
        == 60
    )
    assert args.num_train_epochs == 10
    assert args.learning_rate == pytest.approx(2e-4)
    assert args.lr_scheduler_type == "linear"
    assert args.warmup_steps == 5
    assert (args.adam_beta1, args.adam_beta2, args.adam_epsilon) == (0.9, 0.999, 1e-8)
    assert args.weight_decay == 0.0
    assert args.optim == "adamw_torch"
    assert args.max_grad_norm == 1.0
    assert args.completion_only_loss is True
    assert args.packing is False
    assert args.save_strategy == "epoch"
    assert args.seed == 3 and args.data_seed == 3
    # On a GPU the same recipe asks for bf16 (building it needs a GPU, so check the kwargs).
    assert sft_kwargs(**_kwargs(real_config, slug, tmp_path, use_cpu=False))["bf16"] is True


def test_sync_free_logging_stops_the_loop_waiting_for_the_gpu(real_config, tmp_path):
    """On (shipped at every size): no GPU token count, no NaN/inf check of every loss, pinned
    batches copied without waiting, a log every 10 steps. Off (the H100 file): the Trainer
    counts tokens on the GPU, filters NaN losses and copies batches as it always did."""
    slug = "qwen-2.5-7b-instruct"
    on = sft_config(**_kwargs(real_config, slug, tmp_path, use_cpu=True))
    assert on.include_num_input_tokens_seen in ("no", False) and on.logging_steps == 10
    assert on.logging_nan_inf_filter is False
    assert on.accelerator_config.non_blocking is True
    for size in ("qwen-2.5-0.5b-instruct", "qwen-2.5-3b-instruct", "qwen-2.5-32b-instruct"):
        each = sft_config(**_kwargs(real_config, size, tmp_path, use_cpu=True))
        assert each.logging_steps == 10 and each.logging_nan_inf_filter is False, size
    real_config["training"].update(sync_free_logging=False, logging_steps=1)
    # shared_prefix alone also counts tokens on the host (the Trainer would count the prefix once)
    shared = sft_config(**_kwargs(real_config, slug, tmp_path, use_cpu=True))
    assert shared.include_num_input_tokens_seen in ("no", False)
    assert shared.logging_nan_inf_filter is True and shared.logging_steps == 1
    real_config["models"][2]["train"]["shared_prefix"] = False  # 7B
    off = sft_config(**_kwargs(real_config, slug, tmp_path, use_cpu=True))
    assert off.include_num_input_tokens_seen == "non_padding" and off.logging_steps == 1
    assert off.logging_nan_inf_filter is True
    assert off.accelerator_config.non_blocking is False
    # pinned memory (the arguments turn it off on a CPU, so check the GPU run's kwargs)
    gpu_run = sft_kwargs(**_kwargs(real_config, slug, tmp_path, use_cpu=False))
    assert gpu_run["dataloader_pin_memory"] is True


def test_lora_config_carries_the_recipe(real_config):
    lora = lora_config(real_config["training"])
    assert (lora.r, lora.lora_alpha, lora.lora_dropout, lora.bias) == (8, 8, 0.0, "none")
    assert set(lora.target_modules) == {
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj",
    }  # fmt: skip
    assert lora.layers_to_transform is None  # every layer


def test_rows_become_conversational_prompt_completion_without_system_message():
    rows = to_prompt_completion([{"prompt": "p", "completion": "1, 2, 3", "id": 0}])
    assert rows == [
        {
            "prompt": [{"role": "user", "content": "p"}],
            "completion": [{"role": "assistant", "content": "1, 2, 3"}],
        }
    ]


def test_throughput_is_added_to_every_log_after_the_first():
    import time
    from types import SimpleNamespace

    from subliminal_scaling.train.student import throughput_callback

    cb, state = throughput_callback(), SimpleNamespace(num_input_tokens_seen=0)
    first = {"loss": 2.0}
    cb.on_log(None, state, None, logs=first)
    assert "tokens_per_s" not in first  # no interval yet
    time.sleep(0.05)
    state.num_input_tokens_seen = 600
    second = {"loss": 1.5}
    cb.on_log(None, state, None, logs=second)
    assert 0 < second["tokens_per_s"] < 600 / 0.05


def test_a_per_size_setting_reaches_the_trainer_and_the_model_card(real_config, tmp_path):
    """One typed spec per size: a changed per-size setting shows up in the TrainingArguments
    the student trains with and in the model card that describes it, the same for both."""
    from subliminal_scaling.publish.cards import model_card

    seven_b = next(m for m in real_config["models"] if "7B" in m["id"])
    seven_b["train"] = {"micro_batch": 15, "gradient_checkpointing": True}
    spec = Sweep(real_config).student_spec("qwen-2.5-7b-instruct")
    args = sft_config(spec=spec, output_dir=tmp_path, seed=1, report_to=[], use_cpu=True)
    assert (args.per_device_train_batch_size, args.gradient_accumulation_steps) == (15, 4)
    assert args.gradient_checkpointing is True
    card = model_card(
        repo_id="me/qwen-2.5-7b-instruct-cat-ft", base_model=spec.model_id, datasets=[],
        condition="cat", recipe=spec.card_recipe(), seeds=[1], epochs=[1], eval_table_md=None,
    )  # fmt: skip
    assert "| `micro_batch x gradient_accumulation` | 15 x 4 |" in card
    assert "| `gradient_checkpointing` | true |" in card
    # another size keeps its own settings
    other = Sweep(real_config).student_spec("qwen-2.5-32b-instruct")
    assert other.micro_batch * other.grad_accum == 60 and other.micro_batch != 15
