"""The one verdict rule (imse_study/study/verdict.py): checks -> reproduced / partly / not / not testable."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from imse_study.study import claims, verdict
from imse_study.study.verdict import Check, decide, difference_check, paired_difference

outcomes = st.lists(st.sampled_from([True, False, None]), min_size=1, max_size=12)
finite = st.floats(-10, 10, allow_nan=False)


@given(outcomes)
def test_status_follows_the_count_of_passed_checks(passed):
    v = decide([Check(f"c{i}", p) for i, p in enumerate(passed)])
    wins = sum(p is True for p in passed)
    expected = (verdict.REPRODUCED if wins == len(passed) else verdict.NOT_REPRODUCED if wins == 0
                else verdict.PARTLY)
    assert v.status == expected
    assert v.why.endswith(".") and not v.why[0].islower()


@given(finite, finite, finite, st.sampled_from(["higher", "lower"]))
def test_an_interval_that_includes_zero_never_supports(d, a, b, better):
    low, high = sorted((a, b))
    check = difference_check("x", d, low, high, better=better)
    if low <= 0 <= high:
        assert check.passed is None and "not distinguishable" in check.detail
        assert decide([check]).status == verdict.NOT_REPRODUCED
    elif (low > 0) == (better == "higher"):
        assert check.passed is True and decide([check]).status == verdict.REPRODUCED
    else:
        assert check.passed is False


@given(outcomes)
def test_an_undecided_check_never_makes_a_claim_reproduced(passed):
    checks = [Check(f"c{i}", p) for i, p in enumerate(passed)] + [Check("undecided", None)]
    assert decide(checks).status != verdict.REPRODUCED


def test_no_checks_is_pending_and_a_reason_is_not_testable():
    assert decide([]).status == verdict.PENDING
    assert decide([Check("a", True)], untestable="no data").status == verdict.NOT_TESTABLE


def test_nan_differences_and_a_single_pair_are_undecided():
    assert difference_check("x", math.nan, -1, 1).passed is None
    assert all(math.isnan(v) for v in paired_difference([], []))
    d, low, high = paired_difference([0.9], [0.1])  # one pair: no interval, so no support
    assert d > 0 and difference_check("x", d, low, high).passed is None


def test_paired_difference_interval_holds_the_mean():
    rng = np.random.default_rng(0)
    a = rng.normal(0.6, 0.05, 20)
    d, low, high = paired_difference(a, a - 0.1 + rng.normal(0, 0.01, 20))
    assert low <= d <= high and low > 0
    d, low, high = paired_difference(a, a + rng.normal(0, 0.05, 20))  # no real difference
    assert abs(d) < 0.05


def _spatial_error_tables(imse_noise: float, gan_noise: float) -> dict[str, pd.DataFrame]:
    """05's two files for one pair: scores (per method and pair) and Spearman correlations."""
    rng = np.random.default_rng(1)
    dice = np.linspace(0.3, 0.9, 60)
    rows = []
    for method, noise in (("IMSE", imse_noise), ("CycleGAN", gan_noise), ("RegGAN", gan_noise)):
        error = -dice + rng.normal(0, noise, dice.size)
        rows += [{"method": method, "pair": i, "dice": d, "error": e} for i, (d, e) in enumerate(zip(dice, error))]
    scores = pd.DataFrame(rows)
    corr = pd.DataFrame([{"method": m, "correlation": "spearman",
                          "r": g["error"].corr(g["dice"], method="spearman")} for m, g in scores.groupby("method")])
    return {"05_spatial_error_t1t2": scores, "05_spatial_error_t1t2_correlations": corr}


def test_a_page_and_the_claims_page_give_the_same_verdict(tmp_path):
    """05: a difference that is not distinguishable is not support, on the page and the claims page alike."""
    for imse_noise, expected in ((0.02, verdict.REPRODUCED), (0.3, verdict.NOT_REPRODUCED)):
        tables = _spatial_error_tables(imse_noise, 0.3 if imse_noise < 0.1 else 0.3)
        for name, t in tables.items():
            t.to_csv(tmp_path / f"{name}.csv", index=False)
        on_claims_page = claims.correlation_claim(tmp_path)
        page = claims.page_verdict("05_spatial_error", tmp_path / "05_spatial_error_t1t2.csv", "t1t2")
        assert on_claims_page.verdict.status == expected
        assert f"**{expected}**" in page and on_claims_page.verdict.why in page


def test_intro_tally_is_written_between_its_markers(tmp_path):
    experiments = tmp_path / "experiments"
    experiments.mkdir()
    for name, t in _spatial_error_tables(0.02, 0.3).items():
        t.to_csv(experiments / f"{name}.csv", index=False)
    intro = tmp_path / "intro.md"
    intro.write_text(f"# Intro\n\nbefore\n\n{claims.TALLY_START}\nold\n{claims.TALLY_END}\n\nafter\n")
    claims.write_claims(experiments)
    text = intro.read_text()
    assert "old" not in text and text.startswith("# Intro\n\nbefore") and text.endswith("after\n")
    assert "**1 reproduced**" in text and "**1 not testable**" in text and "E5" in text
    untouched = tmp_path / "other" / "intro.md"
    untouched.parent.mkdir()
    untouched.write_text("no markers\n")
    assert claims.write_tally(untouched, experiments) is None and untouched.read_text() == "no markers\n"
