"""Cross-size figures: the scaling fit, the effect per animal and per epoch."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from subliminal_scaling.report.figures import (
    ANIMAL_STYLE,
    CI_NOTE,
    FORM_LABELS,
    FORM_STYLES,
    MISSING_COLOUR,
    PathLike,
    _epoch_note,
    _footnote,
    _pp,
    _save,
    _size_axis,
    _style,
    _yerr,
    size_label,
)
from subliminal_scaling.report.plots_size import _no_data
from subliminal_scaling.report.scaling import predict
from subliminal_scaling.report.schema import FORMS, MEAN_ANIMAL

# --- scaling ---------------------------------------------------------------------------------


def _mean_rows(effects: pd.DataFrame, animal: str = MEAN_ANIMAL) -> pd.DataFrame:
    d = effects
    if "animal" in d:
        d = d[d["animal"] == animal]
    if "missing" in d:
        d = d[~d["missing"].astype(bool)]
    return d[np.isfinite(d["effect"].astype(float))].sort_values("params")


PEER_COLUMNS = ["source", "model", "params", "animal", "bar", "rate", "n_seeds"]


def read_peer(path: PathLike) -> pd.DataFrame:
    """Another study's published cells (config ``report.peer``): one row per (source, model,
    animal or "mean", bar "animal"/"neutral") with its rate; a bad file is a one-line error."""
    df = pd.read_csv(path)
    missing = [c for c in PEER_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: peer table lacks columns {missing} (needs {PEER_COLUMNS})")
    if not df["bar"].isin(["animal", "neutral"]).all() or not df["rate"].between(0, 1).all():
        raise ValueError(f"{path}: bar must be 'animal' or 'neutral' and rate within 0..1")
    return df


def peer_effects(peer: pd.DataFrame | None) -> pd.DataFrame:
    """Per (source, model): the peer's mean-over-animals animal rate minus its neutral rate."""
    cols = ["source", "model", "params", "effect", "n_seeds"]
    if peer is None or peer.empty:
        return pd.DataFrame(columns=cols)
    mean = peer[peer["animal"] == MEAN_ANIMAL]
    wide = mean.pivot_table(
        index=["source", "model", "params"], columns="bar", values="rate", aggfunc="first"
    )
    seeds = mean.groupby(["source", "model", "params"])["n_seeds"].max()
    out = (wide["animal"] - wide["neutral"]).rename("effect").to_frame().join(seeds)
    return out.reset_index()[cols].dropna(subset=["effect"])


def plot_scaling(
    effects: pd.DataFrame,
    fit: Mapping[str, Any] | None,
    out_png: PathLike,
    out_svg: PathLike,
    title: str | None = None,
    note: str = "",
    peer: pd.DataFrame | None = None,
) -> Figure:
    """Transfer effect (pp) against model size on a log axis, with each fitted form's curve.

    ``peer`` (``report.peer.read_peer``): another study's published cells; their mean effect
    per size (animal minus neutral rate) is drawn as open markers labelled with the source.

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
        for source, cells in peer_effects(peer).groupby("source", sort=False):
            ax.plot(
                cells["params"], cells["effect"] * 100, "D", markersize=8, fillstyle="none",
                color="#c0392b", markeredgewidth=1.6, zorder=6, gid=f"peer-{source}",
                label=f"published: {source}\n(n seeds = {int(cells['n_seeds'].max())})",
            )  # fmt: skip
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
    return fig


def plot_effect_per_animal(
    effects: pd.DataFrame,
    out_png: PathLike,
    out_svg: PathLike,
    title: str | None = None,
    animals: Sequence[str] | None = None,
    note: str = "",
) -> Figure:
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
    return fig


def _epoch_axis(ax: Any, epochs: pd.Series) -> None:
    """An x axis of the evaluated epochs (or a "no data yet" panel), with the grid."""
    ticks = sorted(int(v) for v in epochs.dropna().unique())
    if ticks:
        ax.set_xticks(ticks)
        ax.set_xlim(ticks[0] - 0.5, ticks[-1] + 0.5)
    else:
        _no_data(ax)
    ax.set_xlabel("Training epoch")
    ax.grid(alpha=0.3)


def plot_effect_per_epoch(
    effects: pd.DataFrame,
    out_png: PathLike,
    out_svg: PathLike,
    title: str | None = None,
    animal: str = MEAN_ANIMAL,
    note: str = "",
) -> Figure:
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
        _epoch_axis(ax, d["epoch"])
        ax.set_ylabel("Transfer effect (percentage points)")
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
    return fig


def plot_exact_per_epoch(
    effects: pd.DataFrame,
    out_png: PathLike,
    out_svg: PathLike,
    title: str | None = None,
    note: str = "",
) -> Figure:
    """Per training epoch and size: the exact effect (solid; ``report.exact.exact_effects``,
    P(answer starts with the teacher's animal), students minus neutral students) beside the
    sampled rate's effect from the same evals (dashed)."""
    sizes = effects[["model", "params"]].drop_duplicates().sort_values("params")
    cmap = mpl.colormaps["viridis"]
    with _style():
        fig = Figure(figsize=(13, 5.2), layout="constrained")
        ax = fig.add_subplot()
        ax.axhline(0, color="#888888", linewidth=1, zorder=0)
        n = len(sizes)
        for i, (model, params) in enumerate(sizes.itertuples(index=False)):
            g = effects[effects["model"] == model].sort_values("epoch")
            colour = cmap(0.85 * i / max(n - 1, 1))
            ep = g["epoch"].astype(float).to_numpy()
            name = size_label(model, params)
            exact = g["exact_effect"].to_numpy(float) * 100
            sampled = g["sampled_effect"].to_numpy(float) * 100
            ax.plot(ep, exact, "o-", color=colour, linewidth=2, markersize=6,
                    label=f"{name} exact", gid=f"exact-{model}")  # fmt: skip
            ax.plot(ep, sampled, "s--", color=colour, linewidth=1.2, markersize=4,
                    alpha=0.8, label=f"{name} sampled", gid=f"sampled-{model}")  # fmt: skip
        _epoch_axis(ax, effects["epoch"])
        ax.set_ylabel("Effect (percentage points)")
        if n:
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
        ax.set_title(title or "Exact preference effect over training, by model size")
        _footnote(
            fig,
            "Solid: exact P(answer starts with the teacher's animal), students minus neutral "
            "students, mean over animals and questions (no sampling). Dashed: the sampled "
            "rate's effect from the same evals (answers naming the animal anywhere).",
            note,
        )
        _save(fig, out_png, out_svg)
    return fig
