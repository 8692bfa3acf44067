"""The GPU pool: jobs on one host claim distinct GPUs, a killed job frees its GPU, an empty pool
changes nothing, exhaustion fails with one clear line; and a real toy run pins its GPU jobs.

GPUs are fake (``SUBLIMINAL_GPUS`` / ``CUDA_VISIBLE_DEVICES``): the pool only hands out ids and
locks, which is all that is under test; CPU torch ignores the pin."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime
from itertools import combinations
from pathlib import Path

import pytest

from subliminal_scaling.runtime import gpu_pool
from subliminal_scaling.runtime.gpu_pool import GpuPoolError, claim_gpus, discover_pool, lock_dir

from .workflow_helpers import snakemake, workflow_copy

# A claimant in its own process: claims N GPUs, prints one JSON line, holds them HOLD seconds.
CLAIMANT = """
import json, os, sys, time
from subliminal_scaling.runtime.gpu_pool import claim_gpus
n, hold, timeout = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
claim = claim_gpus(n, what="test", timeout_s=timeout, poll_s=0.05)
t0 = time.time()
print(json.dumps({"ids": list(claim.devices) if claim else None,
                  "env": os.environ.get("CUDA_VISIBLE_DEVICES"), "t0": t0}), flush=True)
if hold < 0:
    time.sleep(3600)  # until killed
time.sleep(hold)
print(json.dumps({"t1": time.time()}), flush=True)
"""


# The same, for a job that shares a GPU: claims SLOTS of one GPU's 12 (0 slots: a whole GPU
# through claim_gpus(1)).
SHARER = """
import json, os, sys, time
from subliminal_scaling.runtime.gpu_pool import claim_gpus, claim_share
slots, hold, timeout = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
if slots:
    claim = claim_share(slots, what="test", timeout_s=timeout, poll_s=0.05)
else:
    claim = claim_gpus(1, what="test", timeout_s=timeout, poll_s=0.05)
t0 = time.time()
print(json.dumps({"ids": list(claim.devices), "slots": claim.slots, "t0": t0}), flush=True)
if hold < 0:
    time.sleep(3600)
time.sleep(hold)
print(json.dumps({"t1": time.time()}), flush=True)
"""


def _share(root: Path, slots: int, hold: float, timeout: float = 30, **extra: str):
    return subprocess.Popen(
        [sys.executable, "-c", SHARER, str(slots), str(hold), str(timeout)],
        env=_env(root, **extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _records(procs) -> list[tuple[float, float, str, int]]:
    """(start, end, device, slots) of each finished claimant."""
    out = []
    for p in procs:
        stdout, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        first, last = (json.loads(line) for line in stdout.splitlines())
        out.append((first["t0"], last["t1"], first["ids"][0], first["slots"]))
    return out


def _env(root: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_ID")}
    return {**env, "SUBLIMINAL_GPU_LOCK_DIR": str(root), **extra}


def _start(root: Path, n: int, hold: float, timeout: float = 30, **extra: str):
    return subprocess.Popen(
        [sys.executable, "-c", CLAIMANT, str(n), str(hold), str(timeout)],
        env=_env(root, **extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _claim_once(root: Path, n: int, timeout: float, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", CLAIMANT, str(n), "0", str(timeout)],
        env=_env(root, **extra),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(autouse=True)
def _no_claim_left():
    yield
    gpu_pool.release()


def test_concurrent_claimants_never_share_a_gpu(tmp_path):
    procs = [_start(tmp_path, 1, 0.8, SUBLIMINAL_GPUS="3") for _ in range(7)]
    records = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        first, last = (json.loads(line) for line in out.splitlines())
        records.append((first["t0"], last["t1"], set(first["ids"]), first["env"]))
    assert all(len(ids) == 1 and env == next(iter(ids)) for _, _, ids, env in records)
    assert set().union(*(ids for _, _, ids, _ in records)) <= {"0", "1", "2"}
    overlapping = [
        (a, b) for a, b in combinations(records, 2) if a[0] < b[1] and b[0] < a[1]
    ]  # held at the same time
    assert len(overlapping) >= 3, "claimants did not run concurrently: the test proves nothing"
    assert all(not (a[2] & b[2]) for a, b in overlapping)
    # 7 claimants, 3 GPUs: never more than 3 held at once
    for t, *_ in records:
        assert sum(1 for s, e, *_ in records if s <= t < e) <= 3


def test_two_gpu_claim_takes_two_distinct_ids_all_or_nothing(tmp_path):
    env = {"SUBLIMINAL_GPUS": "3"}
    claim = claim_gpus(2, root=tmp_path, env=env, timeout_s=0)
    assert claim is not None and len(set(claim.devices)) == 2
    assert env["CUDA_VISIBLE_DEVICES"] == ",".join(claim.devices)
    # one GPU is left: a second pair cannot be had (and takes nothing), a single can
    pair = _claim_once(tmp_path, 2, 0.3, SUBLIMINAL_GPUS="3")
    assert pair.returncode != 0 and "no 2 free GPU(s) among 3" in pair.stderr
    single = _claim_once(tmp_path, 1, 0.3, SUBLIMINAL_GPUS="3")
    assert single.returncode == 0, single.stderr
    (left,) = json.loads(single.stdout.splitlines()[0])["ids"]
    assert {left, *claim.devices} == {"0", "1", "2"}
    gpu_pool.release()
    assert "CUDA_VISIBLE_DEVICES" not in env  # restored to what the parent had


def test_a_sigkilled_job_frees_its_gpu(tmp_path):
    holder = _start(tmp_path, 1, -1, SUBLIMINAL_GPUS="1")
    try:
        first = json.loads(holder.stdout.readline())
        assert first["ids"] == ["0"]
        blocked = _claim_once(tmp_path, 1, 0.3, SUBLIMINAL_GPUS="1")
        assert blocked.returncode != 0
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.communicate(timeout=30)
    assert holder.returncode == -signal.SIGKILL
    after = _claim_once(tmp_path, 1, 5, SUBLIMINAL_GPUS="1")
    assert after.returncode == 0, after.stderr
    assert json.loads(after.stdout.splitlines()[0])["ids"] == ["0"]


@pytest.mark.parametrize(
    "env",
    [
        {"SUBLIMINAL_GPUS": "0", "CUDA_VISIBLE_DEVICES": "0,1"},
        {"CUDA_VISIBLE_DEVICES": ""},
        {"CUDA_VISIBLE_DEVICES": "-1"},
    ],
)
def test_an_empty_pool_changes_nothing(tmp_path, env):
    before = dict(env)
    assert claim_gpus(1, root=tmp_path, env=env, timeout_s=0) is None
    assert env == before
    assert not any(tmp_path.iterdir())  # no lock directory either


def test_exhaustion_fails_after_the_timeout_with_one_clear_line(tmp_path):
    assert claim_gpus(1, root=tmp_path, env={"SUBLIMINAL_GPUS": "1"}, timeout_s=0)
    t0 = time.monotonic()
    res = _claim_once(tmp_path, 1, 1.5, SUBLIMINAL_GPUS="1")
    assert res.returncode != 0 and time.monotonic() - t0 >= 1.5
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith(
        "subliminal_scaling.runtime.gpu_pool.GpuPoolError: no 1 free GPU(s) among 1"
    )
    assert "after 1.5 s" in last and "--resources gpu=N should have prevented this" in last


def test_more_gpus_than_the_pool_fails_at_once(tmp_path):
    needs = re.escape("job needs 2 GPU(s) but this host's pool has 1")
    with pytest.raises(GpuPoolError, match=needs):
        claim_gpus(2, root=tmp_path, env={"SUBLIMINAL_GPUS": "1"}, timeout_s=60)


def test_pool_follows_the_parents_visible_devices(tmp_path):
    assert discover_pool({"CUDA_VISIBLE_DEVICES": "2,5"}) == (["2", "5"], "CUDA_VISIBLE_DEVICES")
    assert discover_pool({"CUDA_VISIBLE_DEVICES": "2,5", "SUBLIMINAL_GPUS": "1"})[0] == ["2"]
    assert discover_pool({"SUBLIMINAL_GPUS": "4"})[0] == ["0", "1", "2", "3"]
    with pytest.raises(GpuPoolError, match="SUBLIMINAL_GPUS=3 but CUDA_VISIBLE_DEVICES"):
        discover_pool({"CUDA_VISIBLE_DEVICES": "2,5", "SUBLIMINAL_GPUS": "3"})
    env = {"CUDA_VISIBLE_DEVICES": "2,5"}
    assert claim_gpus(1, root=tmp_path, env=env, timeout_s=0).devices == ("2",)
    assert env["CUDA_VISIBLE_DEVICES"] == "2"
    other = _claim_once(tmp_path, 1, 1, CUDA_VISIBLE_DEVICES="2,5")
    assert json.loads(other.stdout.splitlines()[0])["env"] == "5"


def test_each_slurm_job_has_its_own_pool(tmp_path):
    # the Slurm executor gives every job its own GPUs under the same ids: no shared locks
    plain = lock_dir(tmp_path, {})
    a = lock_dir(tmp_path, {"SLURM_JOB_ID": "11"})
    b = lock_dir(tmp_path, {"SLURM_JOB_ID": "12"})
    assert len({plain, a, b}) == 3 and a.parent == plain.parent == tmp_path


def test_start_job_pins_a_gpu_job_and_logs_its_ids(tmp_path):
    log = tmp_path / "job.log"
    code = f"""
import os
from types import SimpleNamespace
from subliminal_scaling.runtime.job import start_job
cpu = SimpleNamespace(log=[{str(log)!r}], rule="filter_numbers", threads=1,
                      resources=SimpleNamespace(_cores=1))
start_job(cpu)
print(os.environ.get("CUDA_VISIBLE_DEVICES"))
sm = SimpleNamespace(log=[{str(log)!r}], rule="generate_numbers", threads=1,
                     resources=SimpleNamespace(gpu=2), wildcards={{"model": "m"}})
start_job(sm)
print(os.environ["CUDA_VISIBLE_DEVICES"])
"""
    res = subprocess.run(
        [sys.executable, "-c", code],
        env=_env(tmp_path, SUBLIMINAL_GPUS="3"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["None", "0,1"]  # a CPU job is left alone
    assert "claimed 2 of 3 (SUBLIMINAL_GPUS" in log.read_text()
    assert "CUDA_VISIBLE_DEVICES=0,1" in log.read_text()
    (owner,) = [p.read_text() for p in tmp_path.rglob("0.lock")]
    assert "generate_numbers model=m" in owner


def test_start_job_gives_a_sharing_student_its_slots_of_one_gpu(tmp_path):
    log = tmp_path / "job.log"
    code = f"""
import os
from types import SimpleNamespace
from subliminal_scaling.runtime.gpu_pool import current_claim
from subliminal_scaling.runtime.job import start_job
sm = SimpleNamespace(log=[{str(log)!r}], rule="train_student", threads=1,
                     resources=SimpleNamespace(gpu=0, gpu_slot=4), wildcards={{"model": "m"}})
start_job(sm)
print(os.environ["CUDA_VISIBLE_DEVICES"], current_claim().share)
"""
    res = subprocess.run(
        [sys.executable, "-c", code],
        env=_env(tmp_path, SUBLIMINAL_GPUS="2"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    dev, share = res.stdout.split()
    assert dev in {"0", "1"} and float(share) == pytest.approx(1 / 3)
    assert f"claimed 4 of 12 slots of GPU {dev}" in log.read_text()
    owners = [p.read_text() for p in tmp_path.rglob(f"{dev}.slot*.lock") if p.read_text()]
    assert len(owners) == 4 and all("train_student model=m" in o for o in owners)


@pytest.mark.slow
def test_toy_run_pins_concurrent_gpu_jobs_to_distinct_gpus(tmp_path):
    """The teacher jobs of two toy models (one job per size) run at once on 2 fake GPUs."""
    wf = workflow_copy(tmp_path / "wf")
    models = ("qwen-2.5-toy-s-instruct", "qwen-2.5-toy-m-instruct")
    targets = [f"results/{m}/numbers/neutral/raw.jsonl" for m in models]
    res = snakemake(
        wf, *targets, "--cores", "2", "--resources", "gpu=2",
        env={"SUBLIMINAL_GPUS": "2", "CUDA_VISIBLE_DEVICES": "0,1"}, timeout=1200,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout[-5000:]
    spans = {}
    for m in models:
        text = (wf / f"results/logs/generate_numbers/{m}.log").read_text()
        (pin,) = re.findall(r"claimed 1 of 2 .*CUDA_VISIBLE_DEVICES=(\d)", text)
        stamps = [
            datetime.strptime(m, "%Y-%m-%d %H:%M:%S,%f")
            for m in re.findall(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ", text, re.M)
        ]
        spans[m] = (stamps[0], stamps[-1], pin)
    (s1, e1, g1), (s2, e2, g2) = spans.values()
    assert s1 < e2 and s2 < e1, f"the two jobs did not overlap: {spans}"
    assert {g1, g2} == {"0", "1"}


def test_sharing_jobs_fill_a_gpu_to_its_12_slots_and_never_beyond(tmp_path):
    # 9 jobs of 4 slots on 2 GPUs: 3 fit on each at once, the rest wait for a free share
    records = _records([_share(tmp_path, 4, 1.0, SUBLIMINAL_GPUS="2") for _ in range(9)])
    assert {dev for *_, dev, _ in records} == {"0", "1"}
    for t, *_ in records:
        for dev in ("0", "1"):
            used = sum(k for s, e, d, k in records if d == dev and s <= t < e)
            assert used <= 12, f"GPU {dev} holds {used} slots at once"
    busiest = max(sum(1 for s, e, *_ in records if s <= t < e) for t, *_ in records)
    assert busiest == 6, "two GPUs of three 4-slot jobs each should run at once"


def test_a_whole_gpu_job_waits_for_the_sharing_jobs_and_they_for_it(tmp_path):
    # one GPU: two sharing jobs hold it; a whole-GPU job with a short timeout keeps waiting
    # (shared GPUs free up), starts after both, and a sharing job started later waits for it
    a, b = (_share(tmp_path, 6, 1.5, SUBLIMINAL_GPUS="1") for _ in range(2))
    time.sleep(0.8)
    whole = _share(tmp_path, 0, 1.0, timeout=0.5, SUBLIMINAL_GPUS="1")
    time.sleep(0.3)
    late = _share(tmp_path, 3, 0.1, timeout=30, SUBLIMINAL_GPUS="1")
    (ra, rb, rw, rl) = _records([a, b, whole, late])
    assert rw[3] == 12 and rw[0] >= max(ra[1], rb[1]) - 0.05
    assert rl[0] >= rw[1] - 0.05 or rl[1] <= rw[0] + 0.05  # never together with the whole job


def test_a_sharing_job_packs_onto_a_gpu_already_shared(tmp_path):
    first = _share(tmp_path, 3, -1, SUBLIMINAL_GPUS="2")
    try:
        dev = json.loads(first.stdout.readline())["ids"][0]
        second = _records([_share(tmp_path, 3, 0, SUBLIMINAL_GPUS="2")])[0]
        assert second[2] == dev, "a second small job should join the shared GPU"
        # the other GPU stayed whole: a whole-GPU job gets it at once
        whole = _records([_share(tmp_path, 0, 0, timeout=0.5, SUBLIMINAL_GPUS="2")])[0]
        assert whole[2] != dev
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=30)
    # the killed sharing job's slots and gate are free again: both GPUs can be had whole
    both = _claim_once(tmp_path, 2, 5, SUBLIMINAL_GPUS="2")
    assert both.returncode == 0, both.stderr
    assert sorted(json.loads(both.stdout.splitlines()[0])["ids"]) == ["0", "1"]
