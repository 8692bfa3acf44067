# Hub collections, one per model size: create_collection -> (uploads link it) -> publish_collection.


rule create_collection:
    input:
        preflight=preflight_input,
    output:
        COLLECTION,
    log:
        "results/logs/create_collection/{model}.log",
    conda:
        ENV
    params:
        hub=config["hub"],
    script:
        "../workflow/scripts/create_collection.py"


rule publish_collection:
    input:
        collection=COLLECTION,
        uploads=lambda wc: [
            f.format(model=wc.model, condition=c)
            for c in SWEEP.conditions
            for f in (NUMBERS_UPLOAD, STUDENT_UPLOAD)
        ],
    output:
        COLLECTION_ITEMS,
    log:
        "results/logs/publish_collection/{model}.log",
    conda:
        ENV
    params:
        hub=config["hub"],
        conditions=SWEEP.conditions,
    script:
        "../workflow/scripts/publish_collection.py"
