"""Per-size charts: grouped bars (control / neutral / animal) and stacked answer distributions."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from subliminal_scaling.report.figures import (
    ALT_CONTROL_STYLE,
    ANIMAL_STYLE,
    CI_NOTE,
    CONTROL_STYLE,
    MISSING_COLOUR,
    NEUTRAL_STYLE,
    OTHER_COLOUR,
    PathLike,
    _epoch_note,
    _footnote,
    _missing_mark,
    _one_model,
    _save,
    _seed_note,
    _style,
    _yerr,
    size_label,
)
from subliminal_scaling.report.schema import ALT_CONTROL, OTHER
from subliminal_scaling.runtime.naming import SURVEY

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
    significance: pd.DataFrame | None = None,
) -> Figure:
    """Per animal: base model(s), neutral-teacher students and that animal's students (one model).

    ``significance`` (``report.significance.significance_table`` rows of this model): a star
    above an animal's bar whose effect against the neutral students survives the correction.

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
        starred = _stars(ax, data, animals, bars, x, width, significance)
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
        if significance is not None:
            notes.append(
                f"* corrected p < 0.05 against the neutral students ({starred} of "
                f"{int((significance['animal'] != 'mean').sum())} animals; one-sided permutation "
                "test, students as units, Benjamini-Hochberg over all sizes and animals)."
            )
        if flagged:
            notes.append(
                f"'ep a–b': some of the bar's students are not evaluated at the last epoch "
                f"({final_epoch}) yet and are shown at their latest evaluated epoch."
            )
        _footnote(fig, *notes, note)
        _save(fig, out_png, out_svg)
    return fig


def _stars(
    ax: Any,
    data: pd.DataFrame,
    animals: list[str],
    bars: list[str],
    x: np.ndarray,
    width: float,
    significance: pd.DataFrame | None,
) -> int:
    """Star the animal bars whose effect is significant; returns how many."""
    if significance is None or "animal" not in bars:
        return 0
    sig = significance.set_index("animal")["significant"].to_dict()
    d = data[data["bar"] == "animal"].set_index("animal").reindex(animals)
    j = bars.index("animal")
    n = 0
    for i, animal in enumerate(animals):
        if not sig.get(animal, False):
            continue
        top = np.nanmax([d.loc[animal, "rate"], d.loc[animal, "ci_high"]]) * 100
        ax.annotate(
            "*", (x[i] + (j - (len(bars) - 1) / 2) * width, top), xytext=(0, 2),
            textcoords="offset points", ha="center", va="bottom", fontsize=16,
            fontweight="bold", gid=f"significant-{animal}",
        )  # fmt: skip
        n += 1
    return n


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
) -> Figure:
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
                label=label,
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
            "Answers normalised: the configured animal they name, else their first word; top "
            "answers ranked by mean share over bars.",
            (
                f"'(ep a–b)': some of the variant's students are not evaluated at the last "
                f"epoch ({final_epoch}) yet and are shown at their latest evaluated epoch."
                if flagged
                else ""
            ),
            note,
        )
        _save(fig, out_png, out_svg)
    return fig
