"""QA of a cohort: ``imse-study qa --pairs PAIRS.csv -o OUT`` and :mod:`imse_study.qa.cohort`.

Tiny 32 x 32 x 3 images and the tiny untrained evaluator of clitools keep every pair fast; the
evaluator has no calibration, so pairs rank by score (the calibrated ranking is tested on rows).
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from clitools import assert_one_line_error, run_cli, write_evaluator

import imse_study.qa.assess as assess
import imse_study.qa.cohort as cohort
from imse_study.qa.cohort import rank_rows, read_pairs, run_cohort

SIDE = 32
SHIFTS = {"a": (0, 0), "b": (2, -1), "c": (5, 4)}


def _discs(centre: tuple[float, float]) -> np.ndarray:
    yy, xx = np.mgrid[:SIDE, :SIDE]
    r = np.hypot(yy - centre[0], xx - centre[1])
    labels = np.select([r < 4, r < 9, r < 13], [3, 2, 1], 0)
    return np.repeat(labels[..., None], 3, -1)


def _save(path: Path, data: np.ndarray) -> Path:
    nib.save(nib.Nifti1Image(data.astype(np.float32), np.diag([1.0, 1.0, 3.0, 1.0])), str(path))
    return path


@pytest.fixture(scope="module")
def cohort_files(tmp_path_factory) -> dict[str, Path]:
    """Three pairs (t2-like moved shifted by 0, 2 and 5 voxels from a t1-like target), a table of
    them plus one row whose moved image does not exist, and a tiny evaluator; paths relative."""
    root = tmp_path_factory.mktemp("cohort")
    (root / "images").mkdir()
    target = _save(root / "images" / "target.nii.gz", np.asarray((0, 300, 600, 900))[_discs((16, 16))])
    rows = []
    for name, (dy, dx) in SHIFTS.items():
        _save(root / "images" / f"{name}.nii.gz", np.asarray((0, 800, 500, 200))[_discs((16 + dy, 16 + dx))])
        rows.append({"moved": f"images/{name}.nii.gz", "target": "images/target.nii.gz", "id": name})
    rows.append({"moved": "images/missing.nii.gz", "target": "images/target.nii.gz", "id": "broken"})
    table = pd.DataFrame(rows).assign(moved_modality="t2", target_modality="t1")
    table.to_csv(root / "pairs.csv", index=False)
    table.iloc[:3].to_csv(root / "good.csv", index=False)
    return {"root": root, "csv": root / "pairs.csv", "good": root / "good.csv", "target": target,
            "evaluator": write_evaluator(root / "e2.pt", 2)}


def _qa(files: dict[str, Path], out: Path, *extra: object, csv: str = "csv") -> tuple[int, str, str]:
    return run_cli("qa", "--pairs", files[csv], "-o", out, "--evaluator", files["evaluator"], *extra)


def test_cohort_scores_every_pair_and_one_bad_pair_is_one_failed_row(cohort_files, tmp_path):
    code, out, err = _qa(cohort_files, tmp_path / "r", "--workers", "1")
    assert code == 0, err
    table = pd.read_csv(tmp_path / "r" / "qa.csv")
    assert len(table) == 4
    assert sorted(table["id"]) == ["a", "b", "broken", "c"]
    failed = table[table["status"] == "failed"]
    assert list(failed["id"]) == ["broken"]
    assert "missing.nii.gz" in failed["error"].iloc[0] and "\n" not in failed["error"].iloc[0]
    ok = table[table["status"] == "ok"]
    assert ok["score"].between(0, 1).all() and ok["error"].isna().all()
    for pair in ("a", "b", "c"):
        assert sorted(p.name for p in (tmp_path / "r" / "pairs" / pair).iterdir()) == [
            "error.nii.gz", "pair.json", "qa.json", "qa.png"]
    assert not (tmp_path / "r" / "pairs" / "broken").exists()
    assert "4 pairs scored" in out and "1 could not be scored" in out


def test_uncalibrated_cohort_ranks_by_score_worst_first(cohort_files, tmp_path):
    assert _qa(cohort_files, tmp_path / "r", "--workers", "1")[0] == 0
    table = pd.read_csv(tmp_path / "r" / "qa.csv")
    assert list(table["rank"]) == [1, 2, 3, 4]
    assert table["id"].iloc[0] == "broken"  # a pair that could not be scored is shown first
    scores = table["score"].iloc[1:].tolist()
    assert scores == sorted(scores)
    assert table["misalignment_mm"].isna().all() and table["flagged"].isna().all()


def test_calibrated_rows_rank_by_misalignment_and_flag_likely_failures():
    rows = [{"id": "fine", "status": "ok", "score": 0.9, "misalignment_mm": 0.5, "p_failed": 0.1},
            {"id": "bad", "status": "ok", "score": 0.95, "misalignment_mm": 6.0, "p_failed": 0.8},
            {"id": "mid", "status": "ok", "score": 0.7, "misalignment_mm": 2.0, "p_failed": 0.5},
            {"id": "unknown", "status": "ok", "score": 0.2, "misalignment_mm": None, "p_failed": None},
            {"id": "gone", "status": "failed", "error": "FileNotFoundError: x"}]
    for row in rows[:4]:
        row.update(cohort.flatten({"p_failed": row["p_failed"]}))
    table = rank_rows(rows)
    assert list(table["id"]) == ["gone", "bad", "mid", "fine", "unknown"]
    assert list(table["flagged"][1:]) == [True, True, False, None]


def test_flatten_spreads_intervals_scores_and_regions():
    row = cohort.flatten({"score": 0.9, "misalignment_mm": 2.0, "misalignment_mm_interval": [1.0, 3.0],
                          "p_failed": 0.3, "p_failed_interval": [0.1, 0.6], "scores": {"mae": 0.1},
                          "regions": [{"id": 1, "mean_error": 0.4}], "notes": ["x", "y"], "files": {"a": "b"}})
    assert row["misalignment_mm_low"] == 1.0 and row["misalignment_mm_high"] == 3.0
    assert row["p_failed_low"] == 0.1 and row["p_failed_high"] == 0.6
    assert row["score_mae"] == 0.1 and row["n_regions"] == 1 and '"mean_error": 0.4' in row["worst_region"]
    assert row["notes"] == "x; y" and "files" not in row and row["flagged"] is False


def test_resume_skips_pairs_already_done(cohort_files, tmp_path, monkeypatch):
    out = tmp_path / "r"
    assert _qa(cohort_files, out, "--workers", "1", csv="good")[0] == 0
    first = pd.read_csv(out / "qa.csv")
    # a stop after pair c's files but before qa.csv knew of it: c is read back, not scored again
    pd.read_csv(out / "qa.csv").query("id != 'c'").to_csv(out / "qa.csv", index=False)
    calls = []
    original = assess.assess_files
    monkeypatch.setattr(assess, "assess_files", lambda *a, **k: calls.append(a) or original(*a, **k))
    assert _qa(cohort_files, out, "--workers", "1")[0] == 0
    assert [Path(a[0]).name for a in calls] == ["missing.nii.gz"]
    again = pd.read_csv(out / "qa.csv")
    assert len(again) == 4
    merged = again.set_index("id").loc[["a", "b", "c"], "score"]
    assert np.allclose(merged.to_numpy(), first.set_index("id").loc[["a", "b", "c"], "score"].to_numpy())
    calls.clear()
    assert _qa(cohort_files, out, "--workers", "1", "--overwrite")[0] == 0
    assert len(calls) == 4
    # pair a now names another moved image: scored again (not read back), its old outputs replaced
    calls.clear()
    swapped = pd.read_csv(cohort_files["csv"])
    swapped.loc[0, "moved"] = "images/c.nii.gz"
    swapped.to_csv(cohort_files["root"] / "swapped.csv", index=False)
    assert run_cli("qa", "--pairs", cohort_files["root"] / "swapped.csv", "-o", out, "--evaluator",
                   cohort_files["evaluator"], "--workers", "1")[0] == 0
    assert sorted(Path(a[0]).name for a in calls) == ["c.nii.gz", "missing.nii.gz"]
    final = pd.read_csv(out / "qa.csv").set_index("id")
    assert np.isclose(final.loc["a", "score"], final.loc["c", "score"])


def test_html_report_lists_every_pair_offline(cohort_files, tmp_path):
    assert _qa(cohort_files, tmp_path / "r", "--workers", "1")[0] == 0
    page = (tmp_path / "r" / "index.html").read_text()
    for pair in ("a", "b", "c", "broken"):
        assert f">{pair}</span>" in page
    for pair in ("a", "b", "c"):
        assert f'src="pairs/{pair}/qa.png"' in page
        assert (tmp_path / "r" / "pairs" / pair / "qa.png").is_file()
    assert "<script>" in page and not re.search(r"<script[^>]+src=|https?://", page)
    assert html.escape("missing.nii.gz") in page and page.count("<tr") == 5


def _ok_rows(path: Path) -> pd.DataFrame:
    table = pd.read_csv(path)
    return table.drop(columns=["worst_region"]).set_index("id").sort_index()


def test_two_workers_give_the_same_rows_as_one(cohort_files, tmp_path):
    assert _qa(cohort_files, tmp_path / "one", "--workers", "1")[0] == 0
    code, _, err = _qa(cohort_files, tmp_path / "two", "--workers", "2")
    assert code == 0, err
    one, two = _ok_rows(tmp_path / "one" / "qa.csv"), _ok_rows(tmp_path / "two" / "qa.csv")
    assert list(one.index) == list(two.index)
    pd.testing.assert_frame_equal(one.drop(columns=["error"]), two.drop(columns=["error"]))
    assert one["error"].fillna("").str.replace(str(tmp_path / "one"), "").equals(
        two["error"].fillna("").str.replace(str(tmp_path / "two"), ""))


def test_a_local_dask_cluster_runs_the_cohort(cohort_files, tmp_path):
    distributed = pytest.importorskip("distributed", reason="pip install distributed to run a cohort on Dask")
    with distributed.LocalCluster(n_workers=2, processes=False, threads_per_worker=1, dashboard_address=None) as cluster:
        code, _, err = _qa(cohort_files, tmp_path / "dask", "--scheduler", cluster.scheduler_address)
    assert code == 0, err
    assert _qa(cohort_files, tmp_path / "local", "--workers", "1")[0] == 0
    dask_rows, local_rows = _ok_rows(tmp_path / "dask" / "qa.csv"), _ok_rows(tmp_path / "local" / "qa.csv")
    assert list(dask_rows.index) == ["a", "b", "broken", "c"]
    assert np.allclose(dask_rows["score"].dropna(), local_rows["score"].dropna())
    assert list(dask_rows["status"]) == list(local_rows["status"])


def test_read_pairs_resolves_paths_against_the_table(cohort_files):
    pairs = read_pairs(cohort_files["csv"])
    assert [p.id for p in pairs] == ["a", "b", "c", "broken"]
    assert pairs[0].moved == str(cohort_files["root"] / "images" / "a.nii.gz")
    assert pairs[0].moved_modality == "t2" and pairs[0].labels is None


def test_ids_default_to_row_and_file_name(tmp_path):
    (tmp_path / "p.csv").write_text("moved,target\n/x/m one.nii.gz,/x/t.nii.gz\nm2.nii,t.nii\n")
    assert [p.id for p in read_pairs(tmp_path / "p.csv")] == ["0001-m_one", "0002-m2"]


def test_cohort_cli_errors_are_one_line(cohort_files, tmp_path):
    files, out = cohort_files, tmp_path / "r"
    code, _, err = run_cli("qa", "--pairs", tmp_path / "none.csv", "-o", out)
    assert_one_line_error(code, err, "none.csv", "no such file")
    (tmp_path / "cols.csv").write_text("image,reference\na.nii.gz,b.nii.gz\n")
    code, _, err = run_cli("qa", "--pairs", tmp_path / "cols.csv", "-o", out)
    assert_one_line_error(code, err, "lacks the column(s) moved, target")
    (tmp_path / "bad.csv").write_bytes(b"moved,target\n\xff\xfe\x00,\"unclosed\n")
    code, _, err = run_cli("qa", "--pairs", tmp_path / "bad.csv", "-o", out)
    assert_one_line_error(code, err, "bad.csv")
    (tmp_path / "empty.csv").write_text("moved,target\n")
    code, _, err = run_cli("qa", "--pairs", tmp_path / "empty.csv", "-o", out)
    assert_one_line_error(code, err, "lists no pairs")
    code, _, err = run_cli("qa", files["target"], files["target"], "--pairs", files["csv"], "-o", out)
    assert_one_line_error(code, err, "not both")
    code, _, err = run_cli("qa", "--pairs", files["csv"], "-o", out, "--workers", "0")
    assert_one_line_error(code, err, "--workers 0")
    code, _, err = run_cli("qa", files["target"], files["target"], "-o", out, "--workers", "2")
    assert_one_line_error(code, err, "go with --pairs")
    code, _, err = run_cli("qa", "--pairs", files["csv"], "-o", out, "--evaluator", "no-such-evaluator")
    assert_one_line_error(code, err, "no-such-evaluator")
    assert not out.exists()


def test_scheduler_without_distributed_is_one_line(cohort_files, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "distributed", None)
    code, _, err = _qa(cohort_files, tmp_path / "r", "--scheduler", "tcp://127.0.0.1:1")
    assert_one_line_error(code, err, "pip install distributed")


def test_run_cohort_without_progress_returns_the_ranked_table(cohort_files, tmp_path):
    table = run_cohort(read_pairs(cohort_files["good"]), tmp_path / "r", evaluator=str(cohort_files["evaluator"]),
                       workers=1, progress=False)
    assert list(table["rank"]) == [1, 2, 3] and set(table["status"]) == {"ok"}
