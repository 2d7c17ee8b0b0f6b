"""Registration QA scores compared (issue 17's book page, beyond the paper: section 4.5 asks the question).

Which label-free score tells best how well a registration worked? Registrations of varied quality
on the test subjects of one pair, in both directions:

* deliberately perturbed true fields: the moving modality's image moved by the paper's random
  affine + elastic displacement (section 4.1) scaled by factors from 0 (aligned) up, as
  :mod:`imse_study.qa.calibration` builds its pairs (:func:`~imse_study.qa.calibration.perturbed_batch`);
* real registrations from one misaligned start (the paper's transform, seed per item as the
  registration tables): the classic optimiser (Eq. 1) with MI and with IMSE, and ANTs and elastix
  where installed.

For each, the truth (:func:`~imse_study.qa.calibration.mean_epe_mm` of the residual field over the
joint label foreground, Dice of the warped labels, and *failed*: Dice more than 0.1 below the
aligned pair's, :func:`~imse_study.qa.calibration.is_failure`) and the scores (:data:`SCORES`): the
shipped evaluator's IMSE score (section 4.5) and its calibrated misalignment in mm and ``p_failed``,
MI, NMI, LNCC, MIND distance, the MAE after CycleGAN / RegGAN translation, and the Jacobian of the
registration's field. :func:`comparison_table` gives each score's |Spearman rho| with the true EPE
and with Dice (95 % bootstrap intervals over subjects, :func:`subject_bootstrap`) and its failure
ROC AUC (scikit-learn); :func:`verdict` reads the numbers in words.

Each score has a fixed orientation (:attr:`Score.worse_when_higher`): the AUC is never flipped
to suit the data, so a score that points the wrong way shows an AUC below 0.5.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch
from scipy import stats

from imse_study.evaluator.use import error_map
from imse_study.losses.similarity import similarity
from imse_study.metrics import dice, log_jacobian_std, nonpositive_jacobian_fraction
from imse_study.qa.calibration import Calibration, is_failure, mean_epe_mm, perturbed_batch
from imse_study.qa.score import joint_foreground, nmi, scores_of
from imse_study.warp import warp

PERTURBED = "perturbed"
TARGETS = {"spearman_abs": 0.95, "auc": 0.95, "within_1mm": 0.80}  # issue 17's "what must show"
# Factors of the paper's displacement, optimiser iterations, bootstrap draws, options of the external
# tools. Quick: elastix at 100 iterations per resolution instead of its default 256 (about 13 s -> 5 s
# per 120 x 120 registration on one core), so that a page runs in under 10 minutes on one thread.
PROFILE_SETTINGS = {
    "smoke": {"factors": (0.0, 0.3, 1.0), "iterations": 6, "n_boot": 50, "tool_options": {}},
    "quick": {"factors": (0.0, 0.02, 0.05, 0.08, 0.12, 0.16, 0.2, 0.3, 0.6, 1.0), "iterations": 60, "n_boot": 1000,
              "tool_options": {"elastix": {"max_iterations": 100}}},
    "paper": {"factors": (0.0, 0.02, 0.05, 0.08, 0.12, 0.16, 0.2, 0.3, 0.45, 0.6, 0.8, 1.0, 1.3, 1.6, 2.0),
              "iterations": 200, "n_boot": 2000, "tool_options": {}},
}


@dataclass(frozen=True)
class Score:
    """A QA score: its column in the table and its direction (True: a higher value, a worse registration)."""

    name: str
    column: str
    worse_when_higher: bool
    family: str


SCORES: tuple[Score, ...] = (
    Score("IMSE estimate (mm)", "imse_mm", True, "IMSE"),
    Score("IMSE p_failed", "imse_p_failed", True, "IMSE"),
    Score("IMSE score", "imse_score", False, "IMSE"),
    Score("MI", "mi", False, "similarity"),
    Score("NMI", "nmi", False, "similarity"),
    Score("LNCC", "lncc", False, "similarity"),
    Score("MIND distance", "mind", True, "similarity"),
    Score("CycleGAN MAE", "cyclegan_mae", True, "translation"),
    Score("RegGAN MAE", "reggan_mae", True, "translation"),
    Score("Jacobian folding", "jac_folded", True, "field"),
    Score("Jacobian log-det std", "jac_logdet_std", True, "field"),
)
SCORE_BY_NAME = {s.name: s for s in SCORES}
IMSE_ESTIMATE, IMSE_SCORE = "IMSE estimate (mm)", "IMSE score"
MIN_CLASS = 5  # fewer failures (or successes) than this: the verdict says the AUC is not telling


def settings(profile: str) -> dict[str, Any]:
    """The profile's factors, optimiser iterations and bootstrap draws (:data:`PROFILE_SETTINGS`)."""
    return dict(PROFILE_SETTINGS.get(profile, PROFILE_SETTINGS["quick"]))


# ------------------------------------------------------------------------------------------------
# Registrations of varied quality


@dataclass
class Registrations:
    """A batch of registered pairs (tensors, one row each). ``moved == warp(aligned moving image,
    residual)`` up to interpolation: ``residual`` (B, ndim, *S, voxels) is the true remaining
    misalignment; ``transform`` the field the registration produced (its Jacobian is a score)."""

    direction: str
    source: str
    moving_modality: str
    target_modality: str
    items: np.ndarray
    subjects: np.ndarray
    factor: np.ndarray
    target: torch.Tensor
    moved: torch.Tensor
    target_labels: torch.Tensor
    moved_labels: torch.Tensor
    moving_labels: torch.Tensor
    residual: torch.Tensor
    transform: torch.Tensor

    def __len__(self) -> int:
        return int(self.items.shape[0])


def spread_items(subjects: Sequence, n: int) -> list[int]:
    """``n`` item indices taken in turn from each subject (first slices first), so that a few
    items cover as many subjects as possible; sorted."""
    subjects = np.asarray(subjects)
    rank = np.zeros(len(subjects), dtype=int)
    seen: dict[Any, int] = {}
    for i, s in enumerate(subjects):
        rank[i] = seen.get(s, 0)
        seen[s] = rank[i] + 1
    order = sorted(range(len(subjects)), key=lambda i: (rank[i], i))
    return sorted(order[: max(0, min(n, len(subjects)))])


def direction_label(moving: str, target: str) -> str:
    return f"{moving}->{target}"


def perturbed(aligned, moving: str, target: str, items: Sequence[int], factors: Sequence[float],
              seed: int = 0) -> Registrations:
    """Every item x factor: the paper's displacement (seed ``seed`` + pair index, as the calibration's
    pairs) times the factor is both the 'registration' and its residual."""
    plan = [(i, f) for i in items for f in factors]
    b = perturbed_batch(aligned, moving, target, [i for i, _ in plan], [f for _, f in plan],
                        [seed + p for p in range(len(plan))])
    index = np.array([i for i, _ in plan], dtype=int)
    return Registrations(direction_label(moving, target), PERTURBED, moving, target, index,
                         np.asarray(aligned.subjects)[index], np.array([f for _, f in plan], dtype=float),
                         b.target, b.moved, b.target_labels, b.moved_labels, b.moving_labels, b.field, b.field)


def registered(aligned, moving: str, target: str, items: Sequence[int], name: str,
               register: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], seed: int) -> Registrations:
    """``register(moving, target) -> displacement`` run on every item, each started from the paper's
    displacement of seed ``seed + item`` (as the registration tables' test pairs). If the start is
    ``S = warp(M, u)`` and the result ``R = warp(S, phi)``, then ``R[p] = M[p + phi(p) + u(p + phi(p))]``:
    the residual is ``phi + warp(u, phi)``."""
    items = list(items)
    start = perturbed_batch(aligned, moving, target, items, [1.0] * len(items), [seed + i for i in items])
    fields = []
    for j in range(len(items)):
        phi = register(start.moved[j : j + 1], start.target[j : j + 1])
        fields.append(phi.detach().to(torch.float32).cpu())
    phi = torch.cat(fields)
    with torch.no_grad():
        moved = warp(start.moved, phi).clamp(-1.0, 1.0)
        moved_labels = warp(start.moved_labels, phi, mode="nearest")
        residual = phi + warp(start.field, phi)
    return Registrations(direction_label(moving, target), name, moving, target, np.array(items),
                         np.asarray(aligned.subjects)[np.array(items, dtype=int)], np.full(len(items), np.nan), start.target, moved, start.target_labels, moved_labels,
                         start.moving_labels, residual, phi)


def optimiser_registrar(name: str, moving: str, target: str, evaluator: torch.nn.Module, evaluator_modality: str,
                        iterations: int) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The classic optimiser (Eq. 1, :func:`imse_study.registration.optimise`) with similarity ``name``
    (``imse``: Eq. 6 with ``evaluator``)."""
    from imse_study.registration.optimise import optimise

    options = ({"evaluator": evaluator, "evaluator_modality": evaluator_modality} if name == "imse" else {})
    sim = similarity(name, moving_modality=moving, target_modality=target, **options)
    return lambda m, t: optimise(m, t, sim, iterations=iterations).displacement


def tool_registrar(tool: str, spacing: Sequence[float], seed: int = 0, threads: int = 1,
                   **options: Any) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """ANTs SyN-MI or elastix affine + B-spline MI (:mod:`imse_study.registration.external`);
    ``options`` go to the tool (e.g. elastix ``max_iterations``)."""
    from imse_study.registration.external import register_external

    return lambda m, t: register_external(tool, m, t, spacing=spacing, seed=seed, threads=threads,
                                          **options).displacement


def installed_tools(tools: Sequence[str] = ("ants", "elastix")) -> tuple[list[str], list[str]]:
    """(installed, one line per missing tool) of ANTs (antspyx) and elastix (itk-elastix)."""
    import importlib.util

    package = {"ants": ("ants", "antspyx"), "elastix": ("itk", "itk-elastix")}
    have, missing = [], []
    for tool in tools:
        module, pip = package[tool]
        if importlib.util.find_spec(module) is None:
            missing.append(f"{tool}: not installed (pip install {pip}), skipped")
        else:
            have.append(tool)
    return have, missing


def make_registrations(aligned, modalities: tuple[str, str], items: Sequence[int], factors: Sequence[float],
                       registrars: dict[str, Callable[[str, str], Callable]], seed: int = 0,
                       start_seed: int | None = None, progress: bool = True) -> list[Registrations]:
    """Both directions of the pair ``modalities``: the perturbed fields (:func:`perturbed`) and each
    registrar (``registrars[name](moving, target) -> register``) from the paper's misaligned start
    (seed ``start_seed`` + item; default the registration tables' :data:`~imse_study.registration.evaluate.TEST_SEED`)."""
    from imse_study.progress import progress_bar

    from imse_study.registration.evaluate import TEST_SEED

    start_seed = TEST_SEED if start_seed is None else start_seed
    a, b = modalities
    out = []
    jobs = [(m, t, name) for m, t in ((a, b), (b, a)) for name in (PERTURBED, *registrars)]
    for moving, target, name in progress_bar(jobs, desc="registrations", disable=not progress):
        if name == PERTURBED:
            out.append(perturbed(aligned, moving, target, items, factors, seed))
        else:
            out.append(registered(aligned, moving, target, items, name, registrars[name](moving, target), start_seed))
    return out


def page_calibration(evaluator: str | Any, other_modality: str, profile: str = "quick", dataset: str = "phantom",
                     data_root: str | None = None, seed: int = 0,
                     limit: int | None = None) -> tuple[Calibration, str]:
    """The evaluator's shipped calibration (:func:`imse_study.qa.calibration.load_calibration`), or,
    for one trained here that has none, one fitted here on the train and validation subjects
    (:func:`~imse_study.qa.calibration.calibrate_evaluator`, ``limit`` items per split); with a
    sentence saying which."""
    from imse_study.qa.calibration import CalibrationError, calibrate_evaluator, load_calibration

    try:
        return load_calibration(evaluator), f"the calibration shipped with {evaluator}"
    except CalibrationError:
        calibration = calibrate_evaluator(evaluator, other_modality, profile=profile, dataset=dataset, root=data_root,
                                          limit=limit, seed=seed, progress=False)
        return calibration, (f"a calibration fitted here ({calibration.fit['train_pairs']} train and "
                             f"{calibration.fit['val_pairs']} validation pairs): the evaluator has none shipped")


# ------------------------------------------------------------------------------------------------
# Truth and scores


def _per_pair(loss: torch.nn.Module, a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return np.array([float(loss(a[j : j + 1], b[j : j + 1])) for j in range(a.shape[0])])


def score_registrations(reg: Registrations, spacing: Sequence[float], evaluator: torch.nn.Module,
                        evaluator_modality: str, calibration: Calibration | None = None,
                        translators: dict[str, torch.nn.Module] | None = None, batch: int = 16) -> pd.DataFrame:
    """One row per registration: the truth (``epe_mm``, ``dice``, ``aligned_dice``, ``failed``) and
    every score of :data:`SCORES` that can be computed (a missing calibration or translator leaves
    its column out)."""
    from imse_study.study.correlation import masked_mean_abs, translator_error_maps

    spacing = tuple(float(v) for v in spacing)
    evaluator_is_target = reg.target_modality.lower() == evaluator_modality.lower()
    reference, other = (reg.target, reg.moved) if evaluator_is_target else (reg.moved, reg.target)
    with torch.no_grad():
        error = torch.cat([error_map(evaluator, reference[s : s + batch], other[s : s + batch])
                           for s in range(0, len(reg), batch)])[:, 0].numpy()
    foreground = joint_foreground(reference[:, 0].numpy(), other[:, 0].numpy())
    joint = ((reg.target_labels > 0) | (reg.moved_labels > 0))[:, 0].numpy()
    table = pd.DataFrame({
        "direction": reg.direction, "source": reg.source, "item": reg.items,
        "subject": [str(v) for v in reg.subjects], "factor": reg.factor,
        "epe_mm": mean_epe_mm(reg.residual, spacing, joint),
        "dice": [dice(reg.moved_labels[j : j + 1].numpy(), reg.target_labels[j : j + 1].numpy())["mean"]
                 for j in range(len(reg))],
        "aligned_dice": [dice(reg.moving_labels[j : j + 1].numpy(), reg.target_labels[j : j + 1].numpy())["mean"]
                         for j in range(len(reg))],
    })
    table["failed"] = is_failure(table["dice"], table["aligned_dice"])
    imse = pd.DataFrame([scores_of(error[j], foreground[j], spacing) for j in range(len(reg))])
    table["imse_score"] = imse["foreground"].to_numpy()
    if calibration is not None:
        statistic = imse[calibration.statistic].to_numpy()
        table["imse_mm"] = calibration.misalignment(statistic)
        table["imse_p_failed"] = calibration.p_failed(statistic)[0]
    table["mi"] = -_per_pair(similarity("mi"), reg.moved, reg.target)
    table["nmi"] = [nmi(reg.target[j, 0].numpy(), reg.moved[j, 0].numpy()) for j in range(len(reg))]
    table["lncc"] = -_per_pair(similarity("lncc"), reg.moved, reg.target)
    table["mind"] = _per_pair(similarity("mind"), reg.moved, reg.target)
    mask = torch.as_tensor(foreground)[:, None]
    for kind, model in (translators or {}).items():
        if model is not None:
            table[f"{kind}_mae"] = masked_mean_abs(translator_error_maps(model, reference, other, batch), mask)
    table["jac_folded"] = [nonpositive_jacobian_fraction(reg.transform[j : j + 1]) for j in range(len(reg))]
    table["jac_logdet_std"] = [log_jacobian_std(reg.transform[j : j + 1]) for j in range(len(reg))]
    return table


# ------------------------------------------------------------------------------------------------
# Statistics


def spearman_abs(x: Sequence[float], y: Sequence[float]) -> float:
    """|Spearman rho| of two paired samples; NaN when either is constant or there are under 3 pairs."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(abs(stats.spearmanr(x, y).statistic))


def failure_auc(values: Sequence[float], failed: Sequence[bool], worse_when_higher: bool = True) -> float:
    """ROC AUC of a score for the failure label (scikit-learn), oriented by the score's fixed
    direction (never by the data); NaN when one class is missing."""
    from sklearn.metrics import roc_auc_score

    values, failed = np.asarray(values, dtype=np.float64), np.asarray(failed, dtype=bool)
    keep = np.isfinite(values)
    values, failed = values[keep], failed[keep]
    if failed.all() or not failed.any():
        return float("nan")
    return float(roc_auc_score(failed, values if worse_when_higher else -values))


def subject_bootstrap(table: pd.DataFrame, statistic: Callable[[pd.DataFrame], float], subject: str = "subject",
                      n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of ``statistic(table)`` over bootstrap resamples of whole subjects (with
    replacement): registrations of one subject are not independent, so subjects are the unit.
    NaN, NaN with fewer than two subjects or no finite resample."""
    groups = list(table.groupby(subject, sort=True).indices.values())
    if len(groups) < 2 or n_boot < 1:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(int(n_boot)):
        pick = rng.integers(0, len(groups), len(groups))
        draws.append(statistic(table.iloc[np.concatenate([groups[k] for k in pick])]))
    draws = np.asarray(draws, dtype=np.float64)
    draws = draws[np.isfinite(draws)]
    if draws.size == 0:
        return float("nan"), float("nan")
    tail = (1.0 - level) / 2.0
    return float(np.quantile(draws, tail)), float(np.quantile(draws, 1.0 - tail))


def rho_difference(table: pd.DataFrame, first: str, second: str, truth: str = "epe_mm", n_boot: int = 1000,
                   seed: int = 0) -> tuple[float, float, float]:
    """|Spearman rho| of score ``first`` with ``truth`` minus that of score ``second`` (names of
    :data:`SCORES`), on the same registrations, with its subject-bootstrap 95 % interval (both rhos
    from each resample, so the interval is of the paired difference)."""
    a, b = SCORE_BY_NAME[first].column, SCORE_BY_NAME[second].column

    def diff(t: pd.DataFrame) -> float:
        return spearman_abs(t[a], t[truth]) - spearman_abs(t[b], t[truth])

    part = table[[a, b, truth, "subject"]]
    low, high = subject_bootstrap(part, diff, n_boot=n_boot, seed=seed)
    return diff(part), low, high


def available_scores(table: pd.DataFrame) -> list[Score]:
    """The scores of :data:`SCORES` with at least one finite value in ``table``."""
    return [s for s in SCORES if s.column in table and np.isfinite(table[s.column].to_numpy(dtype=float)).any()]


def comparison_table(table: pd.DataFrame, n_boot: int = 1000, seed: int = 0,
                     subsets: dict[str, Callable[[pd.DataFrame], pd.Series]] | None = None) -> pd.DataFrame:
    """Per subset of registrations (default: all; only the real registrations) and score: |Spearman
    rho| with the true EPE and with Dice, each with its subject-bootstrap 95 % interval, and the
    failure ROC AUC."""
    subsets = subsets or {"all": lambda t: pd.Series(True, index=t.index),
                          "registrations only": lambda t: t["source"] != PERTURBED}
    rows = []
    for subset, keep in subsets.items():
        part = table[keep(table)]
        if len(part) < 3:
            continue
        for s in available_scores(part):
            row = {"subset": subset, "score": s.name, "family": s.family, "registrations": len(part),
                   "subjects": int(part["subject"].nunique()), "failures": int(part["failed"].sum())}
            for truth in ("epe_mm", "dice"):
                name = "epe" if truth == "epe_mm" else "dice"
                pair = part[[s.column, truth, "subject"]]

                def rho(t: pd.DataFrame, c: str = s.column, y: str = truth) -> float:
                    return spearman_abs(t[c], t[y])

                row[f"rho_{name}"] = rho(pair)
                row[f"rho_{name}_low"], row[f"rho_{name}_high"] = subject_bootstrap(pair, rho, n_boot=n_boot, seed=seed)
            row["auc"] = failure_auc(part[s.column], part["failed"], s.worse_when_higher)
            rows.append(row)
    return pd.DataFrame(rows)


def calibration_check(table: pd.DataFrame) -> dict[str, float]:
    """The IMSE estimate against the truth: fraction within 1 mm, median |error| (mm), |rho|."""
    if "imse_mm" not in table:
        return {}
    error = np.abs(table["imse_mm"].to_numpy() - table["epe_mm"].to_numpy())
    return {"registrations": int(len(table)), "within_1mm": float(np.mean(error <= 1.0)),
            "median_abs_error_mm": float(np.median(error)),
            "spearman_abs": spearman_abs(table["imse_mm"], table["epe_mm"])}


# ------------------------------------------------------------------------------------------------
# Reading


def _fmt(v: float, digits: int = 2) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def _with_ci(row: pd.Series, name: str) -> str:
    return f"{_fmt(row[f'rho_{name}'])} [{_fmt(row[f'rho_{name}_low'])}, {_fmt(row[f'rho_{name}_high'])}]"


def _met(value: float, target: float) -> str:
    if value is None or not np.isfinite(value):
        return "not measurable here"
    return "met" if value >= target else "NOT met"


def verdict(comparison: pd.DataFrame, check: dict[str, float], subset: str = "all") -> str:
    """A paragraph computed from ``comparison`` (:func:`comparison_table`) and ``check``
    (:func:`calibration_check`): does the IMSE estimate beat NMI and MI, and every other score; are
    issue 17's targets met. Says so plainly when IMSE does not win."""
    part = comparison[comparison["subset"] == subset].set_index("score")
    if part.empty:
        return f"No {subset} registrations to compare."
    imse = IMSE_ESTIMATE if IMSE_ESTIMATE in part.index else IMSE_SCORE
    if imse not in part.index:
        return "No IMSE score was computed: nothing to compare."
    me = part.loc[imse]
    others = part.drop(index=[n for n in part.index if SCORE_BY_NAME[n].family == "IMSE"])
    lines = [f"Over {int(me['registrations'])} registrations of {int(me['subjects'])} test subjects "
             f"({int(me['failures'])} failures), the {imse} has |Spearman rho| {_with_ci(me, 'epe')} with the true "
             f"mean end-point error and {_with_ci(me, 'dice')} with Dice; its failure ROC AUC is {_fmt(me['auc'])}."]
    fewer = int(min(me["failures"], me["registrations"] - me["failures"]))
    if fewer < MIN_CLASS:
        lines.append(f"Only {fewer} registration(s) fall in the smaller class (failed or not): the AUCs here rest on "
                     "too few to tell the scores apart.")
    usual = [n for n in ("NMI", "MI") if n in others.index]
    if usual:
        said = "; ".join(f"{n} {_with_ci(others.loc[n], 'epe')}, AUC {_fmt(others.loc[n]['auc'])}" for n in usual)
        beaten = [n for n in usual if me["rho_epe"] > others.loc[n]["rho_epe"]]
        clear = [n for n in beaten if me["rho_epe_low"] > others.loc[n]["rho_epe_high"]]
        if len(beaten) == len(usual):
            close = [n for n in usual if n not in clear]
            if not close:
                how = "with bootstrap intervals that do not overlap"
            elif not clear:
                how = "but the bootstrap intervals overlap, so the difference is not established"
            else:
                how = (f"with intervals apart from {' and '.join(clear)}'s but overlapping {' and '.join(close)}'s "
                       f"(not established against {' and '.join(close)})")
            lines.append(f"IMSE ranks the true error better than {' and '.join(usual)} ({said}), {how}.")
        else:
            lost = [n for n in usual if n not in beaten]
            lines.append(f"IMSE does NOT beat {' and '.join(lost)} at ranking the true error ({said}).")
    if len(others):
        best = others["rho_epe"].idxmax()
        if me["rho_epe"] >= others["rho_epe"].max():
            lines.append(f"No other score ranks the true error better (the best of them: {best}, "
                         f"{_fmt(others.loc[best]['rho_epe'])}).")
        else:
            ahead = others.index[others["rho_epe"] > me["rho_epe"]].tolist()
            lines.append(f"Scores ahead of IMSE on the true error: {', '.join(ahead)} (best: {best}, "
                         f"{_fmt(others.loc[best]['rho_epe'])}).")
        if np.isfinite(others["auc"]).any() and np.isfinite(me["auc"]):
            best_auc = others["auc"].idxmax()
            word = "at least as well as" if me["auc"] >= others["auc"].max() else "worse than"
            lines.append(f"At detecting failures IMSE does {word} the best other score ({best_auc}, AUC "
                         f"{_fmt(others.loc[best_auc]['auc'])}).")
    met = [f"|rho| >= {TARGETS['spearman_abs']}: {_met(me['rho_epe'], TARGETS['spearman_abs'])}",
           f"AUC >= {TARGETS['auc']}: {_met(me['auc'], TARGETS['auc'])}"]
    if check:
        ok = check["within_1mm"] >= TARGETS["within_1mm"]
        met.append(f"estimate within 1 mm for {TARGETS['within_1mm']:.0%} of registrations: "
                   f"{check['within_1mm']:.0%}, {'met' if ok else 'NOT met'}")
    else:
        met.append("no calibrated estimate in mm (the evaluator has no calibration)")
    lines.append("Issue 17's targets: " + "; ".join(met) + ".")
    return " ".join(lines)


# ------------------------------------------------------------------------------------------------
# Figures


def figures(table: pd.DataFrame, comparison: pd.DataFrame, subset: str = "all"):
    """Three panels: |Spearman rho| with the true EPE per score (bootstrap 95 % bars), the failure
    ROC curves, and the calibration (IMSE's predicted against the true misalignment)."""
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    part = comparison[comparison["subset"] == subset].sort_values("rho_epe")
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    ax = axes[0]
    y = np.arange(len(part))
    err = np.vstack([(part["rho_epe"] - part["rho_epe_low"]).clip(lower=0).fillna(0),
                     (part["rho_epe_high"] - part["rho_epe"]).clip(lower=0).fillna(0)])
    colours = ["tab:red" if f == "IMSE" else "tab:grey" for f in part["family"]]
    ax.barh(y, part["rho_epe"], xerr=err, color=colours, capsize=3)
    ax.set_yticks(y, part["score"])
    ax.set_xlim(0, 1)
    ax.set_xlabel("|Spearman rho| with the true mean EPE")
    ax.set_title("Ranking the true error")
    ax = axes[1]
    failed = table["failed"].to_numpy(dtype=bool)
    if failed.any() and not failed.all():
        for s in available_scores(table):
            values = table[s.column].to_numpy(dtype=float)
            keep = np.isfinite(values)
            fpr, tpr, _ = roc_curve(failed[keep], values[keep] if s.worse_when_higher else -values[keep])
            auc = failure_auc(values, failed, s.worse_when_higher)
            ax.plot(fpr, tpr, lw=2.2 if s.family == "IMSE" else 1.0, label=f"{s.name} ({auc:.2f})")
        ax.plot([0, 1], [0, 1], "k:", lw=0.8)
        ax.legend(fontsize=7, loc="lower right")
    else:
        ax.text(0.5, 0.5, "one class only: no ROC", ha="center", va="center")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("Failure detection (Dice > 0.1 below the truth's)")
    ax = axes[2]
    if "imse_mm" in table:
        for source, g in table.groupby("source"):
            ax.scatter(g["epe_mm"], g["imse_mm"], s=10, alpha=0.6, label=source)
        top = float(np.nanmax([table["epe_mm"].max(), table["imse_mm"].max(), 1.0]))
        ax.plot([0, top], [0, top], "k-", lw=0.8)
        ax.fill_between([0, top], [-1, top - 1], [1, top + 1], color="k", alpha=0.08, label="within 1 mm")
        ax.set_xlim(0, top)
        ax.set_ylim(0, top)
        ax.legend(fontsize=7)
    else:
        ax.text(0.5, 0.5, "no calibration: no estimate in mm", ha="center", va="center")
    ax.set_xlabel("true mean EPE (mm)")
    ax.set_ylabel("IMSE estimate (mm)")
    ax.set_title("Calibration")
    fig.tight_layout()
    return fig
