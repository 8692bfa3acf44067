# Subliminal-learning scaling laws. Thin on purpose: config, validation, includes, targets.
# Logic lives in src/subliminal_scaling; rules in rules/; adapters in workflow/scripts/.


# The toy world is the default. A --configfile replaces it whole: merging the two would let
# a key missing from the user's config silently take the toy's value.
if not workflow.overwrite_configfiles:

    configfile: "config/toy.yaml"


include: "rules/common.smk"
include: "rules/generate.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"
include: "rules/report.smk"
include: "rules/collections.smk"


if TOY:

    include: "rules/toy.smk"


rule all:
    default_target: True
    input:
        all_targets(),
