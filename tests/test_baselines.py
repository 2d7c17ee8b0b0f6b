"""Translation baselines (CycleGAN, RegGAN): smoke training, exact resume, checkpoints, translation, metrics."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from imse_study.baselines import load_translator, train_translator, translate_with, translation_metrics
from imse_study.baselines.reggan import smoothing_loss
from imse_study.baselines.train import KIND_MODULES, main
from imse_study.baselines.translator import (
    KINDS, Discriminator, Translator, evaluate_translation, registration_net, translator_config,
)
from imse_study.cli import main as cli_main


@pytest.fixture(scope="module")
def reggan_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("reggan")
    return out, train_translator("reggan", "t2", "t1", out, dim=2, profile="smoke", progress=False)


def _finite_history(history):
    return all(np.isfinite(v) for row in history for k, v in row.items() if isinstance(v, float))


def test_networks_shapes_and_ranges():
    x = torch.rand(2, 1, 48, 48) * 2 - 1
    g = Translator(2, width=4, n_blocks=1)
    y = g(x)
    assert y.shape == x.shape and y.abs().max() <= 1
    assert Discriminator(2, 4, 2)(x).shape[:2] == (2, 1)
    field = registration_net(2, (4, 8, 8, 8), (8,))(torch.cat([x, x], 1))
    assert field.shape == (2, 2, 48, 48) and field.abs().max() < 1e-2  # starts near the identity


def test_reggan_smoothing_matches_its_published_formula():
    u = torch.randn(2, 2, 16, 12)
    dy, dx = (u[:, :, 1:] - u[:, :, :-1]) ** 2, (u[:, :, :, 1:] - u[:, :, :, :-1]) ** 2
    torch.testing.assert_close(smoothing_loss(u), dy.mean() + dx.mean())


def test_reggan_smoke_run_writes_checkpoint_and_log(reggan_run):
    out, result = reggan_run
    assert result.steps == 6 and result.checkpoint == out / "translator.pt" and result.checkpoint.exists()
    assert _finite_history(result.history)
    meta = json.loads((out / "translator.json").read_text())
    for key in ("kind", "source", "target", "dim", "size", "profile", "steps", "seed", "package_version", "command"):
        assert key in meta
    assert (meta["kind"], meta["source"], meta["target"], meta["size"]) == ("reggan", "t2", "t1", [48, 48])
    assert meta["weights"] == {"adv": 1.0, "corr": 20.0, "smooth": 10.0} and "--kind reggan" in meta["command"]
    log = (out / "log.csv").read_text().splitlines()
    assert len(log) == 3 and "corr" in log[0] and "val_nmae" in log[0]
    first, last = result.history[0], result.history[-1]
    assert last["g_total"] < first["g_total"]  # 6 steps at lr 1e-3 already lower the loss


@pytest.mark.parametrize("dim", [2, 3])
def test_cyclegan_smoke_runs(tmp_path, dim):
    result = train_translator("cyclegan", "t1", "t2", tmp_path, dim=dim, profile="smoke", progress=False)
    assert result.checkpoint.exists() and _finite_history(result.history)
    assert {"cycle", "g_adv", "d_total", "val_ssim"} <= set(result.history[-1])
    model = load_translator(result.checkpoint, source="t1", target="t2")
    assert model.meta.kind == "cyclegan" and model.meta.dim == dim and not model.training


def test_reggan_3d_smoke_runs(tmp_path):
    result = train_translator("reggan", "t1", "ct", tmp_path, dim=3, profile="smoke", progress=False)
    assert result.checkpoint.exists() and _finite_history(result.history)
    image = np.zeros((16, 32, 32), np.float32) - 1
    assert translate_with(load_translator(result.checkpoint), image).shape == image.shape


@pytest.mark.parametrize("kind", ["reggan", "cyclegan"])
def test_resume_finishes_like_an_uninterrupted_run(tmp_path, kind):
    full = train_translator(kind, "t2", "t1", tmp_path / "full", profile="smoke", progress=False)
    part = train_translator(kind, "t2", "t1", tmp_path / "part", profile="smoke", progress=False, stop_after_epochs=1)
    assert part.steps < full.steps and not (tmp_path / "part" / "translator.pt").exists()
    resumed = train_translator(kind, "t2", "t1", tmp_path / "part", profile="smoke", progress=False, resume=True)
    assert resumed.steps == full.steps
    a = torch.load(tmp_path / "full" / "last.pt", weights_only=True)["train_state"]["models"]
    b = torch.load(tmp_path / "part" / "last.pt", weights_only=True)["train_state"]["models"]
    for name in a:  # every network, not only the generator
        for key in a[name]:
            torch.testing.assert_close(a[name][key], b[name][key], rtol=0, atol=0)
    assert len(resumed.history) == 2
    with pytest.raises(ValueError, match="kind="):
        other = "cyclegan" if kind == "reggan" else "reggan"
        train_translator(other, "t2", "t1", tmp_path / "part", profile="smoke", progress=False, resume=True)
    with pytest.raises(FileNotFoundError, match="start without"):
        train_translator(kind, "t2", "t1", tmp_path / "none", profile="smoke", progress=False, resume=True)


def test_a_time_limited_run_pauses_and_resumes_from_the_command_line(tmp_path, capsys):
    """``--time-limit`` stops after the epoch it runs out in, keeping last.pt; ``--resume`` finishes the run
    exactly as an uninterrupted one (a translator's settings include its planned epochs: no early final)."""
    out = tmp_path / "timed"
    args = ["train-translator", "--kind", "reggan", "--source", "t2", "--target", "t1", "--profile", "smoke",
            "--out", str(out), "--no-progress"]
    assert cli_main([*args, "--time-limit", "1e-9"]) == 0
    assert "stopped after epoch 1" in capsys.readouterr().out and not (out / "translator.pt").exists()
    assert cli_main([*args, "--resume", "--time-limit", "3600"]) == 0
    assert "translator.pt" in capsys.readouterr().out
    full = train_translator("reggan", "t2", "t1", tmp_path / "full", profile="smoke", progress=False)
    resumed = load_translator(out / "translator.pt")
    assert resumed.meta.steps == full.steps
    assert all(torch.equal(a, b) for a, b in zip(resumed.state_dict().values(), full.model.state_dict().values()))


def test_ddp_two_processes_train_a_gan_to_identical_weights(tmp_path):
    """CycleGAN under torchrun: each rank draws its own batches, the averaged gradients keep all four networks equal."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(Path(__file__).with_name("ddp_check.py")), str(tmp_path), "cyclegan"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((tmp_path / "ranks.json").read_text())
    assert report["world_size"] == 2 and report["max_abs_difference"] == 0.0
    meta = json.loads((tmp_path / "run" / "translator.json").read_text())
    assert meta["extra"]["world_size"] == 2 and meta["steps"] == report["ranks"][0][2]


def test_every_kind_has_its_module():
    assert tuple(KIND_MODULES) == KINDS
    with pytest.raises(ValueError, match="choose one of cyclegan, reggan"):
        train_translator("pix2pix", "t2", "t1", "unused", profile="smoke")


def test_load_checks_modalities(reggan_run, tmp_path):
    out, _ = reggan_run
    model = load_translator(out / "translator.pt", source="T2", target="t1")
    assert model.meta.source == "t2" and model.meta.steps == 6
    with pytest.raises(ValueError, match=r"translates 't2' -> 't1'.*not 'ct' -> 't1'"):
        load_translator(out / "translator.pt", source="ct")
    with pytest.raises(ValueError, match="--source t1 --target t2"):
        load_translator(out / "translator.pt", source="t1", target="t2")
    with pytest.raises(FileNotFoundError, match="no translator checkpoint"):
        load_translator(tmp_path / "missing.pt")
    torch.save({"state_dict": {}, "meta": {"modality": "t1"}}, tmp_path / "evaluator.pt")
    with pytest.raises(ValueError, match="not a translator checkpoint"):
        load_translator(tmp_path / "evaluator.pt")


def test_translate_with_keeps_type_shape_and_range(reggan_run):
    out, _ = reggan_run
    model = load_translator(out / "translator.pt")
    image = np.random.default_rng(0).uniform(-1, 1, (50, 46)).astype(np.float32)  # not divisible by 4
    y = translate_with(model, image)
    assert isinstance(y, np.ndarray) and y.shape == image.shape and np.abs(y).max() <= 1
    batch = torch.from_numpy(image[:48, :44]).expand(3, 1, 48, 44)
    yb = translate_with(model, batch)
    assert isinstance(yb, torch.Tensor) and yb.shape == batch.shape
    torch.testing.assert_close(yb[0, 0], torch.from_numpy(translate_with(model, image[:48, :44])))
    with pytest.raises(ValueError, match="2D translator"):
        translate_with(model, np.zeros((2, 2, 48, 48), np.float32))


@pytest.mark.filterwarnings("ignore:divide by zero")
def test_translation_metrics_on_known_errors():
    truth = np.random.default_rng(1).uniform(-1, 1, (2, 32, 32))
    same = translation_metrics(truth, truth)
    assert np.allclose(same["nmae"], 0) and np.all(np.isinf(same["psnr"])) and np.allclose(same["ssim"], 1)
    shifted = translation_metrics(truth + 0.2, truth)
    assert np.allclose(shifted["nmae"], 0.1)  # mean |error| / range 2
    assert np.allclose(shifted["psnr"], 10 * np.log10(4 / 0.04))  # data_range 2
    ident = torch.nn.Identity()
    ident.dim = 2
    ident.register_parameter("p", torch.nn.Parameter(torch.zeros(1)))
    scores = evaluate_translation(ident, truth.astype(np.float32), truth + 0.2)
    assert scores["nmae"] == pytest.approx(0.1, abs=1e-6)


def test_cli_records_weights_in_the_command(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["--kind", "reggan", "--source", "t2", "--target", "t1", "--profile", "smoke", "--out", str(out),
                 "--weight", "smooth=5", "--no-progress"]) == 0
    meta = json.loads((out / "translator.json").read_text())
    assert meta["weights"]["smooth"] == 5.0 and "--weight smooth=5" in meta["command"]
    assert "translator.pt" in capsys.readouterr().out
    with pytest.raises(ValueError, match="unknown reggan loss weight"):
        train_translator("reggan", "t2", "t1", tmp_path / "bad", profile="smoke", weights={"cycle": 1.0})


def test_config_sizes():
    quick = translator_config("quick", 2)
    assert (quick.width, quick.n_blocks, quick.batch_size) == (16, 4, 4)
    with pytest.raises(ValueError, match="unknown profile"):
        translator_config("huge", 2)
