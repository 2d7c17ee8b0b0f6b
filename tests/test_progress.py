"""Progress bars go where the person waiting sees them (imse_study.progress)."""

from __future__ import annotations

import io
import os
import json
import subprocess
import sys

import nbformat
import pytest

from imse_study import progress
from imse_study.progress import ENV_PROGRESS, progress_bar, progress_destination


@pytest.fixture
def original_stderr(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr(sys, "__stderr__", stream)
    return stream


def test_destination_defaults_to_auto_and_refuses_unknown_values(monkeypatch):
    monkeypatch.delenv(ENV_PROGRESS, raising=False)
    assert progress_destination() == "auto"
    monkeypatch.setenv(ENV_PROGRESS, " Terminal ")
    assert progress_destination() == "terminal"
    monkeypatch.setenv(ENV_PROGRESS, "loud")
    with pytest.raises(ValueError, match="IMSE_STUDY_PROGRESS='loud'.*auto, terminal, off"):
        progress_bar(range(2))


def test_terminal_draws_on_the_original_stderr(monkeypatch, original_stderr):
    monkeypatch.setenv(ENV_PROGRESS, "terminal")
    assert list(progress_bar(range(3), desc="evaluate t2->t1")) == [0, 1, 2]
    text = original_stderr.getvalue()
    assert "evaluate t2->t1" in text and "3/3" in text


@pytest.mark.parametrize("how", [{"env": "off"}, {"env": "terminal", "disable": True}])
def test_off_or_disabled_draws_nothing(monkeypatch, original_stderr, capsys, how):
    monkeypatch.setenv(ENV_PROGRESS, how["env"])
    with progress_bar(total=4, desc="quiet", disable=how.get("disable", False)) as bar:
        bar.update(4)
    assert original_stderr.getvalue() == "" and capsys.readouterr().err == ""


def test_kernel_of_the_papermill_command_reports_to_its_terminal(tmp_path, monkeypatch):
    """As a user types it, from a folder outside the checkout: ``papermill CHECKOUT/notebooks/in.ipynb
    out.ipynb``. The bar of a long cell shows in the terminal (not in the executed notebook), and the
    notebook finds the checkout that holds it."""
    from imse_study.checkout import ENV_CHECKOUT

    monkeypatch.delenv(ENV_PROGRESS, raising=False)
    monkeypatch.delenv(ENV_CHECKOUT, raising=False)
    checkout, elsewhere = tmp_path / "checkout", tmp_path / "elsewhere"
    (checkout / "notebooks").mkdir(parents=True)
    (checkout / "book").mkdir()
    (checkout / "book" / "_toc.yml").write_text("format: jb-book\nroot: intro\n")
    elsewhere.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(
        "import imse_study.study  # every study notebook imports it\n"
        "from imse_study.checkout import find_checkout\n"
        "from imse_study.progress import progress_bar\n"
        "total = sum(progress_bar(range(5), desc='long cell'))\n"
        "print('checkout:', find_checkout())")]
    nbformat.write(nb, checkout / "notebooks" / "in.ipynb")
    done = subprocess.run([sys.executable, "-m", "papermill", "../checkout/notebooks/in.ipynb", "out.ipynb",
                           "--no-progress-bar"], cwd=elsewhere, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "long cell" in done.stderr and "5/5" in done.stderr
    outputs = json.dumps(json.loads((elsewhere / "out.ipynb").read_text())["cells"][0]["outputs"])
    assert "long cell" not in outputs
    assert f"checkout: {checkout.resolve()}" in outputs


def test_study_runner_sets_kernels_progress_for_its_run_only(monkeypatch):
    from imse_study.study.runner import kernel_progress

    monkeypatch.delenv(ENV_PROGRESS, raising=False)
    with kernel_progress(jobs=2):
        assert progress.progress_destination() == "off"
    with kernel_progress(jobs=1):
        assert progress.progress_destination() == "terminal"
    assert ENV_PROGRESS not in os.environ
    monkeypatch.setenv(ENV_PROGRESS, "auto")
    with kernel_progress(jobs=2):
        assert progress.progress_destination() == "auto"
