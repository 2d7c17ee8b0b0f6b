"""What the IMSE loss probes (imse_drift, imse_landscape, imse_sharpness) share: the IMSE similarity of
each evaluator named on the command line, and the report files they write."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from imse_study.evaluator.pretrained import load_any
from imse_study.losses.similarity import Similarity, similarity

from evaluator_transfer import evaluator_name  # the one short name of an evaluator (a run folder's, or shipped)


def imse_similarities(evaluators: list[str], moving: str, target: str,
                      flips: tuple[str, ...] = ("none",)) -> dict[str, Similarity]:
    """``{"imse:<name>": IMSE loss}`` for shipped evaluator names or checkpoint files, in the given order;
    with several ``flips`` settings (evaluator.symmetry) one loss per setting, named ``imse:<name>+<flips>``."""
    found = {}
    for path in evaluators:
        model, meta = load_any(str(path))
        label = evaluator_name(path)
        for f in flips:
            found[f"imse:{label}" + ("" if f == "none" else f"+{f}")] = similarity(
                "imse", evaluator=model, evaluator_modality=meta.modality, moving_modality=moving,
                target_modality=target, flips=f)
    return found


def write_report(out: Path, stem: str, markdown: str, table: pd.DataFrame | None = None) -> Path:
    """``out/<stem>.md`` (and ``out/<stem>.csv`` with ``table``), the Markdown also printed."""
    out.mkdir(parents=True, exist_ok=True)
    if table is not None:
        table.to_csv(out / f"{stem}.csv", index=False)
    (out / f"{stem}.md").write_text(markdown, encoding="utf-8")
    print(markdown)
    return out / f"{stem}.md"
