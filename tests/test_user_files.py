"""Nothing the user made is run, replaced or lost: crafted checkpoints are refused unread, training
never replaces a run without --overwrite nor resumes one with other settings, a killed run's temp
files are cleaned, the study writes the book's pages only when asked, and a notebook run by the
papermill command writes its results beside the executed notebook."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from imse_study.study import runner as study
from imse_study.atomic import atomic_write, leftover_temp_files
from imse_study.cli import main
from imse_study.training import plain

REPO = Path(__file__).resolve().parents[1]

# the cheapest run of each trainer, as a user types it (smoke profile, one or two short epochs)
TRAINERS = {
    "evaluator": (["train-evaluator", "--profile", "smoke", "--modality", "t1", "--epochs", "1",
                   "--steps-per-epoch", "1", "--threads", "1"], "evaluator.pt"),
    "registration": (["train-registration", "--profile", "smoke", "--similarity", "ncc", "--moving", "t1",
                      "--target", "t2", "--epochs", "1", "--steps-per-epoch", "1", "--threads", "1"], "network.pt"),
    "translator": (["train-translator", "--profile", "smoke", "--kind", "reggan", "--source", "t2", "--target", "t1",
                    "--no-progress", "--threads", "1"], "translator.pt"),
}


def _train(kind: str, out: Path, *extra: str) -> int:
    args, _ = TRAINERS[kind]
    return main([*args, "--out", str(out), *extra])


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """One finished run of each trainer (module-wide: tests copy it before changing anything)."""
    root = tmp_path_factory.mktemp("runs")
    for kind in TRAINERS:
        assert _train(kind, root / kind) == 0
    return {kind: root / kind for kind in TRAINERS}


def _copy_run(run: Path, dest: Path) -> Path:
    import shutil

    return Path(shutil.copytree(run, dest))


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(err) == 1, err
    return err[0]


# --------------------------------------------------------------------------------------------
# Security: every checkpoint is read with torch.load(weights_only=True)


class _Payload:
    """A pickle that would create ``marker`` when unpickled (as ``os.system`` could run anything)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def _crafted(path: Path, marker: Path) -> Path:
    torch.save({"state_dict": {}, "meta": {"modality": "t1"}, "train_state": _Payload(marker)}, path)
    return path


def test_crafted_checkpoints_are_refused_without_running(tmp_path, capsys):
    marker = tmp_path / "pwned"
    evil = _crafted(tmp_path / "evil.pt", marker)
    image = tmp_path / "x.nii.gz"  # never read: the evaluator is loaded first
    assert main(["error-map", str(image), str(image), "--evaluator", str(evil), "-o", str(tmp_path / "e.nii.gz")]) == 2
    line = _error_line(capsys)
    assert str(evil) in line and "not a safe imse-study evaluator checkpoint" in line
    assert main(["train-registration", "--profile", "smoke", "--similarity", "translated_mae", "--moving", "t2",
                 "--target", "t1", "--translator", str(evil), "--out", str(tmp_path / "vm")]) == 2
    assert "not a safe imse-study translator checkpoint" in _error_line(capsys)
    run = tmp_path / "run"
    run.mkdir()
    _crafted(run / "last.pt", marker)  # --resume reads a run folder's last.pt
    assert _train("evaluator", run, "--resume") == 2
    assert "last.pt is not a safe imse-study evaluator checkpoint" in _error_line(capsys)
    assert not marker.exists()

    from imse_study.baselines import load_translator
    from imse_study.registration.learned import load_network

    for load in (load_network, load_translator):
        with pytest.raises(ValueError, match="not a safe imse-study") as info:
            load(evil)
        assert "\n" not in str(info.value)
    assert not marker.exists()


def test_every_loader_in_the_package_and_plugin_is_weights_only():
    """No torch.load without weights_only=True, no pickle, no np.load(allow_pickle=True) anywhere."""
    for path in (REPO / "imse_study").rglob("*.py"):
        text = path.read_text()
        assert "weights_only=False" not in text and "allow_pickle=True" not in text, path
        # the checkpoint reader imports pickle for its UnpicklingError only
        assert "import pickle" not in text or path.relative_to(REPO).as_posix() == "imse_study/training/checkpoints.py", path
        for line in text.splitlines():
            if "torch.load(" in line and "``" not in line:
                assert "weights_only=True" in line, f"{path}: {line.strip()}"


def test_training_checkpoints_load_with_weights_only(runs):
    for kind, run in runs.items():
        payload = torch.load(run / "last.pt", map_location="cpu", weights_only=True)
        state = payload["train_state"]
        assert state["history"] and state["settings"]["profile"] == "smoke", kind
        assert "optimizer" in state or "optimizers" in state
        torch.load(run / TRAINERS[kind][1], map_location="cpu", weights_only=True)


def test_plain_turns_numpy_and_paths_into_what_weights_only_reads(tmp_path):
    data = {"a": np.float32(0.5), "b": (np.int64(3), Path("x")), "c": np.arange(3), "d": [np.bool_(True)],
            "e": torch.Size([2, 3])}
    clean = plain(data)
    assert clean["a"] == 0.5 and type(clean["a"]) is float and clean["b"] == (3, "x")
    assert torch.equal(clean["c"], torch.arange(3)) and clean["d"] == [True] and clean["e"] == (2, 3)
    torch.save(clean, tmp_path / "p.pt")
    assert torch.load(tmp_path / "p.pt", weights_only=True)["b"] == (3, "x")
    with pytest.raises(TypeError, match="tensors and plain data only"):
        plain({"x": object()})


# --------------------------------------------------------------------------------------------
# A trained run is never replaced without --overwrite


@pytest.mark.parametrize("kind", list(TRAINERS))
def test_training_into_a_finished_run_is_refused(runs, kind, tmp_path, capsys):
    run = _copy_run(runs[kind], tmp_path / kind)
    final = run / TRAINERS[kind][1]
    before = {p.name: _digest(p) for p in run.iterdir()}
    capsys.readouterr()
    assert _train(kind, run) == 2
    line = _error_line(capsys)
    assert str(run) in line and "--resume" in line and "--overwrite" in line
    assert {p.name: _digest(p) for p in run.iterdir()} == before and final.exists()
    final.unlink()  # an unfinished run (last.pt only) is the user's work too
    assert _train(kind, run) == 2 and "unfinished" in _error_line(capsys)


def test_overwrite_replaces_the_run_and_resume_excludes_it(runs, tmp_path, capsys):
    run = _copy_run(runs["evaluator"], tmp_path / "e")
    old = _digest(run / "evaluator.pt")
    assert _train("evaluator", run, "--overwrite", "--lr", "0.01") == 0
    assert _digest(run / "evaluator.pt") != old
    assert "--lr 0.01" in torch.load(run / "evaluator.pt", weights_only=True)["meta"]["command"]
    capsys.readouterr()
    assert _train("evaluator", run, "--overwrite", "--resume") == 2
    assert "give one of them" in _error_line(capsys)


# --------------------------------------------------------------------------------------------
# --resume continues the same run or nothing


@pytest.mark.parametrize("kind, changed, listed", [
    ("evaluator", ["--lr", "0.01", "--n-range", "2", "10", "--batch-size", "1"],
     ["lr=0.001 (now 0.01)", "n_range=(2, 50) (now (2, 10))", "batch_size=2 (now 1)"]),
    ("evaluator", ["--width", "2", "--noise", "bezier", "--seed", "1", "--steps-per-epoch", "2"],
     ["width=4 (now 2)", "noise='shuffle_remap' (now 'bezier')", "seed=0 (now 1)", "steps_per_epoch=1 (now 2)"]),
    ("registration", ["--smooth-weight", "2", "--lr", "0.01", "--similarity", "mi"],
     ["smooth_weight=1.0 (now 2.0)", "lr=0.001 (now 0.01)", "similarity='ncc' (now 'mi')"]),
    ("translator", ["--weight", "corr=5", "--seed", "3"], ["'corr': 20.0", "seed=0 (now 3)"]),
])
def test_resume_with_changed_settings_is_refused(runs, kind, changed, listed, tmp_path, capsys):
    run = _copy_run(runs[kind], tmp_path / kind)
    before = _digest(run / "last.pt")
    capsys.readouterr()
    assert _train(kind, run, "--resume", *changed) == 2
    line = _error_line(capsys)
    assert f"cannot resume {run / 'last.pt'}" in line and "--time-limit" in line
    for text in listed:
        assert text in line
    assert _digest(run / "last.pt") == before


def test_resume_may_change_the_epochs_time_limit_and_device(runs, tmp_path):
    run = _copy_run(runs["evaluator"], tmp_path / "e")
    assert _train("evaluator", run, "--resume", "--epochs", "2", "--time-limit", "600", "--device", "cpu") == 0
    meta = torch.load(run / "evaluator.pt", weights_only=True)["meta"]
    assert meta["epochs"] == 2 and meta["steps"] == 2


def test_resume_of_a_run_that_recorded_no_settings_compares_its_metadata(tmp_path):
    from imse_study.training import resume_state

    (tmp_path / "last.pt").touch()
    old = {"state_dict": {}, "meta": {"seed": 0, "n_range": [2, 50], "extra": {"lr": 1e-3}},
           "train_state": {"step": 3}}
    now = {"seed": 0, "n_range": (2, 50), "lr": 1e-3, "width": 4}  # width: not recorded then, not compared
    assert resume_state(tmp_path / "last.pt", lambda path: old, now)[1] == {"step": 3}
    with pytest.raises(ValueError, match=r"lr=0.001 \(now 0.01\)"):
        resume_state(tmp_path / "last.pt", lambda path: old, {**now, "lr": 1e-2})


def test_a_killed_runs_temp_files_are_cleaned_on_the_next_start(runs, tmp_path):
    run = _copy_run(runs["evaluator"], tmp_path / "e")
    stale = [run / ".last.pt.k3j9x_2a.tmp", run / ".log.csv.abcdefgh.tmp"]
    kept = [run / "notes.tmp", run / ".last.pt.tmp", run / ".other.pt.abcdefgh.tmp"]  # not a run's temp file
    for path in stale + kept:
        path.write_bytes(b"half")
    assert set(leftover_temp_files(run, ["last.pt", "log.csv"])) == set(stale)
    assert _train("evaluator", run, "--resume") == 0
    assert not any(p.exists() for p in stale) and all(p.exists() for p in kept)


def test_atomic_write_temp_names_match_the_cleaning_pattern(tmp_path):
    seen = []
    atomic_write(tmp_path / "img.nii.gz", lambda tmp: seen.append(leftover_temp_files(tmp_path)) or
                 Path(tmp).write_text("x"), suffix=".tmp.nii.gz")
    atomic_write(tmp_path / "last.pt", lambda tmp: seen.append(leftover_temp_files(tmp_path, ["last.pt"])) or
                 Path(tmp).write_text("x"))
    assert [len(found) for found in seen] == [1, 1] and leftover_temp_files(tmp_path) == []


# --------------------------------------------------------------------------------------------
# The study writes the book's pages only when asked


@pytest.fixture()
def fake_book(tmp_path, monkeypatch):
    """The study's book folder moved to a temp copy and its notebook runs recorded, not executed."""
    book = tmp_path / "book"
    (book / "experiments").mkdir(parents=True)
    (book / "_toc.yml").write_text("format: jb-book\nroot: intro\n")
    (tmp_path / "notebooks").mkdir()  # with book/_toc.yml: tmp_path is a checkout, the runner's
    monkeypatch.setenv("IMSE_STUDY_CHECKOUT", str(tmp_path))  # the runner sets it; restored afterwards
    calls = []

    def run_plan(plan, out_dir, profile, seed, extra, jobs, tqdm, notebooks=None):
        calls.append((Path(out_dir), profile))
        return [], None

    monkeypatch.setattr(study, "run_plan", run_plan)
    monkeypatch.chdir(tmp_path)
    return book, calls


def test_study_default_out_is_outside_the_book(fake_book, tmp_path):
    book, calls = fake_book
    assert study.main(["--profile", "smoke", "--only", "00_data"]) == 0
    assert calls == [(Path("runs") / "study-smoke", "smoke")]
    assert (tmp_path / "runs" / "study-smoke" / study.RUN_LOG).exists()
    assert list((book / "experiments").iterdir()) == []
    assert subprocess.run(["git", "check-ignore", "-q", "runs/study-smoke/00_data.csv"], cwd=REPO).returncode == 0


@pytest.mark.parametrize("args, message", [
    (["--profile", "smoke", "--publish"], "the book shows the quick profile"),
    (["--profile", "smoke", "--out", "book/experiments"], "book/ holds the committed pages"),
    (["--profile", "quick", "--out", "book/experiments"], "--publish"),
    (["--profile", "quick", "--publish", "--out", "pages"], "leave out --out"),
    (["--publish", "--dataset", "folder", "--root", "."], "phantom study"),
])
def test_study_refuses_to_write_the_book_unless_asked(fake_book, args, message, capsys):
    book, calls = fake_book
    with pytest.raises(SystemExit):
        study.main([*args, "--only", "00_data"])
    assert message in capsys.readouterr().err and calls == []
    assert list((book / "experiments").iterdir()) == []


def test_study_publish_writes_the_book_pages(fake_book, monkeypatch):
    book, calls = fake_book
    import imse_study.study.claims

    monkeypatch.setattr(imse_study.study.claims, "write_claims", lambda out: out / "claims.md")
    assert study.main(["--profile", "quick", "--publish", "--no-build", "--only", "00_data"]) == 0
    assert calls == [(book / "experiments", "quick")] and (book / "experiments" / study.RUN_LOG).exists()


@pytest.mark.integration
def test_study_smoke_run_leaves_the_committed_pages_alone(tmp_path, monkeypatch):
    pages = {p: _digest(p) for p in (REPO / "book" / "experiments").rglob("*") if p.is_file()}
    monkeypatch.chdir(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "imse_study.study.runner", "--profile", "smoke", "--only", "00_data",
                           "-p", "threads", "1", "--repo", str(REPO)], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "runs" / "study-smoke" / "00_data.csv").exists()
    assert {p: _digest(p) for p in (REPO / "book" / "experiments").rglob("*") if p.is_file()} == pages


# --------------------------------------------------------------------------------------------
# A notebook run by the papermill command writes its results beside the executed notebook


def _papermill(notebook: Path, output: Path, cwd: Path, *args: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "IMSE_STUDY_CHECKOUT": str(REPO)}  # cwd is not in the checkout
    proc = subprocess.run([sys.executable, "-m", "papermill", str(notebook), str(output), "--no-progress-bar", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_papermill_results_land_beside_the_output_notebook(tmp_path):
    import nbformat

    parameters = nbformat.v4.new_code_cell('results_csv = None\nmodality = "t1t2"\ndim = 2')
    parameters.metadata["tags"] = ["parameters"]
    write = nbformat.v4.new_code_cell("from imse_study.study.runner import results_file\n"  # as the study's notebooks do
                                      'results_csv = results_file(results_csv, "02_register", modality, dim)\n'
                                      'open(results_csv, "w").write("a\\n1\\n")')
    nb = nbformat.v4.new_notebook(cells=[parameters, write], metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nbformat.write(nb, tmp_path / "tiny.ipynb")
    elsewhere, pages = tmp_path / "elsewhere", tmp_path / "pages"
    elsewhere.mkdir()
    pages.mkdir()
    _papermill(tmp_path / "tiny.ipynb", Path("../pages/run.ipynb"), elsewhere, "-p", "modality", "ctmr")
    _papermill(tmp_path / "tiny.ipynb", pages / "{modality}_3d.ipynb", elsewhere, "-p", "modality", "t1t2",
               "-p", "dim", "3", "--cwd", str(tmp_path))  # papermill formats the path; the kernel runs in --cwd
    assert sorted(p.name for p in pages.iterdir()) == [
        "02_register_ctmr.csv", "02_register_t1t2_3d.csv", "run.ipynb", "t1t2_3d.ipynb"]
    assert list(elsewhere.iterdir()) == [] and not (tmp_path / "02_register_t1t2_3d.csv").exists()


def test_results_path_outside_papermill_and_when_given():
    from imse_study.study.papermill_output import _papermill_arguments, papermill_output_path, results_path

    assert papermill_output_path() is None  # pytest is not papermill: the working folder
    assert results_path("r.csv") == Path("r.csv") and results_path("r.csv", "a/given.csv") == Path("a/given.csv")
    assert _papermill_arguments(["/usr/bin/python3", "/usr/local/bin/papermill", "in", "out"]) == ["in", "out"]
    assert _papermill_arguments(["python", "-m", "papermill", "in", "out"]) == ["in", "out"]
    assert _papermill_arguments(["python", "-m", "imse_study.study.runner", "papermill"]) is None


def test_every_results_notebook_names_its_csv_with_the_helper():
    import nbformat

    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        source = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
        if "to_csv(" in source:
            assert f'results_file(results_csv, "{path.stem}"' in source, path.name


@pytest.mark.integration
def test_a_study_notebook_run_by_papermill_writes_beside_its_output(tmp_path):
    elsewhere, pages = tmp_path / "elsewhere", tmp_path / "pages"
    elsewhere.mkdir()
    pages.mkdir()
    _papermill(REPO / "notebooks" / "00_data.ipynb", pages / "data.ipynb", elsewhere, "-p", "profile", "smoke",
               "-p", "threads", "1")
    assert (pages / "00_data.csv").exists() and list(elsewhere.iterdir()) == []
