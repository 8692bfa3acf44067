"""Replay a ``snakemake -n`` listing as the scheduler would run it on a pool of GPUs.

Snakemake's dry-run lists jobs in DAG order, not in the order a resource-limited run takes
them. This replays the rule a real run follows (of the jobs whose inputs exist, the highest
priority takes a free GPU; CPU jobs never wait) so the order can be shown and tested:

    snakemake -n --configfile config/config.yaml | python -m subliminal_scaling.planning.schedule
"""

from __future__ import annotations

import dataclasses
import re
import sys
from collections import Counter

from subliminal_scaling.planning.replay import Job, link_by_files, replay


def parse_dryrun(text: str) -> list[Job]:
    """Jobs from a dry-run listing (rule blocks with input/output/priority/resources)."""
    jobs: list[Job] = []
    seen: set[tuple[str, ...]] = set()
    current: Job | None = None
    for line in text.splitlines():
        m = re.match(r"^(?:local)?rule (\w+):$", line)
        if m:
            current = Job(name=f"job{len(jobs)}", rule=m.group(1), gpu=0)
            jobs.append(current)
            continue
        m = re.match(r"^    (\w+): (.*)$", line)
        if current is None or not m:
            if line and not line.startswith(" "):
                current = None
            continue
        key, value = m.groups()
        if key == "input":
            current.inputs = [v.strip() for v in value.split(",") if v.strip()]
        elif key == "output":
            current.outputs = [v.strip() for v in value.split(",") if v.strip()]
        elif key == "priority":
            current.priority = int(value)
        elif key == "wildcards":
            current.wildcards = dict(kv.split("=", 1) for kv in value.split(", "))
        elif key == "resources":
            gm = re.search(r"\bgpu=(\d+)", value)
            current.gpu = int(gm.group(1)) if gm else 0
            sm = re.search(r"\bgpu_slot=(\d+)", value)
            current.slots = int(sm.group(1)) if sm else None
    unique = []
    for job in jobs:  # the listing repeats nothing, but be safe against a second summary
        key = (job.rule, *job.outputs)
        if key not in seen:
            seen.add(key)
            unique.append(job)
    return unique


def gpu_order(jobs: list[Job]) -> list[Job]:
    """GPU jobs in the order a run with one GPU starts them (``planning.replay``; each GPU job
    counted as one time unit, CPU jobs as none)."""
    timed = [dataclasses.replace(j, seconds=1.0 if j.need else 0.0) for j in jobs]
    order = replay(link_by_files(timed), gpus=max([1, *(j.gpu for j in timed)]))
    by_name = {j.name: j for j in jobs}
    return [by_name[j.name] for _, _, j in order if j.need]


def summarize(order: list[Job]) -> list[tuple[str, str, int]]:
    """Runs of (rule, model) in order, with their lengths."""
    runs: list[tuple[str, str, int]] = []
    for job in order:
        key = (job.rule, job.wildcards.get("model", ""))
        if runs and runs[-1][:2] == key:
            runs[-1] = (*key, runs[-1][2] + 1)
        else:
            runs.append((*key, 1))
    return runs


def main() -> None:
    jobs = parse_dryrun(sys.stdin.read())
    order = gpu_order(jobs)
    print(f"{len(jobs)} jobs; {len(order)} GPU jobs, in the order one GPU runs them:")
    for rule, model, n in summarize(order):
        print(f"  {n:4d} x {rule:18s} {model}")
    print("per rule:", dict(Counter(j.rule for j in jobs)))


if __name__ == "__main__":
    main()
