"""Every committed executed page (book/experiments/*.ipynb) has the code cells of its source notebook.

The book shows the executed pages, the reader runs notebooks/: if the two drift apart, the book shows
code that no longer exists. Papermill's injected-parameters cell and the outputs are left out of the
comparison; every other code cell's source must be equal, in order.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parent.parent
PAGES = sorted((REPO / "book" / "experiments").glob("*.ipynb"))


def _source_of(page: Path) -> Path:
    """notebooks/<NN>_<stem>.ipynb whose stem the page's name starts with (02_register_ctmr_3d -> 02_register)."""
    found = [nb for nb in (REPO / "notebooks").glob(f"{page.name[:2]}_*.ipynb") if page.stem.startswith(nb.stem)]
    assert len(found) == 1, f"{page.name}: no single source notebook in notebooks/ ({found})"
    return found[0]


def _code(path: Path) -> list[str]:
    nb = nbformat.read(path, as_version=4)
    return [c.source for c in nb.cells
            if c.cell_type == "code" and "injected-parameters" not in c.metadata.get("tags", [])]


def test_there_are_pages():
    assert PAGES, "book/experiments holds no executed page"


@pytest.mark.parametrize("page", PAGES, ids=[p.stem for p in PAGES])
def test_executed_page_has_the_code_cells_of_its_source(page):
    source = _source_of(page)
    assert _code(page) == _code(source), (
        f"{page.relative_to(REPO)} differs from {source.relative_to(REPO)}: re-run the quick study with --publish")
