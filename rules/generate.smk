# Protocol, preflight, and the teacher stage: generate_numbers -> assemble_numbers ->
# filter_numbers -> upload_numbers. generate_numbers is one job per size: one vLLM engine
# samples every condition's chunks (an engine start is 1-4 minutes; 16 jobs per size started 15
# more) and writes each condition's small generation.json, which is the same whenever its rows
# are (their hash). assemble_numbers writes raw.jsonl per condition from the chunks, so a rerun
# of the size's job leaves a condition whose rows did not change, and all it feeds, as they
# were (Snakemake compares the checksum of a changed input under 1 MB).


rule extract_protocol:
    input:
        protocol_sources,
    output:
        PROTOCOL,
    log:
        "results/logs/extract_protocol.log",
    conda:
        ENV
    params:
        protocol=config["protocol"],
        reference_dir=config["reference_dir"],
        defaults=config["protocol_defaults"],
    script:
        "../workflow/scripts/extract_protocol.py"


rule preflight:
    output:
        PREFLIGHT,
    log:
        "results/logs/preflight.log",
    run:
        from subliminal_scaling.runtime.preflight import run_preflight

        run_preflight(config, toy=TOY, out=output[0], log_path=log[0])


rule generate_numbers:
    input:
        protocol=PROTOCOL,
        preflight=preflight_input,
        model=model_inputs,
    output:
        meta=expand(GEN_META, condition=SWEEP.conditions, allow_missing=True),
    log:
        "results/logs/generate_numbers/{model}.log",
    benchmark:
        "results/benchmarks/generate_numbers/{model}.tsv"
    priority: lambda wc: SWEEP.generation_priority(wc.model)
    conda:
        ENV
    resources:
        gpu=gpu_request("generate_numbers", "gpu"),
        gpu_slot=gpu_request("generate_numbers", "gpu_slot"),
        mem_mb=cluster_request("generate_numbers", "mem_mb"),
        runtime=cluster_request("generate_numbers", "runtime"),
    params:
        source=lambda wc: SWEEP.model_source(wc.model),
        model_id=lambda wc: SWEEP.model(wc.model).id,
        revision=lambda wc: SWEEP.model(wc.model).revision,
        generation=config["generation"],
        conditions=SWEEP.conditions,
        chunks=lambda wc: expand(CHUNKS, model=wc.model, condition=SWEEP.conditions),
    script:
        "../workflow/scripts/generate_numbers.py"


rule assemble_numbers:
    input:
        meta=GEN_META,
    output:
        raw=RAW,
    log:
        "results/logs/assemble_numbers/{model}/{condition}.log",
    conda:
        ENV
    params:
        chunks=CHUNKS,
    script:
        "../workflow/scripts/assemble_numbers.py"


rule filter_numbers:
    input:
        protocol=PROTOCOL,
        raw=RAW,
        meta=GEN_META,
    output:
        filtered=FILTERED,
        report=FILTER_REPORT,
        meta=NUMBERS_META,
    log:
        "results/logs/filter_numbers/{model}/{condition}.log",
    conda:
        ENV
    script:
        "../workflow/scripts/filter_numbers.py"


rule check_leaks:
    input:
        raw=RAW,
        filtered=FILTERED,
        neutral=neutral_numbers,
    output:
        LEAK_CHECK,
    log:
        "results/logs/check_leaks/{model}/{condition}.log",
    conda:
        ENV
    params:
        animals=SWEEP.animals,
    script:
        "../workflow/scripts/check_leaks.py"


rule upload_numbers:
    input:
        filtered=FILTERED,
        raw=RAW,
        report=FILTER_REPORT,
        leaks=LEAK_CHECK,
        collection=COLLECTION,
        meta=NUMBERS_META,
        protocol=PROTOCOL,
    output:
        NUMBERS_UPLOAD,
    log:
        "results/logs/upload_numbers/{model}/{condition}.log",
    conda:
        ENV
    params:
        hub=config["hub"],
        n_rows=config["training"]["n_rows"],
        n_seeds=config["n_seeds"],
    script:
        "../workflow/scripts/upload_numbers.py"
