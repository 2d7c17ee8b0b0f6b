"""Eq. 5 pairs anchored at the truth (``--aligned-fraction``) and fine-tuning (``--init-weights``)."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from imse_study.evaluator.objective import anchor_at_truth, make_training_pair
from imse_study.evaluator.train import aligned_floor, train_evaluator
from imse_study.training import safe_load


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), fraction=st.floats(0.0, 1.0))
def test_anchored_items_keep_the_reference_and_shrink_the_other_displacement(seed, fraction):
    g = torch.Generator().manual_seed(seed)
    d1, d2 = torch.randn(16, 2, 8, 8, generator=g), torch.randn(16, 2, 8, 8, generator=g)
    a1, a2 = anchor_at_truth(d1, d2, fraction, g)
    for i in range(16):
        if torch.equal(a2[i], d2[i]):  # not anchored: both displacements untouched
            assert torch.equal(a1[i], d1[i])
        else:  # anchored: an unresampled reference, the other moved by at most its own displacement
            assert torch.count_nonzero(a2[i]) == 0
            assert a1[i].abs().max() <= d1[i].abs().max() + 1e-6


def test_a_full_anchor_gives_exactly_aligned_pairs_with_label_zero():
    g = torch.Generator().manual_seed(3)
    x = torch.rand(64, 1, 16, 16) * 2 - 1
    inputs, label = make_training_pair(x, "none", (2, 50), g, aligned_fraction=1.0)
    torch.testing.assert_close(inputs[:, :1], x)  # the reference is never resampled
    exact = label.flatten(1).abs().amax(1) == 0
    assert 4 <= int(exact.sum()) <= 32  # a quarter of them, on average 16
    torch.testing.assert_close(label, inputs[:, :1] - inputs[:, 1:])


def test_no_anchoring_draws_the_papers_pairs_unchanged():
    x = torch.rand(4, 1, 16, 16) * 2 - 1
    plain = make_training_pair(x, "shuffle_remap", (2, 50), torch.Generator().manual_seed(1))
    zero = make_training_pair(x, "shuffle_remap", (2, 50), torch.Generator().manual_seed(1), aligned_fraction=0.0)
    assert all(torch.equal(a, b) for a, b in zip(plain, zero))


def test_the_aligned_floor_of_an_oracle_is_zero():
    class Oracle(torch.nn.Module):
        def forward(self, inputs):
            return inputs[:, :1] - inputs[:, 1:]

    x = torch.rand(5, 1, 16, 16) * 2 - 1
    assert aligned_floor(Oracle(), x, x.clone()) == 0.0


def test_fine_tuning_starts_from_the_given_weights_and_records_them(tmp_path):
    base = train_evaluator(tmp_path / "base", "t1", 2, "smoke", progress=False, epochs=1)
    budget = {"aligned_fraction": 0.5, "init_weights": str(base.checkpoint), "lr": 1e-12}
    tuned = train_evaluator(tmp_path / "tuned", "t1", 2, "smoke", progress=False, epochs=1, budget=budget)
    for a, b in zip(base.model.state_dict().values(), tuned.model.state_dict().values()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)  # a vanishing learning rate keeps the start
    meta = safe_load(tuned.checkpoint)["meta"]
    assert meta["extra"]["aligned_fraction"] == 0.5 and meta["extra"]["init_weights"] == str(base.checkpoint)
    assert "--aligned-fraction 0.5" in meta["command"] and "--init-weights" in meta["command"]
    assert any(key.startswith("floor_") for key in tuned.history[-1])  # anchoring logs the aligned floor


@pytest.mark.parametrize("budget, message", [
    ({"aligned_fraction": 1.5}, "aligned_fraction must be between 0 and 1"),
    ({"init_weights": "nowhere.pt"}, "no such evaluator checkpoint"),
])
def test_bad_anchoring_settings_say_what_is_wrong(tmp_path, budget, message):
    with pytest.raises(ValueError, match=message):
        train_evaluator(tmp_path / "x", "t1", 2, "smoke", progress=False, budget=budget)


def test_init_weights_of_another_network_is_refused(tmp_path):
    base = train_evaluator(tmp_path / "base", "t1", 2, "smoke", progress=False, epochs=1)
    with pytest.raises(ValueError, match="is not the one being trained"):
        train_evaluator(tmp_path / "x", "t1", 2, "smoke", progress=False, epochs=1,
                        budget={"init_weights": str(base.checkpoint), "arch": "unet"})


def test_runs_recorded_before_anchoring_existed_still_resume(tmp_path):
    """A run whose last.pt does not record the anchoring settings resumes with their defaults."""
    out = tmp_path / "old"
    train_evaluator(out, "t1", 2, "smoke", progress=False, epochs=2, stop_after_epochs=1)
    payload = safe_load(out / "last.pt")
    settings = payload["train_state"]["settings"]
    assert "aligned_fraction" not in settings and "init_weights" not in settings
    resumed = train_evaluator(out, "t1", 2, "smoke", progress=False, epochs=2, resume=True)
    assert resumed.history[-1]["epoch"] == 2
    train_evaluator(tmp_path / "old2", "t1", 2, "smoke", progress=False, epochs=2, stop_after_epochs=1)
    with pytest.raises(ValueError, match="aligned_fraction"):  # but anchoring is a setting that shapes the weights
        train_evaluator(tmp_path / "old2", "t1", 2, "smoke", progress=False, epochs=2, resume=True,
                        budget={"aligned_fraction": 0.5})


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_both_sides_anchors_keep_one_image_unresampled_and_shrink_the_other(seed):
    g = torch.Generator().manual_seed(seed)
    d1, d2 = torch.randn(32, 2, 8, 8, generator=g), torch.randn(32, 2, 8, 8, generator=g)
    a1, a2 = anchor_at_truth(d1, d2, 1.0, g, sides="both")
    for i in range(32):
        still_reference, still_other = torch.count_nonzero(a2[i]) == 0, torch.count_nonzero(a1[i]) == 0
        assert still_reference or still_other  # every item anchored: one side unresampled
        if still_reference:
            assert a1[i].abs().max() <= d1[i].abs().max() + 1e-6
        else:
            assert a2[i].abs().max() <= d2[i].abs().max() + 1e-6


def test_both_sides_anchoring_swaps_about_half_and_the_label_is_still_x2_minus_x1():
    g = torch.Generator().manual_seed(5)
    x = torch.rand(256, 1, 16, 16) * 2 - 1
    inputs, label = make_training_pair(x, "none", (2, 50), g, aligned_fraction=1.0, anchor_sides="both")
    reference_kept = (inputs[:, :1] - x).flatten(1).abs().amax(1) < 1e-5  # a zero warp is exact to rounding
    other_kept = (inputs[:, 1:] - x).flatten(1).abs().amax(1) < 1e-5
    assert bool((reference_kept | other_kept).all())
    swapped = float((other_kept & ~reference_kept).float().mean())  # half swap, a quarter of those not moved
    assert 0.25 < swapped < 0.5
    torch.testing.assert_close(label, inputs[:, :1] - inputs[:, 1:])


def test_reference_side_anchoring_is_the_default_and_unchanged():
    x = torch.rand(8, 1, 16, 16) * 2 - 1
    default = make_training_pair(x, "none", (2, 50), torch.Generator().manual_seed(2), aligned_fraction=0.5)
    named = make_training_pair(x, "none", (2, 50), torch.Generator().manual_seed(2), aligned_fraction=0.5,
                               anchor_sides="reference")
    assert all(torch.equal(a, b) for a, b in zip(default, named))


def test_unknown_anchor_sides_are_refused(tmp_path):
    with pytest.raises(ValueError, match="anchor_sides must be one of"):
        train_evaluator(tmp_path / "x", "t1", 2, "smoke", progress=False, budget={"anchor_sides": "left"})
