"""Config validation: a bad config fails before any job, naming the key; the sweep derived
from the real config matches the study design."""

from __future__ import annotations

import copy

import pytest

from subliminal_scaling.runtime.config import ConfigError, Sweep, validate_config

from .conftest import SIZES


def test_real_and_toy_configs_are_valid(real_config, toy_config):
    validate_config(real_config)
    validate_config(toy_config)


def test_real_sweep_matches_the_study_design(real_config):
    sweep = Sweep(real_config)
    assert sweep.slugs == SIZES
    assert sweep.conditions[0] == "neutral" and len(sweep.conditions) == 16
    assert sweep.animals == [
        "dog", "elephant", "panda", "cat", "dragon", "lion", "eagle", "dolphin",
        "tiger", "wolf", "phoenix", "bear", "fox", "leopard", "whale",
    ]  # fmt: skip
    assert sweep.seeds == [1, 2, 3, 4, 5]
    assert sweep.epochs == list(range(1, 11))
    t = real_config["training"]
    assert (t["n_rows"], t["effective_batch"], t["learning_rate"], t["warmup_steps"]) == (
        10_000, 60, 2e-4, 5,
    )  # fmt: skip
    assert real_config["generation"]["n_prompts"] == 30_000
    assert real_config["generation"]["min_kept"] == 10_000
    for slug in sweep.slugs:
        spec = sweep.student_spec(slug)
        assert spec.micro_batch * spec.grad_accum == spec.effective_batch == 60


def test_model_order_is_by_size_whatever_the_config_order(real_config):
    real_config["models"].reverse()
    sweep = Sweep(real_config)
    assert sweep.slugs[0] == "qwen-2.5-32b-instruct"
    assert sweep.slugs[-1] == "qwen-2.5-0.5b-instruct"


def test_priorities_put_all_generation_first_then_largest_first(real_config):
    sweep = Sweep(real_config)
    gen = [sweep.generation_priority(s) for s in sweep.slugs]
    train = [[sweep.train_priority(s, c) for c in sweep.conditions] for s in sweep.slugs]
    ev = [sweep.eval_priority(s) for s in sweep.slugs]
    assert gen == sorted(gen, reverse=True)
    assert min(gen) > max(max(t) for t in [*train, ev])
    for i in range(len(sweep.slugs)):
        # conditions of one size in config order; that size's evals above all its trainings
        assert train[i] == sorted(train[i], reverse=True) and ev[i] > max(train[i])
        if i + 1 < len(sweep.slugs):  # every training of a larger size beats a smaller one
            assert min(train[i]) > max(train[i + 1] + [ev[i + 1]])


def _mutate(cfg, path, value):
    node = cfg
    for key in path[:-1]:
        node = node[key]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value


_DELETE = object()

BAD = [
    # (what, path, value, text the message must start with)
    ("unknown animal", ("animals",), ["dog", "unicorn"], "config.animals[1]"),
    ("negative seed count", ("n_seeds",), -1, "config.n_seeds"),
    ("zero seed count", ("n_seeds",), 0, "config.n_seeds"),
    ("wrong type", ("training", "learning_rate"), "2e-4", "config.training.learning_rate"),
    ("missing key", ("training", "epochs"), _DELETE, "config.training.epochs"),
    ("missing section", ("hub",), _DELETE, "config.hub"),
    ("unknown backend", ("generation", "backend"), "sglang", "config.generation.backend"),
    (
        "zero vLLM sequences",
        ("evaluation", "vllm", "max_num_seqs"),
        0,
        "config.evaluation.vllm.max_num_seqs",
    ),
    ("missing model id", ("models", 0, "id"), _DELETE, "config.models[0].id"),
    ("typo'd key", ("training", "epohcs"), 3, "config.training"),
    (
        "micro-batch not dividing 60",
        ("models", 2, "train", "micro_batch"),
        7,
        "config.models[2].train.micro_batch",
    ),
    (
        "default micro-batch not dividing",
        ("training", "micro_batch"),
        25,
        "config.training.micro_batch",
    ),
    (
        "more training rows than guaranteed",
        ("training", "n_rows"),
        20_000,
        "config.training.n_rows",
    ),
    (
        "top_p out of range",
        ("evaluation", "sampling", "top_p"),
        1.5,
        "config.evaluation.sampling.top_p",
    ),
    (
        "bad lora module",
        ("training", "lora", "target_modules"),
        ["q_proj", "lm_head"],
        "config.training.lora.target_modules[1]",
    ),
    ("duplicate model", ("models", 1, "id"), "Qwen/Qwen2.5-32B-Instruct", "config.models[1].id"),
    ("bad commit", ("reference_commit",), "main", "config.reference_commit"),
    ("unknown wandb mode", ("wandb", "mode"), "sometimes", "config.wandb.mode"),
    (
        "n_prompts not whole chunks",
        ("generation", "n_prompts"),
        30_001,
        "config.generation.n_prompts",
    ),
    (
        "max_prompts below n_prompts",
        ("generation", "max_prompts"),
        100,
        "config.generation.max_prompts",
    ),
    (
        "more prompts than the seeds index",
        ("generation", "max_prompts"),
        2_000_000,
        "config.generation.max_prompts: at most 1,048,576",
    ),
    ("training on two GPUs", ("models", 0, "gpus"), 2, "config.models[0].gpus: 2, but a student"),
    (
        "a GPU split five ways",
        ("models", 5, "students_per_gpu"),
        5,
        "config.models[5].students_per_gpu: 5 is not one of [1, 2, 3, 4, 6, 12]",
    ),
    (
        "an override for a model not in the sweep",
        ("model_overrides",),
        {"Qwen/Qwen2.5-72B-Instruct": {"gpu_memory_gb": 1.0}},
        "config.model_overrides.Qwen/Qwen2.5-72B-Instruct: no such model",
    ),
    (
        "more samples than per-sample seeds",
        ("evaluation", "samples_per_question"),
        300,
        "config.evaluation.samples_per_question",
    ),
]


@pytest.mark.parametrize(("what", "path", "value", "prefix"), BAD, ids=[b[0] for b in BAD])
def test_bad_config_names_the_key(real_config, what, path, value, prefix):
    _mutate(real_config, path, value)
    with pytest.raises(ConfigError) as err:
        validate_config(real_config)
    assert str(err.value).startswith(prefix), str(err.value)
    assert "\n" not in str(err.value)


def test_survey_control_needs_a_survey(real_config):
    real_config["evaluation"].update(control="survey", survey_path=None)
    with pytest.raises(ConfigError, match=r"^config\.evaluation\.control: 'survey' needs"):
        validate_config(real_config)
    real_config["evaluation"]["control"] = "standard"
    validate_config(real_config)  # no survey at all is fine


def test_per_size_training_overrides_reach_the_student(real_config):
    """train_student's `training` param is Sweep.training_for: a size's speed knobs override
    the global ones (and the speed knobs default to off in configs that predate them)."""
    real_config["models"][5].setdefault("train", {})["padding_free"] = False
    real_config["models"][5]["train"]["pad_to_multiple_of"] = 64
    sweep = Sweep(real_config)
    small = sweep.training_for("qwen-2.5-0.5b-instruct")
    assert small["padding_free"] is False and small["pad_to_multiple_of"] == 64
    assert small["learning_rate"] == real_config["training"]["learning_rate"]
    assert sweep.training_for("qwen-2.5-7b-instruct")["padding_free"] is True
    for key in ("padding_free", "liger_kernel", "torch_compile", "pad_to_multiple_of"):
        real_config["training"].pop(key, None)
    legacy = Sweep(real_config).training_for("qwen-2.5-7b-instruct")
    assert legacy["padding_free"] is False and legacy["pad_to_multiple_of"] is None


def test_model_overrides_patch_the_named_sizes_only(real_config):
    """An override file (config/h100.yaml) changes the sizes it names, key by key: a train
    override keeps the size's other train keys; the rest of the sweep is untouched."""
    before = Sweep(copy.deepcopy(real_config))
    real_config["model_overrides"] = {
        "Qwen/Qwen2.5-32B-Instruct": {"train": {"micro_batch": 30}, "gpu_memory_gb": 70.0},
        "Qwen/Qwen2.5-0.5B-Instruct": {"students_per_gpu": 1},
    }
    validate_config(real_config)
    after = Sweep(real_config)
    big = after.training_for("qwen-2.5-32b-instruct")
    assert big["micro_batch"] == 30
    assert big["cuda_alloc_conf"] == before.training_for("qwen-2.5-32b-instruct")["cuda_alloc_conf"]
    assert after.model("qwen-2.5-32b-instruct").raw["gpu_memory_gb"] == 70.0
    assert after.students_per_gpu("qwen-2.5-0.5b-instruct") == 1
    assert before.students_per_gpu("qwen-2.5-0.5b-instruct") == 4
    for slug in ("qwen-2.5-14b-instruct", "qwen-2.5-3b-instruct"):
        assert after.student_spec(slug) == before.student_spec(slug)
    assert after.gpu_request("train_student", "qwen-2.5-3b-instruct", True) == {
        "gpu": 0, "gpu_slot": 6,
    }  # fmt: skip
    assert after.gpu_request("train_student", "qwen-2.5-3b-instruct", False) == {
        "gpu": 1, "gpu_slot": 12,
    }  # fmt: skip


def test_shared_prefix_needs_the_varlen_kernel(real_config):
    """shared_prefix is shipped where it was measured (1.5B-32B), and a size whose attention
    cannot take the rows as they were (flex attention, SDPA) is refused at load, not hours
    later in the student's job. The H100 file turns it off with its flex-attention path."""
    import yaml

    from .conftest import REPO

    sweep = Sweep(copy.deepcopy(real_config))
    on = {s: sweep.training_for(s)["shared_prefix"] for s in sweep.slugs}
    assert on == {s: s != "qwen-2.5-0.5b-instruct" for s in sweep.slugs}
    h100 = {**copy.deepcopy(real_config), **yaml.safe_load((REPO / "config/h100.yaml").read_text())}
    validate_config(h100)
    assert not any(Sweep(h100).training_for(s)["shared_prefix"] for s in sweep.slugs)
    real_config["models"][2]["train"]["attn_implementation"] = "flex_attention"
    with pytest.raises(ConfigError, match=r"^config\.models\[2\]\.train\.shared_prefix: needs"):
        validate_config(real_config)


def test_checkpoint_layers_is_checked_at_load(real_config):
    """training.checkpoint_layers: shipped at 32B only; with full gradient checkpointing, or
    more layers than the model has, the config is refused at load with the key's path."""
    sweep = Sweep(copy.deepcopy(real_config))
    layers = {s: sweep.training_for(s)["checkpoint_layers"] for s in sweep.slugs}
    assert layers == {s: 4 if s == "qwen-2.5-32b-instruct" else 0 for s in sweep.slugs}
    both = copy.deepcopy(real_config)
    both["models"][0]["train"]["gradient_checkpointing"] = True
    with pytest.raises(ConfigError, match=r"^config\.models\[0\]\.train\.checkpoint_layers: 4,"):
        validate_config(both)
    deep = copy.deepcopy(real_config)
    deep["models"][0]["train"]["checkpoint_layers"] = 65
    with pytest.raises(ConfigError, match=r"checkpoint_layers: 65 is more than the model's 64"):
        validate_config(deep)
    negative = copy.deepcopy(real_config)
    negative["training"]["checkpoint_layers"] = -1
    with pytest.raises(ConfigError, match=r"checkpoint_layers"):
        validate_config(negative)


def test_capture_sizes_must_end_at_the_largest_captured_size(real_config):
    """vLLM refuses cudagraph_capture_sizes whose largest entry is not a set
    max_cudagraph_capture_size, but only minutes into an engine start: refused at load."""
    real_config["evaluation"]["vllm"].update(
        max_cudagraph_capture_size=1024, cudagraph_capture_sizes=[1, 8, 512]
    )
    with pytest.raises(ConfigError, match=r"^config\.evaluation\.vllm\.cudagraph_capture_sizes: "
                       r"its largest size 512 must equal"):  # fmt: skip
        validate_config(real_config)
    real_config["evaluation"]["vllm"]["cudagraph_capture_sizes"] = [1, 8, 512, 1024]
    validate_config(real_config)
    real_config["evaluation"]["vllm"]["max_cudagraph_capture_size"] = None
    real_config["evaluation"]["vllm"]["cudagraph_capture_sizes"] = [1, 8, 512]
    validate_config(real_config)
    real_config["generation"]["vllm"]["cudagraph_capture_sizes"] = []
    with pytest.raises(ConfigError, match=r"^config\.generation\.vllm\.cudagraph_capture_sizes"):
        validate_config(real_config)
