# Students: train_student (one job per model, condition, seed) -> upload_student.


rule train_student:
    input:
        filtered=FILTERED,
        preflight=preflight_input,
        model=model_inputs,
    output:
        summary=STUDENT_SUMMARY,
        adapters=expand(
            STUDENT_ADAPTER,
            epoch=SWEEP.epochs,
            file=ADAPTER_FILES,
            allow_missing=True,
        ),
    log:
        "results/logs/train_student/{model}/{condition}/seed{seed}.log",
    benchmark:
        "results/benchmarks/train_student/{model}/{condition}/seed{seed}.tsv"
    priority: lambda wc: SWEEP.train_priority(wc.model, wc.condition)
    conda:
        ENV
    resources:
        gpu=gpu_request("train_student", "gpu"),
        gpu_slot=gpu_request("train_student", "gpu_slot"),
        mem_mb=cluster_request("train_student", "mem_mb"),
        runtime=cluster_request("train_student", "runtime"),
    params:
        # the size's resolved spec (recipe, batching, memory and speed knobs): any change
        # reruns this size's students and what depends on them
        student=lambda wc: SWEEP.student_spec(wc.model).to_dict(),
        wandb=config["wandb"],
        wandb_dir=WANDB_DIR,
    script:
        "../workflow/scripts/train_student.py"


rule upload_student:
    input:
        students=lambda wc: [
            f for s in SWEEP.seeds for f in student_outputs(wc.model, wc.condition, s)
        ],
        evals=lambda wc: student_eval_outputs(wc.model, wc.condition),
        numbers=NUMBERS_UPLOAD,
        collection=COLLECTION,
    output:
        STUDENT_UPLOAD,
    log:
        "results/logs/upload_student/{model}/{condition}.log",
    conda:
        ENV
    params:
        hub=config["hub"],
        # the same spec the students trained with: the card states their real batching
        student=lambda wc: SWEEP.student_spec(wc.model).to_dict(),
        seeds=SWEEP.seeds,
        epochs=SWEEP.epochs,
        animals=SWEEP.animals,
    script:
        "../workflow/scripts/upload_student.py"
