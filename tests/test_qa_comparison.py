"""The QA comparison page's maths (:mod:`imse_study.study.qa_comparison`): the failure label, the
true end-point error, the subject bootstrap, the oriented AUC, the verdict, and the registrations'
residual fields; on tiny synthetic images and an untrained tiny evaluator."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from clitools import write_evaluator

from imse_study.data.aligned import AlignedSet
from imse_study.evaluator.pretrained import load_any
from imse_study.qa.calibration import FAILURE_DICE_DROP, is_failure, mean_epe_mm
from imse_study.study import qa_comparison as qc

torch.set_num_threads(1)
SIDE = 32


def _aligned(n: int = 4) -> AlignedSet:
    """Synthetic aligned t1/t2 items (a disc and a square), two items per subject, 1 mm."""
    yy, xx = np.mgrid[:SIDE, :SIDE]
    maps = []
    for i in range(n):
        lab = np.zeros((SIDE, SIDE), np.float32)
        lab[(yy - 16) ** 2 + (xx - 15 - i % 3) ** 2 < 100] = 1
        lab[10 + i % 2 : 18, 12:20] = 2
        maps.append(lab)
    labels = torch.from_numpy(np.stack(maps))[:, None]
    t1 = torch.where(labels == 0, -1.0, torch.where(labels == 1, 0.2, 0.8))
    t2 = torch.where(labels == 0, -1.0, torch.where(labels == 1, 0.7, -0.5))
    return AlignedSet(images={"t1": t1, "t2": t2}, labels={"t1": labels, "t2": labels}, spacing=(1.0, 1.0),
                      subjects=np.array([f"s{i // 2}" for i in range(n)]), ids=[f"s{i // 2}/{i % 2}" for i in range(n)],
                      label_names={"background": 0, "disc": 1, "square": 2}, dataset="synthetic")


def test_failure_label_is_a_dice_drop_of_more_than_the_threshold():
    aligned = np.array([1.0, 1.0, 0.9, 0.9])
    dice = np.array([1.0 - FAILURE_DICE_DROP, 0.89, 0.85, 0.7])
    assert is_failure(dice, aligned).tolist() == [False, True, False, True]
    assert bool(is_failure(0.5, 0.8, drop=0.3)) is False and bool(is_failure(0.49, 0.8, drop=0.3)) is True


def test_mean_epe_is_in_mm_over_the_region():
    field = torch.zeros(2, 2, 4, 4)
    field[:, 0] = 2.0  # 2 voxels along axis 0
    field[1, 1, :2] = 3.0  # pair 1: also 3 voxels along axis 1, in the top half only
    region = np.zeros((2, 4, 4), bool)
    region[0] = True
    region[1, :2] = True
    epe = mean_epe_mm(field, (2.0, 1.0), region)
    assert epe[0] == pytest.approx(4.0) and epe[1] == pytest.approx(5.0)  # sqrt(4^2 + 3^2)
    assert mean_epe_mm(field[:1], (1.0, 1.0), np.zeros((1, 4, 4), bool))[0] == pytest.approx(2.0)  # empty: all


def test_subject_bootstrap_resamples_whole_subjects():
    # subject a: ten rows of 0; subject b: one row of 1. Resampling rows would keep the mean near 1/11;
    # resampling subjects gives 0 (a, a), 1 (b, b) or 1/11 (a, b).
    table = pd.DataFrame({"subject": ["a"] * 10 + ["b"], "value": [0.0] * 10 + [1.0]})
    low, high = qc.subject_bootstrap(table, lambda t: float(t["value"].mean()), n_boot=400, seed=1)
    assert low == pytest.approx(0.0) and high == pytest.approx(1.0)
    same = pd.DataFrame({"subject": list("aabbcc"), "value": [0.5] * 6})
    assert qc.subject_bootstrap(same, lambda t: float(t["value"].mean()), n_boot=50) == (0.5, 0.5)
    one = pd.DataFrame({"subject": ["a"] * 3, "value": [0.0, 1.0, 2.0]})
    assert all(np.isnan(qc.subject_bootstrap(one, lambda t: 1.0)))


def test_auc_keeps_each_scores_direction_and_spearman_is_absolute():
    failed = np.array([False, False, True, True])
    distance = np.array([0.1, 0.2, 0.8, 0.9])
    assert qc.failure_auc(distance, failed, worse_when_higher=True) == pytest.approx(1.0)
    assert qc.failure_auc(distance, failed, worse_when_higher=False) == pytest.approx(0.0)  # never flipped
    assert np.isnan(qc.failure_auc(distance, np.zeros(4, bool)))
    assert qc.spearman_abs([1, 2, 3, 4], [9, 7, 5, 1]) == pytest.approx(1.0)
    assert np.isnan(qc.spearman_abs([1, 1, 1, 1], [1, 2, 3, 4]))


def test_spread_items_covers_the_subjects_first():
    assert qc.spread_items(["a", "a", "a", "b", "b", "c"], 3) == [0, 3, 5]
    assert qc.spread_items(["a", "a", "b", "b"], 3) == [0, 1, 2]
    assert qc.spread_items(["a", "b"], 10) == [0, 1]


def test_identity_registration_leaves_the_start_as_residual_and_factor_zero_is_the_truth():
    aligned = _aligned()
    start = qc.perturbed(aligned, "t2", "t1", [1], [1.0], seed=100)
    kept = qc.registered(aligned, "t2", "t1", [1], "identity",
                         lambda m, t: torch.zeros(1, 2, *m.shape[2:]), seed=99)  # start seed 99 + item 1
    assert torch.allclose(kept.residual, start.residual) and torch.equal(kept.moved, start.moved)
    truth = qc.perturbed(aligned, "t2", "t1", [0, 2], [0.0], seed=0)
    assert float(truth.residual.abs().max()) == 0.0 and list(truth.subjects) == ["s0", "s1"]


def test_scores_of_registrations_and_the_comparison(tmp_path):
    aligned = _aligned()
    model, meta = load_any(str(write_evaluator(tmp_path / "e.pt", 2)))
    batches = [qc.perturbed(aligned, "t2", "t1", [0, 1, 2, 3], [0.0, 0.3, 1.0], seed=0),
               qc.perturbed(aligned, "t1", "t2", [0, 1, 2, 3], [0.0, 0.3, 1.0], seed=0)]
    table = pd.concat([qc.score_registrations(b, aligned.spacing, model, meta.modality) for b in batches],
                      ignore_index=True)
    assert len(table) == 24 and set(table["direction"]) == {"t2->t1", "t1->t2"}
    assert (table.loc[table["factor"] == 0, "epe_mm"] == 0).all()
    assert (table.loc[table["factor"] == 0, "failed"] == False).all()  # noqa: E712
    assert (table.loc[table["factor"] == 1, "epe_mm"] > 0).all()
    assert "imse_mm" not in table  # no calibration given
    names = {s.name for s in qc.available_scores(table)}
    assert {"IMSE score", "MI", "NMI", "LNCC", "MIND distance", "Jacobian log-det std"} <= names
    assert "IMSE estimate (mm)" not in names
    comparison = qc.comparison_table(table, n_boot=20)
    assert set(comparison["subset"]) == {"all"}  # no real registrations here
    finite = comparison.dropna(subset=["rho_epe_low"])
    assert ((finite["rho_epe_low"] <= finite["rho_epe"] + 1e-9) & (finite["rho_epe"] <= finite["rho_epe_high"] + 1e-9)).all()
    assert "IMSE score" in qc.verdict(comparison, qc.calibration_check(table))


def _comparison(imse: float, nmi: float, mi: float, ci: float = 0.01) -> pd.DataFrame:
    rows = []
    for name, family, rho in (("IMSE estimate (mm)", "IMSE", imse), ("NMI", "similarity", nmi),
                              ("MI", "similarity", mi)):
        rows.append({"subset": "all", "score": name, "family": family, "registrations": 40, "subjects": 8,
                     "failures": 10, "rho_epe": rho, "rho_epe_low": rho - ci, "rho_epe_high": rho + ci,
                     "rho_dice": rho, "rho_dice_low": rho - ci, "rho_dice_high": rho + ci, "auc": rho})
    return pd.DataFrame(rows)


def test_verdict_says_plainly_when_imse_does_not_win():
    losing = qc.verdict(_comparison(imse=0.80, nmi=0.95, mi=0.70), {"within_1mm": 0.5})
    assert "IMSE does NOT beat NMI" in losing and "Scores ahead of IMSE on the true error: NMI" in losing
    assert "|rho| >= 0.95: NOT met" in losing and "50%, NOT met" in losing and "too few" not in losing
    winning = qc.verdict(_comparison(imse=0.97, nmi=0.90, mi=0.85), {"within_1mm": 0.9})
    assert "better than NMI and MI" in winning and "do not overlap" in winning and "NOT beat" not in winning
    assert "|rho| >= 0.95: met" in winning and "90%, met" in winning
    close = qc.verdict(_comparison(imse=0.91, nmi=0.90, mi=0.89, ci=0.05), {})
    assert "overlap, so the difference is not established" in close
    assert "no calibrated estimate" in close
    mixed = _comparison(imse=0.90, nmi=0.88, mi=0.60, ci=0.05)
    assert "apart from MI's but overlapping NMI's (not established against NMI)" in qc.verdict(mixed, {})


def test_verdict_warns_when_one_class_is_tiny():
    comparison = _comparison(imse=0.9, nmi=0.8, mi=0.7).assign(failures=38)  # 2 of 40 did not fail
    assert "Only 2 registration(s) fall in the smaller class" in qc.verdict(comparison, {})


def test_the_qa_claim_holds_when_the_imse_estimate_tracks_the_error_and_nmi_does_not(tmp_path):
    from imse_study.modalities import PAIRS
    from imse_study.study.claims import page_verdict

    rng = np.random.default_rng(0)
    epe = rng.uniform(0, 5, 120)
    table = pd.DataFrame({"subject": np.repeat(np.arange(8), 15), "epe_mm": epe,
                          "imse_mm": epe + rng.normal(0, 0.05, 120), "nmi": rng.normal(size=120),
                          "mi": -epe + rng.normal(0, 3, 120), "profile": "quick"})
    pair = next(iter(PAIRS))
    table.to_csv(tmp_path / f"08_qa_{pair}.csv", index=False)
    text = page_verdict("08_qa", tmp_path / f"08_qa_{pair}.csv", pair)
    assert "**B4**" in text and "holds**" in text and "does not hold" not in text
