# Results: the tidy tables, the two charts per size, the scaling figure and fit, the report.
#
# Two roots share these rules through {root}: "results" holds the final results of the
# complete sweep (target `all`, `report`); "results/snapshot" holds figures of whatever has
# been evaluated so far (target `plots`), which never schedules a GPU job and can run beside
# the sweep.


rule aggregate:
    input:
        evals=all_eval_files(),
        survey=SURVEY,
    output:
        preferences="results/summary/preferences.parquet",
        preferences_csv="results/summary/preferences.csv",
        target_rates="results/summary/target_rates.parquet",
        coverage="results/summary/coverage.json",
        exact="results/summary/exact_preferences.parquet",
    log:
        "results/logs/aggregate.log",
    conda:
        ENV
    params:
        scope="final",
        params=model_params_map(),
        animals=SWEEP.animals,
        sweep=sweep_layout(),
    script:
        "../workflow/scripts/aggregate.py"


# The snapshot reads whichever of the sweep's eval files exist. They are not inputs (see
# snapshot_fingerprint), so the rule has no upstream jobs at all.
rule aggregate_snapshot:
    output:
        preferences="results/snapshot/summary/preferences.parquet",
        preferences_csv="results/snapshot/summary/preferences.csv",
        target_rates="results/snapshot/summary/target_rates.parquet",
        coverage="results/snapshot/summary/coverage.json",
        exact="results/snapshot/summary/exact_preferences.parquet",
    log:
        "results/snapshot/logs/aggregate.log",
    conda:
        ENV
    params:
        scope="snapshot",
        candidates=all_eval_files(),
        survey=SURVEY,
        fingerprint=snapshot_fingerprint,
        params=model_params_map(),
        animals=SWEEP.animals,
        sweep=sweep_layout(),
    script:
        "../workflow/scripts/aggregate.py"


rule plot_grouped_bars:
    input:
        preferences="{root}/summary/preferences.parquet",
        target_rates="{root}/summary/target_rates.parquet",
        coverage="{root}/summary/coverage.json",
        significance="{root}/summary/significance.csv",
    output:
        png=report(
            "{root}/plots/{model}/grouped_bars.png",
            caption="../report/grouped_bars.rst",
            category="Per size",
            subcategory="{model}",
        ),
        svg="{root}/plots/{model}/grouped_bars.svg",
    log:
        "{root}/logs/plot_grouped_bars/{model}.log",
    conda:
        ENV
    params:
        animals=SWEEP.animals,
        report=config["report"],
        control=config["evaluation"]["control"],
    script:
        "../workflow/scripts/plot_grouped_bars.py"


rule plot_stacked:
    input:
        preferences="{root}/summary/preferences.parquet",
        coverage="{root}/summary/coverage.json",
    output:
        png=report(
            "{root}/plots/{model}/stacked.png",
            caption="../report/stacked.rst",
            category="Per size",
            subcategory="{model}",
        ),
        svg="{root}/plots/{model}/stacked.svg",
    log:
        "{root}/logs/plot_stacked/{model}.log",
    conda:
        ENV
    params:
        animals=SWEEP.animals,
        conditions=SWEEP.conditions,
        report=config["report"],
    script:
        "../workflow/scripts/plot_stacked.py"


rule fit_scaling:
    input:
        target_rates="{root}/summary/target_rates.parquet",
        exact="{root}/summary/exact_preferences.parquet",
    output:
        fit="{root}/summary/scaling_fit.json",
        effects="{root}/summary/transfer_effects.csv",
        effects_per_epoch="{root}/summary/transfer_effects_per_epoch.csv",
        significance="{root}/summary/significance.csv",
        exact_effects="{root}/summary/exact_effects.csv",
        exact_vs_sampled="{root}/summary/exact_vs_sampled.json",
    log:
        "{root}/logs/fit_scaling.log",
    conda:
        ENV
    params:
        animals=SWEEP.animals,
        report=config["report"],
    script:
        "../workflow/scripts/fit_scaling.py"


rule plot_scaling:
    input:
        fit="{root}/summary/scaling_fit.json",
        effects="{root}/summary/transfer_effects.csv",
        effects_per_epoch="{root}/summary/transfer_effects_per_epoch.csv",
        exact_effects="{root}/summary/exact_effects.csv",
        coverage="{root}/summary/coverage.json",
        peer=lambda wc: config["report"].get("peer") or [],
    output:
        scaling=report(
            "{root}/plots/scaling.png",
            caption="../report/scaling.rst",
            category="Scaling",
        ),
        scaling_svg="{root}/plots/scaling.svg",
        per_animal=report(
            "{root}/plots/effect_per_animal.png",
            caption="../report/effect_per_animal.rst",
            category="Scaling",
        ),
        per_animal_svg="{root}/plots/effect_per_animal.svg",
        per_epoch=report(
            "{root}/plots/effect_per_epoch.png",
            caption="../report/effect_per_epoch.rst",
            category="Scaling",
        ),
        per_epoch_svg="{root}/plots/effect_per_epoch.svg",
        exact=report(
            "{root}/plots/exact_per_epoch.png",
            caption="../report/exact_per_epoch.rst",
            category="Scaling",
        ),
        exact_svg="{root}/plots/exact_per_epoch.svg",
    log:
        "{root}/logs/plot_scaling.log",
    conda:
        ENV
    params:
        animals=SWEEP.animals,
    script:
        "../workflow/scripts/plot_scaling.py"


rule snapshot_report:
    input:
        coverage="results/snapshot/summary/coverage.json",
        fit="results/snapshot/summary/scaling_fit.json",
        significance="results/snapshot/summary/significance.csv",
        plots=plot_targets(SNAPSHOT_ROOT),
    output:
        "results/snapshot/summary/report.md",
    log:
        "results/snapshot/logs/snapshot_report.log",
    conda:
        ENV
    script:
        "../workflow/scripts/snapshot_report.py"


# Figures from whatever is evaluated now (mid-sweep too); reruns when new evals appear.
rule plots:
    input:
        "results/snapshot/summary/report.md",


rule report:
    input:
        fit="results/summary/scaling_fit.json",
        effects="results/summary/transfer_effects.csv",
        significance="results/summary/significance.csv",
        exact_effects="results/summary/exact_effects.csv",
        exact_vs_sampled="results/summary/exact_vs_sampled.json",
        coverage="results/summary/coverage.json",
        protocol=PROTOCOL,
        numbers_meta=[
            NUMBERS_META.format(model=m, condition=c)
            for m in SWEEP.slugs
            for c in SWEEP.conditions
        ],
        numbers_uploads=[
            NUMBERS_UPLOAD.format(model=m, condition=c)
            for m in SWEEP.slugs
            for c in SWEEP.conditions
        ],
        leaks=[
            LEAK_CHECK.format(model=m, condition=c)
            for m in SWEEP.slugs
            for c in SWEEP.conditions
        ],
        student_uploads=[
            STUDENT_UPLOAD.format(model=m, condition=c)
            for m in SWEEP.slugs
            for c in SWEEP.conditions
        ],
        plots=plot_targets(),
    output:
        report(
            "results/summary/report.md",
            caption="../report/provenance.rst",
            category="Provenance",
        ),
    log:
        "results/logs/report.log",
    conda:
        ENV
    params:
        models=[
            {"slug": m.slug, "id": m.id, "revision": m.revision, "params": m.params}
            for m in SWEEP.models
        ],
    script:
        "../workflow/scripts/report.py"
