"""A real student on a GPU: ``train_student`` (the function the ``train_student`` rule calls) with
the configured training path of a size (bf16; 0.5B: torch varlen attention and compiled decoder
layers), two students sharing one GPU through the workflow's own GPU pool, one of them killed
with SIGKILL mid-run and resumed.

What runs, on a random-weight model of the real shape saved with ``save_pretrained`` (the real
tokenizer) and ``--rows`` protocol-prompt rows (``bench_train.make_rows``), ``--epochs`` epochs:

1. students A and B start together, each claiming ``--slots`` of the 12 slots of a GPU
   (``gpu_pool.claim_share``, which pins ``CUDA_VISIBLE_DEVICES`` and, in ``train_student``,
   caps the process's CUDA memory at its share); B is killed (SIGKILL) as epoch
   ``--kill-epoch`` + 1 begins, i.e. after epoch ``--kill-epoch``'s checkpoint is complete;
2. B is started again and resumes from its last complete checkpoint.

Checked (``checks`` in the report; ``passed`` = all of them):

* both claims landed on the same GPU with the expected share, and the two students trained at
  the same time (their step windows overlap);
* A and the resumed B each end with every epoch's adapter, the full step count, no trainer
  folder, finite losses that fall; B says it resumed from the kill epoch's checkpoint;
* B's learning rate at every step after the resume equals A's (the schedule continued);
* B's adapters of the epochs before the kill are the bytes it wrote before it was killed;
* resume adds no more difference than running twice: the adapters of A and B differ after the
  resume by no more than ``--resume-factor`` x their difference before it (GPU kernels are not
  bitwise deterministic, so A and B already differ a little before the kill).

    PYTHONPATH=src python3 benchmarks/gpu_student.py --ref .carry/ref --out $OUT
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "benchmarks"))

TOKENIZER_FILES = ("vocab.json", "merges.txt", "tokenizer_config.json")
# --tiny (the CPU check of this script): the kernels that need a GPU replaced by plain ones,
# and steps of 4 rows (2 x 2) instead of 60
CPU_PATH = {"attn_implementation": "sdpa", "compile_layers": False, "liger_kernel": False}


def build_assets(
    ref: Path, size: str, work: Path, n_rows: int, tiny: bool = False
) -> tuple[Path, Path]:
    """A random model of the real shape (``tiny``: bench_train's 2-layer CPU shape) saved in
    bf16 with the real tokenizer, and the rows."""
    import shutil

    import bench_train
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    model_dir = work / "model"
    if not (model_dir / "config.json").exists():
        shape = bench_train.real_shape(ref, size, **(bench_train.TINY if tiny else {}))
        cfg_dir = work / "cfg"
        cfg_dir.mkdir(parents=True, exist_ok=True)
        (cfg_dir / "config.json").write_text(json.dumps({**shape, "torch_dtype": "bfloat16"}))
        config = AutoConfig.from_pretrained(cfg_dir)
        torch.manual_seed(0)
        with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
            model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
        model.save_pretrained(model_dir)
        for f in TOKENIZER_FILES:
            shutil.copy2(ref / "qwen2.5-tokenizer" / f, model_dir / f)
        del model
    protocol = json.loads((ref / "protocol.json").read_text())
    rows_file = work / "rows.jsonl"
    rows_file.write_text(
        "".join(json.dumps(r) + "\n" for r in bench_train.make_rows(protocol, n_rows))
    )
    return model_dir, rows_file


def worker(args: argparse.Namespace) -> None:
    """One student: claim GPU slots as a rule's job does, train (or resume), finish."""
    from transformers import TrainerCallback

    import subliminal_scaling.train.student as student
    from subliminal_scaling.runtime import gpu_pool, io
    from subliminal_scaling.runtime.config import Sweep, load_config

    claim = gpu_pool.claim_share(args.slots, what=f"gpu_student {args.name}")
    sweep = Sweep(load_config(str(REPO / "config" / "config.yaml")))
    slug = f"qwen-2.5-{args.size.lower()}-instruct"
    base = sweep.student_spec(slug)
    spec = type(base)(
        **{**base.to_dict(), "source": args.model, "revision": None, "model_id": args.model}
    ).with_training(
        n_rows=args.rows,
        epochs=args.epochs,
        **({**CPU_PATH, "effective_batch": 4, "micro_batch": 2} if args.tiny else {}),
    )
    log_file = Path(args.out_dir) / "steps.jsonl"

    class Record(TrainerCallback):
        def on_log(self, a, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                with log_file.open("a") as f:
                    f.write(
                        json.dumps(
                            {
                                "step": state.global_step,
                                "t": time.time(),
                                **{k: logs.get(k) for k in ("loss", "learning_rate", "grad_norm")},
                            }
                        )
                        + "\n"
                    )

        def on_epoch_begin(self, a, state, control, **kw):
            if args.kill_epoch and round(state.epoch) == args.kill_epoch:
                os.kill(os.getpid(), signal.SIGKILL)

    rows = io.read_jsonl(args.rows_file)
    summary = student.train_student(
        spec=spec, rows=rows, seed=1, out_dir=args.out_dir, run_name=args.name, wandb_run=None,
        callbacks=[Record()],
    )  # fmt: skip
    summary["claim"] = None if claim is None else {
        "devices": list(claim.devices), "share": claim.share, "source": claim.source,
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }  # fmt: skip
    student.finish_student(args.out_dir, summary, Path(args.out_dir) / "train_summary.json")


def _start(args: argparse.Namespace, name: str, kill_epoch: int, env: dict) -> subprocess.Popen:
    out_dir = Path(args.work) / name
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, __file__, "--worker", "--name", name, "--out-dir", str(out_dir),
           "--model", str(Path(args.work) / "model"), "--rows-file",
           str(Path(args.work) / "rows.jsonl"), "--size", args.size, "--rows", str(args.rows),
           "--epochs", str(args.epochs), "--slots", str(args.slots),
           "--kill-epoch", str(kill_epoch)] + (["--tiny"] if args.tiny else [])  # fmt: skip
    log = (out_dir / "log.txt").open("a")
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)


def _steps(out_dir: Path) -> list[dict[str, Any]]:
    f = out_dir / "steps.jsonl"
    return [json.loads(x) for x in f.read_text().splitlines()] if f.exists() else []


def _adapter(out_dir: Path, epoch: int) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(out_dir / f"epoch{epoch}" / "adapter_model.safetensors"))


def rel_diff(a: dict[str, Any], b: dict[str, Any]) -> float:
    """||a - b|| / ||a|| over all tensors of two adapters (float64)."""
    num = sum(float(((a[k].double() - b[k].double()) ** 2).sum()) for k in a)
    den = sum(float((a[k].double() ** 2).sum()) for k in a)
    return (num / den) ** 0.5 if den else float("inf")


def evaluate(args: argparse.Namespace, walls: dict[str, float]) -> dict[str, Any]:
    from subliminal_scaling.runtime import io, layout

    work = Path(args.work)
    a_dir, b_dir = work / "A", work / "B"
    steps_per_epoch = args.rows // (4 if args.tiny else 60)
    total = steps_per_epoch * args.epochs
    out: dict[str, Any] = {"walls_s": walls, "steps_expected": total}
    checks: dict[str, bool] = {}
    summaries = {}
    for name, d in (("A", a_dir), ("B", b_dir)):
        f = d / "train_summary.json"
        summaries[name] = io.read_json(f) if f.exists() else None
    out["summaries"] = summaries
    if not all(summaries.values()):
        checks["both_finished"] = False
        out["checks"], out["passed"] = checks, False
        return out
    sa, sb = summaries["A"], summaries["B"]
    ca, cb = sa.get("claim") or {}, sb.get("claim") or {}
    if not args.tiny:  # no GPU pool on a CPU
        share = args.slots / 12
        checks["claims_share_one_gpu"] = bool(
            ca and cb and ca["devices"] == cb["devices"] and ca["share"] == cb["share"] == share
        )
        checks["memory_capped_to_share"] = sa.get("gpu_share") == sb.get("gpu_share") == share
    checks["steps_complete"] = sa["steps"] == sb["steps"] == total
    epochs = range(1, args.epochs + 1)
    checks["every_epoch_adapter"] = all(
        (d / f"epoch{e}" / "adapter_model.safetensors").exists()
        for d in (a_dir, b_dir)
        for e in epochs
    )
    checks["trainer_folders_removed"] = not any(
        (d / layout.TRAINER_DIR).exists() for d in (a_dir, b_dir)
    )
    resumed = str(sb.get("resumed_from") or "")
    checks["b_resumed_from_kill_epoch"] = resumed.endswith(
        f"checkpoint-{steps_per_epoch * args.kill_epoch}"
    )
    sta, stb = _steps(a_dir), _steps(b_dir)
    la = [s["loss"] for s in sta]
    checks["losses_finite_and_falling"] = (
        bool(la)
        and all(x == x and abs(x) < 1e9 for x in la)
        and (sum(la[-steps_per_epoch:]) < sum(la[:steps_per_epoch]))
    )
    lr_a = {s["step"]: s["learning_rate"] for s in sta}
    after = [s for s in stb if s["step"] > steps_per_epoch * args.kill_epoch]
    checks["schedule_continued"] = bool(after) and all(
        abs(s["learning_rate"] - lr_a[s["step"]]) <= 1e-12 for s in after
    )
    before = json.loads((work / "B-before-kill.json").read_text())
    checks["pre_kill_adapters_kept"] = all(
        io.sha256_file(b_dir / f"epoch{e}" / "adapter_model.safetensors") == h
        for e, h in before.items()
    )
    diffs = {e: rel_diff(_adapter(a_dir, e), _adapter(b_dir, e)) for e in epochs}
    pre = max(diffs[e] for e in epochs if e <= args.kill_epoch)
    post = max(diffs[e] for e in epochs if e > args.kill_epoch)
    out["adapter_rel_diff_a_vs_b"] = diffs
    out["loss_a"], out["loss_b"] = la, [s["loss"] for s in stb]
    # the overlap of A's and B's first (pre-kill) training windows
    wa = [s["t"] for s in sta]
    wb = [s["t"] for s in stb if s["step"] <= steps_per_epoch * args.kill_epoch]
    overlap = min(max(wa), max(wb)) - max(min(wa), min(wb)) if wa and wb else -1
    out["concurrent_overlap_s"] = overlap
    checks["trained_side_by_side"] = overlap > 0
    checks["resume_within_run_to_run_noise"] = post <= args.resume_factor * max(pre, 1e-6)
    out["checks"], out["passed"] = checks, all(checks.values())
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ref", default=str(REPO.parent / "shared" / "reference-data"))
    p.add_argument("--size", default="0.5B")
    p.add_argument("--rows", type=int, default=300, help="a multiple of the effective batch (60)")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--kill-epoch", type=int, default=2)
    p.add_argument("--slots", type=int, default=6, help="of 12 per GPU, for each student")
    p.add_argument("--resume-factor", type=float, default=3.0)
    p.add_argument("--work", default="/tmp/gpu-student")
    p.add_argument("--out", default=os.environ.get("OUT", "/tmp/gpu-student-out"))
    p.add_argument("--timeout-s", type=float, default=400)
    p.add_argument("--tiny", action="store_true", help="2-layer shape, GPU kernels off (CPU check)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--name", help=argparse.SUPPRESS)
    p.add_argument("--out-dir", help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    p.add_argument("--rows-file", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args)
        return 0
    import shutil

    import torch

    from subliminal_scaling.runtime import io

    work = Path(args.work)
    for name in ("A", "B"):
        shutil.rmtree(work / name, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    build_assets(Path(args.ref), args.size, work, args.rows, args.tiny)
    use_cuda = torch.cuda.is_available()
    if use_cuda:
        torch.cuda.empty_cache()
    walls = {"assets": time.perf_counter() - t0}
    env = {**os.environ, "WANDB_MODE": "disabled", "SUBLIMINAL_GPU_LOCK_DIR": str(work / "locks"),
           "PYTHONPATH": f"{REPO / 'src'}:{os.environ.get('PYTHONPATH', '')}"}  # fmt: skip
    deadline = time.time() + args.timeout_s
    t = time.perf_counter()
    a, b = _start(args, "A", 0, env), _start(args, "B", args.kill_epoch, env)
    b.wait(timeout=max(1, deadline - time.time()))
    walls["b_until_killed"] = time.perf_counter() - t
    killed = b.returncode == -signal.SIGKILL
    before = {
        e: io.sha256_file(work / "B" / f"epoch{e}" / "adapter_model.safetensors")
        for e in range(1, args.kill_epoch + 1)
    }
    (work / "B-before-kill.json").write_text(json.dumps(before))
    t = time.perf_counter()
    b2 = _start(args, "B", 0, env)
    a.wait(timeout=max(1, deadline - time.time()))
    walls["a"] = time.perf_counter() - t0 - walls["assets"]
    b2.wait(timeout=max(1, deadline - time.time()))
    walls["b_resumed"] = time.perf_counter() - t
    report = {
        "what": __doc__.split("\n\n")[0],
        "device": torch.cuda.get_device_name() if use_cuda else "cpu",
        "size": args.size, "rows": args.rows, "epochs": args.epochs,
        "kill_epoch": args.kill_epoch, "slots_each": args.slots,
        "b_killed_by_sigkill": killed,
        "returncodes": {"A": a.returncode, "B_resumed": b2.returncode},
        "versions": {m: __import__(m).__version__ for m in ("torch", "transformers", "trl",
                                                             "peft")},
    }  # fmt: skip
    report.update(evaluate(args, walls))
    report["checks"]["b_killed_by_sigkill"] = killed
    report["passed"] = report["passed"] and killed
    for name in ("A", "B"):
        log = work / name / "log.txt"
        report[f"log_tail_{name}"] = log.read_text()[-1500:] if log.exists() else None
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "gpu-student.json").write_text(json.dumps(report, indent=1, default=str))
    print(json.dumps({k: report[k] for k in ("passed", "checks", "walls_s")}, indent=1))
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
