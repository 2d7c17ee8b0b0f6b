"""The study runner, the notebooks (smoke profile, through papermill) and the book build.

The notebook and book tests are integration tests (``pytest -m integration``); the runner's
bookkeeping is tested without running anything.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from imse_study import modalities
from imse_study.checkout import ENV_CHECKOUT, find_checkout
from imse_study.study import runner as study

REPO = Path(__file__).resolve().parents[1]
SMOKE_RUNS = [(e.stem, name, params) for e in study.select(None) for name, params in e.runs()]


def test_experiment_grid_names():
    runs = dict((name, params) for _, name, params in SMOKE_RUNS)
    assert {"00_data": {}, "01_evaluator_t1t2": {"modality": "t1t2"}, "01_evaluator_ctmr": {"modality": "ctmr"},
            "03_traditional_ctmr": {"modality": "ctmr"}}.items() <= runs.items()
    assert runs["02_register_ctmr"] == {"modality": "ctmr", "dim": 2}  # 2D keeps the page name of 2D-only notebooks
    assert runs["02_register_ctmr_3d"]["dim"] == 3 and "cyclegan" not in runs["02_register_ctmr_3d"]["methods"]
    assert all((REPO / "notebooks" / f"{e.stem}.ipynb").exists() for e in study.EXPERIMENT_LIST)
    assert study.Experiment("02_register", ("ctmr",), (2, 3)).runs()[1] == ("02_register_ctmr_3d", {"modality": "ctmr", "dim": 3})


def test_unknown_notebook_is_a_clear_error():
    with pytest.raises(SystemExit, match="unknown notebook.*available: 00_data"):
        study.select("00_data,no_such")
    with pytest.raises(SystemExit, match="one page of them.*02_register_ctmr_3d"):
        study.plan("02_register_ctmr_4d")


def test_plan_takes_notebooks_or_single_pages():
    assert [name for _, name, _ in study.plan("02_register_ctmr_3d,00_data")] == ["02_register_ctmr_3d", "00_data"]
    assert [name for _, name, _ in study.plan("01_evaluator")] == ["01_evaluator_t1t2", "01_evaluator_ctmr"]
    assert [e.stem for e in study.select("02_register_t1t2,00_data")] == ["00_data", "02_register"]


def test_modality_pairs_and_paper_tables():
    assert modalities.pair("ctmr").evaluator == "ct"
    with pytest.raises(ValueError, match="t1t2, ctmr"):
        modalities.pair("t2t1")
    tables = study.paper_tables()
    for pair in modalities.PAIRS.values():
        assert "imse" in tables["table5_translation"][pair.paper_table5]
    assert set(tables["table3_shuffle_remap_N"]) >= {modalities.pair("ctmr").paper_table5}


def test_runner_finds_the_checkout_from_the_working_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(ENV_CHECKOUT, raising=False)
    monkeypatch.chdir(REPO / "notebooks")
    assert find_checkout() == REPO and study.paper_tables()["table5_translation"]
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="run from a checkout, or pass --repo"):
        study.paper_tables()
    with pytest.raises(SystemExit):
        study.main(["--profile", "smoke", "--only", "00_data"])
    assert "no checkout of imse-study in" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        study.main(["--profile", "smoke", "--only", "00_data", "--repo", str(tmp_path)])
    assert "--repo" in capsys.readouterr().err and not (tmp_path / "runs").exists()
    assert find_checkout(REPO) == REPO


def test_run_log_merges_and_renders(tmp_path):
    record = {"notebook": "notebooks/00_data.ipynb", "output": "00_data.ipynb", "seconds": 1.5,
              "finished": "2026-01-01T00:00:00+00:00", "csv": True,
              "parameters": {"profile": "smoke", "seed": 0, "results_csv": "00_data.csv"}}
    study.write_run_log(tmp_path, [record], "smoke", 2.0)
    study.write_run_log(tmp_path, [{**record, "output": "01_evaluator_t1t2.ipynb"}], "smoke", 3.0)
    log = json.loads((tmp_path / study.RUN_LOG).read_text())
    assert set(log["runs"]) == {"00_data.ipynb", "01_evaluator_t1t2.ipynb"}
    assert log["environment"]["versions"]["papermill"]
    md = (tmp_path / study.RUN_LOG_MD).read_text()
    assert "`00_data.ipynb` | smoke" in md and "| python |" in md
    assert [h["wall_seconds"] for h in log["invocations"]] == [2.0, 3.0]  # whole runs are kept too
    assert "| invocation | notebooks | wall time (s) |" in md


def test_retitle_adds_the_parameter_set(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1"),
                                         nbformat.v4.new_markdown_cell("# The evaluator\n\ntext")])
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    study.retitle(path, {"modality": "ctmr", "dim": 3})
    study.retitle(path, {"modality": "ctmr", "dim": 3})  # idempotent
    assert nbformat.read(path, as_version=4).cells[1].source == "# The evaluator (CT-MR, 3D)\n\ntext"


def test_retitle_hides_papermills_injected_cell(tmp_path):
    import nbformat

    injected = nbformat.v4.new_code_cell("modality = 'ctmr'")
    injected.metadata["tags"] = ["injected-parameters"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Page"), injected])
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    study.retitle(path, {})
    assert nbformat.read(path, as_version=4).cells[1].metadata["tags"] == ["injected-parameters", "remove-cell"]


def test_table2_pages_read_page_03_and_run_after_it(tmp_path):
    runs = study.link_pages(study.plan("02_register,03_traditional"), tmp_path)
    params = {name: p for _, name, p in runs}
    assert params["02_register_ctmr"]["reference_csv"] == "03_traditional_ctmr.csv"
    assert "reference_csv" not in params["02_register_ctmr_3d"]  # page 03 is 2D
    needs = study.dependencies(runs)
    assert needs["02_register_t1t2"] == {"03_traditional_t1t2"} and needs["03_traditional_t1t2"] == set()
    order = [name for _, name, _ in study._in_order(runs)]
    assert order.index("03_traditional_ctmr") < order.index("02_register_ctmr")
    alone = {name: p for _, name, p in study.link_pages(study.plan("02_register_t1t2"), tmp_path)}
    assert "reference_csv" not in alone["02_register_t1t2"]  # 02 alone: the notebook's default (committed 03)
    (tmp_path / "03_traditional_t1t2.csv").write_text("x\n")  # an earlier run in the same folder counts
    again = {name: p for _, name, p in study.link_pages(study.plan("02_register_t1t2"), tmp_path)}
    assert again["02_register_t1t2"]["reference_csv"] == "03_traditional_t1t2.csv"


def test_reference_rows_come_from_page_03(tmp_path):
    from imse_study.study.table2 import reference_rows

    rows = [{"method": m, "mode": mode, "direction": "t2->t1", "pair": i, "dim": 2, "dice": 0.8, "hd95": 2.0,
             "grad": 0.01, "seconds": 1.0, "profile": "smoke"}
            for m, mode in (("ants", "tool"), ("mi", "multires"), ("mi", "paper")) for i in range(2)]
    pd.DataFrame(rows).to_csv(tmp_path / "03.csv", index=False)
    table, note = reference_rows(tmp_path / "03.csv", ["t1->t2", "t2->t1"], 2)
    assert list(table["method"]) == ["ANTs SyN", "classic MI"] and set(table["paper row"]) == {"reference (page 03)"}
    assert "0.800\u00a0±\u00a0" in table["Dice (ours)"].iloc[0] and "2 test pairs of t2->t1" in note
    assert reference_rows(tmp_path / "none.csv", ["t2->t1"], 2)[0].empty
    assert "2D" in reference_rows(None, ["t2->t1"], 3)[1]


def test_parallel_runner_reports_the_failing_notebook(tmp_path):
    from tqdm.auto import tqdm

    plan = [("no_such_notebook", "no_such_notebook", {})]
    records, failure = study.run_plan(plan, tmp_path, "smoke", 0, {}, 2, tqdm)
    assert records == [] and failure[0] == ("no_such_notebook", "no_such_notebook")
    assert isinstance(failure[1], FileNotFoundError)
    assert study.previous_seconds(tmp_path) == {}


@pytest.fixture(scope="module")
def smoke_notebooks(tmp_path_factory):
    """Every notebook x parameter set in the smoke profile, executed once for this module."""
    out = tmp_path_factory.mktemp("experiments")
    from tqdm.auto import tqdm

    begin = time.perf_counter()  # two at a time: this also exercises the runner's --jobs path
    records, failure = study.run_plan(SMOKE_RUNS, out, "smoke", 0, {"threads": 1}, 2, tqdm)
    assert failure is None, f"{failure[0]} failed: {failure[1]}"
    study.write_run_log(out, records, "smoke", time.perf_counter() - begin)
    timings = {Path(r["output"]).stem: r["seconds"] for r in records}
    return out, timings


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("name", [name for _, name, _ in SMOKE_RUNS])
def test_notebook_runs_in_smoke_profile(smoke_notebooks, name):
    out, timings = smoke_notebooks
    assert timings[name] > 0  # recorded in the run log; speed itself is measured in benchmarks/, not asserted
    assert (out / f"{name}.ipynb").exists()
    results = pd.read_csv(out / f"{name}.csv")
    assert len(results) > 0 and (results["profile"] == "smoke").all()
    if name.startswith("01_evaluator"):
        assert {"ranking_auc", "nmae", "psnr", "ssim"} <= set(results["metric"])
        import nbformat

        nb = nbformat.read(out / f"{name}.ipynb", as_version=4)
        assert "application/vnd.jupyter.widget-state+json" in nb.metadata.get("widgets", {}), \
            "the slice viewer's widget state must be stored for the static book"
    if name.startswith("02_register"):
        from imse_study.study.table2 import NETWORK_METHODS

        params = dict((n, p) for _, n, p in SMOKE_RUNS)[name]
        assert set(results["method"]) == {"initial", *params.get("methods", NETWORK_METHODS)}
        assert set(results["direction"]) == ({"t1->t2", "t2->t1"} if "t1t2" in name else {"ct->t1", "t1->ct"})
        assert set(results["dim"]) == {params.get("dim", 2)}
        assert results["dice"].between(0, 1).all() and (results["grad"].dropna() >= 0).all()
    if name.startswith("03_traditional"):
        assert {"paper", "multires", "tool"} <= set(results["mode"])
        assert {"ncc", "mi", "mind", "imse", "imse_robust", "mae", "ants", "elastix"} <= set(results["method"])
        assert set(results["kind"]) == {"multi-modal", "single-modal"}
    if name.startswith("04_translation"):
        assert {"imse", "cyclegan", "reggan"} <= set(results["method"])
        assert results["ssim"].between(-1, 1).all()
    if name.startswith("05_spatial_error"):
        correlations = pd.read_csv(out / f"{name}_correlations.csv")
        spearman = correlations[correlations["correlation"] == "spearman"].set_index("method")
        assert {"IMSE", "CycleGAN", "RegGAN"} <= set(spearman.index)
        assert ((spearman["low"] <= spearman["r"]) & (spearman["r"] <= spearman["high"])).all()
    if name.startswith("07_robustness"):
        assert {"imse", "mind", "imse_robust"} <= set(results["variant"])
        assert {"fooled", "dice_affine", "dice_deformable", "loss_truth", "loss_solution"} <= set(results.columns)
    if name.startswith("08_qa"):
        assert {"perturbed", "optimise-mi", "optimise-imse"} <= set(results["source"])
        assert {"epe_mm", "dice", "failed", "imse_score", "imse_mm", "imse_p_failed", "mi", "nmi", "lncc", "mind",
                "cyclegan_mae", "reggan_mae", "jac_folded", "jac_logdet_std"} <= set(results.columns)
        assert results["dice"].between(0, 1).all() and (results["epe_mm"] >= 0).all()
        comparison = pd.read_csv(out / f"{name}_comparison.csv")
        assert {"IMSE estimate (mm)", "NMI", "MI", "MIND distance", "CycleGAN MAE"} <= set(comparison["score"])
        assert comparison["auc"].dropna().between(0, 1).all()
    if name.startswith("06_shuffle_remap"):
        registration = results[results["metric_kind"] == "registration"]
        assert {"N_2", "N_2_10", "N_2_30", "N_2_50"} <= set(registration["method"])
        networks = results[results["metric_kind"] == "registration_network"]
        assert {"N_2", "N_2_10", "N_2_30", "N_2_50"} <= set(networks["method"])
        assert networks["dice"].between(0, 1).all()
        assert results.loc[results["metric_kind"] == "ranking", "auc"].between(0, 1).all()


@pytest.mark.integration
@pytest.mark.slow
def test_book_builds_with_experiment_pages(smoke_notebooks, tmp_path):
    out, _ = smoke_notebooks
    book = tmp_path / "book"
    shutil.copytree(REPO / "book", book, ignore=shutil.ignore_patterns("_build", "experiments"))
    shutil.copytree(REPO / "data_manifests", tmp_path / "data_manifests")  # data.md includes the manifests
    shutil.copytree(out, book / "experiments")
    exe = shutil.which("jupyter-book")
    assert exe, "jupyter-book (1.x) must be installed"
    result = subprocess.run([exe, "build", str(book)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    html = book / "_build" / "html"
    for _, name, _ in SMOKE_RUNS:
        page = html / "experiments" / f"{name}.html"
        assert page.exists(), f"no page for {name}"
        text = page.read_text()
        assert "<table" in text, f"{name}'s page holds no table"
    evaluator = (html / "experiments" / "01_evaluator_t1t2.html").read_text()
    assert "(T1-T2)" in evaluator and "(CT-MR)" in (html / "experiments" / "01_evaluator_ctmr.html").read_text()
    assert "paper (Table 5)" in evaluator
    register = (html / "experiments" / "02_register_ctmr.html").read_text()
    assert "Dice (paper)" in register and "imse_sr" in register
    assert "jupyter-widgets/embed-amd.js" in evaluator and "widget-state+json" in evaluator
    for page in ("intro", "data", "claims", "reproducibility"):
        assert (html / f"{page}.html").exists()
    intro = (html / "intro.html").read_text()
    assert "mathjax/tex-chtml.js" in intro and "cdn.jsdelivr" not in intro
    assert (html / "_static" / "mathjax" / "tex-chtml.js").exists()
    assert "01_evaluator_t1t2.ipynb" in (html / "reproducibility.html").read_text()


def test_page_name_and_a_hand_run_notebook_csv_default(tmp_path):
    """Run by hand (no results_csv), a notebook names its CSV as the study names the page, so runs
    with other parameters in one folder do not overwrite each other."""
    assert study.page_name("02_register", "ctmr", 3) == "02_register_ctmr_3d"
    assert study.page_name("02_register", "ctmr", 2) == study.page_name("02_register", "ctmr") == "02_register_ctmr"
    params = {"modality": "ctmr", "methods": ["mi"], "n_pairs": 1, "viewer_slices": 1, "threads": 1,
              "train_dir": str(tmp_path / "work")}
    study.execute("02_register", "by_hand", params, tmp_path, "smoke", 0, extra={"results_csv": None})
    assert (tmp_path / "02_register_ctmr.csv").exists() and not (tmp_path / "by_hand.csv").exists()
