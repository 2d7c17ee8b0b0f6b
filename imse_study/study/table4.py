"""The paper's Table 4: classic optimisation of a dense field (Eq. 1) with each similarity.

Section 4.3: a displacement field optimised from zero with Adam (lr 1, 200 iterations) plus the
smoothness term, for multi-modal pairs (NCC, MI, MIND against IMSE) and single-modal pairs (MAE
against IMSE, the evaluator then compares an image with its own modality). Each similarity runs in
the paper's single-level ``paper`` mode and in our default ``multires`` mode (an affine stage, then
a coarse-to-fine field; see :mod:`imse_study.registration.optimise`), and the reference tools
(ANTs SyN-MI, elastix affine + B-spline MI) run on the same pairs. ``imse_robust`` (IMSE + MIND,
:mod:`imse_study.losses.robust`) joins the multi-modal rows in the multires mode.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from imse_study.modalities import pair
from imse_study.study.models import evaluator_command, obtain_evaluator, trains_here
from imse_study.study.table2 import paper_comparison
from imse_study.registration.evaluate import (
    Registrar,
    direction_name,
    evaluate,
    make_test_pairs,
    work_folder,
)
from imse_study.registration.methods import classic_registrar, external_registrar

MULTI_MODAL_METHODS = ("ncc", "mi", "mind", "imse", "imse_robust")
OURS_ONLY = ("imse_robust",)  # our addition (imse_study.losses.robust): multires mode only, the paper has no such row
SINGLE_MODAL_METHODS = ("mae", "imse")
MODES = ("paper", "multires")
TOOLS = ("ants", "elastix")


def table4_directions(modality_pair: str) -> tuple[tuple[str, str], tuple[str, str]]:
    """The multi-modal (other -> evaluator) and single-modal (evaluator -> evaluator) (moving, target) rows."""
    found = pair(modality_pair)
    return found.towards_evaluator, found.single_modal


def table4_evaluator(modality_pair: str, dim: int, profile: str, work_dir: str | Path | None = None,
                     seed: int = 0, dataset: str = "phantom", root: str | None = None,
                     train: bool = False) -> tuple[str | None, str]:
    """The evaluator for a modality pair's Table 4 rows and where it came from.

    The shipped ``phantom-<m>-<dim>d`` in the quick profile; in the smoke profile, or with
    ``train``, one is trained here on ``dataset`` (data folder ``root``). None (with the reason)
    when the profile has no shipped evaluator for ``dim``. A manifest set refuses the shipped ones.
    """
    evaluator_modality = pair(modality_pair).evaluator
    command = evaluator_command(evaluator_modality, dim, profile, "DIR")
    out = (work_folder(work_dir, "imse-table4-", dataset) / f"evaluator-{evaluator_modality}-{dim}d"
           if trains_here(profile, train) else None)
    found = obtain_evaluator(evaluator_modality, dim, profile, train, seed, dataset, root, out=out, load=False,
                             command=command, what="",
                             missing=f"no shipped {dim}D evaluator for profile {profile}; train one with `{command}`")
    return (None if found.path is None else str(found.path)), found.source


def traditional_table(
    modality_pair: str, dim: int = 2, profile: str = "quick", n_pairs: int | None = 8, modes: tuple[str, ...] = MODES,
    tools: tuple[str, ...] = TOOLS, evaluator: str | None = None, iterations: int = 200,
    tool_options: dict[str, dict] | None = None, progress: bool = False, dataset: str = "phantom",
    root: str | None = None,
) -> pd.DataFrame:
    """Per-pair results of every classic method on the Table 4 rows of study pair ``modality_pair``.

    Columns: :func:`~imse_study.registration.evaluate.evaluate`'s plus ``modality_pair``, ``kind``
    (multi-modal / single-modal), ``mode`` (paper, multires, or tool) and ``method`` (the similarity
    or tool name). ``evaluator=None`` leaves the IMSE rows out. ``tool_options[tool]`` goes to
    :func:`~imse_study.registration.external.register_external` (e.g. elastix ``max_iterations``).
    ``dataset``/``root``: the phantom or a manifest set with label maps (its aligned test pairs).
    """
    unknown = [m for m in modes if m not in MODES] + [t for t in tools if t not in TOOLS]
    if unknown:
        raise ValueError(f"unknown mode(s) or tool(s) {unknown}: modes {MODES}, tools {TOOLS}")
    tables = []
    for kind, (moving, target) in zip(("multi-modal", "single-modal"), table4_directions(modality_pair)):
        pairs = make_test_pairs(moving, target, "test", dim, profile, limit=n_pairs, dataset=dataset, root=root)
        names = MULTI_MODAL_METHODS if kind == "multi-modal" else SINGLE_MODAL_METHODS
        registrars: dict[str, Registrar] = {}
        for name in names:
            if name.startswith("imse") and evaluator is None:
                continue
            for mode in modes:
                if name in OURS_ONLY and mode != "multires":
                    continue
                registrars[f"{name}|{mode}"] = classic_registrar(
                    name, pairs, evaluator=evaluator, mode=mode, iterations=iterations, progress=False)
        if kind == "multi-modal":
            registrars.update({f"{tool}|tool": external_registrar(tool, pairs, **(tool_options or {}).get(tool, {}))
                               for tool in tools})
        table = evaluate(registrars, pairs, include_initial=True, progress=progress)
        split = table["method"].str.split("|", expand=True)
        table["method"] = split[0]
        table.insert(table.columns.get_loc("method") + 1, "mode", split[1].fillna("–") if 1 in split else "–")
        table.insert(0, "kind", kind)
        tables.append(table)
    out = pd.concat(tables, ignore_index=True)
    out.insert(0, "modality_pair", modality_pair)
    return out


def table4_comparison(table: pd.DataFrame, paper: dict, dim: int) -> pd.DataFrame:
    """Ours beside the paper's Table 4 (which reports the single-level optimisation in 3D), per mode."""
    parts = []
    for mode, group in table.groupby("mode", sort=False):
        part = paper_comparison(group, paper, dim, section="table4_traditional")
        part.insert(2, "mode", mode)
        if mode != "paper":  # the paper's numbers are for its own single-level setting only
            part[[c for c in part.columns if c.endswith("(paper)")]] = "–"
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def table4_reading(table: pd.DataFrame, evaluator_source: str, dim: int, profile: str) -> str:
    """A short Markdown reading of Table 4, from the numbers: is IMSE the best classic similarity?"""
    lines = []
    if profile == "smoke":
        lines.append("*Smoke profile: a tiny evaluator on 48 × 48 images; the numbers only show that the page works.*\n")
    if dim == 2:
        lines.append("The paper's Table 4 is 3D; this page runs the same optimisation on 2D slices.\n")
    means = table[table["method"] != "initial"].groupby(["direction", "mode", "method"])["dice"].mean()
    initial = table[table["method"] == "initial"].groupby("direction")["dice"].mean()
    for direction in dict.fromkeys(table["direction"]):
        parts = [f"**{direction}** (initial Dice {initial.get(direction, float('nan')):.3f}):"]
        for mode in ("paper", "multires"):
            if (direction, mode) not in means.index.droplevel(2):
                continue
            sub = means.loc[(direction, mode)].sort_values(ascending=False)
            ranking = ", ".join(f"{m} {v:.3f}" for m, v in sub.items())
            verdict = ""
            if "imse" in sub.index and len(sub) > 1:
                verdict = " — IMSE is best" if sub.index[0] == "imse" else f" — IMSE ranks {list(sub.index).index('imse') + 1} of {len(sub)}"
            parts.append(f"{mode} mode: {ranking}{verdict}.")
        tools = [f"{m} {means.loc[(direction, 'tool', m)]:.3f}" for m in TOOLS if (direction, "tool", m) in means.index]
        if tools:
            parts.append("Reference tools: " + ", ".join(tools) + ".")
        lines.append("- " + " ".join(parts))
    lines.append(f"\nEvaluator: {evaluator_source}.")
    return "\n".join(lines)


__all__ = [
    "direction_name",
    "table4_comparison",
    "table4_directions",
    "table4_evaluator",
    "table4_reading",
    "traditional_table",
]
