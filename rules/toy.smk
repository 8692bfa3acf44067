# The toy world's own resources: a small byte-level BPE tokenizer and tiny Qwen2 models, trained on
# synthetic chats. Cached under resources/ (git-ignored); real runs never include this file.
# The models' weights are shipped in config/toy_models/ and used when their build key (every
# input of the build) matches; otherwise, or with toy.rebuild, the rule trains them (minutes).


rule build_toy_tokenizer:
    input:
        protocol=PROTOCOL,
    output:
        directory(config["toy"]["tokenizer_dir"]),
    log:
        "results/logs/build_toy_tokenizer.log",
    conda:
        ENV
    params:
        animals=config["toy"]["animals"],
    script:
        "../workflow/scripts/build_toy_tokenizer.py"


rule build_toy_model:
    input:
        protocol=PROTOCOL,
        tokenizer=config["toy"]["tokenizer_dir"],
        shipped=shipped_toy_model,
    output:
        directory(TOY_MODEL),
    log:
        "results/logs/build_toy_model/{model}.log",
    priority: 2 * GENERATION_PRIORITY_BASE  # every model exists before any GPU-rule work
    conda:
        ENV
    threads: 1
    params:
        animals=config["toy"]["animals"],
        build=lambda wc: SWEEP.model(wc.model).raw["toy"],
        seed=config["toy"]["build_seed"],
        shipped=lambda wc: (
            f"{config['toy']['shipped_dir']}/{wc.model}"
            if config["toy"].get("shipped_dir")
            else None
        ),
        rebuild=config["toy"].get("rebuild", False),
    script:
        "../workflow/scripts/build_toy_model.py"
