#!/usr/bin/env bash
# Issue 14 on the device (one NVIDIA H200): three calls in a row, as ../shared/device/README.md
# installs vLLM (each call also carries one part of the vLLM bundle). What ran, exactly:
#   call 1 (carry .vb/part-00 .carry): check_levers.py at the 0.5B shape (is every lever the same
#          function as the padded step?), then 7B: the shipped setting vs the lever set that passed
#   call 2 (carry .vb/part-01 .carry): that lever set at 32B and 14B, and 3B x2, 1.5B x3, 0.5B x4
#          side by side on the GPU
#   call 3 (carry .vb/part-02 .vb/fix.tar.xz .carry/ref): vLLM install, bench_vllm.py
# Second session of 2026-12-03: small, big, then call3 with SIZES=0.5B,parity,14B:
#   small (carry .vb/part-00 .carry): 3B x2, 1.5B x3, 0.5B x4, copies synchronised, 20 timed
#          steps, the shipped setting and the lever set in the same run
#   big (carry .vb/part-01 .carry): check_levers.py at 7B (8 layers) against float32, then 32B
#          shipped vs length buckets of 16 (pad_to_multiple_of=16) in the same run
# Then, on a fresh machine (install: part-00 + wheels, part-01, then call3 with
# SIZES=parity,7B EXTRA="--exact-only --eager"): the parity check on raw log-probabilities
# and the two exact-measure paths at 7B.
# Session of 2026-12-03 (3): small3, check7b, call3 with SIZES=parity,0.5B,0.5B EXTRA=--seed-cost
# (parity on raw log-probabilities; 0.5B cold then warm compile cache; per-request seed cost),
# then vllm (warm machine, vLLM installed) with SIZES=7B,7B EXTRA=--exact-only:
#   small3 (carry .vb/part-00 .carry): 3B x2 shipped vs levers (longer job timeout: the cold
#          machine's first 3B job timed out at 120 s), then 0.5B x4 and x8 on the lever path
#   check7b (carry .vb/part-01 .carry): check_levers.py at 7B (8 layers) against float32
# Next (not run yet): the three-call install, then `vllm` (or call3) with SIZES=0.5B,7B and
#   EXTRA=engines (the variants below): vLLM's engine settings side by side. By default vLLM
#   captures CUDA graphs up to 512 sequences while an H200 schedules up to 1,024 at once, so
#   the largest decode batches of a 5,000-answer eval may run without graphs.
# Session of 2026-12-03 (4): prof4, student4, then call3 with SIZES=0.5B EXTRA=engines:
#   prof4 (carry .vb/part-00 .carry): one profiled step (kernel time by kind, GPU busy vs wall)
#          of the configured path at 0.5B, 7B and 32B
#   student4 (carry .vb/part-01 .carry): gpu_student.py, a real student through train_student
#          on the GPU: two sharing the GPU through the pool, one killed and resumed
# What ran (the first machine went back after call 1): prof4; on a fresh machine student4 (with
#   part-00 and the wheels), prof32 (part-01: 7B and 32B profiled with idle gaps), call3 with
#   SIZES=0.5B EXTRA=engines BUDGET=470, then vllm with SIZES=7B (configured, graphs1024)
# Next (not run yet): sync5 with SYNC_SIZES=7B, then 32B: the idle gaps of a step (10% of the
#   32B step, 16% at 7B) against fewer reads of the GPU (training.logging_steps,
#   training.sync_free_logging)
ENGINES='--engine-variant configured={}'
ENGINES+=' --engine-variant graphs1024={"compilation_config":{"max_cudagraph_capture_size":1024}}'
ENGINES+=' --engine-variant seqs512={"max_num_seqs":512}'
export ENGINES
# Results go to $OUT and to /root/keep (kept on the warm machine between calls).
set -uo pipefail
export PYTHONUNBUFFERED=1 WANDB_DISABLED=true
KEEP=/root/keep
mkdir -p "$KEEP" /root/vb
NOLIGER="liger_kernel=false"
declare -A SETS=(
  [varlen-compile-noliger]="attn_implementation=torch_varlen,compile_layers=true,$NOLIGER"
  [compile-noliger]="compile_layers=true,$NOLIGER"
  [noliger]="$NOLIGER"
)
call1_setup() {  # the first call on a machine: part-00 of the vLLM bundle, the wheels, the GPU
  cp .vb/part-00 /root/vb/ &&
    python3 -m pip install -q --no-index --no-deps --target /root/wsite .carry/wheels/*.whl &&
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
}
install_vllm() {  # the third call: part-02, then unpack the bundle and the fix; vLLM importable
  cp .vb/part-02 /root/vb/ && cat /root/vb/part-* | xz -d | tar x -C /root \
    && xz -d < .vb/fix.tar.xz | tar x -C /root || return 1
  export PYTHONPATH=/root/vsite:/root/wsite:$PWD/src
  python3 -c "from vllm import LLM"
}
bench() {  # bench <out> <args...>
  local out=$1; shift
  python3 benchmarks/bench_train.py --ref .carry/ref --warmup 3 --steps "${STEPS:-6}" --out "$out" "$@" \
    2>&1 | grep -E "^\[bench\] skip|Error|error" | cut -c1-300
  cp "$out"/*.json "$OUT/$(basename "$out").json" 2>/dev/null
  python3 - "$out" <<'PY'
import glob, json, sys
for r in json.load(open(glob.glob(sys.argv[1] + "/*.json")[0]))["results"]:
    f = lambda k, s: format(r[k], s) if isinstance(r.get(k), (int, float)) else "-"
    print(r["size"], r.get("variant"), "x%s" % r.get("concurrent", 1), r.get("status"),
          "s/step", f("s_per_step_mean", ".3f"), "tok/s", f("non_pad_tokens_per_s", ",.0f"),
          "mfu", f("mfu", ".3f"), "GB", f("peak_allocated_gb", ".1f"), f("peak_reserved_gb", ".1f"),
          "loss", " ".join("%.4f" % x for x in (r.get("losses") or [])), str(r.get("error", ""))[:200])
PY
}
check_7b() {  # check_7b <timeout s>: the lever path at the 7B shape (8 layers) against float32
  local PAD="padding_free=false,attn_implementation=sdpa,compile_layers=false,$NOLIGER"
  timeout "$1" python3 benchmarks/check_levers.py --ref .carry/ref --size 7B --layers 8 --steps 6 \
    --out "$KEEP/check7b" \
    --variant "fp32-pad:bf16=false,$PAD" \
    --variant "bf16-pad:$PAD" \
    --variant "varlen-compile-noliger:${SETS[varlen-compile-noliger]}" 2>&1 \
    | grep -E "^[a-z0-9-]+: rel_err|Error" | cut -c1-400
  for f in "$KEEP"/check7b/*.json; do cp "$f" "$OUT/check7b-$(basename "$f")"; done
}
bench_vllm() {  # bench_vllm <args...>: bench_vllm.py with EXTRA (EXTRA=engines: $ENGINES)
  [ "${EXTRA:-}" = engines ] && EXTRA=$ENGINES
  python3 benchmarks/bench_vllm.py --ref .carry/ref --out "$OUT" "$@" ${EXTRA:-} 2>&1 \
    | grep -v -E "INFO|it/s" | cut -c1-600
}
profile_report() {  # profile_report <bench json>: the profiled step of each row
  python3 - "$1" <<'PY'
import json, sys
for r in json.load(open(sys.argv[1]))["results"]:
    p = r.get("profile") or {}
    if not p:
        print(r["size"], r.get("status"), "no profile", str(r.get("error", ""))[:200]); continue
    print(r["size"], "wall %.3f s, busy %.3f s (%.0f%%), kernels %d" % (p["step_wall_s"],
          p["device_busy_s"], 100 * p["device_busy_fraction"], p["kernels"]))
    print("  by kind:", ", ".join("%s %.3f" % kv for kv in sorted(
          p["kernel_time_by_kind_s"].items(), key=lambda kv: -kv[1])))
    print("  matmul ops:", p["matmul_ops_device_s"])
    for k in p["top_kernels"][:8]:
        print("   %.1f ms x%d %s" % (k["ms"], k["calls"], k["name"][:90]))
    g = p.get("idle_gaps") or {}
    print("  idle: %s s in all gaps, %s s in %s gaps > 100 us" % (g.get("idle_in_all_gaps_s"),
          g.get("idle_in_gaps_over_100us_s"), g.get("gaps_over_100us")))
    for x in (g.get("longest") or [])[:8]:
        print("   gap %.2f ms after %s | cpu: %s" % (x["ms"], x["after_kernel"][:40],
              " < ".join(x["cpu_ops_innermost_first"][:4])))
PY
}
profiled() {  # profiled <name> <size> <budget s> <min-left s>: one size, its last step profiled
  bench "$KEEP/$1" --sizes "$2" --budget-s "$3" --min-left-s "$4" --job-timeout-s $(($3 - 5)) --profile
  profile_report "$KEEP/$1"/*.json
}
# Session of 2026-12-03 (5): sync6 (part-00 + wheels), sync6small (part-01), vllm6 (part-02: the
#   vLLM install) with SIZES=32B, then vllm with SIZES=14B (and the same EXTRA):
#   sync6: the configured path against sync_free_logging (logging_steps 10) at 7B, 32B, 14B,
#          both now without transformers' packed-sequence read (no mask function for varlen)
#          and sync_free_logging also without the Trainer's NaN/inf read of every loss
#   sync6small: the same two at 0.5B x4 and 1.5B x3 sharing the GPU
#   vllm6: the eval at the survey's answer lengths and the exact measure (EXTRA below)
# What ran (one machine, back to back): sync6, sync6small, vllm6 with SIZES=32B BUDGET=470, then
#   on the warm machine: python3 benchmarks/bench_vllm.py --ref .carry/ref --out $OUT/b
#   --work /tmp/bv14 --sizes 14B --budget-s 300 --eval-lengths survey --workloads eval,exact
#   --eval-reps 2 (PYTHONPATH=/root/vsite:/root/wsite:$PWD/src)
# Next (not run yet): the survey-length eval at 3B (vllm with SIZES=3B and EXTRA="$SURVEY_EVAL";
#   the survey's 3B answers are at most 5 tokens; at 7B, 1.5B and 0.5B its longest answers, 19-65
#   tokens, make each question's maximum about 16-60 tokens, so this measure would not lower
#   their price), a warm start with the shipped engine settings (a size named twice in SIZES),
#   and sync6-style rows at 3B x2 (bench --sizes 3B --concurrent 2 "${SYNC[@]}")
# Session of 2026-12-03 (6): prefix7 (part-00 + wheels), prefix7small (part-01), then prefix7vllm
#   (part-02: the vLLM install):
#   prefix7: the shipped path against shared_prefix (the rows' common opening once per
#            micro-batch) at 7B, 32B (also with micro-batch 30), 14B
#   prefix7small: check_levers.py at 0.5B (float32 padded vs shipped vs shared_prefix), then
#            the same pair at 0.5B x4 and 1.5B x3
#   prefix7vllm: 3B x2 (shipped, sync_free_logging, both + shared_prefix), then the survey-length
#            eval at 3B
# Session of 2026-12-03 (7): full8 (part-00 + wheels), full8b (part-01), vllm6 (part-02: the vLLM
#   install) with SIZES=14B,14B, then vllm with SIZES=32B,32B (both with EXTRA="$SURVEY_EVAL"):
#   full8 / full8b: the shipped path on the benchmark's rows (5-10 numbers per completion)
#            against rows of full ten-number answers (answer_numbers=10), at 32B, 14B, then 7B
#   vllm6 / vllm: each size's engine started twice with the shipped engine settings: cold, then
#            from the compile cache the first start filled (every later job of a size and stage)
# What ran (one machine, back to back): full8; full8b, then in the same call
#   bench_train.py --sizes 32B --variant "full-mb20:answer_numbers=10,micro_batch=20" (budget 140);
#   vllm6 with SIZES=14B,14B BUDGET=520; vllm with SIZES=32B,32B BUDGET=570 and EXTRA above; then
#   bench_train.py --sizes 1.5B --concurrent 3 "${FULL[@]}" (budget 200, job timeout 100)
# Next (not run yet then): expandable segments at 1.5B and 3B on full rows, more copies, 3B x2
#   and 0.5B x4 on full rows: ran in the eighth session (small10 below)
FULL=(--variant "configured:" --variant "full:answer_numbers=10")
SYNC=(--variant "configured:" --variant "syncfree:logging_steps=10,sync_free_logging=true")
PREFIX=(--variant "configured:" --variant "shared:shared_prefix=true")
SURVEY_EVAL="--eval-lengths survey --workloads eval,exact --eval-reps 2"
# Session of 2026-12-04 (8): ck10 (part-00 + wheels), small10 (part-01), eager10 (part-02: the
#   vLLM install), then eager10b on the warm machine; every training row on full answers:
#   ck10:     32B as shipped (micro-batch 20) against micro-batch 30 with the first 4 decoder
#             layers recomputed in the backward pass (training.checkpoint_layers: 4)
#   small10:  3B x2 as shipped against 3B x3 with expandable segments; 1.5B x4 with expandable
#             segments; 0.5B x4 as shipped
#   eager10:  the eval engine as shipped against enforce_eager (no compile, no CUDA graphs), 7B
#             twice each (cold, then warm compile cache), survey-length evals
#   eager10b: enforce_eager alone at 32B, 0.5B, 14B (not run: eager10 showed slower evals)
# What ran: ck10, small10, eager10 on one machine; the next call found it released. On a fresh
#   machine, each with `source <(sed -n '/^set -uo/,/^case /p' benchmarks/h200_levers.sh | sed '$d')`
#   first: call1_setup, then bench n1p5b3 (1.5B x3 full) and n3b2seg (3B x2 seg); n1p5b4 (1.5B x4
#   seg); n1p5b3seg and n1p5b3b (1.5B x3 seg, then full again); n32b (32B mb30-ck4, mb20,
#   mb30-ck2) - the exact arguments are in each report's `command`
EAGER="--engine-variant eager={\"enforce_eager\":true}"
SEG="answer_numbers=10,cuda_alloc_conf=expandable_segments:True"  # full rows, expandable segments
# Session of 2026-12-04 (9): cp00 (part-00), cp01 (part-01), gen11 (part-02: the vLLM install),
#   then gen11b on the warm machine:
#   gen11:  0.5B's generation engine as generate_numbers starts it (no LoRA: --sizes gen:SIZE),
#           cold then warm, with the teacher chunk; then the eval engine cold then warm with
#           survey-length evals and the exact measure (the shipped settings throughout)
#   gen11b: the same at 3B (SIZES to change it)
# What ran (one machine): cp00, cp01, gen11, then gen11b with SIZES=gen:3B,gen:3B,gen:7B,gen:7B
#   BUDGET=560; SIZES=gen:32B,gen:32B,gen:14B,gen:14B BUDGET=585; SIZES=0.5B BUDGET=200 (gen11's
#   budget ran out before 0.5B's warm eval engine) -> h200-2026-12-04-s9-vllm-*.json
GEN11="--eval-lengths survey --workloads numbers,eval,exact --eval-reps 2"
# Next (not run yet): each12 (call 3 of three, after cp00 and cp01): the vLLM install, then 0.5B
#   and 1.5B's eval engines with evals whose samples each stop at their own drawn length
#   (--eval-lengths survey-each, nearer a real eval than `survey`), and 1.5B's generation
#   engine; then engine9 with SIZES=32B,32B (cudagraph_specialize_lora; it installs vLLM again:
#   carry as its case says)
# Session of 2026-12-04 (10): cp00 (part-00), cp01 (part-01), lean13 (part-02: the vLLM install),
#   then lean13b / lean13g on the warm machine. Every start's vLLM log lines on its parts
#   (weights, torch.compile, graph capture, the whole init) are kept in its row (engine_log).
#   lean13:  0.5B's eval engine as shipped against a lean one (19 captured batch sizes instead
#            of vLLM's 83 up to 1,024, and the LoRA graphs only), each twice (cold, then warm),
#            evals whose samples each stop at their own survey length, the exact measure; then
#            0.5B's generation engine with the 19 sizes, twice, with the teacher chunk
#   lean13b: the lean eval engine at another size (SIZES, default 32B,32B)
#   lean13g: the generation engine with the 19 sizes at other sizes (SIZES, default gen:32B,gen:32B)
SIZES19='[1,2,4,8,16,24,32,48,64,96,128,192,256,384,512,640,768,896,1024]'
LEAN="--engine-variant lean={\"compilation_config\":{\"cudagraph_capture_sizes\":$SIZES19,\"cudagraph_specialize_lora\":false}}"
FEW="--engine-variant sizes19={\"compilation_config\":{\"cudagraph_capture_sizes\":$SIZES19}}"
EACH="--eval-lengths survey-each --workloads eval,exact --eval-reps 2"
lean_eval() {  # lean_eval <out subfolder> <sizes> <budget s> <variants...>
  local sub=$1 sizes=$2 budget=$3; shift 3
  EXTRA="$* $EACH" bench_vllm_to "$sub" --sizes "$sizes" --budget-s "$budget"
}
lean_gen() {  # lean_gen <out subfolder> <sizes> <budget s>
  EXTRA="$FEW --workloads numbers" bench_vllm_to "$1" --sizes "$2" --budget-s "$3"
}
bench_vllm_to() {  # bench_vllm_to <out subfolder> <args...>: each invocation its own report
  local sub=$1; local -; set -f  # no globbing of the variants' JSON ([1,2,...])
  shift
  mkdir -p "$OUT/$sub"
  python3 benchmarks/bench_vllm.py --ref .carry/ref --out "$OUT/$sub" --work "/tmp/bv-$sub" \
    "$@" ${EXTRA:-} 2>&1 | grep -v -E "INFO|it/s" | cut -c1-600
}
# What ran (one machine, 1,754 s of device time): cp00, cp01, lean13 (0.5B configured cold; lean
#   cold timed out at the budget; gen:0.5B sizes19 cold), lean13b with SIZES=0.5B,0.5B TAG=05b
#   BUDGET=330 GSIZES=gen:0.5B GBUDGET=110 (lean cold, warm; the generation start timed out),
#   then by hand on the warm machine (sourcing the functions above): lean_eval e05c 0.5B 140
#   --engine-variant "configured={}" (timed out: a new shape folder is a new model path, so
#   a cold compile), lean_eval e32 32B,32B 400 "$LEAN", lean_eval e7 7B,7B 255 "$LEAN"
#   -> h200-2026-12-04-s10-vllm-*.json and the last start's log beside three of them
# Next (not run yet): inproc14 (call 3 of three): the eval engine as shipped against vLLM's
#   engine core in the worker's process (engine_in_process: no spawned core that imports torch
#   and vLLM again, 18-21 s of every start in the s10 logs), each started twice, at 7B; then
#   the same at 32B (SIZES=32B,32B, on the warm machine: lean13b's functions)
#   lean15 (call 3 of three, not run yet): the parity check against PEFT on the eval engine as
#   shipped and on the lean one (CUDA graphs as a real eval runs them; the base model is the
#   control's eval), then 32B as shipped and lean, cold; then on the warm machine
#   `lean_eval e32s 32B 560 --engine-variant "configured={}" "$LEAN"` again for both warm (the
#   same subfolder: vLLM keys its compile cache by the model's path)
INPROC='--engine-variant inproc={"engine_in_process":true}'
# Session of 2026-12-04 (11): "fast" = the lean eval engine and its core in the worker's process
#   (engine_in_process), against the eval engine as shipped, same machine. fast16 (call 3 of
#   three): install, the parity check against PEFT on fast's engine, then 0.5B's eval engine
#   as shipped and fast, each started cold; later calls on the warm machine (lean13b's
#   functions): lean_eval f32 32B <budget> "$CONF" "$FAST" twice (cold, then warm), lean_eval
#   f05 0.5B <budget> "$CONF" "$FAST" again (warm), then 7B's fast engine if time is left
# What ran (one machine, 1,729 s of device time): cp00, cp01, fast16 (the parity check, the
#   machine's first vLLM start, timed out at 150 s; 0.5B configured cold; fast skipped: budget),
#   then on the warm machine: lean_eval f05 0.5B 320 "$FAST" "$CONF" (fast cold, configured
#   warm); bench_vllm.py --out $OUT/f05w --work /tmp/bv-f05 --sizes 0.5B --budget-s 130 $FAST
#   $EACH (fast warm); EXTRA="$FAST" bench_vllm_to p16 --sizes parity-engine --budget-s 130;
#   lean_eval f32 32B 540 "$FAST" "$CONF" (both cold), again with budget 400 (both warm);
#   lean_eval f7 7B 165 "$FAST" (cold) -> h200-2026-12-04-s11-vllm-*.json
CONF='--engine-variant configured={}'
FAST="--engine-variant fast={\"engine_in_process\":true,\"compilation_config\":{\"cudagraph_capture_sizes\":$SIZES19,\"cudagraph_specialize_lora\":false}}"
case "${1:?cp00|cp01|fast16|lean15|inproc14|lean13|lean13b|lean13g|gen11|gen11b|each12|call1|call2|call3|small|big|small3|check7b|vllm|prof4|student4|sync6|sync6small|vllm6|prefix7|prefix7small|prefix7vllm|prefix7last|full8|full8b|engine9|ck10|small10|eager10|eager10b}" in
cp00)  # call 1 of three (carry .vb/part-00)
  cp .vb/part-00 /root/vb/ && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader ;;
cp01)  # call 2 of three (carry .vb/part-01)
  cp .vb/part-01 /root/vb/ && ls -la /root/vb ;;
gen11)  # call 3 of three (carry .vb/part-02 .vb/fix.tar.xz .carry/ref)
  install_vllm || exit 1
  EXTRA="$GEN11" bench_vllm --sizes "${SIZES:-gen:0.5B,gen:0.5B,0.5B,0.5B}" --budget-s "${BUDGET:-500}" ;;
lean15)  # call 3 of three (carry .vb/part-02 .vb/fix.tar.xz .carry/ref; not run yet)
  install_vllm || exit 1
  EXTRA="--engine-variant configured={} $LEAN" bench_vllm_to p15 --sizes parity-engine \
    --budget-s "${PBUDGET:-200}"
  lean_eval e32s 32B "${BUDGET:-330}" --engine-variant "configured={}" "$LEAN" ;;
fast16)  # call 3 of three (carry .vb/part-02 .vb/fix.tar.xz .carry/ref)
  install_vllm || exit 1
  EXTRA="$FAST" bench_vllm_to p16 --sizes parity-engine --budget-s "${PBUDGET:-150}"
  lean_eval f05 0.5B "${BUDGET:-300}" "$CONF" "$FAST" ;;
inproc14)  # call 3 of three (carry .vb/part-02 .vb/fix.tar.xz .carry/ref; not run yet)
  install_vllm || exit 1
  lean_eval e7i "${SIZES:-7B,7B}" "${BUDGET:-480}" --engine-variant "configured={}" "$INPROC"
  cp /tmp/bv-e7i/*.log "$OUT/e7i/" 2>/dev/null ;;
lean13)  # call 3 of three (carry .vb/part-02 .vb/fix.tar.xz .carry/ref)
  install_vllm || exit 1
  lean_eval e05 "${SIZES:-0.5B,0.5B}" "${BUDGET:-420}" --engine-variant "configured={}" "$LEAN"
  lean_gen g05 "gen:0.5B,gen:0.5B" "${GBUDGET:-120}" ;;
lean13b)  # the warm machine after lean13 (carry .carry/ref)
  export PYTHONPATH=/root/vsite:/root/wsite:$PWD/src
  lean_eval "e${TAG:-32}" "${SIZES:-32B,32B}" "${BUDGET:-330}" "$LEAN"
  [ -n "${GSIZES:-}" ] && lean_gen "g${TAG:-32}" "$GSIZES" "${GBUDGET:-240}" ;;
lean13g)  # the warm machine (carry .carry/ref)
  export PYTHONPATH=/root/vsite:/root/wsite:$PWD/src
  lean_gen "g${TAG:-32}" "${SIZES:-gen:32B,gen:32B}" "${BUDGET:-280}" ;;
each12)  # call 3 of three (carry .vb/part-02 .vb/fix.tar.xz .carry/ref; not run yet)
  install_vllm || exit 1
  EXTRA="--eval-lengths survey-each --workloads numbers,eval,exact --eval-reps 2" \
    bench_vllm --sizes "${SIZES:-0.5B,gen:1.5B,1.5B}" --budget-s "${BUDGET:-520}" ;;
gen11b)  # the warm machine after gen11 (carry .carry/ref)
  export PYTHONPATH=/root/vsite:/root/wsite:$PWD/src
  EXTRA="$GEN11" bench_vllm --sizes "${SIZES:-gen:3B,gen:3B,3B,3B}" --budget-s "${BUDGET:-540}" ;;
ck10)  # call 1 of three (carry .vb/part-00 .carry)
  call1_setup || exit 1
  export PYTHONPATH=/root/wsite:$PWD/src STEPS=8
  bench "$KEEP/c32b" --sizes 32B --budget-s 310 --min-left-s 100 --job-timeout-s 150 \
    --clock boundaries --variant "full:answer_numbers=10" \
    --variant "full-mb30-ck4:answer_numbers=10,micro_batch=30,checkpoint_layers=4" ;;
small10)  # call 2 of three (carry .vb/part-01 .carry)
  cp .vb/part-01 /root/vb/
  export PYTHONPATH=/root/wsite:$PWD/src STEPS=8
  bench "$KEEP/m3b2" --sizes 3B --concurrent 2 --budget-s 130 --min-left-s 60 \
    --job-timeout-s 125 --clock boundaries --variant "full:answer_numbers=10"
  bench "$KEEP/m3b3" --sizes 3B --concurrent 3 --budget-s 160 --min-left-s 60 \
    --job-timeout-s 155 --clock boundaries --variant "seg:$SEG"
  bench "$KEEP/m1p5b4" --sizes 1.5B --concurrent 4 --budget-s 130 --min-left-s 60 \
    --job-timeout-s 125 --clock boundaries --variant "seg:$SEG"
  bench "$KEEP/m0p5b4" --sizes 0.5B --concurrent 4 --budget-s 120 --min-left-s 60 \
    --job-timeout-s 115 --clock boundaries --variant "full:answer_numbers=10" ;;
eager10)  # call 3 of three (carry .vb/part-02 .vb/fix.tar.xz .carry/ref)
  install_vllm || exit 1
  EXTRA="--engine-variant configured={} $EAGER $SURVEY_EVAL"
  bench_vllm --sizes "${SIZES:-7B,7B}" --budget-s "${BUDGET:-480}" ;;
eager10b)  # the warm machine after eager10 (carry .carry/ref)
  export PYTHONPATH=/root/vsite:/root/wsite:$PWD/src
  EXTRA="$EAGER $SURVEY_EVAL"
  bench_vllm --sizes "${SIZES:-32B,0.5B,14B}" --budget-s "${BUDGET:-420}" ;;
engine9)  # call 3 of three (carry .vb/part-02 .vb/fix.tar.xz .carry/ref; not run yet): the vLLM
  # install, then each size's engine cold and warm, as shipped against LoRA graphs only
  # (cudagraph_specialize_lora false: half the CUDA graphs to capture); SIZES twice, e.g. 7B,7B
  install_vllm || exit 1
  EXTRA="--engine-variant configured={} --engine-variant lora-graphs-only={\"compilation_config\":{\"cudagraph_specialize_lora\":false}} $SURVEY_EVAL"
  bench_vllm --sizes "${SIZES:-7B,7B}" --budget-s "${BUDGET:-500}" ;;
full8)  # call 1 of three (carry .vb/part-00 .carry)
  call1_setup || exit 1
  export PYTHONPATH=/root/wsite:$PWD/src STEPS=8
  bench "$KEEP/f32b" --sizes 32B --budget-s 250 --min-left-s 90 --job-timeout-s 125 \
    --clock boundaries "${FULL[@]}"
  bench "$KEEP/f14b" --sizes 14B --budget-s 160 --min-left-s 65 --job-timeout-s 85 \
    --clock boundaries "${FULL[@]}" ;;
full8b)  # call 2 of three (carry .vb/part-01 .carry)
  cp .vb/part-01 /root/vb/
  export PYTHONPATH=/root/wsite:$PWD/src STEPS=8
  bench "$KEEP/f7b" --sizes 7B --budget-s 130 --min-left-s 50 --job-timeout-s 70 \
    --clock boundaries "${FULL[@]}" ;;
prefix7)  # call 1 of three (carry .vb/part-00 .carry)
  call1_setup || exit 1
  export PYTHONPATH=/root/wsite:$PWD/src STEPS=8
  bench "$KEEP/p7b" --sizes 7B --budget-s 170 --min-left-s 60 --job-timeout-s 110 \
    --clock boundaries "${PREFIX[@]}"
  bench "$KEEP/p32b" --sizes 32B --budget-s 300 --min-left-s 90 --job-timeout-s 125 \
    --clock boundaries "${PREFIX[@]}" --variant "shared-mb30:shared_prefix=true,micro_batch=30"
  bench "$KEEP/p14b" --sizes 14B --budget-s 150 --min-left-s 65 --job-timeout-s 85 \
    --clock boundaries "${PREFIX[@]}" ;;
prefix7small)  # call 2 of three (carry .vb/part-01 .carry)
  cp .vb/part-01 /root/vb/
  export PYTHONPATH=/root/wsite:$PWD/src STEPS=10
  PAD="padding_free=false,attn_implementation=sdpa,compile_layers=false,sync_free_logging=false"
  timeout 200 python3 benchmarks/check_levers.py --ref .carry/ref --size 0.5B --steps 6 \
    --out "$KEEP/check" --variant "fp32-pad:bf16=false,$PAD" --variant "shipped:" \
    --variant "shared:shared_prefix=true" 2>&1 | grep -E "^[a-z0-9-]+: rel_err|Error" | cut -c1-400
  for f in "$KEEP"/check/*.json; do cp "$f" "$OUT/check-$(basename "$f")"; done
  # what ran: PREFIX14=1 (14B again, 10 steps: the first call's shared 14B job ran out of budget)
  [ -n "${PREFIX14:-}" ] && bench "$KEEP/p14b2" --sizes 14B --budget-s 260 --min-left-s 100 \
    --job-timeout-s 130 --clock boundaries "${PREFIX[@]}"
  bench "$KEEP/p0p5b" --sizes 0.5B --concurrent 4 --budget-s 200 --min-left-s 80 \
    --job-timeout-s 100 --clock boundaries "${PREFIX[@]}"
  [ -z "${PREFIX14:-}" ] && bench "$KEEP/p1p5b" --sizes 1.5B --concurrent 3 --budget-s 240 --min-left-s 100 \
    --job-timeout-s 115 --clock boundaries "${PREFIX[@]}" ;;
prefix7last)  # a fresh machine (carry .carry): 3B x2 and 1.5B x3 (the vLLM install did not fit)
  python3 -m pip install -q --no-index --no-deps --target /root/wsite .carry/wheels/*.whl || exit 1
  export PYTHONPATH=/root/wsite:$PWD/src STEPS=10
  bench "$KEEP/p3b" --sizes 3B --concurrent 2 --budget-s 290 --min-left-s 85 \
    --job-timeout-s 130 --clock boundaries "${SYNC[@]}" \
    --variant "syncfree-shared:logging_steps=10,sync_free_logging=true,shared_prefix=true"
  bench "$KEEP/p1p5b" --sizes 1.5B --concurrent 3 --budget-s 230 --min-left-s 95 \
    --job-timeout-s 115 --clock boundaries "${PREFIX[@]}" ;;
prefix7vllm)  # call 3 of three (carry .vb/part-02 .vb/fix.tar.xz .carry): 3B x2, install, eval
  export PYTHONPATH=/root/wsite:$PWD/src STEPS=10
  bench "$KEEP/p3b" --sizes 3B --concurrent 2 --budget-s 260 --min-left-s 80 \
    --job-timeout-s 130 --clock boundaries "${SYNC[@]}" \
    --variant "syncfree-shared:logging_steps=10,sync_free_logging=true,shared_prefix=true"
  install_vllm || exit 1
  EXTRA="$SURVEY_EVAL" bench_vllm --sizes "${SIZES:-3B}" --budget-s "${BUDGET:-240}" ;;
call1)
  cp .vb/part-00 /root/vb/
  python3 -m pip install -q --no-index --no-deps --target /root/wsite .carry/wheels/*.whl || exit 1
  export PYTHONPATH=/root/wsite:$PWD/src
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  PAD="padding_free=false,attn_implementation=sdpa,$NOLIGER"
  timeout 270 python3 benchmarks/check_levers.py --ref .carry/ref --size 0.5B --steps 6 \
    --out "$KEEP/check" \
    --variant "fp32-pad:bf16=false,$PAD" \
    --variant "bf16-pad:$PAD" \
    --variant "varlen-compile-noliger:${SETS[varlen-compile-noliger]}" \
    --variant "shipped:" \
    --variant "noliger:${SETS[noliger]}" \
    --variant "compile-noliger:${SETS[compile-noliger]}" \
    --variant "varlen-noliger:attn_implementation=torch_varlen,$NOLIGER" 2>&1 \
    | grep -E "^[a-z0-9-]+: rel_err|Error" | cut -c1-400
  cp "$KEEP"/check/*.json "$OUT"/
  # the fastest lever set (7B, last session) whose first step matched the padded one as closely
  # as bf16 alone does, and whose step-2 loss (lr 0 at step 1) matched too
  python3 - > "$KEEP/best" <<'PY'
import glob, json
v = {r["variant"]: r for r in json.load(open(glob.glob("/root/keep/check/*.json")[0]))["variants"]}
ref = v.get("bf16-pad", {})
floor = ref.get("first_grad_rel_err", 1.0)
def ok(r):
    if "first_grad_rel_err" not in r or len(r.get("losses", [])) < 2:
        return False
    same_loss = all(abs(a - b) <= 2e-3 * abs(b) for a, b in zip(r["losses"][:2], ref["losses"][:2]))
    return same_loss and r["first_grad_rel_err"] <= max(3 * floor, 0.02)
print(next((n for n in ("varlen-compile-noliger", "compile-noliger", "noliger") if ok(v.get(n, {}))), "none"))
PY
  BEST=$(cat "$KEEP/best"); echo "lever set that passed: $BEST"
  V=(--variant "shipped:")
  [ "$BEST" != none ] && V+=(--variant "$BEST:${SETS[$BEST]}")
  bench "$KEEP/t7b" --sizes 7B --budget-s 230 --min-left-s 60 --job-timeout-s 150 "${V[@]}" ;;
call2)
  cp .vb/part-01 /root/vb/
  export PYTHONPATH=/root/wsite:$PWD/src
  BEST=$(cat "$KEEP/best"); echo "lever set: $BEST"
  [ "$BEST" = none ] && V=(--variant "shipped:") || V=(--variant "$BEST:${SETS[$BEST]}")
  bench "$KEEP/t32b" --sizes 32B --budget-s 170 --min-left-s 60 --job-timeout-s 165 "${V[@]}"
  bench "$KEEP/t14b" --sizes 14B --budget-s 120 --min-left-s 50 --job-timeout-s 115 "${V[@]}"
  bench "$KEEP/t3b" --sizes 3B --concurrent 2 --budget-s 85 --min-left-s 40 --job-timeout-s 80 "${V[@]}"
  bench "$KEEP/t1p5b" --sizes 1.5B --concurrent 3 --budget-s 80 --min-left-s 40 --job-timeout-s 75 "${V[@]}"
  bench "$KEEP/t0p5b" --sizes 0.5B --concurrent 4 --budget-s 75 --min-left-s 40 --job-timeout-s 70 "${V[@]}" ;;
small)  # session of 2026-12-03 (2): call 1 of three; small sizes, copies synchronised, same run
  cp .vb/part-00 /root/vb/
  python3 -m pip install -q --no-index --no-deps --target /root/wsite .carry/wheels/*.whl || exit 1
  export PYTHONPATH=/root/wsite:$PWD/src STEPS=20
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  V=(--variant "shipped:" --variant "levers:${SETS[varlen-compile-noliger]}")
  bench "$KEEP/s3b" --sizes 3B --concurrent 2 --budget-s 190 --min-left-s 50 --job-timeout-s 120 "${V[@]}"
  bench "$KEEP/s1p5b" --sizes 1.5B --concurrent 3 --budget-s 170 --min-left-s 50 --job-timeout-s 110 "${V[@]}"
  bench "$KEEP/s0p5b" --sizes 0.5B --concurrent 4 --budget-s 160 --min-left-s 50 --job-timeout-s 100 "${V[@]}" ;;
big)  # call 2 of three: 7B against float32 (8 layers), 32B with finer length buckets
  cp .vb/part-01 /root/vb/
  export PYTHONPATH=/root/wsite:$PWD/src
  check_7b 170
  bench "$KEEP/b32b" --sizes 32B --budget-s 330 --min-left-s 60 --job-timeout-s 160 \
    --variant "shipped:" --variant "pad16:pad_to_multiple_of=16" ;;
small3)  # session of 2026-12-03 (3): call 1 of three
  cp .vb/part-00 /root/vb/
  python3 -m pip install -q --no-index --no-deps --target /root/wsite .carry/wheels/*.whl || exit 1
  export PYTHONPATH=/root/wsite:$PWD/src STEPS=20
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  L=(--variant "levers:${SETS[varlen-compile-noliger]}")
  bench "$KEEP/s3b" --sizes 3B --concurrent 2 --budget-s 300 --min-left-s 60 --job-timeout-s 200 \
    --variant "shipped:" "${L[@]}"
  bench "$KEEP/s0p5b4" --sizes 0.5B --concurrent 4 --budget-s 110 --min-left-s 40 --job-timeout-s 100 "${L[@]}"
  bench "$KEEP/s0p5b8" --sizes 0.5B --concurrent 8 --budget-s 130 --min-left-s 40 --job-timeout-s 120 "${L[@]}" ;;
check7b)  # call 2 of three: the lever path at the 7B shape (8 layers) against float32
  cp .vb/part-01 /root/vb/
  export PYTHONPATH=/root/wsite:$PWD/src
  check_7b 240 ;;
prof4)  # session of 2026-12-03 (4): call 1 of three
  cp .vb/part-00 /root/vb/
  python3 -m pip install -q --no-index --no-deps --target /root/wsite .carry/wheels/*.whl || exit 1
  export PYTHONPATH=/root/wsite:$PWD/src
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  profiled p0p5b 0.5B 100 30
  profiled p7b 7B 140 40
  profiled p32b 32B 200 60 ;;
sync5)  # next: do the loop's reads of the GPU cause the idle gaps? configured, the loss logged
  # every 10 steps, and that plus sync_free_logging (TRL's metrics and the token count kept off
  # the GPU until a log); the clock waits for the GPU only at the timed window's ends (a real
  # run does not wait after each step); 10 timed steps, the last profiled; parts: the caller
  export PYTHONPATH=/root/wsite:$PWD/src STEPS=10
  V=(--variant "configured:" --variant "log10:logging_steps=10"
     --variant "syncfree:logging_steps=10,sync_free_logging=true")
  bench "$KEEP/y" --sizes "${SYNC_SIZES:-7B}" --budget-s "${BUDGET:-540}" --min-left-s 60 \
    --job-timeout-s 200 --clock boundaries --profile "${V[@]}"
  profile_report "$KEEP"/y/*.json ;;
sync6)  # call 1 of three (carry .vb/part-00 .carry)
  call1_setup || exit 1
  export PYTHONPATH=/root/wsite:$PWD/src STEPS=8
  bench "$KEEP/z7b" --sizes 7B --budget-s 170 --min-left-s 60 --job-timeout-s 110 \
    --clock boundaries "${SYNC[@]}"
  bench "$KEEP/z32b" --sizes 32B --budget-s 230 --min-left-s 100 --job-timeout-s 125 \
    --clock boundaries "${SYNC[@]}"
  bench "$KEEP/z14b" --sizes 14B --budget-s 150 --min-left-s 65 --job-timeout-s 85 \
    --clock boundaries "${SYNC[@]}" ;;
sync6small)  # call 2 of three (carry .vb/part-01 .carry)
  cp .vb/part-01 /root/vb/
  export PYTHONPATH=/root/wsite:$PWD/src STEPS=10
  bench "$KEEP/z0p5b" --sizes 0.5B --concurrent 4 --budget-s 200 --min-left-s 80 \
    --job-timeout-s 100 --clock boundaries "${SYNC[@]}"
  bench "$KEEP/z1p5b" --sizes 1.5B --concurrent 3 --budget-s 240 --min-left-s 100 \
    --job-timeout-s 115 --clock boundaries "${SYNC[@]}" ;;
vllm6)  # call 3 of three (carry .vb/part-02 .vb/fix.tar.xz .carry/ref): install, then SIZES
  install_vllm || exit 1
  EXTRA="$SURVEY_EVAL" bench_vllm --sizes "${SIZES:-32B}" --budget-s "${BUDGET:-500}" ;;
prof32)  # the 32B and 7B profiles again, with the GPU's idle gaps; parts: the caller
  export PYTHONPATH=/root/wsite:$PWD/src
  profiled q32b 32B 200 60
  profiled q7b 7B 140 40 ;;
student4)  # a real student on the GPU (pool, memory cap, kill and resume); parts: the caller
  export PYTHONPATH=/root/wsite:$PWD/src
  timeout 420 python3 benchmarks/gpu_student.py --ref .carry/ref --out "$OUT" --timeout-s 400 2>&1 \
    | grep -v -E "it/s\]|Warning|warn" | tail -40 ;;
vllm)  # a later call on the same warm machine: vLLM is installed already
  export PYTHONPATH=/root/vsite:/root/wsite:$PWD/src
  bench_vllm --sizes "${SIZES:?}" --budget-s "${BUDGET:-500}" ;;
call3)
  install_vllm || exit 1
  bench_vllm --parity --sizes "${SIZES:-32B,7B,0.5B,14B}" --budget-s "${BUDGET:-520}" ;;
esac
