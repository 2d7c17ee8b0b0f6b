"""The evaluator transfer benchmark (``benchmarks/evaluator_transfer.py``) end to end in the smoke profile,
and the phantom version/variant reaching the registration test pairs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from benchscripts import load_benchmark

from imse_study.augment import random_spatial_displacement
from imse_study.data.phantom import load_phantom
from imse_study.evaluator.train import train_evaluator
from imse_study.registration.evaluate import TEST_SEED, make_test_pairs
from imse_study.warp import warp

@pytest.fixture(scope="module")
def bench():
    return load_benchmark("evaluator_transfer")


@pytest.fixture(scope="module")
def smoke_evaluator(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("transfer") / "tiny-t1"
    train_evaluator(out, "t1", 2, "smoke", progress=False, epochs=1)
    return out / "evaluator.pt"


def _same_pairs(a, b) -> bool:
    return (a.ids == b.ids and all(torch.equal(getattr(a, k), getattr(b, k))
                                   for k in ("moving", "target", "moving_labels", "target_labels")))


def test_default_test_pairs_are_the_version_1_pairs_as_before():
    pairs = make_test_pairs("t1", "t2", "test", 2, "smoke", limit=2)
    assert _same_pairs(pairs, make_test_pairs("t1", "t2", "test", 2, "smoke", limit=2, version=None, variant=None))
    assert _same_pairs(pairs, make_test_pairs("t1", "t2", "test", 2, "smoke", limit=2, version=1))
    # rebuilt from the phantom itself: its default images, moved by the paper transform of seed TEST_SEED + i
    data = load_phantom("test", 2, "smoke", ("t1", "t2"))
    t1 = torch.from_numpy(data.images["t1"][:2]).unsqueeze(1)
    fields = torch.cat([random_spatial_displacement((48, 48), 1, generator=torch.Generator().manual_seed(TEST_SEED + i))
                        for i in range(2)])
    assert torch.equal(pairs.moving, warp(t1, fields))
    assert torch.equal(pairs.target, torch.from_numpy(data.images["t2"][:2]).unsqueeze(1))


@pytest.mark.slow
def test_version_2_and_its_variants_reach_the_test_pairs():
    plain = make_test_pairs("t1", "t2", "test", 2, "smoke", limit=2)
    v2 = make_test_pairs("t1", "t2", "test", 2, "smoke", limit=2, version=2)
    noisy = make_test_pairs("t1", "t2", "test", 2, "smoke", limit=2, version=2, variant="noisy")
    assert v2.ids == plain.ids and v2.moving.shape == plain.moving.shape
    assert not torch.equal(v2.target, plain.target) and not torch.equal(noisy.target, v2.target)
    assert torch.equal(noisy.target_labels, v2.target_labels)  # the same anatomy, only the look differs
    with pytest.raises(ValueError, match="held-out test set"):
        make_test_pairs("t1", "t2", "val", 2, "smoke", version=2, variant="noisy")


@pytest.mark.slow
def test_measure_writes_tidy_rows_for_every_direction_method_and_variant(bench, smoke_evaluator, tmp_path):
    settings = bench.Settings(profile="smoke", pairs=1, iterations=4, phantom_version=2, variants=("noisy",))
    written = bench.measure(smoke_evaluator, tmp_path / "out", settings, progress=False)
    table = pd.read_csv(written["registration"])
    assert list(table.columns[:9]) == ["evaluator", "evaluator_modality", "profile", "phantom_version", "variant",
                                       "direction", "method", "pair", "iterations"]
    assert {"dice", "hd95", "seconds", "dice_wm"} <= set(table.columns)
    blocks = set(zip(table["variant"], table["direction"], table["method"]))
    for direction in ("t1->t2", "t2->t1"):
        assert {("plain", direction, m) for m in ("initial", "mi", "imse")} <= blocks
        assert ("noisy", direction, "imse") in blocks and ("noisy", direction, "mi") not in blocks
    assert table["evaluator"].eq("tiny-t1").all() and table["phantom_version"].eq(2).all()
    ranking = pd.read_csv(written["ranking"])
    assert sorted(ranking["other"]) == ["ct", "pd", "t2"] and ranking["auc"].between(0, 1).all()
    summary = written["summary"].read_text()
    assert "IMSE >= MI" in summary and "| noisy | t1->t2 | imse |" in summary
    assert "learning_curve" in written and not (tmp_path / "out" / bench.PARTIAL).exists()

    with pytest.raises(FileExistsError, match="--overwrite"):
        bench.measure(smoke_evaluator, tmp_path / "out", settings, progress=False)

    # an interrupted run: its finished blocks are kept and only the missing ones are registered
    done = table[table["variant"] == "plain"].drop(columns=["evaluator", "evaluator_modality", "profile", "iterations"])
    done.to_csv(tmp_path / "out" / bench.PARTIAL, index=False)
    calls = []
    original = bench.register_block

    def recording(model, meta, s, variant, moving, target, methods, tick=lambda: None):
        calls.append((variant, moving, target))
        return original(model, meta, s, variant, moving, target, methods, tick)

    bench.register_block = recording
    try:
        resumed = bench.measure(smoke_evaluator, tmp_path / "out", settings, resume=True, progress=False)
    finally:
        bench.register_block = original
    assert calls == [("noisy", "t1", "t2"), ("noisy", "t2", "t1")]
    again = pd.read_csv(resumed["registration"])
    pd.testing.assert_frame_equal(again[again["variant"] == "plain"], table[table["variant"] == "plain"])


def test_bad_settings_are_one_line_errors(bench, smoke_evaluator, tmp_path, capsys):
    with pytest.raises(SystemExit):
        bench.main([str(smoke_evaluator), "--profile", "smoke", "--variants", "noisy", "--out", str(tmp_path / "a")])
    assert "pass --phantom-version 2" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # a quick-profile evaluator on the smoke phantom's coarser pixels
        bench.main(["phantom-t1-2d", "--profile", "smoke", "--out", str(tmp_path / "b")])
    assert "--profile quick" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.main([str(smoke_evaluator), "--profile", "smoke", "--partner", "t1", "--out", str(tmp_path / "c")])
    assert "cannot pair with a t1 evaluator" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.main([str(smoke_evaluator), "--profile", "smoke", "--resume", "--out", str(tmp_path / "d")])
    assert "no interrupted run" in capsys.readouterr().err
    assert not any(p.exists() for p in (tmp_path / "a", tmp_path / "b", tmp_path / "c"))
    assert bench.evaluator_name("runs/phantom-t1-2d-v2/evaluator.pt") == "phantom-t1-2d-v2"
    assert bench.parse_variants(None, 2) == bench.variant_names() and bench.parse_variants(None, 1) == ()


def test_a_manifest_set_refuses_a_phantom_version():
    from imse_study.data.aligned import load_aligned

    with pytest.raises(ValueError, match="phantom only"):
        load_aligned("t1", "t2", dataset="my_manifest_set", version=2)
