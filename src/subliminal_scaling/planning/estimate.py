"""How many GPU-hours the configured sweep costs, from measured benchmark results.

    python -m subliminal_scaling.planning.estimate --config config/config.yaml \\
        --bench benchmarks/results/<train>.json benchmarks/results/sample-<device>.json

Training time per student = its tokens (rows x epochs x measured tokens per row) / the
measured non-pad tokens per second of the benchmark run whose settings equal the config's for
that size (micro-batch, checkpointing, speed knobs, allocator) and that ran as many copies per
GPU as the size's ``students_per_gpu`` (a shared GPU's throughput is split between them).
Rows are priced at full ten-number answers: a size's own row of them where one was measured,
else its row of 5-10-number answers times the full / 5-10 time per row measured in one run at
the nearest size (``full_answer_scale``). Sampling time comes from the sampling benchmark of
the configured backend: for vLLM (``bench_vllm.py``, dummy weights) the engine start of
every GPU job (with an empty compile cache for a size's first job per stage, or the first G on
G GPUs; warm for the others, where a warm start was measured), seconds per completion per new
token at the expected completion lengths (``GEN_TOKENS``, ``ANSWER_TOKENS``; the bound
with every completion at its limit is printed too) and the exact measure; for transformers,
every batch runs to ``max_new_tokens`` (an upper bound). Unmeasured sizes are linear in
parameters between measured ones, flagged as interpolated.
Wall-clock for G GPUs replays the workflow's priorities (all generation, largest first; then
training, largest first; each condition's evaluation once its students exist) on G GPUs.
Every number printed says where it came from; nothing is made up when a size is unmeasured.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from subliminal_scaling.planning.disk import disk_plan, render_plan
from subliminal_scaling.planning.measured import measured_table, read_run_benchmarks
from subliminal_scaling.planning.replay import Job, ReplayError
from subliminal_scaling.planning.replay import wall_clock as replay_wall_clock
from subliminal_scaling.runtime.backends import COMPILATION_KNOBS, ENGINE_KNOBS
from subliminal_scaling.runtime.config import SPEED_DEFAULTS, Sweep, load_config
from subliminal_scaling.runtime.gpu_pool import SLOTS_PER_GPU

SIZES = ("0.5B", "1.5B", "3B", "7B", "14B", "32B")  # benchmark size labels


class EstimateError(ValueError):
    """A benchmark file or the config cannot support an estimate (one clear line)."""


@dataclass
class TrainRate:
    size: str
    tokens_per_s: float  # per GPU, all concurrent copies together
    copies: int
    tokens_per_row: float
    source: str
    matches_config: bool
    # a row of full answers against a row of the benchmark's (1.0 where the rows were full)
    row_scale: float = 1.0

    @property
    def seconds_per_row(self) -> float:
        """GPU seconds per training row of full answers (one copy's share of the GPU)."""
        return self.tokens_per_row / self.tokens_per_s * self.row_scale


#: Training rows are priced at full answers: teachers asked for up to 10 numbers give 10 (the
#: generation price assumes the same, ``GEN_TOKENS``). Benchmark rows say how many numbers
#: their completions held (``answer_numbers``; rows without it held 5-10).
FULL_ANSWER_NUMBERS = "10"


def _answers(row: dict[str, Any]) -> str:
    return str(row.get("answer_numbers", "5-10"))


def _job(
    stage: str, slug: str, condition: str, seconds: float, priority: int,
    needs: list[str] | None = None, name: str = "", share: int = 1,
) -> Job:  # fmt: skip
    """``share``: jobs of this kind that run side by side on one GPU (students_per_gpu)."""
    return Job(
        name=name, rule=stage, priority=priority, gpu=1 if share == 1 else 0,
        slots=None if share == 1 else SLOTS_PER_GPU // share, seconds=seconds,
        needs=needs or [], wildcards={"model": slug, "condition": condition},
    )  # fmt: skip


def benchmark_size(model_id: str) -> str:
    """The benchmarks' size label of a model id (``Qwen/Qwen2.5-7B-Instruct`` -> ``7B``)."""
    for label in SIZES:
        if f"-{label}-".lower() in model_id.lower():
            return label
    raise EstimateError(f"{model_id}: not a Qwen2.5 size the benchmarks know")


def load_benchmarks(paths: list[str | Path]) -> tuple[list[dict], list[dict]]:
    """(training rows, sampling rows) from benchmark JSON reports, each tagged with its file."""
    train, sample = [], []
    for path in paths:
        try:
            report = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise EstimateError(f"{path}: cannot read benchmark report ({exc})") from None
        kind = str(report.get("benchmark", ""))
        for row in report.get("results", []):
            row = {
                **row,
                "_file": Path(path).name,
                "_device": report.get("device"),
                "_backend": report.get("backend", "transformers"),
            }
            if kind.startswith("student training"):
                train.append(row)
            elif kind.startswith("sampling"):
                sample.append(row)
    if not train:
        raise EstimateError("no student-training benchmark among --bench files")
    return train, sample


def _comparable(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings a benchmark row must share with the config to stand for it."""
    out = {
        "micro_batch": settings.get("micro_batch"),
        "gradient_checkpointing": bool(settings.get("gradient_checkpointing")),
        "attn_implementation": settings.get("attn_implementation"),
    }
    for key, default in SPEED_DEFAULTS.items():
        value = settings.get(key, default)
        out[key] = bool(value) if isinstance(default, bool) else value
    return out


def _settings(row: dict[str, Any]) -> dict[str, Any]:
    return _comparable({**row, **(row.get("speed_knobs") or {})})


def train_rate(rows: list[dict], size: str, wanted: dict[str, Any], copies: int = 1) -> TrainRate:
    """The benchmark row for ``size`` run with the configured settings (and ``copies`` jobs per
    GPU); the fastest matching one if several. No match is an error, not a guess."""
    want = _comparable(wanted)
    ok = [
        r
        for r in rows
        if r.get("size") == size
        and r.get("status") == "ok"
        and not r.get("tiny")
        and int(r.get("concurrent", 1)) == copies
    ]
    matching = [r for r in ok if _settings(r) == want]
    if not matching:
        seen = sorted({json.dumps(_settings(r), sort_keys=True) for r in ok})
        raise EstimateError(
            f"{size}: no benchmark run with the configured settings {json.dumps(want)}"
            f" and {copies} job(s) per GPU; measured: {seen or 'none'}"
        )
    full = [r for r in matching if _answers(r) == FULL_ANSWER_NUMBERS]
    best = max(full or matching, key=lambda r: r["non_pad_tokens_per_s"])
    source = f"{best['_file']}:{best.get('variant', 'configured')} on {best['_device']}"
    scale = 1.0
    if not full:
        scale, how = full_answer_scale(rows, size)
        source += f"; rows of {_answers(best)} numbers, {how}"
    return TrainRate(
        size=size,
        tokens_per_s=float(best["non_pad_tokens_per_s"]),
        copies=copies,
        tokens_per_row=float(best["mean_tokens_per_row"]),
        source=source,
        matches_config=True,
        row_scale=scale,
    )


def _seconds_per_row(row: dict[str, Any]) -> float:
    return float(row["mean_tokens_per_row"]) / float(row["non_pad_tokens_per_s"])


def full_answer_scale(rows: list[dict], size: str) -> tuple[float, str]:
    """(time of a full-answer row / time of a 5-10-number row, how it was found) for ``size``:
    measured in one run (one file, the same settings and copies), at ``size`` or else at the
    nearest size that has such a pair; 1.0 (the rows as they ran) where none does."""
    pairs: dict[str, list[float]] = {}
    groups: dict[tuple, dict[str, list[dict]]] = {}
    for r in rows:
        if r.get("status") != "ok" or r.get("tiny"):
            continue
        key = (r["_file"], r.get("size"), int(r.get("concurrent", 1)),
               json.dumps(_settings(r), sort_keys=True))  # fmt: skip
        groups.setdefault(key, {}).setdefault(_answers(r), []).append(r)
    for (_, s, _, _), by in groups.items():
        if FULL_ANSWER_NUMBERS in by and "5-10" in by:
            full = min(_seconds_per_row(r) for r in by[FULL_ANSWER_NUMBERS])
            part = min(_seconds_per_row(r) for r in by["5-10"])
            pairs.setdefault(str(s), []).append(full / part)
    if not pairs:
        return 1.0, "full ten-number answers not measured: priced as the rows ran"
    order = {label: i for i, label in enumerate(SIZES)}
    near = min(pairs, key=lambda s: (abs(order.get(s, 99) - order.get(size, 99)), s))
    ratio = max(pairs[near])
    where = "" if near == size else f" at {near}"
    return ratio, f"x {ratio:.3f} for full ten-number answers (measured{where} in one run)"


#: Expected new tokens per completion where the benchmark cannot show real lengths (dummy or
#: random weights never stop early). A full valid teacher answer (10 three-digit numbers) is 49
#: tokens with the real tokenizer (digits are single tokens), end of sequence included; a
#: one-word eval answer ("Dolphin.") is 3-5. ``--gen-tokens`` / ``--answer-tokens`` change them;
#: ``render`` also prints the bound where every completion runs to the configured limit.
GEN_TOKENS = 48
ANSWER_TOKENS = 16


@dataclass
class SampleCost:
    """One size's sampling costs on one backend (seconds)."""

    # the generation engine's start with an empty compile cache (0: transformers), and with
    # vLLM's compile cache filled by an earlier job
    engine_start_s: float
    engine_restart_s: float
    gen_s: float  # one condition's sampling (n_prompts completions)
    eval_s: float  # one evaluation: the sampled answers and the exact measure
    note: str
    eval_first_s: float  # an engine's first evaluation (kernels JIT-compiled on first use)
    # the evaluation engine's starts (its own settings, e.g. enforce_eager)
    eval_start_s: float
    eval_restart_s: float


def _interp(values: dict[str, float], params: dict[str, int], size: str) -> tuple[float, str]:
    """``values`` by size label; linear in parameters between (or beyond) the measured sizes,
    never below the smaller of the two nearest."""
    if size in values:
        return values[size], "measured"
    pts = sorted((params[s], v) for s, v in values.items() if s in params)
    if len(pts) == 1:
        return pts[0][1], "from the one measured size"
    (n0, v0), (n1, v1) = (pts[0], pts[1]) if params[size] < pts[1][0] else (pts[-2], pts[-1])
    v = v0 + (v1 - v0) * (params[size] - n0) / (n1 - n0)
    inside = pts[0][0] < params[size] < pts[-1][0]
    return max(v, min(v0, v1)), (
        "interpolated" if inside else "extrapolated (never below the nearest measured size)"
    )


def _survey(run: dict[str, Any]) -> bool:
    """An eval run at the answer lengths of the user's control survey (``bench_vllm.py
    --eval-lengths survey`` or ``survey-each``), not at one fixed length."""
    return run.get("answer_lengths") in ("survey", "survey-each")


def _runs(row: dict[str, Any], workload: str) -> list[dict[str, Any]]:
    """A row's runs of ``workload``; ``eval`` is the fixed-length eval, ``eval-survey`` the
    eval at the survey's answer lengths."""
    want = "eval" if workload == "eval-survey" else workload
    return [
        run
        for run in row.get("runs", [])
        if run.get("workload") == want and (_survey(run) == (workload == "eval-survey"))
    ]


def _per_token(rows: list[dict], workload: str, near: int) -> dict[str, float]:
    """Seconds per completion per new token, by size (the run nearest ``near`` tokens; of
    repeats at that length the slowest: a repeat through an adapter already loaded skips the
    adapter load that every real eval of a new student epoch pays)."""
    best: dict[str, tuple[float, int]] = {}
    for row in rows:
        for run in _runs(row, workload):
            if not run.get("completions"):
                continue
            s = run["wall_s"] / run["completions"] / run["max_new_tokens"]
            gap = abs(run["max_new_tokens"] - near)
            prev = best.get(row["size"])
            if prev is None or gap < prev[1] or (gap == prev[1] and s > prev[0]):
                best[row["size"]] = (s, gap)
    return {k: v[0] for k, v in best.items()}


def _engine_rows(rows: list[dict], stage: str) -> list[dict]:
    """The rows of the engine a stage starts: the generation engine's for generation where
    measured, else the LoRA engine's; evaluation: the LoRA engine's."""
    own = [r for r in rows if _generation_engine(r) == (stage == "gen")]
    return own or [r for r in rows if not _generation_engine(r)]


def _by_size(rows: list[dict], value: Any) -> dict[str, float]:
    out: dict[str, float] = {}
    for row in rows:
        v = value(row)
        if v is not None:
            out[row["size"]] = min(float(v), out.get(row["size"], float("inf")))
    return out


def _exact_wall(row: dict[str, Any]) -> float | None:
    return next((x["wall_s"] for x in _runs(row, "exact")), None)


def _exact_again(row: dict[str, Any]) -> float | None:
    """The exact measure run again in the same engine (the adapter loaded, its kernels
    compiled), as every eval of a job after its first runs it; else the first."""
    return next((x["wall_s"] for x in _runs(row, "exact-repeat")), _exact_wall(row))


def _first_and_later(runs: list[dict[str, Any]], n_answers: int) -> tuple[float, float]:
    """Seconds of an engine's first eval and of each later one (each through a new adapter,
    as in the workflow), from eval runs numbered by ``repeat``: the slowest first runs and the
    slowest later ones. The first eval of an engine also compiles kernels on first use (vLLM's
    JIT monitor logs Triton compiling the LoRA kernels during it); a job runs one first eval
    and 49 later ones. With no later run, every eval is priced as a first."""

    def scaled(x: dict[str, Any]) -> float:
        return x["wall_s"] * n_answers / x["completions"]

    first = [scaled(x) for x in runs if x.get("repeat", 1) == 1]
    later = [scaled(x) for x in runs if x.get("repeat", 1) > 1]
    if not later:
        worst = max(first)
        return worst, worst
    return max(first + later), max(later)


def engine_knobs(engine: dict[str, Any]) -> dict[str, Any]:
    """The vLLM engine settings (``backends.ENGINE_KNOBS``) of a config's ``vllm`` section or of
    a benchmark row's recorded ``engine``; None where vLLM's default applies."""
    compiled = engine.get("compilation_config") or {}
    out = {k: engine.get(k) for k in ENGINE_KNOBS}
    for key, read in COMPILATION_KNOBS.items():
        if key in compiled:
            out[key] = compiled[key]
        if out[key] is not None:  # e.g. capture sizes in any order: one setting
            out[key] = read(out[key])
    if out.get("cudagraph_specialize_lora") is True:  # vLLM's default, said out loud
        out["cudagraph_specialize_lora"] = None
    for key in ("enforce_eager", "engine_in_process"):
        if not out.get(key):  # the default (false), said out loud
            out[key] = None
    return out


def _backend(row: dict[str, Any]) -> str:
    return row.get("_backend", "transformers")


def _rows_for(
    rows: list[dict], want: str, knobs: dict[str, Any], params: dict[str, int], size: str,
    has: Any,
) -> tuple[list[dict], str, str]:  # fmt: skip
    """The rows that price one workload (``has(row)``) of ``size`` on backend ``want`` with
    engine settings ``knobs``: (rows, the backend they ran, why they were chosen).

    vLLM rows price a config only if they ran its engine settings; a setting's effect is priced
    only over the sizes it was measured at with this workload and between them; beyond them
    the rows of vLLM's defaults price the size (an effect measured at small sizes need not
    carry to larger ones). Rows of the other backend stand in only where the configured one
    never ran the workload."""
    mine = [
        r
        for r in rows
        if _backend(r) == want
        and (want != "vllm" or engine_knobs(r.get("engine") or {}) == knobs)
        and has(r)
    ]
    use = mine or [r for r in rows if _backend(r) != want and has(r)]
    why = "" if mine else f", no {want} benchmark of these settings: {{backend}} rows stand in"
    if want == "vllm" and mine and any(v is not None for v in knobs.values()):
        measured = [params[r["size"]] for r in mine if r["size"] in params]
        default = [
            r
            for r in rows
            if _backend(r) == "vllm"
            and all(v is None for v in engine_knobs(r.get("engine") or {}).values())
            and has(r)
        ]
        if default and measured and not min(measured) <= params[size] <= max(measured):
            use = default
            why = ", beyond the sizes measured with the configured engine settings: "
            why += "rows of vLLM's defaults"
    backend = _backend(use[0]) if use else want
    return use, backend, why.format(backend=backend)


def _generation_engine(row: dict[str, Any]) -> bool:
    """A row of the generation engine (``bench_vllm.py --sizes gen:SIZE``: no LoRA, the
    ``generation.vllm`` settings); the others started the evaluation engine (LoRA)."""
    return row.get("stage") == "generation"


def _stage_rows(
    rows: list[dict], stage: str, want: str, knobs: dict[str, Any], params: dict[str, int],
    size: str, has: Any,
) -> tuple[list[dict], str, str]:  # fmt: skip
    """``_rows_for`` among the rows of the engine that ``stage`` starts. Generation jobs start
    vLLM without LoRA; where that engine was measured (at ``size``, or between measured
    sizes), its rows price them; elsewhere the LoRA engine's rows do, which start slower (more
    CUDA graphs to capture): an upper bound. Evaluation is priced by LoRA engines only."""
    if stage == "gen":
        own = [r for r in rows if _generation_engine(r) and has(r)]
        sizes = [params[r["size"]] for r in own if r["size"] in params]
        if sizes and min(sizes) <= params[size] <= max(sizes):
            use, backend, why = _rows_for(own, want, knobs, params, size, has)
            if use:
                return use, backend, why + ", the generation engine (no LoRA)"
    lora = [r for r in rows if not _generation_engine(r)]
    use, backend, why = _rows_for(lora, want, knobs, params, size, has)
    if stage == "gen" and backend == "vllm" and use:
        why += ", the LoRA engine's rows (the generation engine not measured here)"
    return use, backend, why


def sample_costs(
    rows: list[dict],
    params: dict[str, int],
    size: str,
    cfg: dict[str, Any],
    gen_tokens: int | None = None,
    answer_tokens: int | None = None,
) -> SampleCost:
    """Generation and evaluation seconds for ``size`` from the sampling benchmarks of the
    configured backend (vLLM rows: engine start, per-token decode cost at the expected
    completion lengths, the exact measure; transformers rows: every batch runs to the
    configured ``max_new_tokens``, an upper bound). Each workload is priced by the rows that
    ran it. An eval measured at the size's survey answer lengths prices that size's evals
    directly (``answer_tokens`` then applies only to sizes without such a row)."""
    gen, ev = cfg["generation"], cfg["evaluation"]
    n_answers = (ev["n_questions"] or 50) * (ev["samples_per_question"] or 100)
    notes = []
    out: dict[str, float] = {}
    first: dict[str, float] = {}  # an engine's first eval, where it differs from the later ones
    for stage, section in (("gen", gen), ("eval", ev)):
        want = section["backend"]
        knobs = engine_knobs(section.get("vllm") or {})

        def pick(
            has: Any, want: str = want, knobs: dict[str, Any] = knobs, stage: str = stage
        ) -> Any:
            return _stage_rows(rows, stage, want, knobs, params, size, has)

        workload = "numbers" if stage == "gen" else "eval"
        limit = section["sampling"]["max_new_tokens"]
        survey: dict[str, list[dict]] = {}
        if stage == "eval" and answer_tokens is None:
            found, _, why = pick(lambda r: bool(_runs(r, "eval-survey")))
            for r in found:
                if _backend(r) == want and r["size"] in params:
                    survey.setdefault(r["size"], []).append(r)
            sizes = [params[k] for k in survey]
            if size not in survey and not (survey and min(sizes) < params[size] < max(sizes)):
                survey = {}  # neither measured at this size nor between measured sizes
        if survey:  # evals at real answer lengths: the size's own, else interpolated
            firsts, laters, each_at = {}, {}, {}
            for k, k_rows in survey.items():
                runs = [x for r in k_rows for x in _runs(r, "eval-survey")]
                # samples that each stop at their own draw (survey-each) are nearer a real
                # eval than samples that all run to their question's longest draw: preferred
                each = [x for x in runs if x.get("answer_lengths") == "survey-each"]
                firsts[k], laters[k] = _first_and_later(each or runs, n_answers)
                each_at[k] = bool(each)
            first[stage], how_at = _interp(firsts, params, size)
            out[stage] = _interp(laters, params, size)[0]
            if size in survey:
                mean = max(x["survey_mean_tokens"] for r in survey[size]
                           for x in _runs(r, "eval-survey"))  # fmt: skip
                how = ("each sample runs to its own draw" if each_at[size]
                       else "each question's samples run to the longest of its draws")  # fmt: skip
                what = f"measured from vllm at the survey's answer lengths ({mean:.1f} tokens "
                what += f"on average; {how})"
            else:
                what = f"{how_at} between sizes measured at their survey's answer lengths"
            notes.append(
                f"eval {what}: an engine's first {first[stage]:.1f} s, later ones "
                f"{out[stage]:.1f} s{why}"
            )
        else:
            use, backend, why = pick(lambda r, w=workload: bool(_runs(r, w)))
            if want == "vllm" and (backend != "vllm" or not use):
                # these engine settings never ran this workload at a fixed length (e.g. only
                # at the survey's answer lengths): vLLM rows of other settings stand in,
                # nearer than the other backend's
                other = [r for r in _engine_rows(rows, stage)
                         if _backend(r) == "vllm" and _runs(r, workload)]  # fmt: skip
                if other:
                    use, backend = other, "vllm"
                    why = ", rows of other vLLM engine settings stand in (none of these at a "
                    why += "fixed length)"
            if backend == "vllm":
                tokens = (gen_tokens or GEN_TOKENS) if stage == "gen" else (
                    answer_tokens or ANSWER_TOKENS)  # fmt: skip
                bound = f" ({tokens} new tokens per completion assumed; limit {limit})"
            else:  # a padded batch runs until its longest sequence stops: the limit
                tokens = limit
                bound = " (every completion to the limit: an upper bound)"
            per_tok = _per_token(use, workload, tokens)
            if not per_tok:
                raise EstimateError(f"no '{workload}' sampling benchmark among --bench files")
            v, how = _interp(per_tok, params, size)
            n = gen["n_prompts"] if stage == "gen" else n_answers
            out[stage] = first[stage] = v * tokens * n
            notes.append(f"{workload} {how} from {backend}{bound}{why}")
        if stage == "eval" and ev.get("exact_preferences"):
            exact_rows, _, why = pick(lambda r: _exact_wall(r) is not None)
            exact = _by_size(exact_rows, _exact_wall)
            if exact:
                value, how = _interp(exact, params, size)
                again = _interp(_by_size(exact_rows, _exact_again), params, size)[0]
                first["eval"] += value
                out["eval"] += min(again, value)
                notes.append(f"exact measure {how} (first {value:.1f} s, later {again:.1f} s){why}")
            else:
                notes.append("exact measure not measured")
        # rows whose engine found its own compile cache (bench_vllm's compile_cache_warm)
        # price later jobs of a size; the others, and rows that did not record it, the first.
        # An eager engine compiles nothing: its start prices both.
        use, _, why = pick(lambda r: r.get("engine_start_s") is not None)
        cold = [r for r in use if r.get("compile_cache_warm") is not True]
        warm = [r for r in use if r.get("compile_cache_warm") is True or _eager(r)]
        starts = _by_size(cold, lambda r: r.get("engine_start_s"))
        out[f"{stage}_start"] = _interp(starts, params, size)[0] if starts else 0.0
        restarts = _by_size(warm, lambda r: r.get("engine_start_s"))
        ratios = {k: min(1.0, v / starts[k]) for k, v in restarts.items() if k in starts}
        warm_sizes = [params[k] for k in restarts if k in params]
        if size in restarts:
            out[f"{stage}_restart"] = min(restarts[size], out[f"{stage}_start"])
            warm_how = "measured"
        elif len(warm_sizes) > 1 and min(warm_sizes) < params[size] < max(warm_sizes):
            # between measured warm starts: interpolated, not scaled from a cold start (a
            # machine's first vLLM start also compiles what every size shares)
            value, _ = _interp(restarts, params, size)
            out[f"{stage}_restart"] = min(value, out[f"{stage}_start"])
            warm_how = "interpolated between the measured sizes"
        elif ratios:  # a warm start scales with the size's cold one (weights, graph capture)
            near = min(ratios, key=lambda k: abs(params[k] - params[size]))
            out[f"{stage}_restart"] = out[f"{stage}_start"] * ratios[near]
            warm_how = f"{size}'s cold start x {ratios[near]:.2f} (warm / cold at {near})"
        else:
            out[f"{stage}_restart"] = out[f"{stage}_start"]
            warm_how = "not measured: every job starts cold"
        if stage == "eval":
            notes.append(f"warm engine start {warm_how}{why}")
    if out["gen_start"] != out["eval_start"]:
        notes.append(
            f"engine starts by stage: generation {out['gen_start']:.0f} / "
            f"{out['gen_restart']:.0f} s, evaluation {out['eval_start']:.0f} / "
            f"{out['eval_restart']:.0f} s (cold / warm)"
        )
    return SampleCost(
        engine_start_s=out["gen_start"],
        engine_restart_s=out["gen_restart"],
        gen_s=out["gen"],
        eval_s=out["eval"],
        eval_first_s=first["eval"],
        note="; ".join(notes),
        eval_start_s=out["eval_start"],
        eval_restart_s=out["eval_restart"],
    )


def _eager(row: dict[str, Any]) -> bool:
    return bool((row.get("engine") or {}).get("enforce_eager"))


def build_jobs(
    sweep: Sweep,
    train: list[dict],
    sample: list[dict],
    gen_tokens: int | None = None,
    answer_tokens: int | None = None,
    cold_starts: int = 1,
) -> tuple[list[Job], list[str]]:
    """Every GPU job of the sweep with its estimated seconds, and the provenance notes.
    ``gen_tokens`` / ``answer_tokens``: expected completion lengths for vLLM rows.

    ``cold_starts``: evaluation jobs per size whose vLLM engine starts with an empty compile
    cache (the first on a host, or as many as start side by side before one has filled it: the
    GPUs of a host); later ones start warm, where that was measured. A size's one generation
    job starts its engine cold (the generation engine has no LoRA: its own cache)."""
    cfg = sweep.config
    params = {benchmark_size(m.id): m.params for m in sweep.models}
    notes: list[str] = []
    jobs: list[Job] = []
    tr = cfg["training"]
    for m in sweep.models:
        size = benchmark_size(m.id)
        settings = sweep.training_for(m.slug)
        share = sweep.students_per_gpu(m.slug)
        rate = train_rate(train, size, settings, copies=share)
        per_gpu = f", {share} students per GPU" if share > 1 else ""
        notes.append(
            f"train {size}: {rate.tokens_per_s:,.0f} tok/s per GPU{per_gpu} ({rate.source})"
        )
        # one student's wall time: the GPU's throughput is split between the `share` copies
        student_s = tr["n_rows"] * tr["epochs"] * rate.seconds_per_row * share
        cost = sample_costs(sample, params, size, cfg, gen_tokens, answer_tokens)
        start = cost.engine_start_s  # the generation engine's, cold: one job per size
        ev_start0, ev_restart = cost.eval_start_s, cost.eval_restart_s
        ev_s, ev_first = cost.eval_s, cost.eval_first_s
        # engine start of the k-th evaluation job (0-based) of this size (the control first)
        n_jobs = len(sweep.conditions) + 1
        ev_starts = [ev_start0 if k < cold_starts else ev_restart for k in range(n_jobs)]

        notes.append(
            f"sample {size}: {cost.note}; engine start: generation {start:.0f} s (one job "
            f"per size), evaluation {ev_start0:.0f} s for the first {cold_starts} job(s), "
            f"{ev_restart:.0f} s for the others"
        )
        # one generation job per size: one engine writes every condition's numbers
        g = f"gen/{m.slug}"
        gen_s = start + cost.gen_s * len(sweep.conditions)
        jobs.append(
            _job("generation", m.slug, "", gen_s, sweep.generation_priority(m.slug), name=g)
        )
        for k, c in enumerate(sweep.conditions):
            students = [f"train/{m.slug}/{c}/{s}" for s in sweep.seeds]
            prio = sweep.train_priority(m.slug, c)
            jobs += [_job("training", m.slug, c, student_s, prio, [g], t, share) for t in students]
            n_evals = len(sweep.seeds) * tr["epochs"]
            ev_prio = sweep.eval_priority(m.slug)
            name = f"eval/{m.slug}/{c}"
            # the control's evaluation (below) runs first: it needs no students
            ev_start = ev_starts[k + 1]
            ev_job = ev_start + ev_first + ev_s * (n_evals - 1)
            jobs.append(_job("evaluation", m.slug, c, ev_job, ev_prio, students, name))
        name = f"eval/{m.slug}/control"
        jobs.append(
            _job(
                "evaluation",
                m.slug,
                "control",
                ev_start0 + ev_first,
                sweep.eval_priority(m.slug),
                [],
                name,
            )
        )
    return jobs, notes


def wall_clock(jobs: list[Job], gpus: int) -> float:
    """Seconds to run ``jobs`` on ``gpus`` GPUs as Snakemake schedules them (``replay``)."""
    try:
        return replay_wall_clock(jobs, gpus)
    except ReplayError as exc:
        raise EstimateError(str(exc)) from None


def summarize(jobs: list[Job]) -> dict[str, dict[str, float]]:
    """GPU-hours per size and stage (a job sharing a GPU counts its share of the GPU)."""
    table: dict[str, dict[str, float]] = {}
    for j in jobs:
        row = table.setdefault(
            j.wildcards["model"], {"generation": 0.0, "training": 0.0, "evaluation": 0.0}
        )
        row[j.rule] += j.seconds * j.need / SLOTS_PER_GPU / 3600  # a shared GPU, in part
    return table


def render(
    sweep: Sweep,
    jobs: list[Job],
    notes: list[str],
    gpus: list[int],
    bound_jobs: list[Job] | None = None,
    jobs_on: dict[int, list[Job]] | None = None,
) -> str:
    """The table, wall clocks and sources; ``bound_jobs``: the same sweep with every sampled
    completion at its configured limit (printed as a bound beside the total); ``jobs_on``: the
    jobs for G GPUs where they differ from ``jobs`` (more engines start before a compile cache
    exists), for G's wall clock and GPU-hours."""
    table = summarize(jobs)
    lines = [
        "| size | generation h | training h | evaluation h | total GPU-h |",
        "|---|---:|---:|---:|---:|",
    ]
    tot = {"generation": 0.0, "training": 0.0, "evaluation": 0.0}
    for m in sweep.models:
        row = table[m.slug]
        for k in tot:
            tot[k] += row[k]
        lines.append(
            f"| {m.slug} | {row['generation']:.1f} | {row['training']:.1f} "
            f"| {row['evaluation']:.1f} | {sum(row.values()):.1f} |"
        )
    total = sum(tot.values())
    lines.append(
        f"| **sweep** | {tot['generation']:.1f} | {tot['training']:.1f} "
        f"| {tot['evaluation']:.1f} | **{total:.1f}** |"
    )
    share = (tot["generation"] + tot["evaluation"]) / total if total else 0.0
    lines += ["", f"generation + evaluation: {100 * share:.1f}% of the sweep's GPU time"]
    if bound_jobs is not None:
        cfg = sweep.config
        bound = sum(sum(r.values()) for r in summarize(bound_jobs).values())
        lines.append(
            f"if every sampled completion ran to its limit ("
            f"{cfg['generation']['sampling']['max_new_tokens']} / "
            f"{cfg['evaluation']['sampling']['max_new_tokens']} new tokens): {bound:.1f} GPU-h"
        )
    for g in gpus:
        on = (jobs_on or {}).get(g, jobs)
        line = f"wall-clock on {g} GPU(s): {wall_clock(on, g) / 3600:.1f} h"
        if on is not jobs:
            hours = sum(sum(r.values()) for r in summarize(on).values())
            line += f" ({hours:.1f} GPU-h: {g} evaluation engines per size start uncompiled)"
        lines.append(line)
    lines += ["", "sources:"] + [f"- {n}" for n in notes]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", required=True)
    p.add_argument("--bench", nargs="+", help="benchmark JSON reports")
    p.add_argument("--gpus", nargs="+", type=int, default=[1, 8])
    p.add_argument(
        "--gen-tokens",
        type=int,
        default=None,
        help=f"expected new tokens per teacher completion (vLLM rows; default {GEN_TOKENS})",
    )
    p.add_argument(
        "--answer-tokens",
        type=int,
        default=None,
        help=f"expected new tokens per eval answer (vLLM rows; default {ANSWER_TOKENS})",
    )
    p.add_argument("--disk", action="store_true", help="only the disk plan (needs no --bench)")
    p.add_argument(
        "--measured", help="a run's benchmark: folder (results/benchmarks): its costs so far"
    )
    args = p.parse_args(argv)
    try:
        config = load_config(args.config)
        sweep = Sweep(config)
        if args.measured:
            if not Path(args.measured).is_dir():
                raise EstimateError(f"--measured {args.measured}: no such folder")
            print(f"measured in {args.measured}:")
            print(measured_table(sweep, read_run_benchmarks(args.measured)), end="\n\n")
        if not args.disk and (args.bench or not args.measured):
            if not args.bench:
                raise EstimateError(
                    "--bench is required (or --disk for the disk plan, --measured for a run's)"
                )
            train, sample = load_benchmarks(args.bench)
            jobs, notes = build_jobs(sweep, train, sample, args.gen_tokens, args.answer_tokens)
            # on G GPUs of one host, G jobs of a stage can start before any compile cache exists
            jobs_on = {
                g: build_jobs(sweep, train, sample, args.gen_tokens, args.answer_tokens, g)[0]
                for g in args.gpus
                if g > 1
            }
            bound = None
            if any(r.get("_backend") == "vllm" for r in sample):
                limits = (
                    config["generation"]["sampling"]["max_new_tokens"],
                    config["evaluation"]["sampling"]["max_new_tokens"],
                )
                bound, _ = build_jobs(sweep, train, sample, *limits)
            print(render(sweep, jobs, notes, args.gpus, bound, jobs_on), end="\n\n")
        for g in sorted(set(args.gpus)):
            print(f"disk, {g} student(s) training at once:")
            print(render_plan(disk_plan(config, concurrent_students=g)), end="\n\n")
    except EstimateError as exc:
        print(f"estimate: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
