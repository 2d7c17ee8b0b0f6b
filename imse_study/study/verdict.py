"""The one rule that turns the evidence of a claim into its verdict.

Every claim of the study (the paper's, section 4, and our own) is tested by one or more *checks*
(one per direction, pair or setting). A check passes, fails, or is undecided: a difference whose
95 % interval includes zero is undecided, and an undecided check never counts as support. The
verdict of a claim is then

- **reproduced**: every check passes;
- **partly**: some pass, not all;
- **not reproduced**: none passes;
- **not testable**: no check could be made (data or models this study does not have);
- **pending**: the page that tests it has not been run.

:func:`decide` is used by each experiment page's verdict cell and by the claims page
(:mod:`imse_study.study.claims`), so a page and the claims page cannot disagree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["REPRODUCED", "PARTLY", "NOT_REPRODUCED", "NOT_TESTABLE", "PENDING", "STATUSES", "Check", "Verdict",
           "decide", "difference_check", "paired_difference", "threshold_check"]

REPRODUCED, PARTLY, NOT_REPRODUCED, NOT_TESTABLE, PENDING = (
    "reproduced", "partly", "not reproduced", "not testable", "pending")
STATUSES = (REPRODUCED, PARTLY, NOT_REPRODUCED, NOT_TESTABLE, PENDING)


@dataclass(frozen=True)
class Check:
    """One test of a claim: ``passed`` True, False, or None (undecided: an interval that includes 0)."""

    what: str
    passed: bool | None
    detail: str = ""
    effect: float = math.nan  # signed size in the claim's direction (positive supports it), for ranking findings

    def text(self) -> str:
        return f"{self.what} ({self.detail})" if self.detail else self.what


@dataclass(frozen=True)
class Verdict:
    """A claim's status (one of :data:`STATUSES`) and one sentence saying why."""

    status: str
    why: str

    def markdown(self) -> str:
        return f"**{self.status}**: {self.why}"


def _fmt(x: float) -> str:
    return f"{x:+.3f}" if abs(x) >= 1e-3 or x == 0 else f"{x:+.2g}"


def difference_check(what: str, difference: float, low: float, high: float, better: str = "higher",
                     unit: str = "", ranked: bool = True) -> Check:
    """A check on a difference with its interval: passes only when the whole interval lies on the
    ``better`` side of zero ("higher": above, "lower": below), fails when it lies on the other side,
    undecided (None) when it includes zero or is not finite. ``ranked``: the difference is on a
    unitless scale of about [-1, 1] (Dice, SSIM, correlation), so it may rank findings (``effect``);
    differences in mm or other units are not ranked."""
    if better not in ("higher", "lower"):
        raise ValueError(f"better must be 'higher' or 'lower', not {better!r}")
    sign = 1.0 if better == "higher" else -1.0
    detail = f"difference {_fmt(difference)}{unit} [{_fmt(low)}, {_fmt(high)}]"
    if not all(math.isfinite(v) for v in (difference, low, high)):
        return Check(what, None, f"{detail}: undefined")
    lo, hi = sorted((sign * low, sign * high))
    effect = sign * difference if ranked else math.nan
    if lo > 0:
        return Check(what, True, detail, effect)
    if hi < 0:
        return Check(what, False, f"{detail}: the other way", effect)
    return Check(what, None, f"{detail}: not distinguishable", effect)


def threshold_check(what: str, value: float, threshold: float, better: str = "higher", detail: str = "") -> Check:
    """A check of one number against a fixed threshold (no interval): ``value`` beyond ``threshold``
    (a unitless score such as AUC or SSIM: its distance to the threshold ranks findings)."""
    if not math.isfinite(value):
        return Check(what, None, detail or "undefined")
    passed = value > threshold if better == "higher" else value < threshold
    return Check(what, bool(passed), detail, (value - threshold) * (1 if better == "higher" else -1))


def paired_difference(a: Sequence[float], b: Sequence[float], confidence: float = 0.95, n_resamples: int = 2000,
                      seed: int = 0) -> tuple[float, float, float]:
    """Mean of ``a - b`` over paired samples with a bootstrap percentile interval (scipy.stats.bootstrap).

    Returns (difference, low, high); constant differences give a degenerate interval at the
    difference itself, a single pair no interval (NaN: undecided), no pairs NaNs.
    """
    from scipy.stats import bootstrap

    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(d.mean())
    if d.size < 2:
        return mean, math.nan, math.nan
    if np.ptp(d) == 0:
        return mean, mean, mean
    res = bootstrap((d,), np.mean, confidence_level=confidence, n_resamples=n_resamples, method="percentile",
                    random_state=np.random.default_rng(seed))
    return mean, float(res.confidence_interval.low), float(res.confidence_interval.high)


def decide(checks: Sequence[Check], untestable: str | None = None) -> Verdict:
    """The verdict of a claim from its checks (the module's rule); ``untestable``: why no check could
    be made (gives **not testable**); no checks and no reason gives **pending**."""
    if untestable is not None:
        return Verdict(NOT_TESTABLE, untestable)
    if not checks:
        return Verdict(PENDING, "the page that tests it has not been run")
    passed = [c for c in checks if c.passed is True]
    failed = [c for c in checks if c.passed is False]
    undecided = [c for c in checks if c.passed is None]
    n = len(checks)

    def names(cs: list[Check]) -> str:
        return "; ".join(c.text() for c in cs)

    if len(passed) == n:
        every = "The check passes" if n == 1 else "Both checks pass" if n == 2 else f"All {n} checks pass"
        return Verdict(REPRODUCED, f"{every}: {names(passed)}.")
    parts = []
    if failed:
        parts.append(f"fails for {names(failed)}")
    if undecided:
        parts.append(f"undecided for {names(undecided)}")
    if passed:
        return Verdict(PARTLY, f"{len(passed)} of {n} checks pass ({names(passed)}); " + "; ".join(parts) + ".")
    return Verdict(NOT_REPRODUCED, f"No check passes: {'; '.join(parts)}.")
