"""Tests for the analysis tables and statistics, on small synthetic eval records."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from subliminal_scaling.report.bars import grouped_bar_data, stacked_data
from subliminal_scaling.report.bootstrap import bootstrap_samples, cluster_bootstrap
from subliminal_scaling.report.effects import transfer_effect
from subliminal_scaling.report.scaling import fit_scaling, predict
from subliminal_scaling.report.schema import (
    ALT_CONTROL,
    GROUPED_BAR_COLUMNS,
    ID_COLUMNS,
    PREFERENCE_COLUMNS,
    STACKED_COLUMNS,
    TARGET_RATE_COLUMNS,
    TRANSFER_COLUMNS,
)
from subliminal_scaling.report.tables import coverage, rate_table, read_eval_records, tidy_tables

ANIMALS = ["cat", "dog", "owl"]
PARAMS = {"tiny-0.5b": 0.5e9, "small-1.5b": 1.5e9}
N_Q, N_PER_Q = 5, 10
SEEDS, EPOCHS = (1, 2), (1, 2)

# Answers per question (out of 10) for each animal, per source: a distinct signature for every
# (bar, animal) so a bar built from the wrong condition cannot pass.
SIGNATURE = {
    "control": {"cat": 1, "dog": 0, "owl": 2},
    "neutral": {"cat": 3, "dog": 2, "owl": 1},
    "cat": {"cat": 6, "dog": 1, "owl": 0},
    "dog": {"cat": 1, "dog": 7, "owl": 0},
    "owl": {"cat": 0, "dog": 1, "owl": 8},
}
EPOCH1_DROP = 3  # at epoch 1 the favoured animal has 3 fewer answers (they go to fillers)


FILLERS = ["fish", "fox", "bear", "lion", "wolf"]  # the rest of each question's answers


def _answers(counts: dict[str, int], extra_bobcat: bool, q: int) -> list[tuple[str, str]]:
    """(raw, normalised) pairs for one question; raw text differs from the normalised word."""
    out = []
    for animal, k in counts.items():
        out += [(f"My favourite is the {animal.title()}s!", animal)] * k
    if extra_bobcat:  # hits "cat" by the reference substring rule, but normalises to "bobcat"
        out.append(("Bobcat.", "bobcat"))
    out += [(FILLERS[q].upper(), FILLERS[q])] * (N_PER_Q - len(out))
    assert len(out) == N_PER_Q
    return out


def _record(model, kind, condition, seed, epoch, counts, bobcat=False):
    answers = []
    for q in range(N_Q):
        for raw, norm in _answers(counts, bobcat, q):
            qi = None if kind == "survey" else q
            answers.append(
                {"question_index": qi, "question": None, "answer": raw, "normalised": norm}
            )
    return {
        "kind": kind,
        "model": model,
        "model_id": None,
        "condition": condition,
        "seed": seed,
        "epoch": epoch,
        "backend": None,
        "sampling": None,
        "max_new_tokens": None,
        "adapter": None,
        "n_answers": len(answers),
        "answers": answers,
        "counts": {},
        "target_rates": {},
    }


def make_records(models=tuple(PARAMS), drop=()):
    """Control + neutral + 3 animal conditions, 2 seeds x 2 epochs; ``drop`` removes conditions."""
    recs = []
    for m in models:
        recs.append(_record(m, "control", "control", None, None, SIGNATURE["control"], True))
        for cond in ["neutral", *ANIMALS]:
            if (m, cond) in drop:
                continue
            for seed in SEEDS:
                for epoch in EPOCHS:
                    counts = dict(SIGNATURE[cond])
                    if cond in ANIMALS and epoch == 1:
                        counts[cond] -= EPOCH1_DROP
                    recs.append(_record(m, "student", cond, seed, epoch, counts))
    return recs


@pytest.fixture(scope="module")
def tables():
    return tidy_tables(make_records(), PARAMS, ANIMALS)


# --- tidy tables ------------------------------------------------------------------------


def test_tidy_tables_rows_and_totals(tables):
    prefs, rates = tables
    assert list(prefs.columns) == PREFERENCE_COLUMNS
    assert list(rates.columns) == TARGET_RATE_COLUMNS
    n_evals = len(PARAMS) * (1 + 4 * len(SEEDS) * len(EPOCHS))
    assert len(rates) == n_evals * N_Q * len(ANIMALS)
    assert (rates["total"] == N_PER_Q).all() and (prefs["total"] == N_PER_Q).all()
    per_q = prefs.groupby(
        [*ID_COLUMNS[:1], "kind", "condition", "seed", "epoch", "question_index"], dropna=False
    )["count"].sum()
    assert (per_q == N_PER_Q).all() and len(per_q) == n_evals * N_Q
    assert str(prefs["seed"].dtype) == "Int64" and str(rates["epoch"].dtype) == "Int64"
    ctrl = rates[(rates["kind"] == "control") & (rates["model"] == "tiny-0.5b")]
    assert ctrl["seed"].isna().all() and ctrl["epoch"].isna().all()
    # reference rule on raw text: the bobcat answer counts for "cat"; zero-hit rows are kept
    assert ctrl.groupby("animal")["hits"].sum().to_dict() == {"cat": 10, "dog": 0, "owl": 10}
    ctrl_p = prefs[(prefs["kind"] == "control") & (prefs["model"] == "tiny-0.5b")]
    assert ctrl_p.groupby("answer")["count"].sum().to_dict() == {
        "bobcat": 5,
        "cat": 5,
        "owl": 10,
        **{f: 6 for f in FILLERS},
    }
    assert set(rates["params"]) == set(PARAMS.values())


def test_tidy_tables_survey_question_index_and_errors():
    rec = _record("tiny-0.5b", "survey", "control", None, None, {"cat": 2})
    prefs, rates = tidy_tables([rec], PARAMS, ANIMALS)
    assert set(prefs["question_index"]) == {-1}
    assert rates.loc[rates["animal"] == "cat", "total"].item() == N_Q * N_PER_Q
    with pytest.raises(ValueError, match="duplicate"):
        tidy_tables([rec, rec], PARAMS, ANIMALS)
    with pytest.raises(ValueError, match="parameter count"):
        tidy_tables([rec], {}, ANIMALS)
    bad = dict(rec, n_answers=3)
    with pytest.raises(ValueError, match="n_answers"):
        tidy_tables([bad], PARAMS, ANIMALS)


def test_rate_table_views_agree_in_shape(tables):
    prefs, rates = tables
    norm = rate_table(prefs, ANIMALS, "normalised")
    assert list(norm.columns) == TARGET_RATE_COLUMNS
    assert len(norm) == len(rates)
    with pytest.raises(ValueError, match="target_rates"):
        rate_table(prefs, ANIMALS, "reference")
    with pytest.raises(ValueError, match="preferences"):
        rate_table(rates, ANIMALS, "normalised")


# --- grouped bars -----------------------------------------------------------------------


def _bars(df, model="tiny-0.5b"):
    d = df[df["model"] == model]
    return {(r.animal, r.bar): r for r in d.itertuples(index=False)}


def test_grouped_bars_pick_the_right_conditions(tables):
    prefs, rates = tables
    df = grouped_bar_data(rates, ANIMALS, n_boot=200)
    assert list(df.columns) == GROUPED_BAR_COLUMNS
    assert len(df) == len(PARAMS) * len(ANIMALS) * 3
    bars = _bars(df)
    for animal in ANIMALS:
        control = SIGNATURE["control"][animal] + (animal == "cat")  # + the bobcat answer
        assert bars[(animal, "control")].rate == pytest.approx(control / N_PER_Q)
        assert bars[(animal, "neutral")].rate == pytest.approx(SIGNATURE["neutral"][animal] / 10)
        assert bars[(animal, "animal")].rate == pytest.approx(SIGNATURE[animal][animal] / 10)
        assert bars[(animal, "animal")].n_seeds == 2 and bars[(animal, "control")].n_seeds == 1
        assert bars[(animal, "animal")].epoch_max == 2
    assert not df["missing"].any()
    # identical seeds and questions: the CI collapses onto the estimate
    assert np.allclose(df["ci_low"], df["rate"]) and np.allclose(df["ci_high"], df["rate"])
    # epoch 1 selects the earlier checkpoint; the normalised view does not count the bobcat
    e1 = _bars(grouped_bar_data(rates, ANIMALS, epoch=1, n_boot=50))
    assert e1[("dog", "animal")].rate == pytest.approx((7 - EPOCH1_DROP) / 10)
    norm = _bars(grouped_bar_data(prefs, ANIMALS, view="normalised", n_boot=50))
    assert norm[("cat", "control")].rate == pytest.approx(0.1)
    assert norm[("owl", "animal")].rate == pytest.approx(0.8)


def test_grouped_bars_missing_is_nan_not_zero():
    recs = make_records(models=("tiny-0.5b",), drop={("tiny-0.5b", "owl")})
    # a student with only epoch 1 evaluated: its final epoch is 1
    recs = [r for r in recs if not (r["condition"] == "dog" and r["seed"] == 2 and r["epoch"] == 2)]
    _, rates = tidy_tables(recs, PARAMS, ANIMALS)
    df = grouped_bar_data(rates, ANIMALS, n_boot=50, models=["tiny-0.5b", "small-1.5b"])
    bars = _bars(df)
    owl = bars[("owl", "animal")]
    assert owl.missing and np.isnan(owl.rate) and np.isnan(owl.ci_low) and owl.n_seeds == 0
    assert not bars[("owl", "neutral")].missing
    dog = bars[("dog", "animal")]
    assert dog.epoch_min == 1 and dog.epoch_max == 2
    assert dog.rate == pytest.approx((7 + 7 - EPOCH1_DROP) / 20)
    small = df[df["model"] == "small-1.5b"]
    assert small["missing"].all() and small["rate"].isna().all()
    # at epoch 2 the dog bar has only seed 1
    e2 = _bars(grouped_bar_data(rates, ANIMALS, epoch=2, n_boot=50))
    assert e2[("dog", "animal")].n_seeds == 1


def test_grouped_bars_survey_beside_the_control(tables):
    _, rates = tables
    # the users' survey exists for tiny-0.5b only: 50 answers without question ids, 20 "cat"
    survey = _record("tiny-0.5b", "survey", "control", None, None, {"cat": 4, "dog": 2})
    _, with_survey = tidy_tables([*make_records(), survey], PARAMS, ANIMALS)
    df = grouped_bar_data(with_survey, ANIMALS, n_boot=100)
    bars = _bars(df)
    alt = bars[("cat", ALT_CONTROL)]
    assert alt.source == "survey" and alt.rate == pytest.approx(0.4) and not alt.missing
    assert np.isnan(alt.ci_low) and np.isnan(alt.ci_high)  # nothing to resample: no CI
    assert bars[("owl", ALT_CONTROL)].rate == 0.0 and not bars[("owl", ALT_CONTROL)].missing
    assert bars[("cat", "control")].source == "control"
    assert df.loc[df["model"] == "tiny-0.5b", "bar"].unique().tolist() == [
        "control",
        ALT_CONTROL,
        "neutral",
        "animal",
    ]
    # a model without a survey has no survey bar at all (absent, not a zero or missing bar)
    assert ALT_CONTROL not in set(df.loc[df["model"] == "small-1.5b", "bar"])
    # without any survey there is no survey series; the other bars do not depend on it
    plain = grouped_bar_data(rates, ANIMALS, n_boot=100)
    assert ALT_CONTROL not in set(plain["bar"]) and "survey" not in set(plain["source"])
    same = df[df["bar"] != ALT_CONTROL].reset_index(drop=True)
    pd.testing.assert_frame_equal(same, plain)
    # config evaluation.control: survey makes the survey the control, the eval its neighbour
    flipped = _bars(grouped_bar_data(with_survey, ANIMALS, control_kind="survey", n_boot=50))
    assert flipped[("cat", "control")].source == "survey"
    assert flipped[("cat", "control")].rate == pytest.approx(0.4)
    assert flipped[("cat", ALT_CONTROL)].source == "control"
    assert flipped[("cat", ALT_CONTROL)].rate == pytest.approx(0.2)  # 1 + bobcat of 10
    small = grouped_bar_data(with_survey, ANIMALS, control_kind="survey", n_boot=50)
    small = _bars(small, "small-1.5b")
    assert small[("cat", "control")].missing  # no survey for this size: its control is missing
    with pytest.raises(ValueError, match="control_kind"):
        grouped_bar_data(rates, ANIMALS, control_kind="standard")


# --- partial results (mid-sweep snapshots) --------------------------------------------------


def test_coverage_counts_what_a_snapshot_holds():
    full = make_records()
    layout = {"models": list(PARAMS), "conditions": ["neutral", *ANIMALS], "seeds": SEEDS}
    cov = coverage(full, epochs=EPOCHS, **layout)
    per_model = len(["neutral", *ANIMALS]) * len(SEEDS) * len(EPOCHS)
    assert cov["complete"] and cov["n_evals"] == cov["n_expected"] == 2 * (per_model + 1)
    assert cov["scope"] == "final" and cov["students_partial"] == 0
    # the small model has nothing yet; the tiny one lacks owl, and dog seed 2 has only epoch 1
    partial = [
        r
        for r in full
        if r["model"] == "tiny-0.5b"
        and r["condition"] != "owl"
        and not (r["condition"] == "dog" and r["seed"] == 2 and r["epoch"] == 2)
    ]
    cov = coverage(partial, epochs=EPOCHS, scope="snapshot", **layout)
    tiny = cov["models"]["tiny-0.5b"]
    assert not cov["complete"] and cov["n_evals"] == 1 + 11 and cov["n_expected"] == 34
    assert tiny["student_evals"] == 11 and tiny["control"] and not tiny["survey"]
    assert tiny["students_started"] == 6 and tiny["students_at_final_epoch"] == 5
    assert tiny["students_partial"] == 1 == cov["students_partial"]
    assert tiny["conditions_complete"] == ["neutral", "cat"]
    assert cov["models_without_data"] == ["small-1.5b"]
    assert not cov["models"]["small-1.5b"]["control"]
    json.dumps(cov, allow_nan=False)


def test_every_table_and_fit_works_on_partial_or_no_data():
    # nothing evaluated yet: empty tables, all-missing bars, no fit, and no crash
    prefs, rates = tidy_tables([], PARAMS, ANIMALS)
    assert list(rates.columns) == TARGET_RATE_COLUMNS and rates.empty
    bars = grouped_bar_data(rates, ANIMALS, n_boot=20, models=list(PARAMS))
    assert bars["missing"].all() and bars["rate"].isna().all() and len(bars) == 2 * 3 * 3
    assert stacked_data(prefs, "tiny-0.5b", ANIMALS)["missing"].all()
    eff = transfer_effect(rates, ANIMALS, n_boot=20)
    assert eff.empty and transfer_effect(rates, ANIMALS, epoch="all", n_boot=20).empty
    fit = fit_scaling(eff, n_boot=20)
    assert fit["n_points"] == 0 and fit["preferred"] is None
    assert all(not f["fitted"] for f in fit["forms"].values())
    # one size with a few students: the other size is reported missing, the fit says why not
    recs = [
        r
        for r in make_records(models=("tiny-0.5b",))
        if r["kind"] == "control" or (r["condition"] in ("neutral", "cat") and r["seed"] == 1)
    ]
    prefs, rates = tidy_tables(recs, PARAMS, ANIMALS)
    eff = transfer_effect(rates, ANIMALS, n_boot=20, models=list(PARAMS)).set_index(
        ["model", "animal"]
    )
    assert eff.loc[("tiny-0.5b", "cat"), "effect"] == pytest.approx(0.6 - 0.3)
    assert eff.loc[("tiny-0.5b", "dog"), "missing"] and eff.loc[("small-1.5b", "mean"), "missing"]
    fit = fit_scaling(eff.reset_index(), n_boot=20)
    assert fit["n_points"] == 1 and "have 1" in fit["forms"]["log_linear"]["reason"]


def test_read_eval_records_skips_absent_files_only_for_a_snapshot(tmp_path):
    from subliminal_scaling.runtime import io

    recs = make_records(models=("tiny-0.5b",))[:2]
    paths = [tmp_path / f"e{i}.json.gz" for i in range(3)]
    for rec, path in zip(recs, paths, strict=False):
        io.write_json(path, rec)
    io.write_json(tmp_path / "survey.json.gz", {"records": [recs[0] | {"kind": "survey"}]})
    got, absent = read_eval_records(paths, [tmp_path / "survey.json.gz"], only_existing=True)
    assert absent == 1 and [r["kind"] for r in got] == ["control", "student", "survey"]
    with pytest.raises(io.InputFileError, match=r"e2\.json\.gz"):
        read_eval_records(paths)


# --- stacked --------------------------------------------------------------------------------


def test_stacked_sums_to_one_with_seven_segments(tables):
    prefs, _ = tables
    df = stacked_data(prefs, "tiny-0.5b", ANIMALS)
    assert list(df.columns) == STACKED_COLUMNS
    assert df["variant"].unique().tolist() == ["control", "neutral", *ANIMALS]
    per_bar = df.groupby("variant_index")
    assert (per_bar.size() == 7).all()
    assert np.allclose(per_bar["share"].sum(), 1.0)
    assert df.loc[df["segment_index"] == 6, "answer"].unique().tolist() == ["other"]


def _prefs_rows(variant_shares, model="m"):
    """A preferences table: one question, 100 answers, for each variant's {answer: count}."""
    rows = []
    for variant, counts in variant_shares.items():
        kind = "control" if variant == "control" else "student"
        cond = "control" if variant == "control" else variant
        for seed in [None] if kind == "control" else [1, 2]:
            epoch = None if kind == "control" else 1
            for ans, c in counts.items():
                rows.append(
                    {
                        "model": model,
                        "params": 1e9,
                        "kind": kind,
                        "condition": cond,
                        "seed": seed,
                        "epoch": epoch,
                        "question_index": 0,
                        "answer": ans,
                        "count": c,
                        "total": sum(counts.values()),
                    }
                )
    df = pd.DataFrame(rows)
    df["seed"] = df["seed"].astype("Int64")
    df["epoch"] = df["epoch"].astype("Int64")
    return df


def test_stacked_top_k_hand_made():
    # mean shares over the 3 bars: a 40, b 20, c 10, d 10 (tie: c before d), e 8, f 6, g 4, h 2
    prefs = _prefs_rows(
        {
            "control": {"a": 40, "b": 20, "c": 10, "d": 10, "e": 8, "f": 6, "g": 4, "h": 2},
            "neutral": {"a": 60, "b": 10, "d": 10, "c": 10, "e": 4, "f": 3, "g": 3},
            "cat": {"a": 20, "b": 30, "c": 10, "d": 10, "e": 12, "f": 9, "g": 5, "h": 4},
        }
    )
    df = stacked_data(prefs, "m", ["cat", "dog"], top_k=6)
    seg = df[df["variant"] == "control"].sort_values("segment_index")
    assert seg["answer"].tolist() == ["a", "b", "c", "d", "e", "f", "other"]
    assert seg["share"].tolist() == pytest.approx([0.4, 0.2, 0.1, 0.1, 0.08, 0.06, 0.06])
    neutral = df[df["variant"] == "neutral"].set_index("answer")["share"]
    assert neutral["other"] == pytest.approx(0.03)  # g; h never named by neutral -> 0 in other
    dog = df[df["variant"] == "dog"]
    assert len(dog) == 7 and dog["missing"].all() and dog["share"].isna().all()
    assert not df.loc[df["variant"] != "dog", "missing"].any()
    # an answer in the top 6 that a bar never gave is a 0 segment, not absent
    prefs2 = _prefs_rows({"control": {"x": 50, "y": 50}, "cat": {"z": 100}})
    df2 = stacked_data(prefs2, "m", ["cat"], top_k=2)
    cat = df2[df2["variant"] == "cat"].set_index("answer")["share"]
    assert cat.to_dict() == pytest.approx({"z": 1.0, "x": 0.0, "other": 0.0})


# --- bootstrap --------------------------------------------------------------------------


def _synthetic_cells(rng, n_seeds, n_q, mu=0.3, sd_seed=0.05, sd_q=0.05, sd_e=0.05):
    seed_eff = rng.normal(0, sd_seed, n_seeds)
    q_eff = rng.normal(0, sd_q, n_q)
    s, q = np.meshgrid(np.arange(n_seeds), np.arange(n_q), indexing="ij")
    value = mu + seed_eff[s] + q_eff[q] + rng.normal(0, sd_e, s.shape)
    return pd.DataFrame({"seed": s.ravel(), "question_index": q.ravel(), "value": value.ravel()})


def test_cluster_bootstrap_coverage_and_width():
    rng = np.random.default_rng(123)
    covered = 0
    for rep in range(100):
        df = _synthetic_cells(rng, n_seeds=5, n_q=20)
        res = cluster_bootstrap(df, "value", ["seed", "question_index"], n_boot=300, seed=rep)
        covered += res["ci_low"].item() <= 0.3 <= res["ci_high"].item()
    assert 0.85 <= covered / 100 <= 1.0

    def mean_width(n_seeds):
        widths = []
        for rep in range(20):
            df = _synthetic_cells(rng, n_seeds=n_seeds, n_q=20)
            res = cluster_bootstrap(df, "value", ["seed", "question_index"], n_boot=300, seed=rep)
            widths.append((res["ci_high"] - res["ci_low"]).item())
        return np.mean(widths)

    assert mean_width(20) < 0.75 * mean_width(3)


def test_bootstrap_groups_are_paired_and_stratified():
    rng = np.random.default_rng(0)
    a = _synthetic_cells(rng, 5, 20, sd_seed=0.0, sd_e=0.0).assign(cond="a")
    b = a.assign(cond="b", value=a["value"] + 0.1)  # same question effects, shifted by 0.1
    df = pd.concat([a, b])
    groups, samples = bootstrap_samples(
        df,
        "value",
        ["seed", "question_index"],
        group_cols=["cond"],
        strata={"seed": ["cond"]},
        n_boot=200,
        seed=1,
    )
    assert groups["cond"].tolist() == ["a", "b"] and (groups["n_seed"] == 5).all()
    # questions are shared between groups, so the difference has no question noise
    assert np.allclose(samples[1] - samples[0], 0.1)
    assert samples[0].std() > 0.005


# --- transfer effect --------------------------------------------------------------------


def test_transfer_effect_and_mean(tables):
    _, rates = tables
    eff = transfer_effect(rates, ANIMALS, n_boot=100, keep_samples=True)
    assert list(eff.columns) == [*TRANSFER_COLUMNS, "boot"]
    tiny = eff[eff["model"] == "tiny-0.5b"].set_index("animal")
    expected = {a: (SIGNATURE[a][a] - SIGNATURE["neutral"][a]) / 10 for a in ANIMALS}
    for a, e in expected.items():
        assert tiny.loc[a, "effect"] == pytest.approx(e)
    assert tiny.loc["mean", "effect"] == pytest.approx(np.mean(list(expected.values())))
    assert tiny.loc["mean", "n_animals"] == 3 and len(tiny.loc["mean", "boot"]) == 100
    per_epoch = transfer_effect(rates, ANIMALS, epoch="all", n_boot=50)
    assert sorted(per_epoch["epoch"].unique().tolist()) == [1, 2]
    e1 = per_epoch[(per_epoch["epoch"] == 1) & (per_epoch["model"] == "tiny-0.5b")]
    assert e1.set_index("animal").loc["dog", "effect"] == pytest.approx(0.5 - 0.3)


def test_transfer_effect_partial():
    recs = make_records(models=("tiny-0.5b",), drop={("tiny-0.5b", "owl")})
    _, rates = tidy_tables(recs, PARAMS, ANIMALS)
    eff = transfer_effect(rates, ANIMALS, n_boot=50).set_index("animal")
    assert eff.loc["owl", "missing"] and np.isnan(eff.loc["owl", "effect"])
    assert eff.loc["mean", "n_animals"] == 2
    assert eff.loc["mean", "effect"] == pytest.approx((0.3 + 0.5) / 2)


def _synthetic_rates(rng, delta, n_seeds=5, n_q=20, sd_seed=0.03, sd_q=0.03):
    """A target_rates table: base rate 0.1 + question and student effects (+ delta if matched)."""
    animals = list(delta)
    conds = ["neutral", *animals]
    c, s, a, q = np.meshgrid(
        np.arange(len(conds)),
        np.arange(n_seeds),
        np.arange(len(animals)),
        np.arange(n_q),
        indexing="ij",
    )
    q_eff = rng.normal(0, sd_q, (len(animals), n_q))
    seed_eff = rng.normal(0, sd_seed, (len(conds), n_seeds, len(animals)))
    matched = (c - 1) == a
    p = 0.1 + q_eff[a, q] + seed_eff[c, s, a] + matched * np.array(list(delta.values()))[a]
    df = pd.DataFrame(
        {
            "model": "m",
            "params": 1e9,
            "kind": "student",
            "condition": np.array(conds, dtype=object)[c.ravel()],
            "seed": pd.array(s.ravel() + 1, dtype="Int64"),
            "epoch": pd.array([1] * c.size, "Int64"),
            "question_index": q.ravel(),
            "animal": np.array(animals, dtype=object)[a.ravel()],
            "hits": rng.binomial(100, np.clip(p, 0, 1)).ravel(),
            "total": 100,
        }
    )
    return df[TARGET_RATE_COLUMNS]


def test_transfer_effect_ci_coverage():
    delta = {"cat": 0.05, "dog": 0.10, "owl": 0.0}
    rng = np.random.default_rng(11)
    hits = {a: 0 for a in [*delta, "mean"]}
    reps = 60
    for rep in range(reps):
        eff = transfer_effect(_synthetic_rates(rng, delta), list(delta), n_boot=300, seed=rep)
        eff = eff.set_index("animal")
        for a in hits:
            truth = np.mean(list(delta.values())) if a == "mean" else delta[a]
            hits[a] += eff.loc[a, "ci_low"] <= truth <= eff.loc[a, "ci_high"]
    assert all(0.85 <= h / reps <= 1.0 for h in hits.values()), hits


# --- scaling fits -----------------------------------------------------------------------

SIZES = np.array([0.494e9, 1.54e9, 3.09e9, 7.62e9, 14.7e9, 32.8e9])
TRUTH = {
    "log_linear": {"a": 0.03, "b": 0.04},
    "power": {"a": 0.1, "b": -0.6},
    "quadratic_log": {"a": 0.05, "b": 0.2, "c": -0.0873},  # peaks near 14B
}


@pytest.mark.parametrize("form", list(TRUTH))
def test_fit_scaling_recovers_each_form(form):
    rng = np.random.default_rng(7)
    sd = 0.001
    y = predict(form, TRUTH[form], SIZES) + rng.normal(0, sd, len(SIZES))
    effects = pd.DataFrame(
        {"model": [f"m{i}" for i in range(6)], "params": SIZES, "effect": y, "se": sd}
    )
    fit = fit_scaling(effects, n_boot=300, seed=0)
    json.dumps(fit, allow_nan=False)
    assert fit["preferred"] == form and fit["criterion"] == "AICc"
    got = fit["forms"][form]
    for name, true in TRUTH[form].items():
        assert got["params"][name] == pytest.approx(true, abs=0.25 * abs(true) + 0.005)
        lo, hi = got["ci"][name]
        assert lo <= got["params"][name] <= hi
    if form == "quadratic_log":
        assert got["vertex_is_max"] and 8e9 < got["vertex_params"] < 25e9


def test_fit_scaling_few_sizes_and_transfer_input(tables):
    _, rates = tables
    eff = transfer_effect(rates, ANIMALS, n_boot=50, keep_samples=True)
    fit = fit_scaling(eff, n_boot=50)  # 2 sizes: nothing fittable, and it says why
    assert fit["n_points"] == 2 and fit["preferred"] is None
    assert all(not f["fitted"] and "needs" in f["reason"] for f in fit["forms"].values())
    three = pd.DataFrame(
        {
            "model": list("abc"),
            "params": SIZES[:3],
            "effect": [0.1, 0.2, 0.25],
            "ci_low": [0.05, 0.15, 0.2],
            "ci_high": [0.15, 0.25, 0.3],
        }
    )
    fit3 = fit_scaling(three, n_boot=50)
    assert fit3["forms"]["log_linear"]["fitted"] and not fit3["forms"]["quadratic_log"]["fitted"]
    assert fit3["criterion"] == "AIC" and fit3["preferred"] in ("log_linear", "power")
    json.dumps(fit3, allow_nan=False)
