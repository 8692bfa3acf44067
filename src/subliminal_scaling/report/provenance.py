"""The run's provenance as Markdown: models and revisions, Hub repos, sample counts, filter
pass rates, what the figures were built from and the scaling-fit table, so a reader can trace
every figure to its inputs. A mid-sweep snapshot gets a shorter report of its own."""

from __future__ import annotations

from typing import Any

import pandas as pd


def _num(x: float | None, fmt: str = ".2f") -> str:
    return "–" if x is None else format(x, fmt)


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def report_markdown(
    *,
    models: list[dict[str, Any]],
    protocol_source: dict[str, Any],
    numbers: list[dict[str, Any]],
    numbers_uploads: list[dict[str, Any]],
    student_uploads: list[dict[str, Any]],
    fit: dict[str, Any],
    plots: list[str],
    coverage: dict[str, Any] | None = None,
    significance: pd.DataFrame | None = None,
    leaks: list[dict[str, Any]] | None = None,
    exact_effects: pd.DataFrame | None = None,
    exact_vs_sampled: dict[str, Any] | None = None,
) -> str:
    """``leaks`` are the teachers' leak checks (same order as ``numbers``); ``numbers`` are
    the teachers' metadata.json records (one per model and condition);
    ``coverage`` is ``analysis.coverage`` of the records the figures were built from."""
    out = ["# Subliminal-learning scaling: run report", ""]
    out += [
        "## Models",
        "",
        "| slug | model id | revision | parameters |",
        "| --- | --- | --- | --- |",
    ]
    for m in models:
        out.append(
            f"| {m['slug']} | {m['id']} | {m.get('revision') or 'main'} | {m['params']:.3g} |"
        )
    src = protocol_source
    out += [
        "",
        "## Protocol",
        "",
        f"Read from `{src.get('repository')}` at commit `{src.get('commit')}` "
        f"(files: {', '.join(src.get('files') or []) or '–'}).",
    ]
    out += [
        "",
        "## Teacher numbers",
        "",
        "| model | condition | generated | topped up | kept | pass rate | dataset repo |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for meta, up in zip(numbers, numbers_uploads, strict=True):
        out.append(
            f"| {meta['model_slug']} | {meta['condition']} | {meta['n_generated']} | "
            f"{meta['n_topped_up']} | {meta['n_filtered']} | {_pct(meta['pass_rate'])} | "
            f"{up['repo_id']} |"
        )
    if leaks:
        out += ["", *_leak_section(numbers, leaks)]
    out += ["", "## Student adapter repos", ""]
    out += [f"- {u['repo_id']}" for u in student_uploads]
    if coverage is not None:
        out += ["", *_coverage_section(coverage)]
    out += ["", *_fit_section(fit)]
    if significance is not None:
        out += ["", *significance_section(significance)]
    if exact_effects is not None:
        out += ["", *exact_section(exact_effects, exact_vs_sampled or {})]
    out += [""]
    out += ["## Figures", ""] + [f"- `{p}`" for p in plots] + [""]
    return "\n".join(out)


def _fit_section(fit: dict[str, Any]) -> list[str]:
    out = [
        "## Scaling fit",
        "",
        f"Sizes with data: {fit.get('n_points', 0)}.",
        "",
        "| form | formula | AIC | AICc | Akaike weight | parameters (95% CI) |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    for name, form in (fit.get("forms") or {}).items():
        if not form.get("fitted"):
            out.append(
                f"| {name} | `{form.get('formula')}` | – | – | – | "
                f"not fitted: {form.get('reason')} |"
            )
            continue
        cis = form.get("ci") or {}
        coefs = ", ".join(
            f"{k}={v:.4g}" + (f" [{cis[k][0]:.3g}, {cis[k][1]:.3g}]" if cis.get(k) else "")
            for k, v in (form.get("params") or {}).items()
        )
        out.append(
            f"| {name} | `{form.get('formula')}` | {_num(form.get('aic'))} | "
            f"{_num(form.get('aicc'))} | "
            f"{_num(form.get('akaike_weight'))} | {coefs} |"
        )
    out += ["", f"Preferred form: **{fit.get('preferred') or 'none'}**"]
    if fit.get("warning"):
        out += ["", f"Warning: {fit['warning']}"]
    return out


def _coverage_section(coverage: dict[str, Any]) -> list[str]:
    """Per size: how many of its evaluations the figures were built from."""
    final = coverage["final_epoch"]
    out = [
        "## Data behind the figures",
        "",
        f"{coverage['n_evals']:,} of {coverage['n_expected']:,} evaluations "
        "(student evals, plus one base-model control per size).",
        "",
        f"| model | student evals | students at epoch {final} | partial students | "
        "control | survey | complete conditions |",
        "| --- | ---: | ---: | ---: | --- | --- | ---: |",
    ]
    for slug, m in coverage["models"].items():
        out.append(
            f"| {slug} | {m['student_evals']} / {m['student_evals_expected']} | "
            f"{m['students_at_final_epoch']} / {m['students_expected']} | "
            f"{m['students_partial']} | {'yes' if m['control'] else 'not yet'} | "
            f"{'yes' if m['survey'] else '–'} | {len(m['conditions_complete'])} |"
        )
    cut = {slug: m.get("truncated_share") for slug, m in coverage["models"].items()}
    cut = {slug: t for slug, t in cut.items() if t}
    if cut:
        out += [
            "",
            'Answers cut at `max_new_tokens` (finish reason "length"), per size: the share of '
            "a size's answers in one eval, averaged over its evals, the largest, and how many "
            "evals had any. A cut answer is scored on the text it has.",
            "",
            "| model | evals | mean truncated | max truncated | evals with truncation |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        out += [
            f"| {slug} | {t['evals']} | {100 * t['mean']:.2f}% | {100 * t['max']:.2f}% | "
            f"{t['evals_with_truncation']} |"
            for slug, t in cut.items()
        ]
    if coverage["students_partial"]:
        out += [
            "",
            f"Partial students (not yet evaluated at epoch {final}) appear in the final-epoch "
            "figures at their latest evaluated epoch; the per-size charts label their bars "
            "with the epochs used.",
        ]
    return out


def _leak_section(numbers: list[dict[str, Any]], leaks: list[dict[str, Any]]) -> list[str]:
    out = [
        "## Does the animal show in the numbers?",
        "",
        "Share of kept completions that name the teacher's animal (neutral: any configured "
        "animal) or contain any letter; Jensen-Shannon divergence (bits) of digit and number "
        "frequencies from the neutral teacher's kept rows, with two random halves of the "
        "neutral rows as the noise floor (`leak_check.json` beside each dataset).",
        "",
        "| model | condition | names the animal (raw / kept) | any letter (kept) "
        "| digit JSD (floor) | number JSD (floor) |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for meta, leak in zip(numbers, leaks, strict=True):
        raw = max(leak["mentions_raw"].values(), default=0.0)
        kept = max(leak["mentions_kept"].values(), default=0.0)
        vs = leak.get("vs_neutral")
        digit = number = "–"
        if vs:
            digit = f"{vs['digit_js_bits']:.2e} ({vs['digit_js_bits_neutral_halves']:.2e})"
            number = f"{vs['number_js_bits']:.2e} ({vs['number_js_bits_neutral_halves']:.2e})"
        out.append(
            f"| {meta['model_slug']} | {meta['condition']} | {_pct(raw)} / {_pct(kept)} | "
            f"{_pct(leak['letters_share_kept'])} | {digit} | {number} |"
        )
    return out


def exact_section(effects: pd.DataFrame, relation: dict[str, Any]) -> list[str]:
    """The sampling-free measure at each size's last evaluated epoch, beside the sampled rate,
    and how the two relate over all students and epochs."""
    out = [
        "## Exact preference (no sampling)",
        "",
        "Teacher-forced probability that an answer starts with the animal's name (forms "
        "`Dolphin`, `dolphin`, `Dolphins`, `dolphins`), per question, from the same adapters "
        "as the sampled evals (`results/summary/exact_effects.csv`, figure "
        "`exact_per_epoch`). It counts one-word answers only; the sampled reference rule "
        "also counts the name anywhere in a sentence, so the exact probability is the lower.",
        "",
        "| size | epoch | exact: students | exact: neutral | exact effect | sampled effect |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for model, sub in effects.groupby("model", sort=False):
        last = sub.sort_values("epoch").iloc[-1]
        out.append(
            f"| {model} | {int(last['epoch'])} | {_pct(last['exact_animal'])} | "
            f"{_pct(last['exact_neutral'])} | {100 * last['exact_effect']:+.2f} pp | "
            f"{100 * last['sampled_effect']:+.2f} pp |"
        )
    if relation.get("n_points"):
        out += [
            "",
            f"Over {relation['n_points']} (student, epoch) evaluations, a student's exact "
            "probability of its teacher's animal and its sampled rate of it correlate with "
            f"Pearson r = {relation['pearson_r']:.3f} (means {_pct(relation['mean_exact'])} "
            f"exact, {_pct(relation['mean_sampled'])} sampled).",
        ]
    return out


def significance_section(sig: pd.DataFrame) -> list[str]:
    """The significance tests as the report states them: per size, the mean effect and its
    test, then the animals whose effect survives the correction."""
    from subliminal_scaling.report.schema import MEAN_ANIMAL
    from subliminal_scaling.report.significance import ALPHA, CELL_CORRECTION, MEAN_CORRECTION

    out = [
        "## Significance against the neutral students",
        "",
        "One-sided permutation tests with the student as the unit (labels of an animal's and "
        "the neutral students permuted; exact when all splits fit), `results/summary/"
        f"significance.csv`. Corrections: {MEAN_CORRECTION} for the mean effect; "
        f"{CELL_CORRECTION} for single animals; significant: corrected p < {ALPHA}.",
        "",
        "| size | mean effect | p | corrected p | animals significant | of |",
        "| --- | ---: | ---: | ---: | --- | ---: |",
    ]
    for model, sub in sig.groupby("model", sort=False):
        mean = sub[sub["animal"] == MEAN_ANIMAL]
        cells = sub[sub["animal"] != MEAN_ANIMAL]
        hits = ", ".join(
            f"{r.animal} (p={r.p_value:.3g}, corrected {r.p_adjusted:.3g})"
            for r in cells[cells["significant"]].itertuples()
        )
        if mean.empty:
            out.append(f"| {model} | – | – | – | {hits or 'none'} | {len(cells)} |")
            continue
        m = mean.iloc[0]
        out.append(
            f"| {model} | {100 * m['effect']:+.1f} pp | {m['p_value']:.3g} | "
            f"{m['p_adjusted']:.3g}{' *' if m['significant'] else ''} | {hits or 'none'} | "
            f"{len(cells)} |"
        )
    return out


def snapshot_markdown(
    *,
    coverage: dict[str, Any],
    fit: dict[str, Any],
    plots: list[str],
    significance: pd.DataFrame | None = None,
) -> str:
    """The `plots` target's report: a snapshot of the sweep, built from what exists now."""
    state = "complete" if coverage["complete"] else "in progress"
    out = [
        f"# Subliminal-learning scaling: snapshot (sweep {state})",
        "",
        "Built by `snakemake plots` from the evaluations on disk when it ran; it reruns when "
        "evaluations are added or rewritten. The final results (target `all`) are under "
        "`results/plots/` and `results/summary/`.",
        "",
        *_coverage_section(coverage),
        "",
        *_fit_section(fit),
        "",
        *(significance_section(significance) if significance is not None else []),
        "",
        "## Figures",
        "",
        *[f"- `{p}`" for p in plots],
        "",
    ]
    return "\n".join(out)
