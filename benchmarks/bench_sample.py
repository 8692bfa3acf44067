"""GPU benchmark of ``subliminal_scaling.runtime.backends.TransformersBackend`` on random-weight
Qwen2.5 shapes: teacher-style number sampling and the animal evaluation.

The backend loads from a path, so each size's random model is first saved (bf16 safetensors)
with the real tokenizer files to ``--workdir``, then loaded exactly as the pipeline loads it.
Workloads, with the config's sampling knobs (temperature 1, top-p 1, no top-k) and batch size:

* numbers: ``--number-prompts`` protocol prompts (seed 42 stream), 1 sample each,
  ``--number-max-new`` new tokens -> output tokens / s;
* eval: ``--eval-questions`` protocol questions x ``--eval-samples`` samples, for each of
  ``--eval-max-new`` -> seconds per evaluation.

Random weights almost never emit the end-of-turn token, so nearly every sequence runs to
max_new_tokens: the numbers are an upper bound on the time of real (shorter) completions.

    PYTHONPATH=src python3 benchmarks/bench_sample.py --ref ../shared/reference-data \
        --sizes 0.5B,7B --out benchmarks/results

CPU check (tiny shape, seconds):

    PYTHONPATH=src python benchmarks/bench_sample.py --tiny --sizes 0.5B --number-prompts 8 \
        --number-max-new 4 --eval-questions 2 --eval-samples 3 --eval-max-new 4 \
        --out /tmp/bench-cpu
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_train import REPO, TINY, slugify


def run_one(args: argparse.Namespace, size: str) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    from subliminal_scaling.generate.prompts import sample_prompts
    from subliminal_scaling.runtime.backends import Sampling, TransformersBackend, make_conversation
    from subliminal_scaling.runtime.config import load_config

    ref = Path(args.ref)
    config = load_config(args.config)
    use_cuda = torch.cuda.is_available()
    shape = json.loads((ref / "qwen2.5-configs.json").read_text())[size]["config"]
    shape = {k: v for k, v in shape.items() if not k.endswith("_note")}
    if args.tiny:
        shape = {**shape, **TINY}
    protocol = json.loads((ref / "protocol.json").read_text())
    res: dict[str, Any] = {
        "size": size,
        "device": torch.cuda.get_device_name() if use_cuda else "cpu",
        "tiny": bool(args.tiny),
    }

    path = Path(args.workdir) / size
    t = time.perf_counter()
    torch.manual_seed(0)
    with torch.device("cuda" if use_cuda else "cpu"):
        model = AutoModelForCausalLM.from_config(
            Qwen2Config(**shape), dtype=torch.bfloat16 if use_cuda else torch.float32
        )
    model.save_pretrained(path)
    for f in (ref / "qwen2.5-tokenizer").iterdir():
        if f.suffix in (".json", ".txt") and f.name != "test-vectors.json":
            shutil.copy2(f, path / f.name)
    del model
    if use_cuda:
        torch.cuda.empty_cache()
    res["build_and_save_s"] = time.perf_counter() - t

    t = time.perf_counter()
    backend = TransformersBackend(str(path), batch_size=config["generation"]["batch_size"])
    if use_cuda:
        torch.cuda.synchronize()
    res["load_s"] = time.perf_counter() - t
    eos = backend.tokenizer.eos_token_id

    # Count generated tokens where generate returns them (up to and including the first EOS).
    counts = {"out_tokens": 0, "slots": 0, "sequences": 0}
    generate = backend.model.generate

    def counting_generate(**kw):
        seqs = generate(**kw)
        new = seqs[:, kw["input_ids"].shape[1] :]
        is_eos = new == eos
        ended = is_eos.any(dim=1)
        first = torch.where(ended, is_eos.int().argmax(dim=1) + 1, new.shape[1])
        counts["out_tokens"] += int(first.sum())
        counts["slots"] += new.numel()
        counts["sequences"] += new.shape[0]
        return seqs

    backend.model.generate = counting_generate

    def timed(name: str, convs: list, sampling: Sampling, n: int) -> dict[str, Any]:
        for k in counts:
            counts[k] = 0
        if use_cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        out = backend.chat(convs, sampling, n=n, seed=0)
        if use_cuda:
            torch.cuda.synchronize()
        wall = time.perf_counter() - t0
        reasons = [c.finish_reason for group in out for c in group]
        r = {
            "workload": name,
            "prompts": len(convs),
            "samples_per_prompt": n,
            "completions": len(reasons),
            "max_new_tokens": sampling.max_new_tokens,
            "batch_size": backend.batch_size,
            "wall_s": wall,
            "output_tokens": counts["out_tokens"],
            "output_tokens_per_s": counts["out_tokens"] / wall,
            "completions_per_s": len(reasons) / wall,
            "finished_by_length": reasons.count("length"),
            "finished_by_stop": reasons.count("stop"),
        }
        if use_cuda:
            r["peak_allocated_gb"] = torch.cuda.max_memory_allocated() / 1e9
            r["peak_reserved_gb"] = torch.cuda.max_memory_reserved() / 1e9
        print(f"[sample] {size} {json.dumps(r)}", flush=True)
        return r

    gen = {**config["generation"]["sampling"], "max_new_tokens": args.number_max_new}
    prompts = sample_prompts(protocol, 42, args.number_prompts)
    # Warm-up (CUDA kernels, allocator): a few prompts, not timed.
    timed("warmup", [make_conversation(p, None) for p in prompts[:8]], Sampling.from_config(gen), 1)
    res["runs"] = [
        timed(
            "numbers", [make_conversation(p, None) for p in prompts], Sampling.from_config(gen), 1
        )
    ]
    questions = protocol["animal_evaluation"]["questions"][: args.eval_questions]
    backend.batch_size = config["evaluation"]["batch_size"]
    for m in args.eval_max_new.split(","):
        ev = {**config["evaluation"]["sampling"], "max_new_tokens": int(m)}
        res["runs"].append(
            timed(
                "eval",
                [make_conversation(q, None) for q in questions],
                Sampling.from_config(ev),
                args.eval_samples,
            )
        )
    backend.close()
    shutil.rmtree(path, ignore_errors=True)
    return res


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# Sampling benchmark (TransformersBackend): {report['device']}",
        "",
        f"Date {report['date']}; random-weight Qwen2.5 shapes saved and loaded as bf16; config "
        "sampling (T 1, top-p 1); nearly all sequences run to max_new_tokens (random weights "
        "seldom emit EOS), so these times are upper bounds for real completions.",
        "",
        "| size | workload | prompts x samples | max new | batch | wall (s) | output tok/s "
        "| completions/s | cut by length | peak alloc (GB) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in report["results"]:
        for r in s.get("runs", []):
            pa = r.get("peak_allocated_gb")
            lines.append(
                f"| {s['size']} | {r['workload']} | {r['prompts']} x {r['samples_per_prompt']} "
                f"| {r['max_new_tokens']} | {r['batch_size']} | {r['wall_s']:.1f} "
                f"| {r['output_tokens_per_s']:,.0f} | {r['completions_per_s']:.1f} "
                f"| {r['finished_by_length']}/{r['completions']} "
                f"| {'–' if pa is None else f'{pa:.1f}'} |"
            )
        if "error" in s:
            lines.append(f"| {s['size']} | failed: {s['error']} |||||||||")
    return "\n".join(lines) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--ref", default=str(REPO.parent / "shared" / "reference-data"))
    p.add_argument("--config", default=str(REPO / "config" / "config.yaml"))
    p.add_argument("--sizes", default="0.5B,7B")
    p.add_argument("--number-prompts", type=int, default=1000)
    p.add_argument("--number-max-new", type=int, default=48)
    p.add_argument("--eval-questions", type=int, default=50)
    p.add_argument("--eval-samples", type=int, default=100)
    p.add_argument("--eval-max-new", default="16", help="comma-separated list")
    p.add_argument("--tiny", action="store_true")
    p.add_argument("--workdir", default="/tmp/bench-sample-models")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    if args.worker:
        res = run_one(args, args.worker)
        Path(args.workdir, f"sample-{args.worker}.json").write_text(
            json.dumps(res, indent=2) + "\n"
        )
        return 0
    date = dt.date.today().isoformat()
    report: dict[str, Any] = {
        "benchmark": "sampling (TransformersBackend)",
        "date": date,
        "device": None,
        "command": " ".join(sys.argv),
        "results": [],
    }
    for size in args.sizes.split(","):
        f = Path(args.workdir, f"sample-{size}.json")
        f.unlink(missing_ok=True)
        rc = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--worker", size]).returncode
        res = json.loads(f.read_text()) if f.exists() else {"size": size, "error": f"rc {rc}"}
        report["results"].append(res)
        report["device"] = report["device"] or res.get("device")
        base = f"sample-{slugify(report['device'] or 'unknown')}-{date}"
        (out / f"{base}.json").write_text(json.dumps(report, indent=2) + "\n")
        (out / f"{base}.md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
