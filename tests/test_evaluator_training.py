"""Evaluator training (Eq. 5): a smoke run, exact resume, DDP on 2 processes, the CLI, and the opt-in
recipe (U-Net, cosine schedule, early stopping, appearance changes, bfloat16)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from imse_study.cli import main
from imse_study.config import get_profile
from imse_study.evaluator import load_evaluator
from imse_study.evaluator.checkpoint import read_checkpoint
from imse_study.evaluator.model import Evaluator, UNetEvaluator
from imse_study.evaluator.train import (
    best_epoch, load_images, make_training_pair, plateau_reached, ranking_auc, scheduled_lr, train_evaluator,
)
from imse_study.training import save_model_checkpoint


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_training_pair_follows_eq5():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 1, 32, 32) * 2 - 1
    inputs, label = make_training_pair(x, "none", (2, 50), g)
    assert inputs.shape == (3, 2, 32, 32) and label.shape == (3, 1, 32, 32)
    # with no intensity noise the label is exactly channel 0 minus channel 1: x2 - x1
    torch.testing.assert_close(label, inputs[:, :1] - inputs[:, 1:])
    noisy, label2 = make_training_pair(x, "shuffle_remap", (2, 50), torch.Generator().manual_seed(0))
    torch.testing.assert_close(label2, label)  # the label never sees the noise
    assert not torch.allclose(noisy[:, 1:], inputs[:, 1:])
    assert noisy.min() >= -1 and noisy.max() <= 1


def test_ranking_auc_is_one_for_an_oracle():
    """An 'evaluator' that outputs the true difference ranks misaligned pairs above aligned ones."""
    oracle = lambda ref, other: ref - other  # noqa: E731
    ref = torch.zeros(6, 1, 32, 32) - 1
    ref[..., 8:24, 8:20] = 0.5
    assert ranking_auc(oracle, ref, ref.clone()) == 1.0


def test_resume_finishes_like_an_uninterrupted_run(tmp_path):
    full = train_evaluator(tmp_path / "full", "t1", 2, "smoke", progress=False)
    part = train_evaluator(tmp_path / "part", "t1", 2, "smoke", progress=False, stop_after_epochs=1)
    assert part.steps < full.steps and not (tmp_path / "part" / "evaluator.pt").exists()
    resumed = train_evaluator(tmp_path / "part", "t1", 2, "smoke", progress=False, resume=True)
    assert resumed.steps == full.steps
    for a, b in zip(resumed.model.state_dict().values(), full.model.state_dict().values()):
        torch.testing.assert_close(a, b)
    model, meta = load_evaluator(tmp_path / "part" / "evaluator.pt", modality="t1", dim=2)
    assert meta.steps == full.steps and meta.epochs == 2 and "train-evaluator" in meta.command
    log = (tmp_path / "part" / "log.csv").read_text().splitlines()
    assert log[0].startswith("epoch,step,train_l1") and "auc_t2" in log[0] and len(log) == 3
    with pytest.raises(ValueError, match="noise='shuffle_remap'"):
        train_evaluator(tmp_path / "part", "t1", 2, "smoke", progress=False, resume=True, noise="bezier")
    with pytest.raises(FileNotFoundError, match="without --resume"):
        train_evaluator(tmp_path / "none", "t1", 2, "smoke", progress=False, resume=True)


def test_budget_overrides_shape_the_run_and_its_reproduce_command(tmp_path):
    run = train_evaluator(tmp_path / "b", "t1", 2, "smoke", progress=False, epochs=1,
                          budget={"width": 4, "n_blocks": 1, "lr": 5e-4, "steps_per_epoch": 1, "batch_size": None})
    model, meta = load_evaluator(run.checkpoint)
    assert (meta.width, meta.n_blocks, run.steps, meta.extra["lr"]) == (4, 1, 1, 5e-4)
    assert meta.command.endswith("--epochs 1 --width 4 --blocks 1 --lr 0.0005 --steps-per-epoch 1")
    with pytest.raises(ValueError, match="unknown training setting"):
        train_evaluator(tmp_path / "x", "t1", 2, "smoke", progress=False, budget={"depth": 3})
    with pytest.raises(ValueError, match="lr must be positive"):
        train_evaluator(tmp_path / "x", "t1", 2, "smoke", progress=False, budget={"lr": 0.0})


def test_time_limit_ends_the_run_as_an_epochs_run_would(tmp_path):
    timed = train_evaluator(tmp_path / "t", "t1", 2, "smoke", progress=False, time_limit=1e-9)
    model, meta = load_evaluator(timed.checkpoint)  # a finished run: its final checkpoint exists
    assert len(timed.history) == 1 and meta.command.endswith("--epochs 1")
    one = train_evaluator(tmp_path / "e", "t1", 2, "smoke", progress=False, epochs=1)
    for a, b in zip(timed.model.state_dict().values(), one.model.state_dict().values()):
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="positive"):
        train_evaluator(tmp_path / "x", "t1", 2, "smoke", progress=False, time_limit=0)


def test_ddp_two_processes_end_with_identical_weights(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(Path(__file__).with_name("ddp_check.py")), str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "ranks.json").read_text())
    assert report["world_size"] == 2
    assert report["max_abs_difference"] == 0.0
    assert report["ranks"][0] == report["ranks"][1]
    assert (tmp_path / "run" / "evaluator.pt").exists()


def test_cli_train_error_map_and_translate(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train-evaluator", "--profile", "smoke", "--modality", "t1", "--out", str(run)]) == 0
    assert json.loads((run / "evaluator.json").read_text())["spacing"] == [5.0, 5.0]  # 240 mm / 48 px
    assert main(["phantom", "--out", str(tmp_path / "ph"), "--profile", "smoke"]) == 0
    t1, t2 = tmp_path / "ph" / "sub-3000_t1.nii.gz", tmp_path / "ph" / "sub-3000_t2.nii.gz"
    out = tmp_path / "err.nii.gz"
    assert main(["error-map", str(t1), str(t2), "--evaluator", str(run / "evaluator.pt"), "-o", str(out)]) == 0
    err, ref = nib.load(out), nib.load(t1)
    assert err.shape == ref.shape and np.allclose(err.affine, ref.affine)
    trans = tmp_path / "trans.nii.gz"
    assert main(["translate", str(t1), str(t2), "--evaluator", str(run / "evaluator.pt"), "-o", str(trans)]) == 0
    np.testing.assert_allclose(
        np.asarray(nib.load(trans).dataobj), np.clip(np.asarray(ref.dataobj) - np.asarray(err.dataobj), -1, 1), atol=1e-5
    )
    capsys.readouterr()
    assert main(["error-map", str(t1), str(t2), "--evaluator", "no-such-evaluator", "-o", str(out)]) == 2
    assert "no shipped evaluator called 'no-such-evaluator'" in capsys.readouterr().err


@pytest.mark.parametrize("recipe", [
    {"lr_schedule": "cosine", "warmup_steps": 2, "appearance": "mild", "precision": "bfloat16"},
    {"arch": "unet", "lr_schedule": "cosine", "appearance": "strong", "patience": 5},
])
def test_resume_is_exact_with_the_opt_in_recipe(tmp_path, recipe):
    """A run stopped after one epoch and resumed equals the uninterrupted run bit for bit: the learning
    rate is a function of the step, the appearance changes draw from the step's generator."""
    full = train_evaluator(tmp_path / "full", "t1", 2, "smoke", progress=False, epochs=3, budget=recipe)
    train_evaluator(tmp_path / "part", "t1", 2, "smoke", progress=False, epochs=3, budget=recipe, stop_after_epochs=1)
    resumed = train_evaluator(tmp_path / "part", "t1", 2, "smoke", progress=False, epochs=3, budget=recipe, resume=True)
    assert resumed.steps == full.steps and _same_weights(resumed.model, full.model)
    assert [r["val_l1"] for r in resumed.history] == [r["val_l1"] for r in full.history]
    lrs = [r["lr"] for r in full.history]
    assert lrs == sorted(lrs, reverse=True) and lrs[-1] < 0.1 * lrs[0]  # each epoch's last rate, decaying
    model, meta = load_evaluator(tmp_path / "part" / "evaluator.pt")
    assert isinstance(model, UNetEvaluator if recipe.get("arch") == "unet" else Evaluator)
    assert meta.arch == recipe.get("arch", "resnet") and meta.appearance == recipe["appearance"]
    assert meta.extra["lr_schedule"] == "cosine" and meta.extra["schedule_steps"] == full.steps
    for key, value in recipe.items():
        assert f"--{key.replace('_', '-')} {value}" in meta.command
    with pytest.raises(ValueError, match="lr_schedule='cosine'"):
        train_evaluator(tmp_path / "part", "t1", 2, "smoke", progress=False, epochs=3, resume=True,
                        budget={**recipe, "lr_schedule": "constant"})


def test_learning_rate_schedule():
    cfg = get_profile("smoke").evaluator2d
    assert scheduled_lr(cfg, 7, 10) == cfg.lr  # the default: constant
    from dataclasses import replace

    cosine = replace(cfg, lr=1.0, lr_schedule="cosine", warmup_steps=4)
    assert [scheduled_lr(cosine, s, 104) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert scheduled_lr(cosine, 54, 104) == pytest.approx(0.5)  # half way through the decay
    assert scheduled_lr(cosine, 104, 104) == 0.0 and scheduled_lr(cosine, 500, 104) == 0.0


def test_best_epoch_and_plateau():
    rows = [{"epoch": e, "val_l1": v} for e, v in enumerate([0.5, 0.4, 0.39, 0.41, 0.395], start=1)]
    assert best_epoch(rows) == 3 and best_epoch(rows, min_delta=0.02) == 2
    assert not plateau_reached(rows, None) and not plateau_reached(rows, 3)
    assert plateau_reached(rows, 2) and plateau_reached(rows, 3, min_delta=0.02)
    assert best_epoch([]) == 0 and not plateau_reached([], 1)


def test_early_stopping_keeps_the_best_and_its_command_reproduces_it(tmp_path):
    """With a min_delta nothing can beat, epoch 1 stays the best: the run stops after 1 + patience
    epochs and its evaluator is epoch 1's weights (those of a one-epoch run)."""
    recipe = {"patience": 1, "min_delta": 10.0}
    run = train_evaluator(tmp_path / "es", "t1", 2, "smoke", progress=False, epochs=5, budget=recipe)
    assert len(run.history) == 2 and run.best_epoch == 1
    one = train_evaluator(tmp_path / "one", "t1", 2, "smoke", progress=False, epochs=1)
    assert _same_weights(run.model, one.model)
    model, meta = load_evaluator(run.checkpoint)
    assert _same_weights(model, one.model) and (tmp_path / "es" / "best.pt").exists()
    assert (meta.epochs, meta.extra["best_epoch"], meta.extra["stopped_epoch"]) == (1, 1, 2)
    assert meta.extra["validation"]["val_l1"] == run.history[0]["val_l1"]
    last = read_checkpoint(tmp_path / "es" / "last.pt")
    assert last["meta"]["epochs"] == 2  # last.pt stays the latest state, for resume
    again = train_evaluator(tmp_path / "es", "t1", 2, "smoke", progress=False, epochs=5, budget=recipe, resume=True)
    assert again.steps == run.steps and _same_weights(again.model, one.model)  # nothing left to train
    args = meta.command.split()[1:]
    args[args.index("--out") + 1] = str(tmp_path / "again")
    assert main(args) == 0
    model2, meta2 = load_evaluator(tmp_path / "again" / "evaluator.pt")
    assert _same_weights(model2, one.model) and meta2.extra["stopped_epoch"] == 2


def test_time_limit_with_a_schedule_records_its_span(tmp_path):
    budget = {"lr_schedule": "cosine"}
    timed = train_evaluator(tmp_path / "t", "t1", 2, "smoke", progress=False, budget=budget, time_limit=1e-9)
    meta = load_evaluator(timed.checkpoint)[1]
    assert meta.command.endswith("--epochs 1 --lr-schedule cosine --schedule-epochs 2")
    same = train_evaluator(tmp_path / "e", "t1", 2, "smoke", progress=False, epochs=1,
                           budget={**budget, "schedule_epochs": 2})
    assert _same_weights(timed.model, same.model)


def test_bad_recipe_settings_say_what_to_choose(tmp_path):
    for budget, message in [({"arch": "vit"}, "unknown arch 'vit': choose one of resnet, unet"),
                            ({"lr_schedule": "step"}, "choose one of constant, cosine"),
                            ({"precision": "float16"}, "choose one of float32, bfloat16"),
                            ({"appearance": "wild"}, "choose one of none, mild, strong"),
                            ({"patience": 0}, "patience must be at least 1"),
                            ({"warmup_steps": -1}, "warmup_steps must be 0 or more")]:
        with pytest.raises(ValueError, match=message):
            train_evaluator(tmp_path / "x", "t1", 2, "smoke", progress=False, budget=budget)


def test_old_checkpoints_without_arch_load_as_the_resnet(tmp_path):
    model = Evaluator(2, 4, 1)
    meta = {"modality": "t1", "dim": 2, "size": [48, 48], "width": 4, "n_blocks": 1, "normalisation": "mr",
            "noise": "shuffle_remap", "n_range": [2, 50], "profile": "smoke"}
    save_model_checkpoint(tmp_path / "old.pt", model.state_dict(), meta)
    loaded, loaded_meta = load_evaluator(tmp_path / "old.pt")
    assert isinstance(loaded, Evaluator) and loaded_meta.arch == "resnet" and loaded_meta.appearance == "none"
    save_model_checkpoint(tmp_path / "new.pt", model.state_dict(), {**meta, "arch": "transformer"})
    with pytest.raises(ValueError, match="unknown evaluator architecture 'transformer'"):
        load_evaluator(tmp_path / "new.pt")


def test_phantom_version_reaches_the_loader_only_when_given(tmp_path, monkeypatch):
    from imse_study.data import phantom

    real, seen = phantom.load_phantom, []

    def recording(*args, **kwargs):
        seen.append(kwargs.pop("version", None))
        return real(*args, **kwargs)

    monkeypatch.setattr(phantom, "load_phantom", recording)
    load_images(["t1"], "val", 2, "smoke")
    assert seen == [None]
    run = train_evaluator(tmp_path / "v", "t1", 2, "smoke", progress=False, epochs=1, phantom_version=2,
                          budget={"steps_per_epoch": 1})
    assert seen[1:] == [2, 2]  # training and validation images
    meta = load_evaluator(run.checkpoint)[1]
    assert meta.extra["phantom_version"] == 2 and "--phantom-version 2" in meta.command


def test_cli_trains_the_opt_in_recipe(tmp_path, capsys):
    run = tmp_path / "cli"
    assert main(["train-evaluator", "--profile", "smoke", "--out", str(run), "--epochs", "1", "--arch", "unet",
                 "--lr-schedule", "cosine", "--warmup-steps", "1", "--appearance", "mild", "--precision",
                 "bfloat16", "--patience", "2", "--min-delta", "0.001"]) == 0
    model, meta = load_evaluator(run / "evaluator.pt", modality="t1", dim=2)
    assert isinstance(model, UNetEvaluator) and meta.extra["precision"] == "bfloat16"
    assert meta.command.endswith("--epochs 1 --arch unet --lr-schedule cosine --warmup-steps 1 --patience 2 "
                                 "--min-delta 0.001 --appearance mild --precision bfloat16")
    capsys.readouterr()
    assert main(["train-evaluator", "--profile", "smoke", "--out", str(run), "--appearance", "wild"]) == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'wild'" in err and len(err.strip().splitlines()) == 1
