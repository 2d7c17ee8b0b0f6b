"""Evaluator training (Eq. 5): a smoke run, exact resume, DDP on 2 processes, and the CLI."""

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
from imse_study.evaluator import load_evaluator
from imse_study.evaluator.train import make_training_pair, ranking_auc, train_evaluator


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
