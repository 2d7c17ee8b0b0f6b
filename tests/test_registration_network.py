"""VoxelMorph training (Eq. 6-7), its checkpoints and resume, and the evaluation table."""

import numpy as np
import pytest
import torch

from imse_study.registration.evaluate import evaluate, make_test_pairs, network_registrar, summarise
from imse_study.registration.network import RegistrationNet
from imse_study.registration.learned import load_network, train_registration


def test_network_starts_near_identity_and_checks_sizes():
    net = RegistrationNet(2)
    x = torch.rand(2, 1, 32, 40)
    d = net(x, x)
    assert d.shape == (2, 2, 32, 40) and d.abs().max() < 1e-2
    assert RegistrationNet(3, integration_steps=7)(torch.rand(1, 1, 16, 16, 24), torch.rand(1, 1, 16, 16, 24)).shape == (1, 3, 16, 16, 24)
    with pytest.raises(ValueError, match="divisible by 8"):
        net(torch.rand(1, 1, 30, 32), torch.rand(1, 1, 30, 32))


def test_test_pairs_are_seeded_and_misaligned():
    a = make_test_pairs("t1", "t2", profile="smoke", limit=3)
    b = make_test_pairs("t1", "t2", profile="smoke", limit=3)
    assert torch.equal(a.moving, b.moving) and a.ids == b.ids and a.direction == "t1->t2"
    assert len(a) == 3 and a.ids[0].startswith("sub-3000/")
    assert not torch.equal(a.moving_labels, a.target_labels)  # the test transform moved them


def test_evaluate_rows_columns_and_identity_method():
    pairs = make_test_pairs("ct", "t1", profile="smoke", limit=2)
    zero = lambda moving, target: torch.zeros(1, 2, *moving.shape[2:])  # noqa: E731
    table = evaluate({"identity": zero}, pairs, progress=False)
    assert len(table) == 4 and set(table["method"]) == {"initial", "identity"}
    for column in ("pair", "method", "direction", "dim", "dice", "hd95", "grad", "neg_jac", "seconds", "dice_csf",
                   "dice_skull"):
        assert column in table.columns
    initial, identity = (table[table.method == m].reset_index(drop=True) for m in ("initial", "identity"))
    np.testing.assert_allclose(identity["dice"], initial["dice"])  # no motion, no change
    assert (identity["grad"] == 0).all() and initial["grad"].isna().all()
    assert summarise(table).loc[("ct->t1", "identity"), ("dice", "mean")] == pytest.approx(initial["dice"].mean())


def test_train_resume_load_and_evaluate(tmp_path):
    full = train_registration(tmp_path / "full", "mi", "t1", "t2", profile="smoke", progress=False)
    part = train_registration(tmp_path / "part", "mi", "t1", "t2", profile="smoke", progress=False,
                              stop_after_epochs=1)
    resumed = train_registration(tmp_path / "part", "mi", "t1", "t2", profile="smoke", progress=False, resume=True)
    assert part.steps < full.steps == resumed.steps
    for a, b in zip(resumed.model.state_dict().values(), full.model.state_dict().values()):
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="similarity='mi'"):
        train_registration(tmp_path / "part", "ncc", "t1", "t2", profile="smoke", progress=False, resume=True)
    model, meta = load_network(tmp_path / "part" / "network.pt")
    assert meta.similarity == "mi" and meta.moving_modality == "t1" and "train-registration" in meta.command
    assert "val_dice" in resumed.history[-1]
    pairs = make_test_pairs("t1", "t2", profile="smoke", limit=2)
    table = evaluate({"mi": network_registrar(model)}, pairs, progress=False)
    assert table["dice"].between(0, 1).all() and (table.loc[table.method == "mi", "seconds"] > 0).all()
    with pytest.raises(ValueError, match="not a registration network|registration network"):
        load_network(tmp_path / "full" / "log.csv")


def test_imse_network_training_runs_in_both_directions(tmp_path):
    from imse_study.evaluator import Evaluator

    torch.manual_seed(0)
    evaluator = Evaluator(2, width=2, n_blocks=1)
    result = train_registration(tmp_path / "imse", "imse", "t2", "t1", profile="smoke", progress=False,
                                similarity_options={"evaluator": evaluator, "evaluator_modality": "t1"},
                                bidirectional=True)
    assert result.steps > 0 and np.isfinite(result.history[-1]["train_loss"])


def test_classic_methods_table_on_smoke_pairs():
    from imse_study.evaluator import Evaluator
    from imse_study.registration.methods import classic_methods, default_evaluator

    assert default_evaluator("ct", "t1") == "phantom-ct-2d" and default_evaluator("t2", "t1") == "phantom-t1-2d"
    pairs = make_test_pairs("t1", "t2", profile="smoke", limit=1)
    evaluator = Evaluator(2, width=2, n_blocks=1)
    evaluator.meta = type("Meta", (), {"modality": "t1"})()
    methods = classic_methods(pairs, ("mi", "imse", "ants"), evaluator=evaluator, iterations=6)
    table = evaluate(methods, pairs, progress=False)
    assert set(table["method"]) == {"initial", "mi", "imse", "ants"}
    assert table["dice"].between(0, 1).all() and (table.loc[table.method != "initial", "seconds"] > 0).all()
    with pytest.raises(ValueError, match="unknown method"):
        classic_methods(pairs, ("sift",))


def test_time_limit_ends_the_run_as_an_epochs_run_would(tmp_path):
    timed = train_registration(tmp_path / "t", "ncc", "t1", "t2", profile="smoke", progress=False, time_limit=1e-9)
    model, meta = load_network(timed.checkpoint)  # finished: its final network exists
    assert len(timed.history) == 1 and meta.epochs == 1 and meta.command.endswith("--epochs 1")
    one = train_registration(tmp_path / "e", "ncc", "t1", "t2", profile="smoke", progress=False, epochs=1)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), one.model.state_dict().values()))
