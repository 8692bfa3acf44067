"""GPU check that the training speed levers compute what the plain padded step computes.

On a random-weight Qwen2.5 shape (``--size``, optionally cut to ``--layers`` decoder layers),
the same rows and seed, each variant (``--variant NAME:key=value,...``, training overrides as in
bench_train.py) trains ``--steps`` optimizer steps through the project's ``build_trainer``. For
each variant it records:

* the loss and the LoRA gradient of the first step, taken just before the optimizer step, with
  ``lora_B`` initialised to small random values so every LoRA parameter has a gradient (with
  PEFT's zero ``B`` the first step would only see ``B``'s gradients);
* the loss and gradient norm of every step.

The first variant is the reference (use the padded SDPA path in float32). Every other variant's
first-step gradient is compared with it (relative L2 error, cosine) next to the bf16 padded
path's own error, which is the floor that bf16 alone sets: a lever computes the same function
when its error is of that size, and a different one when it is far above it.

    PYTHONPATH=src python3 benchmarks/check_levers.py --ref .carry/ref --size 0.5B --steps 10 \\
        --variant "fp32-pad:bf16=false,padding_free=false,attn_implementation=sdpa" \\
        --variant "bf16-pad:padding_free=false,attn_implementation=sdpa,liger_kernel=false" \\
        --variant "config:" --out $OUT
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "src"))

from bench_train import (  # noqa: E402
    _model_spec,
    make_rows,
    parse_sets,
    parse_variants,
    random_model,
    real_shape,
)


def run_variant(args: argparse.Namespace, name: str, sets: list[str], rows: list) -> dict:
    import torch
    from transformers import AutoTokenizer, TrainerCallback

    from subliminal_scaling.runtime.config import Sweep, load_config
    from subliminal_scaling.train.student import build_trainer

    torch._dynamo.reset()
    ref = Path(args.ref)
    sweep = Sweep(load_config(args.config))
    spec = _model_spec(sweep, args.size)
    training = {**sweep.training_for(spec.slug), **parse_sets(sets)}
    training["effective_batch"] = args.rows_per_step
    training["micro_batch"] = args.micro_batch or min(training["micro_batch"], args.rows_per_step)
    layers = {"num_hidden_layers": args.layers, "max_window_layers": args.layers}
    shape = real_shape(ref, args.size, **(layers if args.layers else {}))
    cuda = torch.cuda.is_available()  # CPU: a smoke test of the script only
    dtype = torch.bfloat16 if training["bf16"] and cuda else torch.float32
    attn = training["attn_implementation"]
    tokenizer = AutoTokenizer.from_pretrained(ref / "qwen2.5-tokenizer")
    # the same weights in every variant: drawn in float32, then rounded (CUDA's normal_ draws
    # differ by dtype: the 7B check of 2026-12-03 compared two different random models)
    model = random_model(shape, torch.float32, "cuda" if cuda else "cpu", attn).to(dtype)
    trainer = build_trainer(
        model=model, tokenizer=tokenizer, rows=rows,
        spec=sweep.student_spec(spec.slug).with_training(**training), seed=1,
        output_dir=f"/tmp/check-levers-{name}", run_name=name, report_to=[],
        overrides={"max_steps": args.steps, "save_strategy": "no", "logging_steps": 1,
                   "disable_tqdm": True},
    )  # fmt: skip
    g = torch.Generator(device="cpu").manual_seed(7)
    for pname, p in sorted(trainer.model.named_parameters()):
        if p.requires_grad and "lora_B" in pname:
            p.data.copy_((torch.randn(p.shape, generator=g) * args.b_std).to(p.dtype))
    first: dict[str, Any] = {}

    class FirstGrad(TrainerCallback):
        def on_pre_optimizer_step(self, a, state, control, **kw):
            if first:
                return
            named = sorted((n, p) for n, p in kw["model"].named_parameters() if p.requires_grad)
            first["vec"] = torch.cat([p.grad.detach().float().flatten() for _, p in named]).cpu()
            first["names"] = [n.replace("._orig_mod", "") for n, _ in named]

    trainer.add_callback(FirstGrad())
    t = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - t
    hist = [h for h in trainer.state.log_history if "loss" in h]
    out = {
        "variant": name, "sets": sets, "dtype": str(dtype).removeprefix("torch."),
        "attn_implementation": attn, "padding_free": bool(training.get("padding_free")),
        "liger_kernel": bool(training.get("liger_kernel")),
        "compile_layers": bool(training.get("compile_layers")),
        "losses": [h["loss"] for h in hist], "grad_norms": [h.get("grad_norm") for h in hist],
        "train_wall_s": wall,
    }  # fmt: skip
    del trainer, model
    if cuda:
        torch.cuda.empty_cache()
    return out, first


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ref", default=str(REPO.parent / "shared" / "reference-data"))
    ap.add_argument("--config", default=str(REPO / "config" / "config.yaml"))
    ap.add_argument("--size", default="0.5B")
    ap.add_argument("--layers", type=int, default=None)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--rows-per-step", type=int, default=60)
    ap.add_argument("--micro-batch", type=int, default=None)
    ap.add_argument("--b-std", type=float, default=1e-3)
    ap.add_argument("--variant", action="append", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    import peft
    import torch
    import transformers
    import trl

    from subliminal_scaling.planning.provenance import code_provenance

    protocol = json.loads((Path(args.ref) / "protocol.json").read_text())
    rows = make_rows(protocol, args.steps * args.rows_per_step)
    report: dict[str, Any] = {
        "check": "training levers vs the padded step (same rows, seed, LoRA init)",
        "date": dt.date.today().isoformat(), "command": " ".join(sys.argv),
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "size": args.size, "layers": args.layers,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "trl": trl.__version__, "peft": peft.__version__},
        **code_provenance(REPO),  # git_head, git_dirty, source_sha256_16
        "variants": [],
    }  # fmt: skip
    ref_vec, ref_names = None, None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, sets in parse_variants(args.variant):
        try:
            res, first = run_variant(args, name, sets, rows)
        except Exception as e:  # one broken variant must not hide the others
            res, first = {"variant": name, "sets": sets, "error": repr(e)[:500]}, {}
        if first:
            if ref_vec is None:
                ref_vec, ref_names = first["vec"], first["names"]
            elif first["names"] != ref_names:
                res["grad_compare"] = "parameter names differ from the reference"
            else:
                # float64: a float32 cosine of ~10^7 entries came out at 1.0012 (2026-12-03)
                v, r = first["vec"].double(), ref_vec.double()
                res["first_grad_rel_err"] = float((v - r).norm() / r.norm())
                res["first_grad_cosine"] = float(v @ r / (v.norm() * r.norm()))
            res["first_grad_norm"] = float(first["vec"].norm())
        report["variants"].append(res)
        (out / f"check-levers-{args.size.lower()}.json").write_text(json.dumps(report, indent=1))
        losses = res.get("losses") or []
        print(
            f"{name}: rel_err {res.get('first_grad_rel_err', float('nan')):.2e} "
            f"cos {res.get('first_grad_cosine', float('nan')):.6f} "
            f"losses {' '.join(f'{x:.4f}' for x in losses)} {res.get('error', '')}",
            flush=True,
        )


if __name__ == "__main__":
    main()
