"""The experiment pages open with the finding: title and what it tests, the parameters used, the verdict,
then figures and tables, with every code cell's input hidden (issue 18)."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
HIDDEN = {"hide-input", "remove-input", "remove-cell"}


def _tags(cell) -> set[str]:
    return set(cell.metadata.get("tags", []))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_page_opens_with_what_it_tests_the_parameters_and_the_verdict(path):
    cells = nbformat.read(path, as_version=4).cells
    assert cells[0].cell_type == "markdown" and cells[0].source.startswith("# ")
    assert len(cells[0].source.split("\n\n")) >= 2, "the title is followed by a paragraph on what the page tests"
    code = [i for i, c in enumerate(cells) if c.cell_type == "code"]
    assert _tags(cells[code[0]]) >= {"parameters", "remove-cell"}
    assert "parameters_table(globals())" in cells[code[1]].source and "remove-input" in _tags(cells[code[1]])
    verdict = [i for i, c in enumerate(cells) if c.cell_type == "code"
               and ("page_verdict(" in c.source or "data_finding(" in c.source)]
    assert len(verdict) == 1, "one verdict cell"
    assert "remove-input" in _tags(cells[verdict[0]])
    first_section = next(i for i, c in enumerate(cells) if c.cell_type == "markdown" and c.source.startswith("## "))
    assert verdict[0] < first_section, "the verdict comes before the sections (figures and tables)"
    for c in cells[:verdict[0]]:
        assert not re.search(r"\bfig = ", c.source) and "fig8" not in c.source, "no figure before the verdict"
    for i in code:
        assert _tags(cells[i]) & HIDDEN, f"code cell {i} shows its input"


def test_parameters_table_lists_the_plain_values_only():
    from imse_study.study.pages import parameters_table

    table = parameters_table({"modality": "ctmr", "dim": 2, "methods": ["mi", "imse_sr"], "_hidden": 1,
                              "In": [], "np": np, "f": len})
    assert list(table.index) == ["modality", "dim", "methods"]
    assert table.loc["methods", "value"] == "mi, imse_sr"


def test_registration_viewer_offers_no_error_overlay_and_names_its_panels():
    from imse_study.viz import slice_viewer

    image = np.zeros((2, 8, 8), dtype=np.float32)
    case = {"reference": image, "other": image, "error": None, "labels": np.zeros((2, 8, 8), int)}
    box = slice_viewer({"mi": case}, panels=("target", "warped moving"))
    overlay = box.children[0].children[1]
    assert list(overlay.options) == ["labels", "image only"]
    with_error = slice_viewer({"mi": {**case, "error": image}})
    assert "error" in with_error.children[0].children[1].options


def test_data_finding_counts_swapped_contrasts():
    from imse_study.modalities import PAIRS
    from imse_study.study.pages import data_finding

    p = next(iter(PAIRS.values()))
    rows = [{"modality": m, "label": lab, "mean_intensity": v}
            for m, values in ((p.evaluator, (0.1, 0.5, 0.9)), (p.other, (0.9, 0.5, 0.1)))
            for lab, v in zip(("a", "b", "c"), values)]
    text = data_finding(pd.DataFrame(rows))
    assert f"{p.title}: 3 of 3 tissue pairs swap" in text
