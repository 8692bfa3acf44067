# Shared: validation, the sweep, wildcard constraints, paths and input functions.
# The package (src/subliminal_scaling) is installed: `pip install -e .`, and in envs/ for
# --sdm conda; rule scripts import it like any library.
import hashlib
import os
from pathlib import Path

from snakemake.exceptions import WorkflowError
from subliminal_scaling.runtime import layout
from subliminal_scaling.runtime.gpu_pool import SLOTS_PER_GPU
from subliminal_scaling.runtime.naming import NEUTRAL
from subliminal_scaling.runtime.config import (
    GENERATION_PRIORITY_BASE,
    GPU_RULE_SECTIONS,
    ConfigError,
    Sweep,
    validate_config,
)

try:
    validate_config(config)
except ConfigError as exc:
    raise WorkflowError(f"Invalid configuration: {exc}") from None

SWEEP = Sweep(config)


def _global_resource(name):
    """What ``--resources name=N`` (or the profile) gave this run, else None."""
    value = workflow.global_resources.get(name)
    return getattr(value, "value", value)


def check_run_settings():
    """Settings of this invocation that would go wrong silently: fail before any job."""
    survey = config["evaluation"]["survey_path"]
    if survey and not Path(survey).is_file():
        raise WorkflowError(
            f"Invalid configuration: config.evaluation.survey_path: {survey} does not exist: "
            "put the users' survey there, or set evaluation.survey_path: null to run without it"
        )
    granted = _global_resource("gpu")
    slots = _global_resource("gpu_slot")
    if slots is not None and (
        granted is None or int(slots) != SLOTS_PER_GPU * int(granted)
    ):
        raise WorkflowError(
            f"--resources gpu_slot={slots} must go with gpu=N and equal {SLOTS_PER_GPU} x N "
            f"(a GPU is {SLOTS_PER_GPU} slots): e.g. --resources gpu=1 gpu_slot={SLOTS_PER_GPU}"
        )
    if granted is None:
        return
    for step in GPU_RULE_SECTIONS:
        need = SWEEP.job_gpus(step)
        if need > int(granted):
            raise WorkflowError(
                f"{step} jobs need {need} GPUs (vllm.tensor_parallel_size) but --resources "
                f"gpu={granted}: Snakemake would silently run them on {granted}; raise "
                "--resources gpu or lower tensor_parallel_size"
            )


check_run_settings()
# --resources gpu_slot=12N: small students share GPUs (models[].students_per_gpu)
PACKING = _global_resource("gpu_slot") is not None
TOY = SWEEP.is_toy
PROTOCOL = "results/protocol.json"
PREFLIGHT = "results/preflight.json"
RAW = "results/{model}/numbers/{condition}/raw.jsonl"
GEN_META = "results/{model}/numbers/{condition}/generation.json"
CHUNKS = "results/{model}/numbers/{condition}/chunks"
FILTERED = "results/{model}/numbers/{condition}/filtered.jsonl"
FILTER_REPORT = "results/{model}/numbers/{condition}/filter_report.json"
NUMBERS_META = "results/{model}/numbers/{condition}/metadata.json"
LEAK_CHECK = "results/{model}/numbers/{condition}/leak_check.json"
# one Hub collection per size: created before its uploads (their cards link it), filled after
COLLECTION = "results/{model}/collection/collection.json"
COLLECTION_ITEMS = "results/{model}/collection/items.json"
NUMBERS_UPLOAD = "results/{model}/numbers/{condition}/upload.json"
# a student's folder, its adapters and its evals: runtime/layout.py owns their names
STUDENTS_DIR = "results/{model}/students/{condition}"
STUDENT_DIR = f"{STUDENTS_DIR}/{layout.SEED_DIR}"
STUDENT_SUMMARY = f"{STUDENT_DIR}/{layout.SUMMARY_FILE}"
STUDENT_ADAPTER = f"{STUDENT_DIR}/{layout.EPOCH_DIR}/{{file}}"
STUDENT_UPLOAD = f"{STUDENTS_DIR}/upload.json"
ADAPTER_FILES = list(layout.ADAPTER_FILES)
TOY_MODEL = f"{config['toy']['models_dir']}/{{model}}" if TOY else None
EVAL = f"results/{{model}}/eval/{{condition}}/{layout.EVAL_FILE}"
EVAL_PARTIAL = "results/{model}/eval/{condition}/.partial"
CONTROL_EVAL = "results/{model}/eval/control/standard.json.gz"
SURVEY = "results/summary/survey_controls.json.gz"
# Results have two roots: the final results of the complete sweep, and a snapshot of whatever
# has been evaluated so far (the `plots` target). The same rules serve both via {root}.
FINAL_ROOT = "results"
SNAPSHOT_ROOT = "results/snapshot"
WANDB_DIR = "results/wandb"
ENV = "../envs/workflow.yaml"


wildcard_constraints:
    model="|".join(SWEEP.slugs).replace(".", r"\."),
    condition="|".join(SWEEP.conditions),
    seed=r"\d+",
    epoch=r"\d+",
    root="|".join([FINAL_ROOT, SNAPSHOT_ROOT]),


def preflight_input(wildcards):
    """GPU jobs run only after preflight has passed; its later reruns never make them stale.

    The edge is ``ancient`` and always present (a changing input set would itself trigger
    reruns), and preflight has no params, so it reruns only when its file is missing. Then a
    Snakemake quirk applies: a rerunning job masks its dependents and ancient links are not
    followed, so that invocation only re-checks; the next one carries on.
    """
    return ancient(PREFLIGHT)


def model_inputs(wildcards):
    """The toy world builds its models; real models load from the Hub at run time."""
    if TOY:
        return [SWEEP.model_source(wildcards.model)]
    return []


def protocol_sources(wildcards):
    """The protocol JSON named in config, or the two reference files it is parsed from."""
    if config["protocol"]:
        return [config["protocol"]]
    ref = Path(config["reference_dir"])
    return [
        ref / "sl/datasets/nums_dataset.py",
        ref / "cfgs/preference_numbers/cfgs.py",
    ]


def student_outputs(model, condition, seed):
    files = [STUDENT_SUMMARY.format(model=model, condition=condition, seed=seed)]
    files += expand(
        STUDENT_ADAPTER,
        model=model,
        condition=condition,
        seed=seed,
        epoch=SWEEP.epochs,
        file=ADAPTER_FILES,
    )
    return files


def student_eval_outputs(model, condition):
    return [
        EVAL.format(model=model, condition=condition, seed=s, epoch=e)
        for s in SWEEP.seeds
        for e in SWEEP.epochs
    ]


def all_eval_files():
    files = []
    for m in SWEEP.slugs:
        files.append(CONTROL_EVAL.format(model=m))
        for c in SWEEP.conditions:
            files += student_eval_outputs(m, c)
    return files


def model_params_map():
    return {m.slug: m.params for m in SWEEP.models}


def sweep_layout():
    """The sweep's axes, for the coverage table (what a snapshot holds)."""
    return {
        "models": SWEEP.slugs,
        "conditions": SWEEP.conditions,
        "seeds": SWEEP.seeds,
        "epochs": SWEEP.epochs,
    }


def snapshot_fingerprint(wildcards):
    """Which of the sweep's eval files (and the ingested survey) exist now, as a short stamp.

    The snapshot's eval files are not inputs: inputs would pull their producers (GPU jobs)
    into the DAG, and a file the running sweep produces is in its lock, so `snakemake plots`
    could not run beside it. This param instead reruns the snapshot whenever the set of
    files, or any file's size or mtime, changes; and only then.
    """
    files = [f for f in [*all_eval_files(), SURVEY] if os.path.isfile(f)]
    stamp = hashlib.sha256()
    for f in files:
        st = os.stat(f)
        stamp.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    survey = "present" if SURVEY in files else "absent"
    n_evals = len(files) - (SURVEY in files)
    return f"{n_evals} eval files, survey {survey}, sha256 {stamp.hexdigest()[:16]}"


def plot_targets(root=FINAL_ROOT):
    files = []
    for m in SWEEP.slugs:
        for chart in ("grouped_bars", "stacked"):
            files += [
                f"{root}/plots/{m}/{chart}.png",
                f"{root}/plots/{m}/{chart}.svg",
            ]
    for fig in ("scaling", "effect_per_animal", "effect_per_epoch", "exact_per_epoch"):
        files += [f"{root}/plots/{fig}.png", f"{root}/plots/{fig}.svg"]
    return files


def all_targets():
    files = [PROTOCOL]
    for m in SWEEP.slugs:
        for c in SWEEP.conditions:
            files.append(NUMBERS_UPLOAD.format(model=m, condition=c))
            files.append(STUDENT_UPLOAD.format(model=m, condition=c))
    files += [COLLECTION_ITEMS.format(model=m) for m in SWEEP.slugs]
    files += all_eval_files()
    files += plot_targets()
    files += ["results/summary/scaling_fit.json", "results/summary/report.md"]
    return files


def gpu_request(rule, key):
    """A GPU job's ``gpu`` (whole GPUs: vLLM's tensor-parallel size, else one) or
    ``gpu_slot`` (twelfths of a GPU), per size: with --resources gpu_slot, students of a size
    with students_per_gpu k > 1 take 12/k slots of one GPU and no whole GPU. The GPU pool
    (runtime.gpu_pool, via start_job) pins what the job was given.
    """
    return lambda wildcards: SWEEP.gpu_request(rule, wildcards.model, PACKING)[key]


def cluster_request(rule, key):
    """``mem_mb`` or ``runtime`` (minutes) of a GPU job, from config ``cluster`` per size."""
    return lambda wildcards: SWEEP.cluster_request(wildcards.model, rule, key)


def shipped_toy_model(wildcards):
    """The committed weights of a toy model, if any (a change to them reruns the build)."""
    root = config["toy"].get("shipped_dir")
    if not root:
        return []
    d = Path(root) / wildcards.model
    return [
        str(d / f) for f in ("model.safetensors", "toy_build.json") if (d / f).is_file()
    ]


def neutral_numbers(wildcards):
    """An animal teacher's leak check compares with the neutral teacher's kept rows."""
    if wildcards.condition == NEUTRAL or NEUTRAL not in SWEEP.conditions:
        return []
    return FILTERED.format(model=wildcards.model, condition=NEUTRAL)
