"""Charts for slides: each takes a table from ``analysis`` and writes a PNG and an SVG.

Figures are built with the object-oriented API (``matplotlib.figure.Figure`` rendered by the
Agg/SVG canvases, no pyplot state), sized for a 16:9 slide (~13 in wide, fonts >= 11 pt), and
written atomically so an interrupted job never leaves a half-written image. Missing data is
drawn as a visible "missing" mark, never as a zero-height bar.
"""

from __future__ import annotations

import math
import os
import re
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, NullLocator

from .analysis import ALT_CONTROL, FORMS, MEAN_ANIMAL, OTHER, SURVEY, predict
from .io import atomic_path

PathLike = str | os.PathLike[str]

CONTROL_STYLE = {"facecolor": "#d0d0d0", "edgecolor": "#555555", "hatch": "///"}
ALT_CONTROL_STYLE = {"facecolor": "white", "edgecolor": "#555555", "hatch": "..."}
NEUTRAL_STYLE = {"facecolor": "#a6cee3", "edgecolor": "#1f78b4"}
ANIMAL_STYLE = {"facecolor": "#d95f02", "edgecolor": "#7f3500"}
OTHER_COLOUR = "#d9d9d9"
MISSING_COLOUR = "#7a7a7a"
FORM_LABELS = {
    "log_linear": "log-linear: a + b·log₁₀N",
    "power": "power law: a·Nᵇ",
    "quadratic_log": "quadratic in log₁₀N",
}
FORM_STYLES = {
    "log_linear": {"color": "C0", "linestyle": "-"},
    "power": {"color": "C1", "linestyle": "--"},
    "quadratic_log": {"color": "C2", "linestyle": "-."},
}
CI_NOTE = "Error bars: 95% CI, cluster bootstrap over seeds and questions."
_RC = {
    "font.size": 12,
    "axes.titlesize": 14,
    "axes.labelsize": 12,
    "xtick.labelsize": 11,
    "ytick.labelsize": 11,
    "legend.fontsize": 11,
    "figure.titlesize": 15,
    "svg.fonttype": "none",
    "svg.hashsalt": "subliminal-scaling",
    "hatch.linewidth": 0.8,
}


# --- helpers -------------------------------------------------------------------------------


@contextmanager
def _style() -> Iterator[None]:
    with mpl.rc_context(_RC):
        yield


def size_label(model: str | None, params: float | None = None) -> str:
    """A model's size as on slides: "0.5B", "7B" from the slug, else from the parameter count."""
    if model:
        m = re.search(r"(?<![a-z0-9.])(\d+(?:\.\d+)?)b(?![a-z])", str(model).lower())
        if m:
            return f"{m.group(1)}B"
    if params is None or not np.isfinite(params):
        return str(model)
    if params >= 1e9:
        return f"{params / 1e9:.3g}B"
    if params >= 1e6:
        return f"{params / 1e6:.3g}M"
    return f"{params / 1e3:.3g}k"  # the toy models: "40.3k", not "0.0403M"


def _umask_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _save(fig: Figure, out_png: PathLike, out_svg: PathLike) -> None:
    """Write both formats atomically (the format is explicit: temp names have no suffix).

    The temp file is created private (0600); it gets the usual umask mode before the rename,
    so the figures are as readable as any other output.
    """
    mode = _umask_mode()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png", dpi=150, metadata={"Software": None})
        os.chmod(tmp, mode)
    with atomic_path(out_svg) as tmp:
        fig.savefig(tmp, format="svg", metadata={"Date": None})
        os.chmod(tmp, mode)


def _one_model(data: pd.DataFrame, what: str) -> tuple[str | None, float | None]:
    models = data["model"].dropna().unique().tolist() if "model" in data else []
    if len(models) > 1:
        raise ValueError(f"{what} draws one model; got {models}: filter the table first")
    if not models:
        return None, None
    params = data["params"].dropna()
    return models[0], float(params.iloc[0]) if len(params) else None


def _epoch_note(data: pd.DataFrame) -> str:
    lo = data["epoch_min"].dropna() if "epoch_min" in data else pd.Series(dtype=float)
    hi = data["epoch_max"].dropna() if "epoch_max" in data else pd.Series(dtype=float)
    if lo.empty:
        return ""
    lo_, hi_ = int(lo.min()), int(hi.max())
    return f"Students at epoch {lo_}." if lo_ == hi_ else f"Students at epochs {lo_}–{hi_}."


def _seed_note(n: pd.Series) -> str:
    n = n[n > 0]
    if n.empty:
        return ""
    lo, hi = int(n.min()), int(n.max())
    return f"Mean over {lo} seeds." if lo == hi else f"Mean over {lo}–{hi} seeds."


def coverage_note(
    coverage: Mapping[str, Any] | None, model: str | None = None, latest_epoch: bool = True
) -> str:
    """What a figure is built from when it is not the complete sweep ("" when it is).

    ``coverage`` is ``analysis.coverage``'s dict; ``model`` narrows the counts to one size
    (the per-size charts label partial students' bars themselves, so the note does not).
    ``latest_epoch`` says the figure shows each student at its latest evaluated epoch (not
    so for per-epoch curves), which mid-sweep may be short of the last one.
    """
    if not coverage or (coverage.get("complete") and coverage.get("scope") != "snapshot"):
        return ""
    n, total = coverage["n_evals"], coverage["n_expected"]
    if coverage["complete"]:
        return f"Snapshot: all {total:,} evaluations available (the sweep is complete)."
    head = "Snapshot of the sweep in progress" if coverage["scope"] == "snapshot" else "Partial"
    text = f"{head}: {n:,} of {total:,} evaluations available"
    per_model = coverage.get("models") or {}
    partial = coverage.get("students_partial", 0)
    if model is not None and model in per_model:
        m = per_model[model]
        text += (
            f"; this size: {m['student_evals']:,} of {m['student_evals_expected']:,} "
            "student evaluations"
        )
        if not m["control"]:
            text += ", base-model control not evaluated yet"
        partial = 0
    elif coverage.get("models_without_data"):
        names = ", ".join(size_label(s) for s in coverage["models_without_data"])
        text += f"; no student data yet for {names}"
    text += "."
    if partial and latest_epoch:
        text += (
            f" {partial} student{'s' if partial > 1 else ''} not yet evaluated at the last "
            f"epoch ({coverage['final_epoch']}) {'are' if partial > 1 else 'is'} shown at "
            "the latest evaluated epoch."
        )
    return text


def coverage_title(coverage: Mapping[str, Any] | None, title: str) -> str:
    """``title``, prefixed with "SNAPSHOT (n/N evals)" for a snapshot's figures."""
    if not coverage or coverage.get("scope") != "snapshot":
        return title
    return f"SNAPSHOT ({coverage['n_evals']:,}/{coverage['n_expected']:,} evals) · {title}"


def _footnote(fig: Figure, *parts: str) -> None:
    """Notes under the plot (wrapped to the figure width); the layout keeps clear of them."""
    text = " ".join(p for p in parts if p)
    width_chars = int(fig.get_figwidth() * 72 / (11 * 0.55))  # ~ characters per line at 11 pt
    lines = textwrap.wrap(text, width_chars) if text else []
    if lines:
        fig.text(
            0.01,
            0.01,
            "\n".join(lines),
            ha="left",
            va="bottom",
            fontsize=11,
            color="#444444",
            linespacing=1.3,
        )
    bottom = (len(lines) * 11 * 1.3 + 8) / (fig.get_figheight() * 72) if lines else 0.0
    fig.get_layout_engine().set(rect=(0, bottom, 1, 1 - bottom))  # (left, bottom, w, h)


def _missing_mark(ax: Any, x: float, y: float = 0.0, text: str = "missing") -> None:
    ax.plot([x], [y], marker="x", color=MISSING_COLOUR, markersize=8, mew=2, clip_on=False)
    ax.annotate(
        text,
        (x, y),
        xytext=(0, 8),
        textcoords="offset points",
        rotation=90,
        ha="center",
        va="bottom",
        fontsize=11,
        color=MISSING_COLOUR,
    )


def _size_axis(ax: Any, models: Sequence[str], params: Sequence[float], rotate: float = 0) -> None:
    """Log x axis with one tick per model size, labelled "0.5B", "7B", ..."""
    pairs = sorted({(float(p), size_label(m, p)) for m, p in zip(models, params, strict=True)})
    pairs = [(p, lab) for p, lab in pairs if np.isfinite(p) and p > 0]
    ax.set_xscale("log")
    if not pairs:
        return
    ticks = [p for p, _ in pairs]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticklabels([lab for _, lab in pairs], rotation=rotate)
    lo, hi = min(ticks), max(ticks)
    pad = 10 ** (0.12 * max(math.log10(hi / lo), 1.0))
    ax.set_xlim(lo / pad, hi * pad)


def _pp(bound: pd.Series) -> np.ndarray:
    """An effect's CI bound in percentage points, drawn within ±100 (a difference of two
    rates cannot leave it; with few seeds the t-widened interval can). The tables keep the
    unclipped bounds, which the fit's weights come from."""
    return np.clip(bound.to_numpy(float) * 100, -100.0, 100.0)


def _yerr(mid: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return np.vstack([np.clip(mid - lo, 0, None), np.clip(hi - mid, 0, None)])


# --- grouped bars ----------------------------------------------------------------------------


def _no_data(ax: Any) -> None:
    """Say so in an empty panel, rather than draw an axis that reads as zero."""
    ax.text(0.5, 0.5, "no data yet", transform=ax.transAxes, ha="center", va="center",
            fontsize=14, color=MISSING_COLOUR)  # fmt: skip


CONTROL_LABELS = {
    "control": "Base model (not finetuned): this project's eval",
    SURVEY: "Base model (not finetuned): users' earlier survey",
}


def _epoch_flag(row: Any, final_epoch: int | None) -> str:
    """ "ep 3–10" when a bar's students are not all at the sweep's last epoch, else ""."""
    lo, hi = row.epoch_min, row.epoch_max
    if final_epoch is None or pd.isna(lo) or int(lo) >= final_epoch:
        return ""
    return f"ep {int(lo)}" if int(lo) == int(hi) else f"ep {int(lo)}–{int(hi)}"


def plot_grouped_bars(
    data: pd.DataFrame,
    out_png: PathLike,
    out_svg: PathLike,
    title: str | None = None,
    note: str = "",
    final_epoch: int | None = None,
) -> None:
    """Per animal: base model(s), neutral-teacher students and that animal's students (one model).

    ``data`` is ``analysis.grouped_bar_data`` filtered to one model. Rates are drawn in %,
    whiskers are the CIs, and a bar without data gets a grey "missing" mark instead of a bar.
    The ``alt_control`` bar (the control source not chosen, e.g. the users' survey) is drawn
    beside the control, in its own style, only when the data has it. With ``final_epoch``,
    student bars that include students not yet evaluated at that epoch are labelled with the
    epochs they are shown at. ``note`` is added to the footnote (e.g. a snapshot's coverage).
    """
    model, params = _one_model(data, "plot_grouped_bars")
    animals = list(dict.fromkeys(data["animal"]))
    bars = [b for b in ("control", ALT_CONTROL, "neutral", "animal") if (data["bar"] == b).any()]
    source = data.groupby("bar")["source"].first().to_dict() if "source" in data else {}
    chosen = CONTROL_LABELS.get(source.get("control"), "Base model (not finetuned)")
    labels = {
        "control": chosen + (" (the control)" if ALT_CONTROL in bars else ""),
        ALT_CONTROL: CONTROL_LABELS.get(source.get(ALT_CONTROL), "Base model (other source)"),
        "neutral": "Students of the neutral teacher",
        "animal": "Students of the teacher that loves this animal",
    }
    if ALT_CONTROL not in bars:
        labels["control"] = "Base model (not finetuned)"
    styles = {
        "control": CONTROL_STYLE,
        ALT_CONTROL: ALT_CONTROL_STYLE,
        "neutral": NEUTRAL_STYLE,
        "animal": ANIMAL_STYLE,
    }
    width = 0.8 / len(bars)
    nothing = bool(data["missing"].all())
    flagged = False
    with _style():
        fig = Figure(figsize=(13, 5.6), layout="constrained")
        ax = fig.add_subplot()
        x = np.arange(len(animals))
        top = 0.0
        for j, bar in enumerate(bars):
            d = data[data["bar"] == bar].set_index("animal").reindex(animals)
            xs = x + (j - (len(bars) - 1) / 2) * width
            have = ~d["missing"].fillna(True).astype(bool).to_numpy()
            rate = d["rate"].to_numpy(float) * 100
            lo = d["ci_low"].to_numpy(float) * 100
            hi = d["ci_high"].to_numpy(float) * 100
            ax.bar(xs[have], rate[have], width, label=labels[bar], linewidth=0.8, **styles[bar])
            ok = have & np.isfinite(lo) & np.isfinite(hi)
            if ok.any():
                ax.errorbar(
                    xs[ok],
                    rate[ok],
                    yerr=_yerr(rate[ok], lo[ok], hi[ok]),
                    fmt="none",
                    ecolor="black",
                    elinewidth=1.2,
                    capsize=2,
                )
                top = max(top, float(np.nanmax(hi[ok])))
            if have.any():
                top = max(top, float(np.nanmax(rate[have])))
            if not nothing:
                for xm in xs[~have]:
                    _missing_mark(ax, xm)
            for xm, row, drawn in zip(xs, d.itertuples(), have, strict=True):
                flag = _epoch_flag(row, final_epoch) if drawn else ""
                if flag:  # inside the bar, from its foot: clear of whiskers and legend
                    flagged = True
                    ax.annotate(
                        flag,
                        (xm, 0),
                        xytext=(0, 3),
                        textcoords="offset points",
                        rotation=90,
                        ha="center",
                        va="bottom",
                        fontsize=10,
                        color="#222222",
                        bbox={
                            "boxstyle": "round,pad=0.15",
                            "fc": "white",
                            "ec": "none",
                            "alpha": 0.75,
                        },
                    )
        ax.set_xticks(x, animals, rotation=30, ha="right", rotation_mode="anchor")
        ax.set_xlim(-0.6, len(animals) - 0.4)
        # a rate is at most 100%: no axis beyond it, however wide the CIs
        ax.set_ylim(0, min(100.0, max(10.0, top * 1.08)) if top > 0 else 100.0)
        ax.set_ylabel("Answers naming the animal (%)")
        ax.set_xlabel("Animal asked about (and loved by the teacher, for the orange bar)")
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
        if nothing:
            _no_data(ax)
        handles = [Patch(label=labels[b], linewidth=0.8, **styles[b]) for b in bars]
        handles.append(
            ax.plot([], [], "x", color=MISSING_COLOUR, mew=2, label="missing (no data)")[0]
        )
        ax.legend(
            handles=handles,
            loc="lower center",
            bbox_to_anchor=(0.5, 1.0),
            ncol=3 if len(handles) > 4 else 4,
            frameon=False,
            handlelength=1.6,
            columnspacing=1.4,
        )
        if title is None:
            title = f"{size_label(model, params)}: favourite-animal answers, base model vs students"
        fig.suptitle(title)
        seeds = data.loc[data["bar"].isin(["neutral", "animal"]), "n_seeds"]
        notes = [_seed_note(seeds), _epoch_note(data), CI_NOTE]
        if SURVEY in set(data.loc[~data["missing"], "source"] if source else ()):
            notes.append("The survey kept no question ids or seeds, so its bar has no CI.")
        if flagged:
            notes.append(
                f"'ep a–b': some of the bar's students are not evaluated at the last epoch "
                f"({final_epoch}) yet and are shown at their latest evaluated epoch."
            )
        _footnote(fig, *notes, note)
        _save(fig, out_png, out_svg)


# --- stacked distributions -----------------------------------------------------------------


def _answer_label(answer: str) -> str:
    return "(empty answer)" if answer == "" else answer


def plot_stacked(
    data: pd.DataFrame,
    out_png: PathLike,
    out_svg: PathLike,
    title: str | None = None,
    note: str = "",
    final_epoch: int | None = None,
) -> None:
    """One 100% bar per model variant (base, neutral, each animal) split into the top answers.

    ``data`` is ``analysis.stacked_data`` for one model. The top answers take matplotlib's
    default colours C0, C1, ... in rank order; "other" is light grey; a variant without data
    is labelled "missing" instead of drawn (a model without any data: one "no data yet"
    panel). With ``final_epoch``, variants whose students are not all evaluated at that epoch
    get the epochs they are shown at under their name. ``note`` goes into the footnote.
    """
    model, params = _one_model(data, "plot_stacked")
    variants = (data[["variant_index", "variant"]].drop_duplicates().sort_values("variant_index"))[
        "variant"
    ].tolist()
    segs = (data[["segment_index", "answer"]].drop_duplicates().sort_values("segment_index"))[
        "answer"
    ].tolist()
    with _style():
        fig = Figure(figsize=(13, 5.2), layout="constrained")
        ax = fig.add_subplot()
        x = np.arange(len(variants))
        bottom = np.zeros(len(variants))
        handles = []
        colour_i = 0
        for ans in segs:
            d = data[data["answer"] == ans].set_index("variant").reindex(variants)
            share = d["share"].to_numpy(float) * 100
            have = np.isfinite(share)
            if ans == OTHER:
                colour, label = OTHER_COLOUR, "other answers"
            else:
                colour, label = f"C{colour_i % 10}", _answer_label(ans)
                colour_i += 1
            ax.bar(
                x[have],
                share[have],
                0.75,
                bottom=bottom[have],
                color=colour,
                edgecolor="white",
                linewidth=0.6,
            )
            bottom[have] += share[have]
            handles.append(Patch(facecolor=colour, edgecolor="white", label=label))
        missing = data.groupby("variant")["missing"].all().reindex(variants).fillna(True)
        nothing = bool(missing.all())
        for xi, miss in zip(x, missing.to_numpy(bool), strict=True):
            if miss and not nothing:
                ax.bar(
                    [xi],
                    [100],
                    0.75,
                    facecolor="none",
                    edgecolor=MISSING_COLOUR,
                    linestyle="--",
                    linewidth=1,
                )
                ax.text(
                    xi,
                    50,
                    "missing",
                    rotation=90,
                    ha="center",
                    va="center",
                    color=MISSING_COLOUR,
                    fontsize=11,
                )
        names = ["base model" if v == "control" else v for v in variants]
        flags = data.drop_duplicates("variant").set_index("variant").reindex(variants)
        flagged = False
        for i, row in enumerate(flags.itertuples()):
            flag = "" if missing.iloc[i] else _epoch_flag(row, final_epoch)
            if flag:
                names[i] += f" ({flag})"
                flagged = True
        ax.set_xticks(x, names, rotation=30, ha="right", rotation_mode="anchor")
        ax.set_xlim(-0.6, len(variants) - 0.4)
        ax.set_ylim(0, 100)
        ax.set_ylabel("Share of answers (%)")
        ax.set_xlabel("Model variant (students named by their teacher's favourite animal)")
        ax.legend(
            handles=handles[::-1],
            title="Answer",
            loc="upper left",
            bbox_to_anchor=(1.01, 1),
            frameon=False,
        )
        if nothing:
            _no_data(ax)
        if title is None:
            title = f"{size_label(model, params)}: what each variant names as its favourite animal"
        ax.set_title(title)
        seeds = data.loc[(data["variant"] != "control") & ~data["missing"], "n_seeds"]
        _footnote(
            fig,
            _seed_note(seeds),
            _epoch_note(data),
            "Answers normalised to one word; top answers ranked by mean share over bars.",
            (
                f"'(ep a–b)': some of the variant's students are not evaluated at the last "
                f"epoch ({final_epoch}) yet and are shown at their latest evaluated epoch."
                if flagged
                else ""
            ),
            note,
        )
        _save(fig, out_png, out_svg)


# --- scaling ---------------------------------------------------------------------------------


def _mean_rows(effects: pd.DataFrame, animal: str = MEAN_ANIMAL) -> pd.DataFrame:
    d = effects
    if "animal" in d:
        d = d[d["animal"] == animal]
    if "missing" in d:
        d = d[~d["missing"].astype(bool)]
    return d[np.isfinite(d["effect"].astype(float))].sort_values("params")


def plot_scaling(
    effects: pd.DataFrame,
    fit: Mapping[str, Any] | None,
    out_png: PathLike,
    out_svg: PathLike,
    title: str | None = None,
    note: str = "",
) -> None:
    """Transfer effect (pp) against model size on a log axis, with each fitted form's curve.

    ``effects``: ``analysis.transfer_effect`` output (its mean-over-animals rows are used) or
    one row per model with model/params/effect/ci_low/ci_high. ``fit``:
    ``analysis.fit_scaling``'s dict (or None). The legend gives each form's ΔAICc (0 = the
    preferred form); forms that could not be fitted are listed, faded, with the reason.
    """
    pts = _mean_rows(effects)
    with _style():
        fig = Figure(figsize=(13, 5.2), layout="constrained")
        ax = fig.add_subplot()
        ax.axhline(0, color="#888888", linewidth=1, zorder=0)
        notes = []
        if len(pts):
            e = pts["effect"].to_numpy(float) * 100
            lo = _pp(pts["ci_low"]) if "ci_low" in pts else e
            hi = _pp(pts["ci_high"]) if "ci_high" in pts else e
            ok = np.isfinite(lo) & np.isfinite(hi)
            yerr = np.where(ok, _yerr(e, np.where(ok, lo, e), np.where(ok, hi, e)), 0)
            ax.errorbar(
                pts["params"],
                e,
                yerr=yerr,
                fmt="o",
                color="black",
                markersize=7,
                capsize=4,
                elinewidth=1.4,
                label="measured\n(mean over animals, 95% CI)",
                zorder=5,
            )
            _size_axis(ax, pts["model"].tolist(), pts["params"].tolist())
        else:
            ax.set_xscale("log")
            _no_data(ax)
        if fit:
            crit = fit.get("criterion") or "AIC"
            N = np.asarray(fit.get("params") or [], dtype=float)
            for form in FORMS:
                entry = (fit.get("forms") or {}).get(form)
                if entry is None:
                    continue
                style = FORM_STYLES[form]
                if not entry.get("fitted"):
                    reason = str(entry.get("reason")).replace(">=", "≥")
                    label = f"{FORM_LABELS[form]}\nnot fitted: {reason}"
                    ax.plot([], [], label=label, linewidth=1.6, alpha=0.35, **style)
                    continue
                grid = np.logspace(math.log10(N.min()) - 0.1, math.log10(N.max()) + 0.1, 200)
                y = predict(form, entry["params"], grid) * 100
                label = FORM_LABELS[form]
                if entry.get("delta") is not None:
                    label += f"\nΔ{crit} = {entry['delta']:.1f}"
                preferred = fit.get("preferred") == form
                if preferred:
                    label += " (preferred)"
                ax.plot(grid, y, label=label, linewidth=2.8 if preferred else 1.6, **style)
            if fit.get("warning"):
                red = (fit["forms"].get(fit.get("preferred") or "", {}) or {}).get("reduced_chi2")
                notes.append(
                    f"Sizes scatter more than their CIs (reduced χ² = {red:.1f}): "
                    "treat the model choice as tentative."
                )
        ax.set_xlabel("Model parameters (log scale)")
        ax.set_ylabel("Transfer effect (percentage points)")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, labelspacing=0.9)
        if title is None:
            title = "Subliminal transfer vs model size (Qwen2.5-Instruct, mean over animals)"
        ax.set_title(title)
        _footnote(
            fig,
            "Effect = rate of the teacher's animal among its students minus among neutral "
            "students.",
            _epoch_note(pts),
            *notes,
            note,
        )
        _save(fig, out_png, out_svg)


def plot_effect_per_animal(
    effects: pd.DataFrame,
    out_png: PathLike,
    out_svg: PathLike,
    title: str | None = None,
    animals: Sequence[str] | None = None,
    note: str = "",
) -> None:
    """Small multiples: one panel per animal, transfer effect (pp) against model size.

    ``effects`` is ``analysis.transfer_effect`` output (final or one epoch). Each panel also
    shows the mean over animals as a grey dashed line, for reference; sizes without data for
    an animal are marked "×" on the zero line.
    """
    d = effects[effects["animal"] != MEAN_ANIMAL]
    animals = list(animals) if animals is not None else list(dict.fromkeys(d["animal"]))
    sizes = d[["model", "params"]].drop_duplicates().sort_values("params")
    mean = _mean_rows(effects)
    ncols = min(5, max(1, len(animals)))
    nrows = max(1, math.ceil(len(animals) / ncols))
    with _style():
        fig = Figure(figsize=(13, 1.0 + 2.45 * nrows), layout="constrained")
        axes = np.atleast_1d(fig.subplots(nrows, ncols, sharex=True, sharey=True)).ravel()
        for ax, animal in zip(axes, animals, strict=False):
            a = d[d["animal"] == animal].set_index("model").reindex(sizes["model"])
            a["params"] = sizes["params"].to_numpy()
            have = ~a["missing"].fillna(True).astype(bool)
            ax.axhline(0, color="#888888", linewidth=0.8, zorder=0)
            if len(mean):
                ax.plot(
                    mean["params"],
                    mean["effect"] * 100,
                    "--",
                    color="#999999",
                    linewidth=1.2,
                    zorder=1,
                )
            g = a[have]
            if len(g):
                e = g["effect"].to_numpy(float) * 100
                yerr = _yerr(e, _pp(g["ci_low"]), _pp(g["ci_high"]))
                ax.errorbar(
                    g["params"],
                    e,
                    yerr=np.nan_to_num(yerr),
                    fmt="o-",
                    color=ANIMAL_STYLE["facecolor"],
                    markersize=5,
                    capsize=3,
                    elinewidth=1.2,
                    linewidth=1.2,
                )
            for p in a.loc[~have, "params"]:
                ax.plot([p], [0], "x", color=MISSING_COLOUR, mew=2, markersize=7)
            ax.set_title(animal, fontsize=12)
            ax.grid(alpha=0.3)
            _size_axis(ax, sizes["model"].tolist(), sizes["params"].tolist(), rotate=45)
        for ax in axes[len(animals) :]:
            ax.set_visible(False)
        # with sharex only the bottom row shows tick labels: give them to the lowest visible
        # panel of each column instead, and the x label to the middle column's (to all
        # columns when there is no middle one)
        grid = axes.reshape(nrows, ncols)
        for col in range(ncols):
            visible = [r for r in range(nrows) if r * ncols + col < len(animals)]
            if visible:
                lowest = grid[visible[-1], col]
                lowest.xaxis.set_tick_params(labelbottom=True)
                if col == ncols // 2 or ncols % 2 == 0:
                    lowest.set_xlabel("Model parameters (log scale)")
        fig.supylabel("Transfer effect (pp)", fontsize=12)
        if title is None:
            title = "Transfer effect per animal vs model size (grey dashed: mean over animals)"
        fig.suptitle(title)
        if not len(sizes):
            for ax in axes[: len(animals)]:
                _no_data(ax)
        _footnote(fig, "× = no data.", _epoch_note(d), CI_NOTE, note)
        _save(fig, out_png, out_svg)


def plot_effect_per_epoch(
    effects: pd.DataFrame,
    out_png: PathLike,
    out_svg: PathLike,
    title: str | None = None,
    animal: str = MEAN_ANIMAL,
    note: str = "",
) -> None:
    """Transfer effect (pp) per training epoch, one line (with 95% CI band) per model size.

    ``effects`` is ``analysis.transfer_effect(..., epoch="all")``; ``animal`` picks the mean
    over animals (default) or one animal.
    """
    d = _mean_rows(effects.dropna(subset=["epoch"]), animal)
    sizes = d[["model", "params"]].drop_duplicates().sort_values("params")
    cmap = mpl.colormaps["viridis"]
    with _style():
        fig = Figure(figsize=(13, 5.2), layout="constrained")
        ax = fig.add_subplot()
        ax.axhline(0, color="#888888", linewidth=1, zorder=0)
        n = len(sizes)
        single_epoch = d["epoch"].nunique() == 1
        for i, (model, params) in enumerate(sizes.itertuples(index=False)):
            g = d[d["model"] == model].sort_values("epoch")
            ep = g["epoch"].astype(float).to_numpy()
            e = g["effect"].to_numpy(float) * 100
            lo, hi = _pp(g["ci_low"]), _pp(g["ci_high"])
            colour = cmap(0.85 * i / max(n - 1, 1))
            label = size_label(model, params)
            if len(g) > 1:
                ax.plot(ep, e, "o-", color=colour, linewidth=2, markersize=6, label=label)
                ax.fill_between(ep, lo, hi, color=colour, alpha=0.15, linewidth=0)
            else:  # a lone point: whiskers (nudged sideways when every size has one epoch)
                dodge = (i - (n - 1) / 2) * min(0.08, 0.5 / max(n, 1)) if single_epoch else 0.0
                ax.errorbar(
                    ep + dodge,
                    e,
                    yerr=np.nan_to_num(_yerr(e, lo, hi)),
                    fmt="o-",
                    color=colour,
                    markersize=6,
                    capsize=4,
                    linewidth=2,
                    label=label,
                )
        epochs = sorted(int(v) for v in d["epoch"].dropna().unique())
        if epochs:
            ax.set_xticks(epochs)
            ax.set_xlim(epochs[0] - 0.5, epochs[-1] + 0.5)
        else:
            _no_data(ax)
        ax.set_xlabel("Training epoch")
        ax.set_ylabel("Transfer effect (percentage points)")
        ax.grid(alpha=0.3)
        if n:
            ax.legend(title="Model size", loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
        if title is None:
            what = "mean over animals" if animal == MEAN_ANIMAL else animal
            title = f"Transfer effect over training, by model size ({what})"
        ax.set_title(title)
        _footnote(
            fig, "Bands (or whiskers): 95% CI, cluster bootstrap over seeds and questions.", note
        )
        _save(fig, out_png, out_svg)
