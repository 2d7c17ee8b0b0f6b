"""Table 5 / Figure 6 / Figure 7 helpers and the readings of notebooks 04 and 05 (fast: stand-in models)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from imse_study.study import translation as ts

torch.set_num_threads(1)

PAPER = {"table5_translation": {
    "t2_to_t1": {"cyclegan": {"nmae": 0.088, "psnr": 24.1, "ssim": 0.89},
                 "imse": {"nmae": 0.029, "psnr": 91.6, "ssim": 0.96}},
    "mr_to_ct": {"cyclegan": {"nmae": 0.049, "psnr": 22.9, "ssim": 0.88},
                 "imse": {"nmae": 0.022, "psnr": 41.3, "ssim": 0.93}}}}


class OracleEvaluator(nn.Module):
    """E(x, y) = x - y: a perfect evaluator when y is already in x's modality (a stand-in, no training)."""

    dim = 2

    def forward(self, reference, other):
        return reference - other


class Identity(nn.Conv2d):
    """A 1 x 1 convolution initialised to the identity: G(y) = y."""

    dim = 2

    def __init__(self):
        super().__init__(1, 1, 1)
        nn.init.ones_(self.weight)
        nn.init.zeros_(self.bias)


def test_direction():
    assert ts.direction("t1t2") == ts.Direction("t1t2", "t2", "t1", "t2_to_t1")
    d = ts.direction("ctmr")
    assert (d.source, d.target, d.paper_key, d.label) == ("t1", "ct", "mr_to_ct", "T1 -> CT")
    with pytest.raises(ValueError, match="unknown modality pair"):
        ts.direction("pdct")


def test_missing_shipped_translator_is_reported_not_raised(monkeypatch):
    from imse_study.study import zoo

    monkeypatch.setattr(zoo, "translator_path", lambda *a, **k: None)
    choices = ts.load_translators("t2", "t1", profile="quick")
    assert set(choices) == {"cyclegan", "reggan"}
    for kind, c in choices.items():
        assert not c.available
        assert c.status.startswith("not available (train it with: imse-study train-translator --kind " + kind)
        assert "python -m imse_study.study.zoo" in c.status
    table = ts.availability_table(choices)
    assert list(table["method"]) == ["CycleGAN", "RegGAN"] and (table["reproduce"] == "").all()


def test_pages_are_2d_only():
    with pytest.raises(ValueError, match="2D"):
        ts.load_translators("t2", "t1", dim=3, profile="quick")


def _items():
    rows = []
    for method, base in (("imse", 0.03), ("cyclegan", 0.08), ("reference", 0.1)):
        for i in range(4):
            rows.append({"method": method, "source": "t2", "target": "t1", "item": i, "nmae": base + 0.001 * i,
                         "psnr": 30 - 100 * base, "ssim": 1 - 2 * base})
    return pd.DataFrame(rows)


def test_table5_comparison_and_reading():
    models = {"imse": ts.PageModel(nn.Identity(), None, "shipped evaluator"),
              "cyclegan": ts.PageModel(nn.Identity(), None, "shipped"),
              "reggan": ts.PageModel(None, None, "missing", "imse-study train-translator --kind reggan")}
    table = ts.table5_comparison(_items(), PAPER, "t2_to_t1", models)
    ours = table[table["study"].str.startswith("this")].set_index("method")
    assert list(ours.index) == ["IMSE", "CycleGAN", "RegGAN", "reference x as is"]
    assert ours.loc["IMSE", "nmae"] == pytest.approx(0.0315) and ours.loc["IMSE", "items"] == 4
    assert ours.loc["RegGAN", "items"] == 0 and math.isnan(ours.loc["RegGAN", "nmae"])
    assert ours.loc["RegGAN", "status"].startswith("not available (train it with:")
    assert ours.loc["IMSE", "input"] != ours.loc["CycleGAN", "input"]
    assert len(table[table["study"].str.startswith("paper")]) == 2
    text = ts.translation_reading("t1t2", "quick", table)
    assert "0.032" in text and "IMSE beats CycleGAN" in text and "Not scored: RegGAN" in text
    assert "not like for like" in text and "improves on" in text and "typo" in text
    assert "Smoke profile" in ts.translation_reading("ctmr", "smoke", table)


def test_table5_items_with_stand_in_models():
    translators = {"cyclegan": ts.PageModel(Identity(), None, "stand-in"),
                   "reggan": ts.PageModel(None, None, "missing")}
    items = ts.table5_items(OracleEvaluator(), translators, "t2", "t1", profile="smoke", limit=3)
    assert list(items.columns) == ["method", "source", "target", "item", "nmae", "psnr", "ssim"]
    assert sorted(items["method"].unique()) == ["cyclegan", "imse", "reference"]
    assert (items.groupby("method").size() == 3).all()
    # the oracle evaluator returns the source itself, as does the identity "translator"
    by = items.groupby("method")[["nmae"]].mean()["nmae"]
    assert by["imse"] == pytest.approx(by["cyclegan"], abs=1e-4)


def test_figure6_and_figure7_helpers():
    from imse_study.data.phantom import load_phantom

    test = load_phantom("test", 2, "smoke", ("t1", "t2"))
    truth = torch.from_numpy(test.images["t1"]).unsqueeze(1)
    source = torch.from_numpy(test.images["t2"]).unsqueeze(1)
    refs = ts.figure6_references(truth, test.subjects, item=0, n_misaligned=2, n_subjects=1)
    assert len(refs) == 3 and all(r.shape == truth[:1].shape for r in refs.values())
    outputs, table = ts.figure6_translations(OracleEvaluator(), source[:1], truth[:1], refs)
    assert list(table["reference"]) == list(refs)
    for _x, _e, t in outputs.values():  # oracle: x - (x - y) = y whatever the reference
        assert torch.allclose(t, source[0, 0].clamp(-1, 1), atol=1e-6)
    with pytest.raises(ValueError, match="outside"):
        ts.figure6_references(truth, test.subjects, item=99)
    labels = torch.from_numpy(test.labels.astype(np.int64))
    translators = {"cyclegan": ts.PageModel(Identity(), None, "stand-in")}
    cases = ts.figure7_cases(OracleEvaluator(), translators, truth, source, labels, untranslated=True)
    assert set(cases) == {"misaligned", "aligned"}
    assert set(cases["aligned"]["maps"]) == {"CycleGAN", "IMSE", ts.UNTRANSLATED}
    assert torch.equal(cases["aligned"]["labels"], cases["aligned"]["moved_labels"])
    assert not torch.equal(cases["misaligned"]["labels"], cases["misaligned"]["moved_labels"])


def _correlations(imse_r, gan_r):
    rows = []
    for method, r in (("IMSE", imse_r), ("CycleGAN", gan_r), ("RegGAN", gan_r), (ts.UNTRANSLATED, -0.5)):
        for kind in ("pearson", "spearman"):
            rows.append({"method": method, "correlation": kind, "r": r, "low": r - 0.1, "high": r + 0.1, "n": 200})
    return pd.DataFrame(rows)


def test_spatial_error_reading_follows_the_numbers():
    diffs = pd.DataFrame([{"first": "IMSE", "second": "CycleGAN", "difference": -0.5, "low": -0.6, "high": -0.4}])
    good = ts.spatial_error_reading("t1t2", "quick", _correlations(-0.9, -0.05), diffs)
    assert "-0.90" in good and "IMSE clearly stronger" in good
    assert "supports it" not in good and "page's verdict" in good  # the verdict is the one rule's (study/verdict.py)
    assert "CycleGAN shows no clear correlation" in good and "more negative" in good
    bad = ts.spatial_error_reading("ctmr", "quick", _correlations(0.3, -0.8), missing=["RegGAN"])
    assert "IMSE goes the wrong way" in bad and "Not computed: RegGAN" in bad
    fig7 = pd.DataFrame([{"case": c, "method": "IMSE", "mean_error": v} for c, v in (("aligned", 0.05), ("misaligned", 0.2))])
    text = ts.spatial_error_reading("t1t2", "smoke", _correlations(-0.9, -0.2), aligned_vs_misaligned=fig7)
    assert "ratio 4.0" in text and "Smoke profile" in text


def test_table5_comparison_per_source_and_the_evaluator_reading():
    from imse_study.study.evaluator_figures import evaluator_reading

    items = pd.DataFrame([{"method": "imse", "source": s, "target": "ct", "item": i, "nmae": n + 0.001 * i,
                           "psnr": math.inf if (s, i) == ("t2", 0) else 20.0 + i, "ssim": 0.8}
                          for s, n in (("t1", 0.02), ("t2", 0.03)) for i in range(3)])
    table = ts.table5_comparison(items, PAPER, "mr_to_ct")
    ours = table[table["study"].str.startswith("this")]
    assert list(ours["direction"]) == ["T1 -> CT", "T2 -> CT"] and list(ours["items"]) == [3, 3]
    assert list(ours["nmae"]) == pytest.approx([0.021, 0.031])
    assert list(ours["psnr"]) == pytest.approx([21.0, 21.5])  # the exact item's infinite PSNR is left out
    ranking = pd.DataFrame({"other": ["t1", "t2"], "auc": [0.99, 0.97]})
    by_label = pd.DataFrame({"label": ["bone", "fat"], "mean_abs_error": [0.2, 0.1]})
    text = evaluator_reading("ctmr", "quick", ranking, items, by_label, table)
    assert "T1 -> CT: NMAE 0.021" in text and "T2 -> CT: NMAE 0.031" in text
    assert "The paper's IMSE row (MR -> CT" in text and "NMAE 0.022" in text
