"""The fooling diagnostic (issue 8) and the hardening variants: smoke-sized, one thread, seconds."""

import numpy as np
import pandas as pd
import pytest
import torch

from imse_study.evaluator.model import Evaluator
from imse_study.study.diagnostic import (
    DiagnosticPairs,
    Variant,
    diagnostic_figure,
    diagnostic_reading,
    dice_long,
    fooling_diagnostic,
    invert_displacement,
    make_diagnostic_pairs,
    summarise_diagnostic,
)
from imse_study.registration.evaluate import make_test_pairs
from imse_study.losses.robust import (
    InnerMask,
    MultiScale,
    WeightedSum,
    hardening_variants,
    robust_similarity,
)
from imse_study.losses.similarity import similarity
from imse_study.warp import warp

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def t1t1():
    return make_diagnostic_pairs("t1", "t1", n_pairs=2, profile="smoke")


def test_pairs_match_make_test_pairs_and_carry_the_truth(t1t1):
    full = make_test_pairs("t1", "t1", profile="smoke")
    items = t1t1.items
    assert len(t1t1) == 2 and items[0] == 0 and items[-1] == len(full) - 1  # spread over the split
    assert torch.equal(t1t1.pairs.moving, full.moving[items])
    assert [full.ids[i] for i in items] == t1t1.pairs.ids
    # the moving image is the truth warped by the known field; the inverse undoes it
    assert torch.allclose(warp(t1t1.truth, t1t1.fields), t1t1.pairs.moving, atol=1e-5)
    before = (t1t1.pairs.moving - t1t1.truth).abs().mean()
    after = (warp(t1t1.pairs.moving, t1t1.inverse) - t1t1.truth).abs().mean()
    assert after < 0.5 * before


def test_inverse_of_a_constant_shift_is_its_negative():
    u = torch.zeros(1, 2, 16, 16)
    u[:, 1] = 2.0
    assert torch.allclose(invert_displacement(u), -u, atol=1e-5)
    with pytest.raises(ValueError, match="displacement"):
        invert_displacement(torch.zeros(1, 3, 8, 8))


def test_mae_on_a_single_modal_pair_has_its_minimum_at_the_truth(t1t1):
    table = fooling_diagnostic(t1t1, "mae", iterations=8)
    assert len(table) == 2
    assert np.allclose(table["loss_truth"], 0.0, atol=1e-6)  # same modality, same slice: exactly equal
    assert not table["fooled"].any()  # nothing can score below 0
    assert not table["truth_above_initial"].any()
    assert (table["loss_solution"] < table["loss_initial"]).all()
    assert (table["dice_truth"] > table["dice_initial"]).all()
    expected = {"direction", "pair", "variant", "loss_initial", "loss_affine", "loss_solution", "loss_truth",
                "loss_truth_resampled", "fooled", "fooled_resampled", "dice_affine", "dice_deformable",
                "dice_brain_deformable", "hd95_affine", "hd95_deformable", "grad_deformable", "epe_deformable",
                "seconds_affine", "seconds"}
    assert expected <= set(table.columns)
    assert (table["seconds_affine"] <= table["seconds"]).all()


def test_summary_long_form_and_reading(t1t1):
    variants = {"mae": "mae", "mae_coarse": Variant("mae", {"grid_spacing": 16, "levels": 1})}
    table = fooling_diagnostic(t1t1, variants, iterations=6)
    summary = summarise_diagnostic(table)
    assert list(summary["variant"]) == ["mae", "mae_coarse"]
    assert set(summary["fooled"]) <= {0.0}
    assert (summary["pairs"] == 2).all()
    assert summary["misled"].between(0, 1).all()
    moved_away = table.assign(epe_deformable=table["epe_affine"] + 1.0)  # a dense stage that left the truth
    assert (summarise_diagnostic(moved_away)["misled"] == 1.0).all()
    long = dice_long(table)
    assert set(long["stage"]) == {"initial", "affine", "deformable", "truth"}
    assert len(long) == 2 * 2 * 4
    text = diagnostic_reading(summary, reference="mae")
    assert "mae_coarse" in text and "t1->t1" in text and "misled" in text
    import matplotlib

    matplotlib.use("Agg")
    for which in ("loss", "dice"):
        assert diagnostic_figure(table, which) is not None
    with pytest.raises(ValueError, match="which"):
        diagnostic_figure(table, "nope")


def test_bad_inputs_raise_clear_errors(t1t1):
    with pytest.raises(ValueError, match="DiagnosticPairs"):
        fooling_diagnostic(t1t1.pairs, "mae")
    with pytest.raises(ValueError, match="mode"):
        fooling_diagnostic(t1t1, "mae", mode="bogus")
    with pytest.raises(ValueError, match="unknown optimise options"):
        fooling_diagnostic(t1t1, "mae", bogus=1)
    with pytest.raises(ValueError, match="unknown optimise options"):
        fooling_diagnostic(t1t1, {"x": Variant("mae", {"spacing": 3})})
    with pytest.raises(ValueError, match="variants"):
        fooling_diagnostic(t1t1, {})
    with pytest.raises(ValueError, match="must be a name or a callable"):
        fooling_diagnostic(t1t1, {"x": Variant(3)})
    with pytest.raises(ValueError, match="unknown similarity"):
        fooling_diagnostic(t1t1, "nope")
    with pytest.raises(ValueError, match="n_pairs"):
        make_diagnostic_pairs("t1", "t2", n_pairs=0, profile="smoke")
    with pytest.raises(ValueError, match="not a fooling_diagnostic table"):
        summarise_diagnostic(pd.DataFrame({"x": [1]}))
    assert isinstance(t1t1, DiagnosticPairs)


def test_weighted_sum_and_multiscale():
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(1, 1, 16, 16, generator=g), torch.rand(1, 1, 16, 16, generator=g)
    mae, ncc = similarity("mae"), similarity("ncc")
    total = WeightedSum([(2.0, mae), (0.5, ncc)])(a, b)
    assert torch.allclose(total, 2.0 * mae(a, b) + 0.5 * ncc(a, b))
    assert float(MultiScale(mae, (1, 2))(a, a)) == 0.0
    pooled = torch.nn.functional.avg_pool2d
    assert torch.allclose(MultiScale(mae, (1, 2))(a, b), 0.5 * (mae(a, b) + mae(pooled(a, 2), pooled(b, 2))))
    with pytest.raises(ValueError, match="does not divide"):
        MultiScale(mae, (3,))(a, b)
    target = -torch.ones(1, 1, 16, 16)
    target[..., 2:14, 2:14] = 0.5  # a 12x12 "head"
    masked = InnerMask(mae, erode=2)
    assert int(masked.inner(target).sum()) == 8 * 8
    assert torch.allclose(masked(a, target), mae(a, target, masked.inner(target)))
    with pytest.raises(ValueError, match="erode"):
        InnerMask(mae, erode=-1)
    with pytest.raises(ValueError, match="at least one"):
        WeightedSum([])
    with pytest.raises(ValueError, match=">= 0"):
        WeightedSum([(-1.0, mae)])


def test_robust_similarity_and_variants_build():
    model = Evaluator(2, 4, 1)
    sim = robust_similarity(model, "t1", "t2", evaluator_modality="t1")
    x = torch.rand(1, 1, 16, 16) * 2 - 1
    assert torch.isfinite(sim(x, x.flip(-1)))
    named = hardening_variants("t1", "t2", names=["mi", "imse+mind", "imse_coarse"])
    assert list(named) == ["mi", "imse+mind", "imse_coarse"]
    assert named["imse_coarse"].options["grid_spacing"] == 16
    with pytest.raises(ValueError, match="unknown variant"):
        hardening_variants("t1", "t2", names=["imse_hardneg"])


def test_cli_writes_its_table_atomically_and_keeps_an_existing_file(tmp_path, capsys):
    from imse_study.atomic import leftover_temp_files
    from imse_study.study.diagnostic import main

    out = tmp_path / "diagnostic.csv"
    out.write_text("the user's own file\n")
    args = ["--direction", "t1-t1", "--pairs", "1", "--profile", "smoke", "--variants", "mind", "--iterations", "4",
            "--out", str(out)]
    with pytest.raises(SystemExit):
        main(args)
    assert "exists: pass --overwrite" in capsys.readouterr().err
    assert out.read_text() == "the user's own file\n"
    table = main([*args, "--overwrite"])
    written = pd.read_csv(out)
    assert list(written["variant"]) == ["mind"] and len(table) == 1
    assert written["loss_solution"].tolist() == pytest.approx(table["loss_solution"].tolist())
    assert leftover_temp_files(tmp_path) == []
    for bad, message in ((["--shard", "2/1"], "--shard must be k/n"), (["--direction", "t1"], "--direction must be")):
        with pytest.raises(SystemExit):
            main(bad)
        assert message in capsys.readouterr().err


def test_module_help_runs_as_a_user_runs_it():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "imse_study.study.diagnostic", "--help"], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and "--overwrite" in done.stdout and "--variants" in done.stdout
