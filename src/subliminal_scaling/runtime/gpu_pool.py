"""Pin each GPU job to its own GPU(s) on a shared host.

Snakemake's ``--resources gpu=N`` caps how many GPUs the running jobs ask for in total, but
it does not say *which* GPU a job gets: without this, every job would start on device 0. A job
claims ``n`` GPUs by taking a non-blocking exclusive ``flock`` on one lock file per device,
keeps the file descriptors open for the life of its process (the kernel drops the locks when
the process ends, even on SIGKILL, so a dead job never leaves a GPU claimed), and exports
``CUDA_VISIBLE_DEVICES`` to the claimed ids before CUDA is initialised.

The pool is the devices the job's parent could see:

1. ``SUBLIMINAL_GPUS=N``: the first N of them (``0`` turns pinning off);
2. else ``CUDA_VISIBLE_DEVICES``, as inherited from Snakemake (ids and UUIDs kept as given);
3. else ``nvidia-smi -L`` (a separate process: it never initialises CUDA here);
4. else, only where NVIDIA device nodes exist, ``torch.cuda.device_count()`` in a child
   Python (calling it in this process would initialise CUDA before the pin is set);
5. else no GPUs: nothing is done (CPU runs, the toy world).

Sharing one GPU (small students): a GPU is ``SLOTS_PER_GPU`` (12) slots. A whole-GPU job takes
an exclusive ``flock`` on ``<id>.lock``; a job that needs ``k`` slots of one GPU takes a shared
``flock`` on the same file (so no whole-GPU job can start there) plus exclusive locks on ``k``
of its 12 ``<id>.slot<j>.lock`` files (so the slots of one GPU never add up to more than 12).
It prefers a GPU that other sharing jobs already use, which keeps whole GPUs free. Snakemake's
``--resources gpu_slot=12N`` caps the slots in use, as ``gpu=N`` caps whole GPUs.

Locks live under ``results/.gpu/<host>/`` (``SUBLIMINAL_GPU_LOCK_DIR`` overrides the root), one
pool per host; inside a Slurm allocation the pool is per Slurm job, because each Slurm job sees
its own devices under the same ids (so two jobs of the Slurm executor never wait on each other,
while the jobs of one local run inside one allocation still share one pool). A job that finds
no free GPU retries for ``SUBLIMINAL_GPU_TIMEOUT`` seconds (default 120), then fails.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from glob import glob
from pathlib import Path

LOCK_ROOT = Path("results/.gpu")
SLOTS_PER_GPU = 12  # divisible by 1, 2, 3, 4 and 6: the jobs one GPU can be shared by
DEFAULT_TIMEOUT_S = 120.0
POLL_S = 0.5

log = logging.getLogger(__name__)

# fds of this process's claim: held until the process exits (or release())
_held: list[int] = []
_claim: Claim | None = None
# the env that was pinned, and its CUDA_VISIBLE_DEVICES before, for release()
_inherited: tuple[MutableMapping[str, str], str | None] | None = None


class GpuPoolError(RuntimeError):
    """No GPU could be claimed; the message is one line that says why."""


@dataclass(frozen=True)
class Claim:
    """The devices this process holds, the pool they came from, and where its locks are."""

    devices: tuple[str, ...]
    pool: tuple[str, ...]
    lock_dir: Path
    source: str
    slots: int = SLOTS_PER_GPU  # of each device; fewer: a shared GPU

    @property
    def share(self) -> float:
        """Fraction of each claimed GPU this job may use (1.0: whole GPUs)."""
        return self.slots / SLOTS_PER_GPU

    @property
    def visible(self) -> str:
        return ",".join(self.devices)


def _visible_devices(value: str) -> list[str]:
    """Entries of a ``CUDA_VISIBLE_DEVICES`` value, up to the first invalid one (as CUDA)."""
    out = []
    for item in value.split(","):
        item = item.strip()
        if not item or item.startswith("-"):
            break
        out.append(item)
    return out


def _count_nvidia_smi() -> int | None:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    try:
        res = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if res.returncode != 0:
        return None
    return sum(1 for line in res.stdout.splitlines() if line.startswith("GPU "))


def _count_torch_subprocess() -> int | None:
    """``torch.cuda.device_count()`` in a child, so this process's CUDA stays untouched."""
    if not glob("/dev/nvidia[0-9]*"):  # no NVIDIA device nodes: no CUDA GPU, skip the import
        return 0
    code = "import torch; print(torch.cuda.device_count())"
    try:
        res = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
        )
        return int(res.stdout.strip().splitlines()[-1]) if res.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError):
        return None


def discover_pool(env: Mapping[str, str] | None = None) -> tuple[list[str], str]:
    """The device ids this host offers the workflow, and where that answer came from."""
    env = os.environ if env is None else env
    inherited = env.get("CUDA_VISIBLE_DEVICES")
    visible = _visible_devices(inherited) if inherited is not None else None
    if env.get("SUBLIMINAL_GPUS", "").strip():
        raw = env["SUBLIMINAL_GPUS"].strip()
        if not raw.isdigit():
            raise GpuPoolError(f"SUBLIMINAL_GPUS={raw!r}: must be a whole number of GPUs")
        n = int(raw)
        base = visible if visible is not None else [str(i) for i in range(n)]
        if n > len(base):
            raise GpuPoolError(
                f"SUBLIMINAL_GPUS={n} but CUDA_VISIBLE_DEVICES={inherited!r} shows {len(base)}"
            )
        return base[:n], "SUBLIMINAL_GPUS"
    if visible is not None:
        return visible, "CUDA_VISIBLE_DEVICES"
    n = _count_nvidia_smi()
    if n is not None:
        return [str(i) for i in range(n)], "nvidia-smi -L"
    n = _count_torch_subprocess()
    return [str(i) for i in range(n or 0)], "torch.cuda.device_count()"


def lock_dir(root: str | Path | None = None, env: Mapping[str, str] | None = None) -> Path:
    """``<root>/<host>``, or ``<root>/<host>-slurm<jobid>`` inside a Slurm allocation."""
    env = os.environ if env is None else env
    root = Path(root or env.get("SUBLIMINAL_GPU_LOCK_DIR") or LOCK_ROOT)
    scope = socket.gethostname() or "localhost"
    if env.get("SLURM_JOB_ID"):
        scope += f"-slurm{env['SLURM_JOB_ID']}"
    return root / re.sub(r"[^A-Za-z0-9_.\-]", "_", scope)


def _try_lock(path: Path, shared: bool = False) -> int | None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _safe(dev: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", dev)


def _note_owner(fd: int, what: str) -> None:
    """Who holds the lock, for a person looking at results/.gpu (the lock is what counts)."""
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} {what}\n".encode(), 0)


def _state(where: Path, dev: str) -> str:
    """ "free", "shared" (only sharing jobs hold it) or "exclusive" (a whole-GPU job): a probe,
    its answer may be stale at once."""
    gate = where / f"{_safe(dev)}.lock"
    for state, shared in (("free", False), ("shared", True)):
        fd = _try_lock(gate, shared=shared)
        if fd is not None:
            os.close(fd)
            return state
    return "exclusive"


def _acquire(
    env: MutableMapping[str, str],
    root: str | Path | None,
    pool: list[str],
    timeout_s: float | None,
    poll_s: float,
    attempt: Callable[[Path, dict[str, str]], tuple[list[str], list[int], list[int]] | None],
    failure: Callable[[Path, float], str],
) -> tuple[Path, list[str], list[int], list[int]]:
    """Retry ``attempt(lock dir, GPU states)`` until it returns (devices, fds, fds to note the
    owner in). The timeout restarts while sharing jobs hold GPUs: one frees when they finish,
    so waiting is progress, not a misconfigured run."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        raise GpuPoolError(
            "CUDA was initialised before the GPU pool could set CUDA_VISIBLE_DEVICES; "
            "call start_job(snakemake) before any CUDA use"
        )
    if timeout_s is None:
        timeout_s = float(env.get("SUBLIMINAL_GPU_TIMEOUT", DEFAULT_TIMEOUT_S))
    where = lock_dir(root, env)
    where.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout_s
    while True:
        states = {d: _state(where, d) for d in pool}
        got = attempt(where, states)
        if got is not None:
            return (where, *got)
        if "shared" in states.values():
            deadline = time.monotonic() + timeout_s
        if time.monotonic() >= deadline:
            raise GpuPoolError(failure(where, timeout_s))
        time.sleep(poll_s)


def _pin(
    env: MutableMapping[str, str],
    devices: list[str],
    fds: list[int],
    owned: list[int],
    what: str,
    claim: Claim,
) -> Claim:
    """Hold the locks for the life of the process and point CUDA at the claimed devices."""
    global _claim, _inherited
    for fd in owned:
        _note_owner(fd, what)
    _held.extend(fds)
    _inherited = (env, env.get("CUDA_VISIBLE_DEVICES"))
    env["CUDA_VISIBLE_DEVICES"] = ",".join(devices)
    _claim = claim
    return claim


def claim_gpus(
    n: int,
    *,
    what: str = "",
    root: str | Path | None = None,
    timeout_s: float | None = None,
    poll_s: float = POLL_S,
    env: MutableMapping[str, str] | None = None,
) -> Claim | None:
    """Claim ``n`` GPUs for this process and set ``CUDA_VISIBLE_DEVICES`` to them.

    Returns None (and changes nothing) when the pool is empty. All ``n`` are taken at once
    or none (a job holding half a pair would starve another pair-job). Raises
    ``GpuPoolError`` when ``n`` exceeds the pool, after ``timeout_s`` without ``n`` free
    devices, or when CUDA was initialised before the pin could take effect.
    """
    env = os.environ if env is None else env
    if _claim is not None:  # one claim per process: a second call sees the narrowed env
        return _claim
    if n <= 0:
        return None
    pool, source = discover_pool(env)
    if not pool:
        return None
    if n > len(pool):
        raise GpuPoolError(
            f"job needs {n} GPU(s) but this host's pool has {len(pool)} ({source}); "
            "lower the job's GPU count (e.g. vllm.tensor_parallel_size) or use a bigger host"
        )

    def attempt(where: Path, _states: dict[str, str]):
        fds: list[int] = []
        got: list[str] = []
        for dev in pool:
            fd = _try_lock(where / f"{_safe(dev)}.lock")
            if fd is not None:
                fds.append(fd)
                got.append(dev)
                if len(got) == n:
                    return got, fds, fds
        for fd in fds:
            os.close(fd)  # releases the partial set before waiting
        return None

    def failure(where: Path, timeout: float) -> str:
        return (
            f"no {n} free GPU(s) among {len(pool)} ({source}) in {where} after "
            f"{timeout:g} s; Snakemake's --resources gpu=N should have prevented this: "
            "is N larger than the GPUs here, or does another run use the same results/?"
        )

    where, got, fds, owned = _acquire(env, root, pool, timeout_s, poll_s, attempt, failure)
    return _pin(env, got, fds, owned, what, Claim(tuple(got), tuple(pool), where, source))


def _try_share(where: Path, dev: str, slots: int) -> list[int] | None:
    """Shared lock on ``dev`` plus ``slots`` of its slot locks, or None (nothing held)."""
    gate = _try_lock(where / f"{_safe(dev)}.lock", shared=True)
    if gate is None:
        return None
    fds = [gate]
    for j in range(SLOTS_PER_GPU):
        fd = _try_lock(where / f"{_safe(dev)}.slot{j}.lock")
        if fd is not None:
            fds.append(fd)
            if len(fds) == slots + 1:
                return fds
    for fd in fds:
        os.close(fd)
    return None


def claim_share(
    slots: int,
    *,
    what: str = "",
    root: str | Path | None = None,
    timeout_s: float | None = None,
    poll_s: float = POLL_S,
    env: MutableMapping[str, str] | None = None,
) -> Claim | None:
    """Claim ``slots`` of the ``SLOTS_PER_GPU`` slots of one GPU and pin this process to it.

    Several such jobs share a GPU while their slots add up to at most 12; a whole-GPU job
    (``claim_gpus``) never shares one with them. None when the pool is empty.
    """
    env = os.environ if env is None else env
    if _claim is not None:
        return _claim
    if not 0 < slots <= SLOTS_PER_GPU:
        raise GpuPoolError(f"a GPU share is 1..{SLOTS_PER_GPU} slots, not {slots}")
    if slots == SLOTS_PER_GPU:
        return claim_gpus(1, what=what, root=root, timeout_s=timeout_s, poll_s=poll_s, env=env)
    pool, source = discover_pool(env)
    if not pool:
        return None

    def attempt(where: Path, states: dict[str, str]):
        # GPUs other jobs already use first: sharing jobs pack, whole GPUs stay free
        for dev in sorted(pool, key=lambda d: states[d] == "free"):
            fds = _try_share(where, dev, slots)
            if fds is not None:
                return [dev], fds, fds[1:]  # owners noted in the slot files, not the gate
        return None

    def failure(where: Path, timeout: float) -> str:
        return (
            f"no GPU with {slots} free slot(s) of {SLOTS_PER_GPU} among {len(pool)} "
            f"({source}) in {where} after {timeout:g} s; Snakemake's --resources "
            "gpu_slot=12N should have prevented this: does another run use the same results/?"
        )

    where, got, fds, owned = _acquire(env, root, pool, timeout_s, poll_s, attempt, failure)
    claim = Claim(tuple(got), tuple(pool), where, source, slots=slots)
    return _pin(env, got, fds, owned, what, claim)


def current_claim() -> Claim | None:
    """This process's claim, if it made one."""
    return _claim


def release() -> None:
    """Drop this process's claim and restore ``CUDA_VISIBLE_DEVICES`` (exit does the same)."""
    global _claim, _inherited
    while _held:
        os.close(_held.pop())
    if _inherited is not None:
        env, before = _inherited
        if before is None:
            env.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            env["CUDA_VISIBLE_DEVICES"] = before
    _claim = _inherited = None


def claim_for_job(snakemake: object, logger: logging.Logger | None = None) -> Claim | None:
    """Claim what the job's resources ask: ``gpu`` whole GPUs, or (``gpu=0``) ``gpu_slot``
    slots of one shared GPU; nothing asked: nothing done. Logs the ids."""
    logger = logger or log
    resources = getattr(snakemake, "resources", None)
    n = int(getattr(resources, "gpu", 0) or 0)
    slots = int(getattr(resources, "gpu_slot", 0) or 0)
    if n <= 0 and slots <= 0:
        return None
    rule = getattr(snakemake, "rule", "job")
    wildcards = getattr(snakemake, "wildcards", None)
    pairs = list(wildcards.items()) if hasattr(wildcards, "items") else []
    what = " ".join([rule, *(f"{k}={v}" for k, v in pairs)])
    claim = claim_gpus(n, what=what) if n > 0 else claim_share(slots, what=what)
    if claim is None:
        logger.info("GPU pool: no GPUs on this host; %s runs without pinning", rule)
    elif claim.slots < SLOTS_PER_GPU:
        logger.info(
            "GPU pool: claimed %d of %d slots of GPU %s (pool of %d, %s, locks in %s): "
            "CUDA_VISIBLE_DEVICES=%s",
            claim.slots,
            SLOTS_PER_GPU,
            claim.visible,
            len(claim.pool),
            claim.source,
            claim.lock_dir,
            claim.visible,
        )
    else:
        logger.info(
            "GPU pool: claimed %d of %d (%s, locks in %s): CUDA_VISIBLE_DEVICES=%s",
            len(claim.devices),
            len(claim.pool),
            claim.source,
            claim.lock_dir,
            claim.visible,
        )
    return claim
