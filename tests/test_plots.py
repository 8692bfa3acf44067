"""Every chart draws its table: bar heights, positions and colours, points and fitted curves
read back from the matplotlib objects, on complete and on partial synthetic data (a blank
figure fails), and writes a PNG and an SVG."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex
from matplotlib.container import BarContainer

from subliminal_scaling.report.bars import grouped_bar_data, stacked_data
from subliminal_scaling.report.effects import transfer_effect
from subliminal_scaling.report.figures import (
    ANIMAL_STYLE,
    CONTROL_STYLE,
    FORM_LABELS,
    NEUTRAL_STYLE,
    coverage_note,
    coverage_title,
    size_label,
)
from subliminal_scaling.report.plots_scaling import (
    plot_effect_per_animal,
    plot_effect_per_epoch,
    plot_scaling,
)
from subliminal_scaling.report.plots_size import plot_grouped_bars, plot_stacked
from subliminal_scaling.report.scaling import fit_scaling, predict
from subliminal_scaling.report.tables import coverage, tidy_tables

ANIMALS = ["cat", "dog", "owl", "eagle"]
PARAMS = {
    "qwen-2.5-0.5b-instruct": 0.494e9,
    "qwen-2.5-1.5b-instruct": 1.54e9,
    "qwen-2.5-3b-instruct": 3.09e9,
    "qwen-2.5-7b-instruct": 7.62e9,
    "qwen-2.5-14b-instruct": 14.7e9,
    "qwen-2.5-32b-instruct": 32.8e9,
}
VOCAB = [*ANIMALS, "fox", "bear", "lion", "wolf", ""]


def _record(rng, model, kind, condition, seed, epoch, boost):
    p = np.ones(len(VOCAB))
    if condition in ANIMALS:
        p[VOCAB.index(condition)] += boost * epoch
    p /= p.sum()
    answers = [
        {"question_index": q, "question": None, "answer": f"The {VOCAB[w]}", "normalised": VOCAB[w]}
        for q in range(4)
        for w in rng.choice(len(VOCAB), 8, p=p)
    ]
    return {
        "kind": kind, "model": model, "condition": condition, "seed": seed, "epoch": epoch,
        "n_answers": len(answers), "answers": answers,
    }  # fmt: skip


def _records(models, drop=lambda m, c, s, e: False):
    rng = np.random.default_rng(0)
    for i, m in enumerate(models):
        yield _record(rng, m, "control", "control", None, None, 0)
        for c in ["neutral", *ANIMALS]:
            for s in (1, 2):
                for e in (1, 2):
                    if not drop(m, c, s, e):
                        yield _record(rng, m, "student", c, s, e, 1 + i)


@pytest.fixture(scope="module")
def tables():
    # partial: the largest model lacks the owl students and its epoch 2; 7B lacks eagle's seed 2
    def drop(m, c, s, e):
        if m == "qwen-2.5-32b-instruct":
            return c == "owl" or e == 2
        return m == "qwen-2.5-7b-instruct" and c == "eagle" and s == 2

    return tidy_tables(_records(list(PARAMS), drop), PARAMS, ANIMALS)


@pytest.fixture(scope="module")
def effects(tables):
    return transfer_effect(tables[1], ANIMALS, n_boot=50)


def _check(tmp_path, stem):
    png, svg = tmp_path / f"{stem}.png", tmp_path / f"{stem}.svg"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    head = svg.read_text()[:200]
    assert "<svg" in head or head.startswith("<?xml")
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no temp leftovers


def _out(tmp_path, stem):
    return tmp_path / f"{stem}.png", tmp_path / f"{stem}.svg"


def test_size_label():
    assert size_label("qwen-2.5-0.5b-instruct", 4.94e8) == "0.5B"
    assert size_label("qwen-2.5-32b-instruct") == "32B"
    assert size_label("toy-model", 1.2e7) == "12M"
    assert size_label("toy-model", 7.62e9) == "7.62B"
    assert size_label("qwen-2.5-toy-s-instruct", 40_192) == "40.2k"


def _bars(ax):
    """label -> BarContainer of every bar series drawn on ``ax``."""
    return {c.get_label(): c for c in ax.containers if isinstance(c, BarContainer)}


def _x(patch):
    return patch.get_x() + patch.get_width() / 2


def test_grouped_bars(tmp_path, tables):
    data = grouped_bar_data(tables[1], ANIMALS, n_boot=50, models=[*PARAMS, "qwen-2.5-72b"])
    one = data[data["model"] == "qwen-2.5-32b-instruct"]
    assert one["missing"].any()
    fig = plot_grouped_bars(one, *_out(tmp_path, "bars"), title="32B test")
    _check(tmp_path, "bars")
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.get_xticklabels()] == ANIMALS
    drawn = _bars(ax)
    series = {
        "control": ("Base model (not finetuned)", CONTROL_STYLE),
        "neutral": ("Students of the neutral teacher", NEUTRAL_STYLE),
        "animal": ("Students of the teacher that loves this animal", ANIMAL_STYLE),
    }
    assert set(drawn) == {label for label, _ in series.values()}
    for bar, (label, style) in series.items():
        rows = one[one["bar"] == bar].set_index("animal").reindex(ANIMALS)
        present = rows[~rows["missing"]]
        patches = drawn[label].patches
        # one bar per animal with data, as tall as its rate, in the animal's slot, in its style
        assert [p.get_height() for p in patches] == pytest.approx(present["rate"] * 100)
        slots = [ANIMALS.index(a) for a in present.index]
        assert [round(_x(p)) for p in patches] == slots
        assert {to_hex(p.get_facecolor()) for p in patches} == {style["facecolor"]}
    # the 32B owl students are missing: no bar, a visible "missing" mark instead
    assert "owl" not in one[(one["bar"] == "animal") & ~one["missing"]]["animal"].tolist()
    assert "missing" in [t.get_text() for t in ax.texts]
    nothing = data[data["model"] == "qwen-2.5-72b"]
    assert nothing["missing"].all()
    fig = plot_grouped_bars(nothing, *_out(tmp_path, "bars_empty"), title=None)
    _check(tmp_path, "bars_empty")
    assert all(not c.patches for c in _bars(fig.axes[0]).values())
    assert "no data yet" in [t.get_text() for t in fig.axes[0].texts]
    with pytest.raises(ValueError, match="one model"):
        plot_grouped_bars(data, *_out(tmp_path, "x"))


def test_stacked(tmp_path, tables):
    data = stacked_data(tables[0], "qwen-2.5-32b-instruct", ANIMALS)
    assert data.loc[data["variant"] == "owl", "missing"].all()
    fig = plot_stacked(data, *_out(tmp_path, "stacked"))
    _check(tmp_path, "stacked")
    (ax,) = fig.axes
    variants = list(dict.fromkeys(data.sort_values("variant_index")["variant"]))
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks == ["base model" if v == "control" else v for v in variants]
    drawn = _bars(ax)
    tops = dict.fromkeys(range(len(variants)), 0.0)
    for answer, seg in data[~data["missing"]].groupby("answer"):
        label = "other answers" if answer == "other" else (answer or "(empty answer)")
        patches = drawn[label].patches
        seg = seg.set_index("variant").reindex([v for v in variants if v in set(seg["variant"])])
        assert [p.get_height() for p in patches] == pytest.approx(seg["share"] * 100)
        for p in patches:
            tops[round(_x(p))] = max(tops[round(_x(p))], p.get_y() + p.get_height())
    # every variant with data is a full 100% stack; the owl students' slot is marked missing
    for i, v in enumerate(variants):
        assert tops[i] == (0.0 if v == "owl" else pytest.approx(100.0)), v
    assert "missing" in [t.get_text() for t in ax.texts]
    empty = stacked_data(tables[0], "absent-model", ANIMALS)
    fig = plot_stacked(empty, *_out(tmp_path, "stacked_empty"))
    _check(tmp_path, "stacked_empty")
    assert all(not c.patches for c in _bars(fig.axes[0]).values())


@pytest.mark.parametrize("n_sizes", [0, 1, 2, 6])
def test_scaling(tmp_path, effects, n_sizes):
    keep = list(PARAMS)[:n_sizes]
    eff = effects[effects["model"].isin(keep)]
    fit = fit_scaling(eff, n_boot=50)
    fig = plot_scaling(eff, fit, *_out(tmp_path, "scaling"))
    _check(tmp_path, "scaling")
    (ax,) = fig.axes
    mean = eff[eff["animal"] == "mean"].sort_values("params")
    mean = mean[np.isfinite(mean["effect"].astype(float))]
    points = [c for c in ax.containers if c.get_label().startswith("measured")]
    if len(mean):
        (pts,) = points
        line = pts.lines[0]
        assert list(line.get_xdata()) == pytest.approx(mean["params"].tolist())
        assert list(line.get_ydata()) == pytest.approx((mean["effect"] * 100).tolist())
    else:
        assert not points and "no data yet" in [t.get_text() for t in ax.texts]
    curves = {ln.get_label(): ln for ln in ax.get_lines() if len(ln.get_xdata())}
    for form, entry in fit["forms"].items():
        drawn = [ln for label, ln in curves.items() if label.startswith(FORM_LABELS[form])]
        if entry["fitted"]:  # the curve drawn is the fitted form's prediction
            (ln,) = drawn
            want = predict(form, entry["params"], np.asarray(ln.get_xdata())) * 100
            assert list(ln.get_ydata()) == pytest.approx(want.tolist())
        else:
            assert not drawn
    fig = plot_scaling(eff, None, *_out(tmp_path, "scaling_nofit"))
    _check(tmp_path, "scaling_nofit")
    assert not [ln for ln in fig.axes[0].get_lines() if len(ln.get_xdata()) > 10]


def test_effect_per_animal(tmp_path, effects):
    assert effects["missing"].any()
    fig = plot_effect_per_animal(effects, *_out(tmp_path, "per_animal"))
    _check(tmp_path, "per_animal")
    panels = {ax.get_title(): ax for ax in fig.axes if ax.get_title()}
    assert list(panels) == ANIMALS
    for animal, ax in panels.items():
        rows = effects[(effects["animal"] == animal) & ~effects["missing"]].sort_values("params")
        (pts,) = [c for c in ax.containers if hasattr(c, "lines")]
        line = pts.lines[0]
        assert list(line.get_xdata()) == pytest.approx(rows["params"].tolist())
        assert list(line.get_ydata()) == pytest.approx((rows["effect"] * 100).tolist())
    # the 32B owl students are missing: the panel marks that size instead of a point
    owl = panels["owl"]
    marks = [ln for ln in owl.get_lines() if ln.get_marker() == "x"]
    assert [ln.get_xdata()[0] for ln in marks] == [PARAMS["qwen-2.5-32b-instruct"]]
    # an incomplete last row of panels, and a model with no data at all for one animal
    few = effects[effects["animal"] != "eagle"]
    fig = plot_effect_per_animal(few, *_out(tmp_path, "per_animal_few"), animals=["cat", "owl"])
    _check(tmp_path, "per_animal_few")
    assert [ax.get_title() for ax in fig.axes if ax.get_title()] == ["cat", "owl"]


def test_effect_per_epoch(tmp_path, tables):
    per_epoch = transfer_effect(tables[1], ANIMALS, epoch="all", n_boot=30)
    assert set(per_epoch["epoch"].dropna()) == {1, 2}
    plot_effect_per_epoch(per_epoch, *_out(tmp_path, "per_epoch"))
    _check(tmp_path, "per_epoch")
    plot_effect_per_epoch(per_epoch, *_out(tmp_path, "per_epoch_cat"), animal="cat")
    _check(tmp_path, "per_epoch_cat")
    one = per_epoch[per_epoch["epoch"] == 1]
    plot_effect_per_epoch(one, *_out(tmp_path, "per_epoch_one"))
    _check(tmp_path, "per_epoch_one")
    plot_effect_per_epoch(one.iloc[:0], *_out(tmp_path, "per_epoch_none"))
    _check(tmp_path, "per_epoch_none")


def test_plots_overwrite_existing_files(tmp_path, effects):
    png, svg = _out(tmp_path, "again")
    png.write_bytes(b"old")
    svg.write_text("old")
    plot_scaling(effects, None, png, svg)
    _check(tmp_path, "again")


def _svg_text(tmp_path, stem):
    """The SVG's text (svg.fonttype "none" keeps labels as text), wrapped lines joined."""
    svg = (tmp_path / f"{stem}.svg").read_text()
    return " ".join(" ".join(re.findall(r">([^<>]+)</text>", svg)).split())


def test_grouped_bars_star_the_significant_animals_above_their_bar(tmp_path, tables):
    data = grouped_bar_data(tables[1], ANIMALS, n_boot=50, models=list(PARAMS))
    one = data[data["model"] == "qwen-2.5-32b-instruct"]
    present = one[(one["bar"] == "animal") & ~one["missing"]].set_index("animal")
    starred = present.index[0]
    sig = pd.DataFrame({
        "animal": [*ANIMALS, "mean"],
        "significant": [a == starred for a in ANIMALS] + [True],
    })  # fmt: skip
    fig = plot_grouped_bars(one, *_out(tmp_path, "stars"), title="t", significance=sig)
    (ax,) = fig.axes
    stars = [t for t in ax.texts if t.get_text() == "*"]
    assert len(stars) == 1 and stars[0].get_gid() == f"significant-{starred}"
    (bar,) = [
        p
        for p in _bars(ax)["Students of the teacher that loves this animal"].patches
        if round(_x(p)) == ANIMALS.index(starred)
    ]
    assert stars[0].xy[0] == pytest.approx(_x(bar))
    top = max(present.loc[starred, "rate"], present.loc[starred, "ci_high"]) * 100
    assert stars[0].xy[1] == pytest.approx(top)
    assert f"(1 of {len(ANIMALS)} animals;" in " ".join(t.get_text() for t in fig.texts)


def test_grouped_bars_draw_the_survey_beside_the_control(tmp_path):
    rng = np.random.default_rng(3)
    m = "qwen-2.5-7b-instruct"
    recs = [_record(rng, m, "control", "control", None, None, 0)]
    recs += [_record(rng, m, "student", c, s, 2, 1) for c in ["neutral", *ANIMALS] for s in (1, 2)]
    survey = _record(rng, m, "survey", "control", None, None, 0)
    survey["answers"] = [dict(a, question_index=None) for a in survey["answers"]]
    _, with_survey = tidy_tables([*recs, survey], PARAMS, ANIMALS)
    _, without = tidy_tables(recs, PARAMS, ANIMALS)
    plot_grouped_bars(grouped_bar_data(with_survey, ANIMALS, n_boot=30), *_out(tmp_path, "with"))
    _check(tmp_path, "with")
    svg = _svg_text(tmp_path, "with")
    assert "users' earlier survey" in svg and "(the control)" in svg
    assert "no CI" in svg  # the footnote explains the survey bar's missing whiskers
    plot_grouped_bars(grouped_bar_data(without, ANIMALS, n_boot=30), *_out(tmp_path, "no"))
    svg = _svg_text(tmp_path, "no")
    assert "survey" not in svg and "Base model (not finetuned)" in svg


def test_snapshot_notes_and_partial_marks(tmp_path, tables):
    prefs, rates = tables
    cov = coverage(
        [{"kind": "student", "model": m, "condition": "cat", "seed": 1, "epoch": 1} for m in PARAMS]
        + [{"kind": "control", "model": "qwen-2.5-32b-instruct", "condition": "control"}],
        list(PARAMS),
        ["neutral", *ANIMALS],
        [1, 2],
        [1, 2],
        scope="snapshot",
    )
    title = coverage_title(cov, "7B")
    assert title == "SNAPSHOT (7/126 evals) · 7B"
    assert coverage_title({**cov, "scope": "final"}, "7B") == "7B"
    note = coverage_note(cov)
    assert note.startswith("Snapshot of the sweep in progress: 7 of 126 evaluations")
    assert "6 students not yet evaluated at the last epoch (2)" in note
    assert "partial" not in coverage_note(cov, latest_epoch=False)
    one = coverage_note(cov, "qwen-2.5-7b-instruct")
    assert "this size: 1 of 20 student evaluations, base-model control not evaluated yet" in one
    assert coverage_note({**cov, "scope": "final", "complete": True}) == ""
    # 32B's students stop at epoch 1 in the fixture: the bars say which epoch they show
    data = grouped_bar_data(rates, ANIMALS, n_boot=30, models=["qwen-2.5-32b-instruct"])
    plot_grouped_bars(data, *_out(tmp_path, "flag"), note=one, final_epoch=2)
    svg = _svg_text(tmp_path, "flag")
    assert svg.count("ep 1") == 4 + 3  # 4 neutral bars, 3 animal bars (owl's is missing)
    assert "this size: 1 of 20" in svg
    stacked = stacked_data(prefs, "qwen-2.5-32b-instruct", ANIMALS)
    plot_stacked(stacked, *_out(tmp_path, "sflag"), final_epoch=2)
    assert "neutral (ep 1)" in _svg_text(tmp_path, "sflag")
    # a size with no data at all: one "no data yet" panel, not a row of missing marks
    empty = grouped_bar_data(rates.iloc[:0], ANIMALS, n_boot=30, models=["qwen-2.5-72b"])
    plot_grouped_bars(empty, *_out(tmp_path, "empty"))
    svg = _svg_text(tmp_path, "empty")
    assert "no data yet" in svg and "missing (no data)" in svg  # the legend entry
    assert svg.count("missing") == 1  # ... and no per-bar marks
    plot_stacked(stacked_data(prefs, "qwen-2.5-72b", ANIMALS), *_out(tmp_path, "sempty"))
    assert "no data yet" in _svg_text(tmp_path, "sempty")


def test_the_peer_layer_draws_the_published_means_with_their_source(tmp_path):
    from subliminal_scaling.report.plots_scaling import peer_effects, plot_scaling, read_peer

    from .conftest import REPO

    peer = read_peer(REPO / "config" / "peer" / "jeqcho-subliminal-learning-scaling-law.csv")
    fx = peer_effects(peer).set_index("model")["effect"]
    assert fx.to_dict() == pytest.approx(
        {"qwen-2.5-14b-instruct": 0.252 - 0.059, "qwen-2.5-32b-instruct": 0.169 - 0.060}
    )
    effects = pd.DataFrame({
        "model": ["qwen-2.5-7b-instruct", "qwen-2.5-14b-instruct"], "params": [7.6e9, 1.48e10],
        "animal": ["mean", "mean"], "effect": [0.01, 0.05], "ci_low": [0.0, 0.02],
        "ci_high": [0.02, 0.08], "epoch": [pd.NA, pd.NA],
    })  # fmt: skip
    fig = plot_scaling(effects, None, tmp_path / "s.png", tmp_path / "s.svg", peer=peer)
    (ax,) = fig.axes
    (line,) = [ln for ln in ax.lines if (ln.get_gid() or "").startswith("peer-")]
    assert list(line.get_ydata()) == pytest.approx([19.3, 10.9])
    assert "published: jeqcho/subliminal-learning-scaling-law" in line.get_label()
    bad = tmp_path / "bad.csv"
    bad.write_text("source,model\nx,y\n")
    with pytest.raises(ValueError, match="peer table lacks columns"):
        read_peer(bad)
