"""Figure 8 machinery: correlations with confidence intervals, masked scores, misaligned test pairs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy import stats

from imse_study.study import correlation as corr

torch.set_num_threads(1)

finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)


# ------------------------------------------------------------------------------------------
# correlation_ci


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(-1000, 1000), min_size=5, max_size=40, unique=True), st.booleans())
def test_monotone_score_gives_spearman_plus_minus_one(xs, increasing):
    x = np.array(xs, dtype=float)
    y = x ** 3 if increasing else -np.exp(x / 100.0) - x  # strictly monotone, not linear
    res = corr.correlation_ci(x, y, "spearman")
    assert res["r"] == pytest.approx(1.0 if increasing else -1.0)
    assert res["low"] == pytest.approx(res["r"]) and res["high"] == pytest.approx(res["r"])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(finite, finite), min_size=5, max_size=60), st.sampled_from(corr.CORRELATION_METHODS))
def test_interval_contains_estimate_and_stays_in_range(pairs, method):
    x, y = np.array(pairs).T
    res = corr.correlation_ci(x, y, method)
    assert res["n"] == len(pairs)
    if math.isnan(res["r"]):  # constant input: everything undefined together
        assert math.isnan(res["low"]) and math.isnan(res["high"])
        return
    assert -1 - 1e-12 <= res["low"] <= res["r"] + 1e-12 <= res["high"] + 2e-12 <= 1 + 3e-12


def test_pearson_matches_scipy_and_fisher_formula():
    rng = np.random.default_rng(1)
    x = rng.normal(size=50)
    y = 0.5 * x + rng.normal(size=50)
    res = corr.correlation_ci(x, y, "pearson", confidence=0.9)
    ref = stats.pearsonr(x, y)
    ci = ref.confidence_interval(0.9)
    assert res["r"] == pytest.approx(ref.statistic)
    assert (res["low"], res["high"]) == pytest.approx((ci.low, ci.high))
    z, se = math.atanh(ref.statistic), 1 / math.sqrt(50 - 3)
    q = stats.norm.ppf(0.95)
    assert res["low"] == pytest.approx(math.tanh(z - q * se)) and res["high"] == pytest.approx(math.tanh(z + q * se))


def test_spearman_uses_bonett_wright_interval():
    rng = np.random.default_rng(2)
    x = rng.normal(size=80)
    y = x + rng.normal(size=80)
    res = corr.correlation_ci(x, y, "spearman")
    r = stats.spearmanr(x, y).statistic
    se = math.sqrt((1 + r * r / 2) / (80 - 3))
    assert res["r"] == pytest.approx(r)
    assert res["low"] == pytest.approx(math.tanh(math.atanh(r) - 1.959964 * se), abs=1e-6)


def test_bootstrap_interval_is_seeded_and_brackets_r():
    rng = np.random.default_rng(3)
    x = rng.normal(size=40)
    y = -x + rng.normal(size=40)
    a = corr.correlation_ci(x, y, "spearman", ci="bootstrap", n_resamples=300, seed=5)
    b = corr.correlation_ci(x, y, "spearman", ci="bootstrap", n_resamples=300, seed=5)
    assert a == b
    assert a["low"] <= a["r"] <= a["high"] < 0


def test_nan_pairs_are_dropped():
    x = np.array([1.0, 2.0, np.nan, 4.0, 5.0, 6.0, np.inf])
    y = np.array([1.0, 2.0, 3.0, np.nan, 5.0, 7.0, 1.0])
    res = corr.correlation_ci(x, y, "spearman")
    assert res["n"] == 4 and res["r"] == pytest.approx(1.0)


def test_constant_input_gives_nan_not_an_error():
    res = corr.correlation_ci([1, 1, 1, 1, 1], [1, 2, 3, 4, 5])
    assert math.isnan(res["r"]) and res["n"] == 5


@pytest.mark.parametrize("kwargs, match", [
    ({"x": [1, 2, 3], "y": [1, 2, 3]}, "at least 4"),
    ({"x": [1, 2, 3, 4], "y": [1, 2, 3]}, "same length"),
    ({"method": "kendall"}, "unknown correlation method"),
    ({"ci": "jackknife"}, "ci must be"),
    ({"confidence": 1.5}, "confidence"),
])
def test_bad_input_raises_clear_value_error(kwargs, match):
    args = {"x": [1, 2, 3, 4, 5], "y": [2, 1, 4, 3, 5], **kwargs}
    with pytest.raises(ValueError, match=match):
        corr.correlation_ci(**args)


# ------------------------------------------------------------------------------------------
# correlation_table and correlation_difference


def _scores(n=60, seed=0):
    rng = np.random.default_rng(seed)
    d = rng.uniform(0.2, 1.0, n)
    good = 1 - d + 0.02 * rng.normal(size=n)
    noise = rng.normal(size=n)
    rows = [{"pair": i, "dice": d[i], "method": m, "error": v[i]} for m, v in (("good", good), ("noise", noise))
            for i in range(n)]
    return pd.DataFrame(rows)


def test_correlation_table_shape_and_signs():
    table = corr.correlation_table(_scores())
    assert len(table) == 4 and set(table["correlation"]) == set(corr.CORRELATION_METHODS)
    good = table[table["method"] == "good"]
    assert (good["r"] < -0.9).all() and (good["high"] < 0).all()
    noise = table[table["method"] == "noise"]
    assert (noise["low"] < 0).all() and (noise["high"] > 0).all()


def test_correlation_table_missing_column():
    with pytest.raises(ValueError, match="no column"):
        corr.correlation_table(_scores().drop(columns="dice"))


def test_correlation_difference_detects_the_better_score():
    res = corr.correlation_difference(_scores(), "good", "noise", n_resamples=500)
    assert res["difference"] < 0 and res["high"] < 0 and res["n"] == 60
    same = corr.correlation_difference(_scores(), "good", "good", n_resamples=200)
    assert same["difference"] == 0 and same["low"] == 0 and same["high"] == 0
    with pytest.raises(ValueError, match="no rows"):
        corr.correlation_difference(_scores(), "good", "absent")


@settings(max_examples=20, deadline=None)
@given(st.lists(st.tuples(st.integers(-1000, 1000), st.integers(-1000, 1000)), min_size=3, max_size=30),
       st.sampled_from(corr.CORRELATION_METHODS))
@example(pairs=[(0, 1), (0, 1), (1, 1)], method="pearson")  # a constant b whose centred values are not all 0.0
def test_rowwise_matches_scipy(pairs, method):
    a, b = np.array(pairs, dtype=float).T / 10
    got = corr._rowwise(a[None], b[None], method)[0]
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        assert math.isnan(got)
        return
    fn = stats.pearsonr if method == "pearson" else stats.spearmanr
    ref = fn(a, b).statistic
    if np.isfinite(ref):
        assert got == pytest.approx(ref, abs=1e-9)


# ------------------------------------------------------------------------------------------
# scores and misaligned pairs


def test_masked_mean_abs():
    err = np.array([[[1.0, -3.0], [5.0, 7.0]], [[2.0, 2.0], [2.0, 2.0]]])
    mask = np.array([[[1, 1], [0, 0]], [[0, 0], [0, 0]]], bool)
    out = corr.masked_mean_abs(err, mask)
    assert out[0] == pytest.approx(2.0) and math.isnan(out[1])
    with pytest.raises(ValueError, match="same shape"):
        corr.masked_mean_abs(err, mask[:, 0])


def _images(n=2, size=16):
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    disc = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 3) ** 2)
    labels = torch.stack([disc.long() * (1 + (xx > size / 2).long())] * n)
    ref = torch.where(labels > 0, 0.5, -1.0).unsqueeze(1).float()
    other = torch.where(labels == 1, -0.2, torch.where(labels == 2, 0.8, -1.0)).unsqueeze(1).float()
    return ref, other, labels


def test_misaligned_set_zero_strength_is_aligned_and_seeded():
    ref, other, labels = _images()
    pairs = corr.misaligned_set(ref, other, labels, n_pairs=5, strengths=[0, 0, 0, 0, 0])
    assert np.allclose(pairs.dice, 1.0)
    assert torch.allclose(pairs.moved, other[torch.as_tensor(pairs.items)], atol=1e-5)
    a = corr.misaligned_set(ref, other, labels, n_pairs=6, max_strength=1.5, seed=3)
    b = corr.misaligned_set(ref, other, labels, n_pairs=6, max_strength=1.5, seed=3)
    assert np.array_equal(a.strength, b.strength) and torch.equal(a.moved, b.moved)
    assert list(a.items) == [0, 1, 0, 1, 0, 1] and (a.strength <= 1.5).all()
    frame = a.frame()
    assert list(frame.columns) == ["pair", "item", "strength", "dice", "max_displacement"] and len(frame) == 6


def test_strong_misalignment_lowers_dice_and_raises_a_plain_error():
    ref, other, labels = _images(size=32)
    pairs = corr.misaligned_set(ref, other, labels, n_pairs=2, strengths=[0.0, 3.0], seed=1, translation=0.2)
    assert pairs.dice[1] < pairs.dice[0]
    scores = corr.error_scores(pairs, {"plain": pairs.moved - pairs.reference})
    assert list(scores.columns)[-2:] == ["method", "error"]
    assert len(scores) == 2


def test_misaligned_set_rejects_bad_input():
    ref, other, labels = _images()
    with pytest.raises(ValueError, match="same shape"):
        corr.misaligned_set(ref, other[:, :, :8], labels)
    with pytest.raises(ValueError, match="labels"):
        corr.misaligned_set(ref, other, labels[:1])
    with pytest.raises(ValueError, match="n_pairs"):
        corr.misaligned_set(ref, other, labels, n_pairs=0)
    with pytest.raises(ValueError, match="strengths"):
        corr.misaligned_set(ref, other, labels, n_pairs=2, strengths=[1.0])
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        corr.misaligned_set(ref[:, 0], other, labels)


def test_error_scores_checks_map_shape():
    ref, other, labels = _images()
    pairs = corr.misaligned_set(ref, other, labels, n_pairs=2)
    with pytest.raises(ValueError, match="do not match"):
        corr.error_scores(pairs, {"bad": pairs.moved[:1]})
