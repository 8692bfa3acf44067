"""How a resource-limited Snakemake run orders its jobs, replayed without running them.

Snakemake starts, among the jobs whose inputs exist, the highest-priority one that fits the
free GPUs; jobs that need no GPU never wait. GPUs are counted in slots (a GPU is 12): a
student that shares a GPU takes a few, a whole-GPU job all 12 of each of its GPUs. Both the
schedule shown to users (``planning.schedule``, from a dry-run) and the cost estimate's wall clock
(``planning.estimate``, from benchmark times) are this one replay.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from subliminal_scaling.runtime.gpu_pool import SLOTS_PER_GPU


class ReplayError(ValueError):
    """The jobs cannot all run: one waits on an input no job makes."""


@dataclass
class Job:
    """One job: its rule (or stage), priority, GPUs, seconds, and the jobs it waits for.

    ``slots``: twelfths of a GPU it takes (None: ``12 * gpu``, whole GPUs).
    """

    name: str
    rule: str
    priority: int = 0
    gpu: int = 1
    slots: int | None = None
    seconds: float = 0.0
    needs: list[str] = field(default_factory=list)
    wildcards: dict[str, str] = field(default_factory=dict)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)

    @property
    def need(self) -> int:
        """GPU slots this job holds while it runs (0: a CPU job)."""
        return SLOTS_PER_GPU * self.gpu if self.slots is None else self.slots


def replay(jobs: list[Job], gpus: int) -> list[tuple[float, float, Job]]:
    """``(start, end, job)`` for every job, in start order, on ``gpus`` GPUs.

    A free GPU takes the ready job of highest (priority, seconds), ties to the earlier job in
    ``jobs``; a job without GPUs starts as soon as it is ready.
    """
    index = {j.name: i for i, j in enumerate(jobs)}
    if len(index) != len(jobs):
        raise ReplayError("job names must be unique")
    for j in jobs:
        missing = [n for n in j.needs if n not in index]
        if missing:
            raise ReplayError(f"{j.name} waits on {missing[0]}, which no job makes")
    done_at: dict[str, float] = {}
    pending = list(range(len(jobs)))
    free = SLOTS_PER_GPU * gpus
    running: list[tuple[float, int]] = []  # (end, slots) heap
    now = 0.0
    out: list[tuple[float, float, Job]] = []
    while pending:
        ready = [
            i for i in pending if all(done_at.get(n, float("inf")) <= now for n in jobs[i].needs)
        ]
        cpu = [i for i in ready if jobs[i].need == 0]
        fits = [i for i in ready if 0 < jobs[i].need <= free]
        if cpu or fits:
            pick = (
                cpu[0] if cpu else max(fits, key=lambda i: (jobs[i].priority, jobs[i].seconds, -i))
            )
            job = jobs[pick]
            end = now + job.seconds
            done_at[job.name] = end
            out.append((now, end, job))
            pending.remove(pick)
            if job.need:
                free -= job.need
                heapq.heappush(running, (end, job.need))
            continue
        if not running:
            needs = {n for i in pending for n in jobs[i].needs} - set(done_at)
            raise ReplayError(f"jobs wait forever (on {sorted(needs)[:3]}): more GPUs needed?")
        end, g = heapq.heappop(running)
        now = max(now, end)
        free += g
        while running and running[0][0] <= now:
            free += heapq.heappop(running)[1]
    return out


def wall_clock(jobs: list[Job], gpus: int) -> float:
    """Seconds from the first job's start to the last one's end on ``gpus`` GPUs."""
    return max((end for _, end, _ in replay(jobs, gpus)), default=0.0)


def link_by_files(jobs: list[Job]) -> list[Job]:
    """Fill each job's ``needs`` from the files it reads that another job writes."""
    producer = {o: j.name for j in jobs for o in j.outputs}
    for j in jobs:
        j.needs = sorted({producer[f] for f in j.inputs if f in producer})
    return jobs
