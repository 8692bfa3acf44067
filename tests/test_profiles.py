"""Execution profiles (profiles/pod, profiles/slurm, profiles/kubernetes) and the per-rule
scheduler requests from config: every GPU job of the real sweep resolves its GPU count, memory
and wall time from config/config.yaml, per model size, with no cluster at hand (dry-runs)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
import yaml

from subliminal_scaling.runtime.config import GPU_RULE_SECTIONS, ConfigError, Sweep, validate_config

from .conftest import REPO, SIZES
from .workflow_helpers import snakemake, workflow_copy

GPU_RULES = list(GPU_RULE_SECTIONS)
PROFILES = REPO / "profiles"


def _profile(name: str) -> dict:
    return yaml.safe_load((PROFILES / name / "config.yaml").read_text())


def dryrun_jobs(text: str) -> list[tuple[str, dict[str, str], dict[str, str]]]:
    """(rule, wildcards, resources) of every job in a ``snakemake -n`` listing."""
    jobs: list[tuple[str, dict[str, str], dict[str, str]]] = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:\n)", text):
        m = re.match(r"(?:local)?rule (\w+):\n", block)
        if not m:
            continue
        fields = dict(re.findall(r"^    (\w+): (.*)$", block, re.M))
        split = lambda v: dict(kv.split("=", 1) for kv in v.split(", ")) if v else {}  # noqa: E731
        jobs.append((m.group(1), split(fields.get("wildcards")), split(fields.get("resources"))))
    return jobs


@pytest.fixture(scope="module")
def wf(tmp_path_factory):
    wf = workflow_copy(tmp_path_factory.mktemp("profiles"))
    if not (wf / "profiles").exists():
        (wf / "profiles").symlink_to(PROFILES)
    return wf


def _variant(wf: Path, name: str, **tp: int) -> str:
    """config/config.yaml with other vLLM tensor-parallel sizes, as a file in the copy."""
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    for section, size in tp.items():
        cfg[section]["vllm"]["tensor_parallel_size"] = size
    (wf / "config" / name).write_text(yaml.safe_dump(cfg))
    return f"config/{name}"


def _assert_requests(jobs, sweep: Sweep, gpus: dict[str, int], packing: bool = False) -> None:
    """Every GPU job asks for its rule's GPUs (with ``packing``, a small student for its slots
    of a shared GPU instead) and its size's memory and wall time."""
    seen = set()
    for rule, wc, res in jobs:
        if rule not in GPU_RULES:
            continue
        seen.add((rule, wc["model"]))
        k = sweep.students_per_gpu(wc["model"]) if rule == "train_student" and packing else 1
        want = (gpus[rule], 12 * gpus[rule]) if k == 1 else (0, 12 // k)
        assert (int(res["gpu"]), int(res["gpu_slot"])) == want, (rule, wc, res)
        assert int(res["mem_mb"]) == sweep.cluster_request(wc["model"], rule, "mem_mb")
        assert int(res["runtime"]) == sweep.cluster_request(wc["model"], rule, "runtime")
    assert seen == {(r, m) for r in GPU_RULES for m in SIZES}


def test_profiles_parse_and_leave_gpu_requests_to_config():
    pod, slurm, k8s = _profile("pod"), _profile("slurm"), _profile("kubernetes")
    assert pod["resources"] == ["gpu=8", "gpu_slot=96"]  # 12 slots per GPU: small ones share
    assert pod["rerun-incomplete"] and pod["keep-going"]
    assert slurm["executor"] == "slurm" and k8s["executor"] == "kubernetes"
    assert {"slurm_partition", "mem_mb", "runtime"} <= set(slurm["default-resources"])
    for profile in (slurm, k8s):
        assert profile["rerun-incomplete"] and profile["keep-going"]
        for rule in GPU_RULES:
            # set-resources beats the rule: gpu, mem_mb or runtime here would override config
            assert not {"gpu", "gpu_slot", "mem_mb", "runtime"} & set(
                profile["set-resources"][rule]
            ), rule
    assert all(k8s["set-resources"][r]["gpu_manufacturer"] == "nvidia" for r in GPU_RULES)


def test_cluster_requests_come_from_config_per_size(real_config, toy_config):
    sweep = Sweep(real_config)
    train = [sweep.cluster_request(m, "train_student", "runtime") for m in SIZES]
    assert train == [300, 150, 75, 60, 60, 45]  # 1.5 x the measured H100 time + 15 min
    assert sweep.cluster_request(SIZES[-1], "generate_numbers", "runtime") == 240
    assert sweep.cluster_request(SIZES[0], "evaluate_student", "runtime") == 720
    assert sweep.cluster_request(SIZES[0], "train_student", "mem_mb") == 192_000
    assert sweep.cluster_request(SIZES[-1], "train_student", "mem_mb") == 96_000
    assert [sweep.job_gpus(r) for r in GPU_RULES] == [1, 1, 1, 1]
    real_config["generation"]["vllm"]["tensor_parallel_size"] = 2
    real_config["evaluation"]["backend"] = "transformers"  # one GPU whatever tp says
    real_config["evaluation"]["vllm"]["tensor_parallel_size"] = 4
    sweep = Sweep(real_config)
    assert [sweep.job_gpus(r) for r in GPU_RULES] == [2, 1, 1, 1]
    toy = Sweep(toy_config)
    assert {toy.cluster_request(m, r, "runtime") for m in toy.slugs for r in GPU_RULES} == {15}


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c.pop("cluster"), "config.cluster: missing required key"),
        (
            lambda c: c["cluster"]["runtime"].pop("train_student"),
            "config.cluster.runtime.train_student: missing required key",
        ),
        (
            lambda c: c["models"][0]["cluster"]["runtime"].update(train_student=0),
            "config.models[0].cluster.runtime.train_student: 0 is less than the minimum of 1",
        ),
        (
            lambda c: c["cluster"]["mem_mb"].update(upload_numbers=1000),
            "config.cluster.mem_mb: Additional properties are not allowed",
        ),
    ],
)
def test_bad_cluster_requests_are_rejected(real_config, edit, message):
    edit(real_config)
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate_config(real_config)


def test_pod_profile_dry_run(wf, shared_protocol_path, real_config):
    """tensor_parallel_size sets a job's GPUs, within the profile's gpu=8."""
    cfg = _variant(wf, "tp.yaml", generation=2, evaluation=8)
    res = snakemake(
        wf, "-n", "--profile", "profiles/pod", "--configfile", cfg,
        "--config", f"protocol={shared_protocol_path}",
    )  # fmt: skip
    assert res.returncode == 0, res.stdout[-3000:]
    gpus = {"generate_numbers": 2, "train_student": 1, "evaluate_student": 8, "evaluate_control": 8}
    _assert_requests(dryrun_jobs(res.stdout), Sweep(real_config), gpus, packing=True)


@pytest.mark.parametrize(("profile", "resources"), [("profiles/pod", []), (None, ["gpu=1"])])
def test_tensor_parallel_above_the_granted_gpus_fails_before_any_job(
    wf, shared_protocol_path, profile, resources
):
    """Snakemake would silently lower a job's 16 (or 2) GPUs to the 8 (or 1) granted."""
    cfg = _variant(wf, "tp-big.yaml", generation=2, evaluation=16)
    where = ["--profile", profile] if profile else ["--cores", "2"]
    res = snakemake(
        wf, "-n", *where, *(["--resources", *resources] if resources else []),
        "--configfile", cfg, "--config", f"protocol={shared_protocol_path}",
    )  # fmt: skip
    assert res.returncode != 0
    granted = 8 if profile else 1
    rule, need = ("generate_numbers", 2) if granted == 1 else ("evaluate_student", 16)
    assert (
        f"{rule} jobs need {need} GPUs (vllm.tensor_parallel_size) but --resources "
        f"gpu={granted}" in res.stdout
    ), res.stdout[-2000:]


@pytest.mark.skipif(
    importlib.util.find_spec("snakemake_executor_plugin_slurm") is None,
    reason="snakemake-executor-plugin-slurm is not installed (pip install -e '.[dev]')",
)
def test_slurm_profile_dry_run(wf, shared_protocol_path, real_config):
    """The real Slurm executor plans the sweep (a dry-run submits nothing, needs no cluster)."""
    res = snakemake(
        wf, "-n", "--profile", "profiles/slurm", "--configfile", "config/config.yaml",
        "--config", f"protocol={shared_protocol_path}",
    )  # fmt: skip
    assert res.returncode == 0, res.stdout[-3000:]
    jobs = dryrun_jobs(res.stdout)
    _assert_requests(jobs, Sweep(real_config), dict.fromkeys(GPU_RULES, 1))
    for rule, _, r in jobs:
        assert r["slurm_partition"] == "gpu"
        if rule in GPU_RULES:
            assert r["cpus_per_task"] == "8"
        elif rule == "preflight":
            assert (r["gpu"], r["runtime"]) == ("1", "15")
        elif rule != "all":
            assert (r["mem_mb"], r["runtime"], "gpu" in r) == ("8000", "30", False), rule


def test_kubernetes_profile_resources_resolve(wf, shared_protocol_path, real_config):
    """Without the plugin: the profile's resources, given explicitly to a local dry-run."""
    k8s = _profile("kubernetes")
    defaults = [f"{k}={v!r}" for k, v in k8s["default-resources"].items()]
    sets = [
        f"{rule}:{k}={v!r}" for rule, res in k8s["set-resources"].items() for k, v in res.items()
    ]
    res = snakemake(
        wf, "-n", "--cores", "8", "--configfile", "config/config.yaml",
        "--config", f"protocol={shared_protocol_path}",
        "--default-resources", *defaults, "--set-resources", *sets,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout[-3000:]
    jobs = dryrun_jobs(res.stdout)
    _assert_requests(jobs, Sweep(real_config), dict.fromkeys(GPU_RULES, 1))
    for rule, _, r in jobs:
        if rule in [*GPU_RULES, "preflight"]:
            assert r["gpu_manufacturer"] == "nvidia" and int(r["gpu"]) == 1
