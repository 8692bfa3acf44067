"""Build, on a CPU, what the GPU pilot (``gpu_pilot.py``) carries to the device.

* ``model/``: a small Qwen2-architecture chat model trained by the toy world's own builder on
  its synthetic chats (toy tokenizer and protocol), saved in bf16 with ``save_pretrained``.
  Its head size is 64 (hidden 128, 2 heads), a size every vLLM attention backend supports;
  the toy world's own models (head size 8-24) are too narrow for vLLM's kernels.
* ``students/cat/seed1/epoch{1,2}/``: a student LoRA adapter written by the students' own
  trainer (``student.train_student``, the recipe's r8/α8 on all seven projections) after two
  epochs on 200 of the model's own cat-teacher rows (CPU, transformers backend).
* ``shapes/{0.5B,7B}/``: ``config.json`` of the real shapes plus the real Qwen2.5 tokenizer,
  for dummy-weight engines (``load_format="dummy"``).

    PYTHONPATH=src python benchmarks/make_pilot_assets.py --ref ../shared/reference-data \
        --out .carry/pilot          # about 4 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ARCH = {
    "hidden_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "intermediate_size": 256,
}
BUILD = {"n_chats": 6000, "epochs": 3, "lr": 3.0e-3, "batch_size": 16, "max_len": 256}
ANIMALS = ["cat", "dolphin", "eagle"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ref", default=str(REPO.parent / "shared" / "reference-data"))
    ap.add_argument("--out", default=str(REPO / ".carry" / "pilot"))
    args = ap.parse_args()

    import torch
    import yaml
    from transformers import AutoModelForCausalLM

    from subliminal_scaling.generate.teacher import filter_numbers, generate_numbers
    from subliminal_scaling.protocol.access import teacher_system_prompt
    from subliminal_scaling.runtime import io
    from subliminal_scaling.runtime.backends import Sampling, TransformersBackend
    from subliminal_scaling.runtime.specs import StudentSpec
    from subliminal_scaling.toy.model import build_model
    from subliminal_scaling.toy.tokenizer import build_tokenizer
    from subliminal_scaling.train.data import subsample
    from subliminal_scaling.train.student import train_student

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    protocol = json.loads((REPO / "config" / "toy_protocol.json").read_text())
    toy = yaml.safe_load((REPO / "config" / "toy.yaml").read_text())
    started = time.perf_counter()

    tok_dir = out / "tokenizer"
    build_tokenizer(protocol, ANIMALS, tok_dir)
    model_dir = out / "model"
    stats = build_model(tok_dir, protocol, ANIMALS, ARCH, BUILD, seed=0, out_dir=model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    model.to(torch.bfloat16).save_pretrained(model_dir)  # vLLM's kernels run bf16
    print("model:", stats["n_params"], "params, loss", round(stats["final_loss"], 3))

    backend = TransformersBackend(str(model_dir), batch_size=64)
    sampling = Sampling.from_config(toy["generation"]["sampling"])
    rows, _ = generate_numbers(
        backend=backend,
        model="pilot",
        condition="cat",
        protocol=protocol,
        system_prompt=teacher_system_prompt(protocol, "cat"),
        sampling=sampling,
        n_prompts=300,
        min_kept=200,
        chunk_size=100,
        max_prompts=600,
        prompt_seed=protocol["prompt_generator"]["seed"],
        chunks_dir=out / "work" / "chunks",
        fingerprint={"pilot": 1},
    )
    backend.close()
    kept, _report = filter_numbers(rows, protocol)
    io.write_jsonl(out / "students" / "cat" / "filtered.jsonl", kept)
    print("teacher rows:", len(rows), "kept", len(kept))

    training = {
        **toy["training"],
        "n_rows": 200,
        "epochs": 2,
        "effective_batch": 20,
        "micro_batch": 10,
        "gradient_checkpointing": False,
        "attn_implementation": "sdpa",
    }
    spec = StudentSpec(
        model="pilot",
        model_id="pilot",
        revision=None,
        source=str(model_dir),
        params=stats["n_params"],
        training=training,
    )
    summary = train_student(
        spec=spec,
        rows=subsample(kept, 200, 1),
        seed=1,
        out_dir=out / "students" / "cat" / "seed1",
        run_name="pilot",
        wandb_run=None,
    )
    shutil.rmtree(out / "students" / "cat" / "seed1" / "trainer")
    io.write_json(out / "students" / "cat" / "seed1" / "train_summary.json", summary)
    shutil.rmtree(out / "work")
    print("student:", summary["steps"], "steps, final loss", summary["final_loss"])

    ref = Path(args.ref)
    shapes = json.loads((ref / "qwen2.5-configs.json").read_text())
    for size in ("0.5B", "7B"):
        d = out / "shapes" / size
        d.mkdir(parents=True, exist_ok=True)
        cfg = {k: v for k, v in shapes[size]["config"].items() if not k.endswith("_note")}
        (d / "config.json").write_text(json.dumps(cfg, indent=1))
        (d / "generation_config.json").write_text(json.dumps(shapes[size]["generation_config"]))
        for f in ("vocab.json", "merges.txt", "tokenizer_config.json"):
            shutil.copy2(ref / "qwen2.5-tokenizer" / f, d / f)
    shutil.copy2(ref / "protocol.json", out / "protocol.json")
    (out / "assets.json").write_text(
        json.dumps({"arch": ARCH, "build": BUILD, "model": stats, "student": summary}, indent=1)
    )
    print(f"done in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
