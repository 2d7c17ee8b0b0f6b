"""The learned-registration rows of the paper's Table 2: which network each method is, and the table.

Every method is a VoxelMorph (Eq. 6) trained with one similarity plus the smoothness term (Eq. 7);
the methods differ only in the similarity (section 4.2):

=========  ===================================================================================
ncc        local NCC (window 9, VoxelMorph's NCC; :class:`~imse_study.losses.similarity.LNCC`)
mi         MONAI's global mutual information
mind       MIND-SSC, L1 between descriptors
cyclegan   MAE after translating the moving image with a CycleGAN generator (Eq. 3-4)
reggan     the same with a RegGAN generator
imse_bc    IMSE with an evaluator trained with the Bezier histogram shift (the paper's IMSE(BC))
imse_sr    IMSE with an evaluator trained with Shuffle Remap (the paper's method)
=========  ===================================================================================

:func:`obtain_network` finds a method's network: the shipped one (:mod:`imse_study.study.zoo`, quick
profile) unless ``train`` is set or the profile is ``smoke``, in which case it trains one (and the
evaluator or translator it needs) in a work folder. :func:`registration_table` runs every method on
the test pairs of both directions of a modality pair and returns the tidy table of
:func:`~imse_study.registration.evaluate.evaluate`.
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from imse_study.registration.evaluate import (
    data_flags,
    direction_name,
    evaluate,
    make_test_pairs,
    network_registrar,
    work_folder,
)
from imse_study.modalities import PAIRS, evaluator_modality_of, pair, paper_row
from imse_study.study.models import PageModel, obtain, trains_here

NETWORK_METHODS = ("ncc", "mi", "mind", "cyclegan", "reggan", "imse_bc", "imse_sr")
TRANSLATOR_METHODS = ("cyclegan", "reggan")
# our direction -> the paper's Table 2 row (the CT-MR pair's MR is the phantom's T1)
PAPER_ROWS = {direction_name(a, b): paper_row(a, b) for p in PAIRS.values() for a, b in p.directions}


def directions(pair_name: str) -> list[tuple[str, str]]:
    """Both directions (moving, target) of a study pair (:data:`imse_study.modalities.PAIRS`)."""
    return list(pair(pair_name).directions)


def evaluator_name(method: str, moving: str, target: str, dim: int = 2) -> str:
    """Shipped evaluator for ``imse_sr`` (``phantom-<m>-<dim>d``) or ``imse_bc`` (``...-bc``)."""
    if method not in ("imse_sr", "imse_bc"):
        raise ValueError(f"{method!r} uses no evaluator")
    return f"phantom-{evaluator_modality_of(moving, target)}-{dim}d" + ("-bc" if method == "imse_bc" else "")


def similarity_of(method: str) -> str:
    """The similarity name (:func:`imse_study.losses.similarity`) a method trains with."""
    if method not in NETWORK_METHODS:
        raise ValueError(f"unknown method {method!r}: choose from {', '.join(NETWORK_METHODS)}")
    return {"ncc": "lncc", "cyclegan": "translated_mae", "reggan": "translated_mae",
            "imse_bc": "imse", "imse_sr": "imse"}.get(method, method)


def train_command(method: str, moving: str, target: str, dim: int, profile: str, dataset: str = "phantom",
                  root: str | None = None) -> str:
    """The shell command(s) that train a method's network like the shipped one (on ``dataset``: for a
    manifest set, the evaluator an IMSE method needs is trained on it first)."""
    data = data_flags(dataset, root)
    base = (f"imse-study train-registration --similarity {similarity_of(method)} --moving {moving} --target {target} "
            f"--dim {dim} --profile {profile}{data}")
    if method in TRANSLATOR_METHODS:
        run = f"runs/{method}-{moving}-{target}"
        return (f"imse-study train-translator --kind {method} --source {moving} --target {target} --dim {dim} "
                f"--profile {profile}{data} --out {run} && {base} --translator {run}/translator.pt --epochs 4 "
                f"--out runs/vm-{moving}-{target}-{method}")
    first = ""
    evaluator = evaluator_name(method, moving, target, dim) if method.startswith("imse") else None
    if evaluator and data:  # the shipped evaluators know the phantom only
        noise = "bezier" if method == "imse_bc" else "shuffle_remap"
        first = (f"imse-study train-evaluator --modality {evaluator_modality_of(moving, target)} --dim {dim} "
                 f"--profile {profile} --noise {noise}{data} --out runs/evaluator-{method} && ")
        evaluator = f"runs/evaluator-{method}/evaluator.pt"
    extra = f" --evaluator {evaluator}" if evaluator else ""
    return f"{first}{base}{extra} --bidirectional --out runs/vm-{moving}-{target}-{method}"


def _evaluator_for(method: str, moving: str, target: str, dim: int, profile: str, work: Path, seed: int,
                   progress: bool, dataset: str = "phantom", root: str | None = None) -> str:
    """The evaluator ``method`` trains with, trained in ``work`` on ``dataset`` (reused when already there)."""
    from imse_study.evaluator.train import train_evaluator

    out = work / f"evaluator-{evaluator_name(method, moving, target, dim)}"
    if not (out / "evaluator.pt").exists():
        noise = "bezier" if method == "imse_bc" else "shuffle_remap"
        train_evaluator(out, evaluator_modality_of(moving, target), dim, profile, noise=noise, seed=seed,
                        progress=progress, dataset=dataset, root=root)
    return str(out / "evaluator.pt")


def _translator_for(kind: str, moving: str, target: str, dim: int, profile: str, work: Path, seed: int,
                    progress: bool, dataset: str = "phantom", root: str | None = None) -> str:
    """The translator a ``translated_mae`` network trains with, trained in ``work`` on ``dataset`` (reused when there)."""
    from imse_study.baselines.train import train_translator

    out = work / f"{kind}-{moving}-{target}"
    if not (out / "translator.pt").exists():
        train_translator(kind, moving, target, out, dim=dim, profile=profile, seed=seed, progress=progress,
                         dataset=dataset, root=root)
    return str(out / "translator.pt")


def obtain_network(
    method: str, moving: str, target: str, dim: int = 2, profile: str = "quick", train: bool = False,
    work_dir: str | Path | None = None, seed: int = 0, progress: bool = False, dataset: str = "phantom",
    root: str | None = None,
) -> PageModel:
    """The registration network of ``method`` for ``moving -> target`` (``model`` None when missing).

    Shipped networks (quick profile) are used unless ``train`` is set or the profile is ``smoke``.
    Otherwise the network is trained in ``work_dir`` (a temporary folder by default) together with
    the evaluator or translator it needs; a network already trained there is reused, so both
    directions of a bidirectional method cost one training. In the quick and paper profiles a
    method with no shipped network is returned with ``model=None`` unless ``train`` is set:
    training all of Table 2 takes hours on a CPU, so a notebook should not start that silently.
    The shipped networks know the phantom only: on a manifest ``dataset`` (data folder ``root``)
    they are refused with an error unless ``train`` is set (or the profile is ``smoke``).
    """
    from imse_study.registration.learned import load_network, train_registration
    from imse_study.study.zoo import network_path

    command = train_command(method, moving, target, dim, profile, dataset, root)
    work = work_folder(work_dir, "imse-table2-", dataset) if trains_here(profile, train) else Path(".")
    bidirectional = method not in TRANSLATOR_METHODS
    done = [work / f"vm-{a}-{b}-{method}" / "network.pt"
            for a, b in ([(moving, target), (target, moving)] if bidirectional else [(moving, target)])]

    def fit() -> None:
        options: dict[str, Any] = {}
        if method.startswith("imse"):
            options["evaluator"] = _evaluator_for(method, moving, target, dim, profile, work, seed, progress, dataset,
                                                  root)
        if method in TRANSLATOR_METHODS:
            options["translator"] = _translator_for(method, moving, target, dim, profile, work, seed, progress,
                                                    dataset, root)
        train_registration(done[0].parent, similarity_of(method), moving, target, dim=dim, profile=profile,
                           similarity_options=options, bidirectional=bidirectional, seed=seed, progress=progress,
                           dataset=dataset, root=root)

    found = obtain(train=train, profile=profile, dataset=dataset, kinds="registration networks", command=command,
                   shipped=lambda: network_path(method, moving, target, dim, profile), trained=done, fit=fit,
                   load=load_network, missing="not shipped for this profile")
    if found.model is not None and not trains_here(profile, train):
        found = replace(found, source=f"{found.source} ({found.steps} steps)")
    return found


def registration_table(
    modality: str, dim: int = 2, profile: str = "quick", methods: tuple[str, ...] = NETWORK_METHODS,
    train: bool = False, work_dir: str | Path | None = None, limit: int | None = None, seed: int = 0,
    progress: bool = False, dataset: str = "phantom", root: str | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Table 2 for one modality pair, both directions: (tidy per-pair results, the networks used).

    ``dataset``: the phantom or a manifest set with label maps (data folder ``root``); the test pairs
    are its aligned test pairs misaligned by :func:`~imse_study.registration.evaluate.make_test_pairs`.

    The tidy table has :func:`~imse_study.registration.evaluate.evaluate`'s columns plus
    ``modality_pair``; ``initial`` rows are the pairs before registration. Methods whose network is
    not available are absent from it and listed in the second table with the command to train them.
    """
    unknown = [m for m in methods if m not in NETWORK_METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}: choose from {', '.join(NETWORK_METHODS)}")
    work = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix="imse-table2-"))
    tables, used = [], []
    for moving, target in directions(modality):
        pairs = make_test_pairs(moving, target, "test", dim, profile, limit=limit, dataset=dataset, root=root)
        registrars = {}
        for method in methods:
            net = obtain_network(method, moving, target, dim, profile, train, work, seed, progress, dataset, root)
            used.append({"method": method, "direction": direction_name(moving, target), "network": net.source,
                         "available": net.model is not None, "train_command": net.command})
            if net.model is not None:
                registrars[method] = network_registrar(net.model)
        tables.append(evaluate(registrars, pairs, include_initial=True, progress=progress))
    table = pd.concat(tables, ignore_index=True)
    table.insert(0, "modality_pair", modality)
    return table, pd.DataFrame(used)


PLUS_MINUS = "\u00a0±\u00a0"  # non-breaking spaces: "0.263 ± 0.114" never wraps in a table cell


def _mean_std(values: pd.Series) -> str:
    values = values.dropna()
    if values.empty:
        return "–"
    return f"{values.mean():.3f}{PLUS_MINUS}{values.std():.3f}" if len(values) > 1 else f"{values.mean():.3f}"


def _paper_value(entry: dict | None, key: str) -> str:
    if not entry or key not in entry:
        return "–"
    value = entry[key]
    return f"{value[0]:.2f}{PLUS_MINUS}{value[1]:.2f}" if isinstance(value, list) else f"{value:g}"


# page 03's classic references shown on Table 2: (method, mode) -> the name on the row
REFERENCE_METHODS = {("ants", "tool"): "ANTs SyN", ("elastix", "tool"): "elastix", ("mi", "multires"): "classic MI",
                     ("mind", "multires"): "classic MIND", ("imse", "multires"): "classic IMSE"}
REFERENCE_PAGE = "03_traditional"


def default_reference_csv(modality: str, dim: int = 2) -> Path | None:
    """Page 03's CSV for Table 2's reference rows when 02 is run alone: the committed one of the
    checkout (``book/experiments/03_traditional_<pair>.csv``) if there is one (2D only: 03 is 2D)."""
    from imse_study.checkout import find_checkout

    if dim != 2:
        return None
    try:
        path = find_checkout() / "book" / "experiments" / f"{REFERENCE_PAGE}_{modality}.csv"
    except FileNotFoundError:
        return None
    return path if path.exists() else None


def reference_rows(reference_csv: str | Path | None, directions: list[str], dim: int = 2,
                   label: str = "reference (page 03)") -> tuple[pd.DataFrame, str]:
    """The classic references of page 03 (ANTs SyN, elastix, classic MI/MIND/IMSE, multires) as rows
    of :func:`paper_comparison`'s table for the ``directions`` both pages share, and one line saying
    where they come from (or why there are none)."""
    if reference_csv is None and dim != 2:
        return pd.DataFrame(), f"No reference rows: page 03 (classic registration, ANTs, elastix) is 2D, this page {dim}D."
    if reference_csv is None or not Path(reference_csv).exists():
        return pd.DataFrame(), ("No reference rows: page 03 (classic registration, ANTs, elastix) has not been run "
                                "for this pair" + (f" (no {reference_csv})" if reference_csv else "") + ".")
    table = pd.read_csv(reference_csv)
    if "dim" in table and len(table) and int(table["dim"].iloc[0]) != dim:
        return pd.DataFrame(), f"No reference rows: page 03 is {int(table['dim'].iloc[0])}D, this page {dim}D."
    rows = []
    for (method, mode), name in REFERENCE_METHODS.items():
        for direction in directions:
            group = table[(table["method"] == method) & (table["mode"] == mode) & (table["direction"] == direction)]
            if group.empty:
                continue
            rows.append({"direction": direction, "paper row": label, "method": name,
                         "Dice (ours)": _mean_std(group["dice"]), "Dice (paper)": "–",
                         "HD95 mm (ours)": _mean_std(group["hd95"]), "HD95 (paper)": "–",
                         "grad (ours)": _mean_std(group["grad"]) if group["grad"].notna().any() else "–",
                         "grad (paper)": "–", "seconds / pair": f"{group['seconds'].mean():.3f}"})
    profile = ", ".join(sorted(table["profile"].astype(str).unique())) if "profile" in table else "?"
    pairs = table.loc[table["method"] != "initial", "pair"].nunique() if "pair" in table else 0
    shared = sorted({r["direction"] for r in rows})
    if not rows:
        return pd.DataFrame(), f"No reference rows: page 03 has no direction in common with this page ({Path(reference_csv).name})."
    note = (f"Rows marked *{label}* are the classic tools of page 03 ({Path(reference_csv).name}, profile {profile}, "
            f"{pairs} test pairs of {', '.join(shared)}, no network): how far the networks above are from the best tools.")
    return pd.DataFrame(rows), note


def paper_comparison(table: pd.DataFrame, paper: dict, dim: int = 2, section: str = "table2_registration") -> pd.DataFrame:
    """Ours (mean ± std over test pairs) beside the paper's Table 2 (or 4) for every direction and method."""
    rows = []
    for (direction, method), group in table.groupby(["direction", "method"], sort=False):
        row_name = PAPER_ROWS.get(direction, direction.replace("->", "_to_"))
        entry = paper.get(section, {}).get(row_name, {}).get(method, {})
        entry = entry.get(f"{dim}d", entry) if isinstance(entry, dict) else {}
        rows.append({
            "direction": direction, "paper row": row_name, "method": method,
            "Dice (ours)": _mean_std(group["dice"]), "Dice (paper)": _paper_value(entry, "dice"),
            "HD95 mm (ours)": _mean_std(group["hd95"]), "HD95 (paper)": _paper_value(entry, "hd95"),
            "grad (ours)": _mean_std(group["grad"]) if group["grad"].notna().any() else "–",
            "grad (paper)": _paper_value(entry, "grad"),
            "seconds / pair": f"{group['seconds'].mean():.3f}",
        })
    return pd.DataFrame(rows)


def claim_check(table: pd.DataFrame, method: str = "imse_sr") -> pd.DataFrame:
    """Per direction: does ``method`` beat every other method on Dice, HD95 and smoothness?

    Compares means over the test pairs (``initial`` excluded); ``best_other_*`` names the strongest
    competitor. The paper's claim (section 4.3) is True in every column.
    """
    rows = []
    for direction, group in table[table["method"] != "initial"].groupby("direction", sort=False):
        means = group.groupby("method")[["dice", "hd95", "grad"]].mean()
        if method not in means.index or len(means) < 2:
            continue
        others = means.drop(index=method)
        ours = means.loc[method]
        rows.append({
            "direction": direction,
            f"{method}_dice": ours["dice"], "best_other_dice": others["dice"].max(),
            "best_other_dice_method": others["dice"].idxmax(),
            "beats_all_dice": bool(ours["dice"] > others["dice"].max()),
            f"{method}_hd95": ours["hd95"], "best_other_hd95": others["hd95"].min(),
            "beats_all_hd95": bool(ours["hd95"] < others["hd95"].min()),
            f"{method}_grad": ours["grad"], "smoothest_other_grad": others["grad"].min(),
            "smoothest": bool(ours["grad"] < others["grad"].min()),
            "rank_dice": int((means["dice"] > ours["dice"]).sum() + 1), "methods": len(means),
        })
    return pd.DataFrame(rows)


def table2_reading(claims: pd.DataFrame, networks: pd.DataFrame, profile: str) -> str:
    """A short Markdown reading of the registration table, written from the numbers."""
    lines = []
    missing = networks[~networks["available"]]
    if profile == "smoke":
        lines.append("*Smoke profile: every network here was trained for a few steps on 48 × 48 images, so the "
                     "numbers only show that the page works; read the quick-profile page for results.*\n")
    for _, row in claims.iterrows():  # the verdict itself is the page's verdict cell (study/verdict.py), not here
        lines.append(
            f"- **{row['direction']}**: IMSE(SR) Dice {row['imse_sr_dice']:.3f} ranks {row['rank_dice']} of "
            f"{row['methods']} methods (best other: {row['best_other_dice_method']}, {row['best_other_dice']:.3f}); "
            f"HD95 {row['imse_sr_hd95']:.2f} mm vs best other {row['best_other_hd95']:.2f} mm; ||∇φ|| "
            f"{row['imse_sr_grad']:.4f} vs smoothest other {row['smoothest_other_grad']:.4f}."
        )
    if claims.empty:
        lines.append("IMSE(SR) or its competitors are missing, so the paper's claim cannot be checked on this page.")
    if not missing.empty:
        names = ", ".join(sorted(set(missing["method"])))
        lines.append(f"\nNot available in this run (no shipped network for profile `{profile}`): {names}; the "
                     "table above lists the commands that train them.")
    return "\n".join(lines)


def dice_by_label(table: pd.DataFrame) -> pd.DataFrame:
    """Long table of per-label Dice (columns ``dice_<label>``) for plots."""
    label_cols = [c for c in table.columns if c.startswith("dice_")]
    long = table.melt(id_vars=["direction", "method", "pair"], value_vars=label_cols, var_name="label",
                      value_name="label_dice")
    long["label"] = long["label"].str.removeprefix("dice_")
    return long[np.isfinite(long["label_dice"])]
