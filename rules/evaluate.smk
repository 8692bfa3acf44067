# Evaluation: every student at every epoch, each base model (control), and the user's survey.


rule evaluate_student:
    input:
        protocol=PROTOCOL,
        preflight=preflight_input,
        model=model_inputs,
        students=lambda wc: [
            f for s in SWEEP.seeds for f in student_outputs(wc.model, wc.condition, s)
        ],
    output:
        evals=expand(
            EVAL,
            seed=SWEEP.seeds,
            epoch=SWEEP.epochs,
            allow_missing=True,
        ),
    log:
        "results/logs/evaluate_student/{model}/{condition}.log",
    benchmark:
        "results/benchmarks/evaluate_student/{model}/{condition}.tsv"
    priority: lambda wc: SWEEP.eval_priority(wc.model)
    conda:
        ENV
    resources:
        gpu=gpu_request("evaluate_student", "gpu"),
        gpu_slot=gpu_request("evaluate_student", "gpu_slot"),
        mem_mb=cluster_request("evaluate_student", "mem_mb"),
        runtime=cluster_request("evaluate_student", "runtime"),
    params:
        source=lambda wc: SWEEP.model_source(wc.model),
        model_id=lambda wc: SWEEP.model(wc.model).id,
        revision=lambda wc: SWEEP.model(wc.model).revision,
        evaluation=config["evaluation"],
        animals=SWEEP.animals,
        seeds=SWEEP.seeds,
        epochs=SWEEP.epochs,
        lora_r=config["training"]["lora"]["r"],
        students_dir=lambda wc: STUDENTS_DIR.format(**wc),
        # finished evals, kept there (not an output) so a killed job's rerun reuses them
        partial_dir=lambda wc: EVAL_PARTIAL.format(**wc),
        eval_pattern=lambda wc: EVAL,
        wandb=config["wandb"],
        wandb_dir=WANDB_DIR,
    script:
        "../workflow/scripts/evaluate_student.py"


rule evaluate_control:
    input:
        protocol=PROTOCOL,
        preflight=preflight_input,
        model=model_inputs,
    output:
        CONTROL_EVAL,
    log:
        "results/logs/evaluate_control/{model}.log",
    benchmark:
        "results/benchmarks/evaluate_control/{model}.tsv"
    priority: lambda wc: SWEEP.eval_priority(wc.model)
    conda:
        ENV
    resources:
        gpu=gpu_request("evaluate_control", "gpu"),
        gpu_slot=gpu_request("evaluate_control", "gpu_slot"),
        mem_mb=cluster_request("evaluate_control", "mem_mb"),
        runtime=cluster_request("evaluate_control", "runtime"),
    params:
        source=lambda wc: SWEEP.model_source(wc.model),
        model_id=lambda wc: SWEEP.model(wc.model).id,
        revision=lambda wc: SWEEP.model(wc.model).revision,
        evaluation=config["evaluation"],
        animals=SWEEP.animals,
    script:
        "../workflow/scripts/evaluate_control.py"


rule ingest_control:
    input:
        # a configured survey must exist (checked at parse time); null: no survey records
        [config["evaluation"]["survey_path"]]
        if config["evaluation"]["survey_path"]
        else [],
    output:
        SURVEY,
    log:
        "results/logs/ingest_control.log",
    conda:
        ENV
    params:
        slugs=SWEEP.slugs,
        animals=SWEEP.animals,
    script:
        "../workflow/scripts/ingest_control.py"
