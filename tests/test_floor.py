"""An evaluator's floor (mean |E| of aligned test pairs and of an image against itself) and the plain
reading of a score against it."""

import json

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from imse_study.evaluator import Evaluator, EvaluatorMeta, save_checkpoint
from imse_study.evaluator.floor import (
    NO_FLOOR,
    foreground_score,
    load_floor,
    main,
    reading,
    record_floor,
    verdict,
)
from imse_study.evaluator.pretrained import available_pretrained

FLOOR = {"aligned_mean": 0.10, "aligned_p95": 0.15, "self_mean": 0.05, "self_p95": 0.06,
         "by_modality": {"t2": {"mean": 0.20, "p95": 0.30, "pairs": 4}}}
ORDER = ("as low as", "like", "worse than 95 %", "over twice")


def test_foreground_score_is_the_mean_over_the_union_of_the_masks():
    reference = np.full((4, 4), -1.0)
    other = np.full((4, 4), -1.0)
    reference[0, :2], other[1, :2] = 0.5, 0.5  # four foreground pixels in all
    error = np.zeros((4, 4))
    error[0, 0], error[3, 3] = 0.8, 5.0  # the background error does not count
    assert foreground_score(reference, other, error) == pytest.approx(0.8 / 4)
    assert foreground_score(np.full((2, 2), -1.0), np.full((2, 2), -1.0), np.ones((2, 2))) == 1.0


@pytest.mark.parametrize("score, modality, start", [
    (0.04, None, "as low as an image against itself"), (0.12, None, "like aligned test pairs"),
    (0.2, None, "worse than 95 % of aligned test pairs"), (0.35, None, "over twice"),
    (0.2, "t2", "like aligned t2 test pairs"), (0.2, "ct", "worse than 95 % of aligned test pairs")])
def test_reading_against_the_floor(score, modality, start):
    text = reading(score, FLOOR, modality)
    assert text.startswith(start) and verdict(score, FLOOR, modality) == text.split(" (")[0]
    assert "95 % below" in text


def test_no_floor_is_said_not_raised():
    assert reading(0.1, None).startswith(NO_FLOOR) and verdict(0.1, None) == NO_FLOOR
    assert load_floor("/nonexistent/evaluator.pt") is None


def test_self_above_the_aligned_pairs_never_reads_as_self():
    floor = dict(FLOOR, self_mean=0.2)  # an evaluator that scores an image against itself worse
    assert verdict(0.12, floor).startswith("like aligned")


@given(st.lists(st.floats(0, 2, allow_nan=False), min_size=2, max_size=6))
def test_a_larger_score_never_reads_better(scores):
    ranks = [next(i for i, p in enumerate(ORDER) if verdict(s, FLOOR).startswith(p)) for s in sorted(scores)]
    assert ranks == sorted(ranks)


def test_every_shipped_evaluator_has_a_floor():
    names = available_pretrained()
    assert names
    for name in names:
        floor = load_floor(name)
        assert floor is not None, name
        assert 0 < floor["aligned_mean"] <= floor["aligned_p95"] < 2 and 0 <= floor["self_mean"] < 2
        assert floor["aligned_pairs"] == sum(v["pairs"] for k, v in floor["by_modality"].items() if k != "mr")


def test_record_floor_writes_the_json_block_and_refuses_to_clobber(tmp_path, capsys):
    torch.manual_seed(0)
    meta = EvaluatorMeta(modality="t1", dim=2, size=(48, 48), width=2, n_blocks=1, normalisation="mr",
                         noise="shuffle_remap", n_range=(2, 50), profile="smoke")
    path = save_checkpoint(tmp_path / "e.pt", Evaluator(2, 2, 1), meta)
    before = json.loads(path.with_suffix(".json").read_text())
    weights = path.read_bytes()
    assert main([str(path)]) == 0
    after = json.loads(path.with_suffix(".json").read_text())
    assert {k: v for k, v in after.items() if k != "floor"} == before and path.read_bytes() == weights
    floor = after["floor"]
    assert set(floor["by_modality"]) == {"t2", "pd", "ct", "mr"} and floor["aligned_mean"] > 0
    assert load_floor(path) == floor
    assert main([str(path)]) == 2 and "--overwrite" in capsys.readouterr().err
    _, again = record_floor(path, overwrite=True)
    assert again == floor  # deterministic: the same test pairs, the same evaluator
