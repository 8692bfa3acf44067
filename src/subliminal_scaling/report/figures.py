"""Shared figure style and helpers: slide-sized figures, atomic PNG/SVG output, size labels,
coverage notes, missing-data marks."""

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
from matplotlib.ticker import FixedLocator, NullLocator

from subliminal_scaling.runtime.io import atomic_path

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
