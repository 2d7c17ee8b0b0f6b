"""The book's summary of the paper's claims, written from the executed notebooks' CSV files.

Every figure on the claims page comes from ``book/experiments/<page>.csv`` (the tidy results each
notebook writes) and every status from a rule applied to those numbers, so the page cannot drift
from the experiments: ``python -m imse_study.study.claims`` (run by :mod:`imse_study.study.runner` after the
notebooks) rewrites ``book/claims.md``. A claim whose CSV is missing is ``pending``.

Statuses: **reproduced** (the effect the paper describes shows up on the phantom: not its numbers),
**not reproduced** (it does not, or goes the other way), **partly**, **not testable here** and
**pending**.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from imse_study.atomic import atomic_write
from imse_study.checkout import find_checkout
from imse_study.modalities import PAIRS, T1T2, pair_title
from imse_study.study.verdict import (
    NOT_REPRODUCED, NOT_TESTABLE, PARTLY, PENDING, REPRODUCED, Check, Verdict, decide, difference_check, paired_difference, threshold_check,
)


@dataclass
class Claim:
    """One row of the summary: the claim, what we measured, its verdict (:func:`verdict.decide`)."""

    key: str
    claim: str
    evidence: str
    verdict: Verdict
    ours: bool = False  # a claim of this study, not of the paper: "holds" / "does not hold"
    checks: tuple[Check, ...] = ()

    @property
    def label(self) -> str:
        """The verdict as shown: the paper's claims are reproduced or not, ours hold or not."""
        if self.ours:
            return {REPRODUCED: "holds", PARTLY: "holds partly", NOT_REPRODUCED: "does not hold"}.get(
                self.verdict.status, self.verdict.status)
        return self.verdict.status

    @property
    def status(self) -> str:
        return f"**{self.label}**"

    @property
    def gap(self) -> float:
        """The largest effect among its checks (positive supports the claim): how far from no effect."""
        effects = [c.effect for c in self.checks if math.isfinite(c.effect)]
        return max(effects, key=abs) if effects else math.nan


class Evidence:
    """Where the claims read their tables: a folder of executed pages (the claims page) or the
    tables of one page (that page's verdict cell). ``_read`` gives a page's CSV by its name."""

    def __init__(self, source: str | Path | Mapping[str, pd.DataFrame]):
        self.tables = None if isinstance(source, (str, Path)) else dict(source)
        self.folder = Path(source) if self.tables is None else None

    @property
    def one_page(self) -> bool:
        return self.tables is not None

    def read(self, name: str) -> pd.DataFrame | None:
        if self.tables is not None:
            return self.tables.get(name)
        path = self.folder / f"{name}.csv"
        return pd.read_csv(path) if path.exists() else None


def _source(experiments: str | Path | Mapping | Evidence) -> Evidence:
    return experiments if isinstance(experiments, Evidence) else Evidence(experiments)


def _link(name: str, text: str | None = None, ev: Evidence | None = None) -> str:
    if ev is not None and ev.one_page:
        return text or name
    return f"[{text or name}](experiments/{name}.ipynb)"


def _claim(key: str, claim: str, evidence: str, checks: list[Check], ours: bool = False) -> Claim:
    found = decide(checks) if checks else Verdict(PENDING, "Not checked: the methods it compares were not run.")
    return Claim(key, claim, evidence, found, ours, tuple(checks))


def _pending(key: str, claim: str, what: str, ours: bool = False) -> Claim:
    return Claim(key, claim, f"{what} has not been run in this book yet", decide([]), ours)


def _profile_note(*tables: pd.DataFrame | None) -> str:
    profiles = sorted({p for t in tables if t is not None and "profile" in t for p in t["profile"].dropna().unique()})
    return "" if profiles in ([], ["quick"]) else f" *(profile: {', '.join(profiles)})*"


def _paired(table: pd.DataFrame, column: str, first: str, second: str, by: str = "method",
            key: str | list[str] = "pair") -> tuple[float, float, float]:
    """Mean of ``first - second`` in ``column`` over the pairs both have, with its bootstrap interval."""
    a = table[table[by] == first].groupby(key)[column].mean()
    b = table[table[by] == second].groupby(key)[column].mean()
    joined = pd.concat([a.rename("a"), b.rename("b")], axis=1, join="inner").dropna()
    return paired_difference(joined["a"], joined["b"])


# ---------------------------------------------------------------------------------------------
# The evaluator (01, 04, 05)

AUC_GOOD = 0.9  # E1: a ranking AUC at least this high counts as "sees misalignment"
SSIM_GOOD = 0.8  # E3: a translation at least this close to the truth counts as good


def evaluator_claims(experiments) -> list[Claim]:
    ev = _source(experiments)
    tables = {pair: t for pair in PAIRS if (t := ev.read(f"01_evaluator_{pair}")) is not None}
    claim_e1 = ("An evaluator trained on **one modality only** (Eq. 5) measures the spatial error between images "
                "of **other** modalities: small where aligned, large where not (sections 3.1-3.3, Figure 7)")
    claim_e2 = "On aligned pairs the error map is near zero (Figure 7, aligned row)"
    claim_e3 = ("Translation $x - E(x, y)$ with a misaligned reference is good (section 4.4, Table 5: T2 → T1 NMAE "
                "0.029, SSIM 0.96; MR → CT NMAE 0.022, SSIM 0.93)")
    if not tables:
        return [_pending("E1", claim_e1, "01_evaluator"), _pending("E2", claim_e2, "01_evaluator"),
                _pending("E3", claim_e3, "01_evaluator")]
    aucs, ring_texts, translations = [], [], []
    c1, c2, c3 = [], [], []
    for pair, t in tables.items():
        ref = str(t["reference"].iloc[0]).upper()
        auc = t[t["metric"] == "ranking_auc"].groupby("other")["value"].mean()
        aucs.append(f"{ref} evaluator ({_link(f'01_evaluator_{pair}', pair_title(pair), ev)}): "
                    + ", ".join(f"{o.upper()} **{v:.3f}**" for o, v in auc.items()))
        c1 += [threshold_check(f"{ref} evaluator, {o.upper()}", v, AUC_GOOD, detail=f"AUC {v:.3f} vs {AUC_GOOD}")
               for o, v in auc.items()]
        aligned = t[t["metric"].str.startswith("aligned_mean_abs_error_")]
        by_label = aligned.groupby("metric")["value"].mean().rename(lambda m: m.removeprefix("aligned_mean_abs_error_"))
        ring = max(by_label.get("scalp", np.nan), by_label.get("skull", np.nan))
        brain = np.nanmean([by_label.get("gm", np.nan), by_label.get("wm", np.nan)])
        ring_texts.append(f"{pair_title(pair)}: ring {ring:.2f} vs brain {brain:.2f}")
        noisy = bool(ring > 3 * max(brain, 1e-3) and ring > 0.1)
        c2.append(Check(pair_title(pair), not noisy, f"ring {ring:.2f}, brain {brain:.2f}"
                        + (": the scalp/skull ring is not near zero" if noisy else "")))
        translations.append(f"{pair_title(pair)}: " + "; ".join(
            f"{o.upper()} → {ref} NMAE **{g['value'][g['metric'] == 'nmae'].mean():.3f}**, "
            f"SSIM **{g['value'][g['metric'] == 'ssim'].mean():.2f}**"
            for o, g in t[t["metric"].isin(["nmae", "ssim"])].groupby("other")))
        ssim = t.loc[t["metric"] == "ssim", "value"].mean()
        c3.append(threshold_check(pair_title(pair), ssim, SSIM_GOOD, detail=f"SSIM {ssim:.2f} vs {SSIM_GOOD}"))
    note = _profile_note(*tables.values())
    return [
        _claim("E1", claim_e1, "ROC AUC of mean \\|E\\| for aligned vs misaligned test pairs. " + "; ".join(aucs) + note,
               c1),
        _claim("E2", claim_e2, "Mean \\|E\\| on aligned test pairs, scalp/skull ring vs grey+white matter ("
               + ", ".join(ring_texts) + ")", c2),
        _claim("E3", claim_e3, "Phantom test slices, reference misaligned on purpose. " + "; ".join(translations), c3),
    ]


GANS = ("cyclegan", "reggan")


def translation_claim(experiments) -> Claim:
    """E4, from 04_translation: IMSE translation vs CycleGAN / RegGAN (Table 5), paired over test slices."""
    ev = _source(experiments)
    claim = "IMSE translation beats CycleGAN and RegGAN (Table 5: NMAE, PSNR, SSIM)"
    found = {p: t for p in PAIRS if (t := ev.read(f"04_translation_{p}")) is not None}
    if not found:
        return _pending("E4", claim, "04_translation")
    parts, checks = [], []
    for pair, t in found.items():
        means = t.groupby("method")[["nmae", "ssim"]].mean()
        if "imse" not in means.index:
            continue
        parts.append(f"{_link(f'04_translation_{pair}', pair_title(pair), ev)}: " + ", ".join(
            f"{m} NMAE {r['nmae']:.3f} / SSIM {r['ssim']:.2f}" for m, r in means.iterrows()))
        gans = means[means.index.isin(GANS)]
        if len(gans):
            best_nmae, best_ssim = gans["nmae"].idxmin(), gans["ssim"].idxmax()
            checks.append(difference_check(f"{pair_title(pair)} NMAE, IMSE − {best_nmae}",
                                           *_paired(t, "nmae", "imse", best_nmae, key=["source", "item"]), better="lower",
                                           ranked=False))
            checks.append(difference_check(f"{pair_title(pair)} SSIM, IMSE − {best_ssim}",
                                           *_paired(t, "ssim", "imse", best_ssim, key=["source", "item"]),
                                           better="higher"))
    if not checks:
        return Claim("E4", claim, "; ".join(parts) + " (CycleGAN/RegGAN not run yet)", decide([]))
    return _claim("E4", claim, "; ".join(parts) + _profile_note(*found.values()), checks)


def correlation_claim(experiments) -> Claim:
    """E5, from 05_spatial_error: the IMSE score tracks Dice better than the GANs' MAE (Figure 8): the
    paired bootstrap difference of Spearman correlations on the same pairs, below zero."""
    from imse_study.study.correlation import correlation_difference

    ev = _source(experiments)
    claim = ("The IMSE error score correlates with Dice over random misalignments, better than CycleGAN/RegGAN MAE "
             "(section 4.5, Figure 8)")
    found = {p: t for p in PAIRS if (t := ev.read(f"05_spatial_error_{p}_correlations")) is not None}
    if not found:
        return _pending("E5", claim, "05_spatial_error")
    parts, checks = [], []
    for pair, t in found.items():
        rho = t[t["correlation"] == "spearman"].set_index("method")["r"]
        if "IMSE" not in rho.index:
            continue
        parts.append(f"{_link(f'05_spatial_error_{pair}', pair_title(pair), ev)}: Spearman ρ(error score, Dice) "
                     + ", ".join(f"{m} {v:+.2f}" for m, v in rho.items()))
        scores = ev.read(f"05_spatial_error_{pair}")
        for gan in rho.index[rho.index.isin(["CycleGAN", "RegGAN"])]:
            what = f"{pair_title(pair)}, ρ(IMSE) − ρ({gan})"
            if scores is None:
                checks.append(Check(what, None, "the page's scores are missing"))
                continue
            d = correlation_difference(scores, "IMSE", gan)
            checks.append(difference_check(what, d["difference"], d["low"], d["high"], better="lower"))
    if not checks:
        return Claim("E5", claim, "; ".join(parts) + " (CycleGAN/RegGAN not run yet)", decide([]))
    return _claim("E5", claim, "; ".join(parts) + _profile_note(*found.values())
                  + " (a more negative ρ tracks Dice better)", checks)


# ---------------------------------------------------------------------------------------------
# Registration (02, 03, 06)


def _means(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["method"] != "initial"].groupby(["direction", "method"])[["dice", "hd95", "grad"]].mean()


def registration_claims(experiments, dim: int = 2) -> list[Claim]:
    """R1-R3 from the ``02_register`` pages of ``dim`` (3D: keys ``R1 (3D)``..., no translator rows)."""
    ev = _source(experiments)
    suffix, tag = ("", "") if dim == 2 else (f"_{dim}d", f" ({dim}D)")
    claims_text = {
        "R1": "VoxelMorph trained with IMSE(SR) (Eq. 6-7) registers better (Dice, HD95) than NCC, MI, MIND, "
              "CycleGAN and RegGAN, for T1-T2 and CT-MR (Table 2)",
        "R2": "Shuffle Remap beats the Bezier-curve augmentation as the evaluator's noise: IMSE(SR) > IMSE(BC) (Table 2)",
        "R3": "IMSE(SR) gives the smoothest (or near-smoothest) fields, lowest mean ‖∇φ‖ (Table 2)",
    }
    if dim != 2:
        claims_text = {k: v + f"; in {dim}D, without the CycleGAN/RegGAN rows (no {dim}D translators are shipped)"
                       for k, v in claims_text.items()}
    found = {p: t for p in PAIRS if (t := ev.read(f"02_register_{p}{suffix}")) is not None}
    if not found:
        return [_pending(k + tag, v, "02_register") for k, v in claims_text.items()]
    r1, r2, r3 = [], [], []
    c1, c2, c3 = [], [], []
    for t in found.values():
        means = _means(t)
        for direction in dict.fromkeys(t["direction"]):
            if direction not in means.index.get_level_values(0):
                continue
            m = means.loc[direction]
            if "imse_sr" not in m.index:
                continue
            others = m.drop(index="imse_sr")
            part = t[t["direction"] == direction]
            rank = int((m["dice"] > m.loc["imse_sr", "dice"]).sum() + 1)
            best = others["dice"].idxmax() if len(others) else "–"
            r1.append(f"{direction}: IMSE(SR) Dice {m.loc['imse_sr', 'dice']:.3f} (rank {rank}/{len(m)}; best other "
                      f"{best} {others['dice'].max():.3f})")
            if len(others):
                best_hd = others["hd95"].idxmin()
                c1.append(difference_check(f"{direction} Dice, IMSE(SR) − {best}",
                                           *_paired(part, "dice", "imse_sr", best)))
                c1.append(difference_check(f"{direction} HD95, IMSE(SR) − {best_hd}",
                                           *_paired(part, "hd95", "imse_sr", best_hd), better="lower", unit=" mm",
                                           ranked=False))
            if "imse_bc" in m.index:
                c2.append(difference_check(f"{direction} Dice, IMSE(SR) − IMSE(BC)",
                                           *_paired(part, "dice", "imse_sr", "imse_bc")))
                r2.append(f"{direction}: SR {m.loc['imse_sr', 'dice']:.3f} vs BC {m.loc['imse_bc', 'dice']:.3f}")
            smooth_rank = int((others["grad"] < m.loc["imse_sr", "grad"]).sum() + 1)
            c3.append(Check(direction, smooth_rank <= 2, f"‖∇φ‖ rank {smooth_rank} of {len(m)}"))
            r3.append(f"{direction}: ‖∇φ‖ {m.loc['imse_sr', 'grad']:.3g}, rank {smooth_rank}/{len(m)}")
    links = ", ".join(_link(f"02_register_{p}{suffix}", pair_title(p) + tag, ev) for p in found)
    note = _profile_note(*found.values())
    missing = [p for p in PAIRS if p not in found]
    extra = f" (not yet run: {', '.join(pair_title(p) for p in missing)})" if missing and not ev.one_page else ""
    return [
        _claim("R1" + tag, claims_text["R1"], f"{links}{note}: " + "; ".join(r1) + extra, c1),
        _claim("R2" + tag, claims_text["R2"], f"{links}{note}: " + ("; ".join(r2) or "IMSE(BC) not run"), c2),
        _claim("R3" + tag, claims_text["R3"], f"{links}{note}: " + "; ".join(r3), c3),
    ]


def ablation_claim(experiments) -> Claim:
    ev = _source(experiments)
    claim = "A wider range of Shuffle Remap control points is better: N ∈ [2, 50] > [2, 30] > [2, 10] > {2} (Table 3)"
    found = {p: t for p in PAIRS if (t := ev.read(f"06_shuffle_remap_ablation_{p}")) is not None}
    if not found:
        return _pending("R4", claim, "06_shuffle_remap_ablation")
    from imse_study.study.table3 import N_RANGES

    parts, checks = [], []
    kinds = (("registration_network", "VoxelMorph per evaluator, as the paper"), ("registration", "classic optimisation"))
    for pair, t in found.items():
        for kind, how in kinds:
            reg = t[(t.get("metric_kind") == kind) & (t["method"] != "initial")]
            dice = reg.groupby("method")["dice"].mean().reindex(list(N_RANGES)).dropna()
            if len(dice) < 2:
                continue
            parts.append(f"{_link(f'06_shuffle_remap_ablation_{pair}', pair_title(pair), ev)}, {how}: Dice "
                         + ", ".join(f"{k.removeprefix('N_').replace('_', '–')} {v:.3f}" for k, v in dice.items()))
            short = how.split(",")[0]
            widest = dice.index[-1]
            checks.append(Check(f"{short}: the widest range is best", bool(dice.idxmax() == widest),
                                f"best {dice.idxmax()}", float(dice[widest] - dice.drop(index=widest).max())))
            steps = dice.diff().dropna()
            checks.append(Check(f"{short}: Dice rises with every widening", bool(steps.gt(0).all()),
                                f"{int(steps.gt(0).sum())} of {len(steps)} steps up", float(steps.min())))
    if not checks:
        return _pending("R4", claim, "06_shuffle_remap_ablation (with evaluators)")
    return _claim("R4", claim, "; ".join(parts) + _profile_note(*found.values()), checks)


def traditional_claims(experiments) -> list[Claim]:
    ev = _source(experiments)
    c5 = "As the loss of a classic per-pair optimisation of a dense field (Eq. 1), IMSE beats NCC, MI and MIND (Table 4)"
    c6 = "For single-modal registration (T1 → T1, CT → CT), IMSE beats MAE (Table 4)"
    found = {p: t for p in PAIRS if (t := ev.read(f"03_traditional_{p}")) is not None}
    if not found:
        return [_pending("R5", c5, "03_traditional"), _pending("R6", c6, "03_traditional")]
    multi, single, checks5, checks6 = [], [], [], []
    for t in found.values():
        for (kind, direction, mode), g in t[t["method"] != "initial"].groupby(["kind", "direction", "mode"]):
            if mode == "tool":
                continue
            dice = g.groupby("method")["dice"].mean()
            if "imse" not in dice.index or len(dice) < 2:
                continue
            rest = dice.drop(index=[m for m in ("imse", "imse_robust") if m in dice.index])
            best = rest.idxmax()
            text = f"{direction} ({mode}): IMSE {dice['imse']:.3f} vs best other {rest.max():.3f}"
            check = difference_check(f"{direction} ({mode}), Dice IMSE − {best}", *_paired(g, "dice", "imse", best))
            (multi if kind == "multi-modal" else single).append(text)
            (checks5 if kind == "multi-modal" else checks6).append(check)
    links = ", ".join(_link(f"03_traditional_{p}", pair_title(p), ev) for p in found)
    note = _profile_note(*found.values())
    return [_claim("R5", c5, f"{links}{note}, 2D slices (the paper's Table 4 is 3D): " + "; ".join(multi), checks5),
            _claim("R6", c6, f"{links}{note}: " + "; ".join(single), checks6)]


def robustness_claims(experiments) -> list[Claim]:
    """Beyond the paper (07_robustness): does IMSE's minimum sit at the truth under free-form warps?"""
    ev = _source(experiments)
    c1 = ("*Ours, not the paper's:* a free-form field optimised against IMSE keeps or adds Dice over the affine "
          "stage, as it does for MI and MIND (the deformable stage must add Dice, not lose it)")
    c2 = "*Ours:* `imse_robust` (IMSE + MIND) registers better than IMSE alone and than MIND alone (classic, multires)"
    found = {p: t for p in PAIRS if (t := ev.read(f"07_robustness_{p}")) is not None}
    if not found:
        return [_pending("B1", c1, "07_robustness", True), _pending("B2", c2, "07_robustness", True)]
    gains, robust, checks1, checks2 = [], [], [], []
    for pair, t in found.items():
        if {"epe_affine", "epe_deformable"} <= set(t.columns):  # the dense stage moved away from the true field
            from imse_study.study.diagnostic import misled

            t = t.assign(misled=misled(t).astype(float))
        means = t.groupby("variant")[[c for c in ("dice_affine", "dice_deformable", "fooled", "misled")
                                      if c in t.columns]].mean()
        link = _link(f"07_robustness_{pair}", pair_title(pair), ev)
        if "imse" in means.index:
            imse = t[t["variant"] == "imse"]
            checks1.append(difference_check(f"{pair_title(pair)}, IMSE Dice deformable − affine",
                                            *paired_difference(imse["dice_deformable"], imse["dice_affine"])))
            gains.append(f"{link}: IMSE Dice {means.loc['imse', 'dice_affine']:.3f} (affine) → "
                         f"{means.loc['imse', 'dice_deformable']:.3f} (deformable), fooled on "
                         f"{means.loc['imse', 'fooled']:.0%} of pairs"
                         + (f", misled (end-point error raised by the dense stage) on {means.loc['imse', 'misled']:.0%}"
                            if "misled" in means else ""))
        if {"imse_robust", "imse", "mind"} <= set(means.index):
            r = means["dice_deformable"]
            rival = "imse" if r["imse"] >= r["mind"] else "mind"
            checks2.append(difference_check(f"{pair_title(pair)}, Dice imse_robust − {rival}",
                                            *_paired(t, "dice_deformable", "imse_robust", rival, by="variant")))
            robust.append(f"{link}: imse_robust {r['imse_robust']:.3f}, IMSE {r['imse']:.3f}, MIND {r['mind']:.3f}")
    note = _profile_note(*found.values())
    return [_claim("B1", c1, "; ".join(gains) + note, checks1, ours=True),
            _claim("B2", c2, "; ".join(robust) + note, checks2, ours=True)]


def capacity_claim(experiments) -> Claim:
    """B3, from the GPU evidence in ``experiments/gpu`` (width-64 evaluators, not shipped: see COMMANDS.txt)."""
    ev = _source(experiments)
    claim = ("*Ours:* the evaluator's capacity matters: the paper's width (64 channels, 9 blocks, trained on a GPU) "
             "registers better than the shipped CPU-sized evaluators (16 channels, 6 blocks)")
    table2 = ev.read(f"02_register_{T1T2}")
    gpu_table2 = ev.read(f"gpu/02_register_{T1T2}_w64")
    evidence, checks = [], []
    if table2 is not None and gpu_table2 is not None:
        small, large = _means(table2), _means(gpu_table2)
        for direction in dict.fromkeys(gpu_table2["direction"]):
            if (direction, "imse_sr") in small.index and (direction, "imse_sr_w64") in large.index:
                a, b = small.loc[(direction, "imse_sr"), "dice"], large.loc[(direction, "imse_sr_w64"), "dice"]
                both = pd.concat([table2[(table2["direction"] == direction) & (table2["method"] == "imse_sr")],
                                  gpu_table2[(gpu_table2["direction"] == direction)
                                             & (gpu_table2["method"] == "imse_sr_w64")]])
                checks.append(difference_check(f"VoxelMorph {direction}, Dice width 64 − width 16",
                                               *_paired(both, "dice", "imse_sr_w64", "imse_sr")))
                evidence.append(f"VoxelMorph {direction}: IMSE(SR) Dice {a:.3f} (width 16) → {b:.3f} (width 64)")
    for pair in PAIRS:
        tables = [ev.read(f"gpu/07_robustness_{pair}_w{w}") for w in (16, 64)]
        if any(t is None for t in tables):
            continue
        a, b = (t[t["variant"] == "imse"][["dice_affine", "dice_deformable"]].mean() for t in tables)
        both = pd.concat([t[t["variant"] == "imse"].assign(width=w) for t, w in zip(tables, ("16", "64"))])
        checks.append(difference_check(f"classic IMSE {pair_title(pair)}, Dice width 64 − width 16",
                                       *_paired(both, "dice_deformable", "64", "16", by="width")))
        evidence.append(f"classic IMSE {tables[0]['direction'].iloc[0]} (07's diagnostic, {tables[1]['pair'].nunique()} pairs): "
                        f"Dice affine → deformable {a['dice_affine']:.3f} → {a['dice_deformable']:.3f} (width 16), "
                        f"{b['dice_affine']:.3f} → {b['dice_deformable']:.3f} (width 64)")
    if not checks:
        return _pending("B3", claim, "the GPU evidence (book/experiments/gpu)", True)
    return _claim("B3", claim, "; ".join(evidence) + " (one H100; commands in `book/experiments/gpu/COMMANDS.txt`)",
                  checks, ours=True)


def qa_claim(experiments) -> Claim:
    """B4, from 08_qa: IMSE's calibrated estimate tracks the true mean end-point error of registrations
    of varied quality better than NMI and MI: per pair and rival, the subject-bootstrap difference of
    |Spearman rho| (both on the same registrations) above zero."""
    from imse_study.study.qa_comparison import IMSE_ESTIMATE, rho_difference

    ev = _source(experiments)
    claim = ("*Ours:* without labels, IMSE's QA estimate tells how wrong a registration is better than the scores in "
             "use: its |Spearman ρ| with the true mean end-point error beats NMI's and MI's")
    found = {p: t for p in PAIRS if (t := ev.read(f"08_qa_{p}")) is not None}
    if not found:
        return _pending("B4", claim, "08_qa", True)
    evidence, checks = [], []
    for pair, t in found.items():
        parts = []
        for rival in ("NMI", "MI"):
            d, low, high = rho_difference(t, IMSE_ESTIMATE, rival)
            checks.append(difference_check(f"{pair_title(pair)}, |ρ| IMSE estimate − {rival}", d, low, high))
            parts.append(f"{rival} {d:+.2f}")
        evidence.append(f"{_link(f'08_qa_{pair}', pair_title(pair), ev)} ({len(t)} registrations, "
                        f"{t['subject'].nunique()} subjects): |ρ| IMSE − " + ", ".join(parts))
    return _claim("B4", claim, "; ".join(evidence) + _profile_note(*found.values()), checks, ours=True)


STATIC = [Claim(
    "R7", "The paper's absolute numbers (BraTS 2019 T1-T2; clinical head-and-neck CT-MR)",
    "BraTS needs a licence-bound download (its manifest is ready: `data_manifests/brats2019.yaml`); the clinical CT-MR "
    "set is private. Our CT-MR pair is the phantom's CT and T1 of the head",
    decide([], untestable="the paper's data sets are not available to this study"))]

SECTIONS: list[tuple[str, Callable[[Evidence], list[Claim]]]] = [
    ("The evaluator (sections 3, 4.4-4.5)", lambda e: [*evaluator_claims(e), translation_claim(e), correlation_claim(e)]),
    ("Registration (sections 4.2-4.3)", lambda e: [*registration_claims(e), *registration_claims(e, dim=3),
                                                   ablation_claim(e), *traditional_claims(e), *STATIC]),
    ("Beyond the paper: can free-form warps fool the evaluator?", lambda e: [*robustness_claims(e),
                                                                              capacity_claim(e)]),
    ("Beyond the paper: registration QA without labels", lambda e: [qa_claim(e)]),
]

# The claims each experiment page tests (its verdict cell shows them, from its own tables only)
PAGE_CLAIMS: dict[str, Callable[[Evidence, int], list[Claim]]] = {
    "01_evaluator": lambda e, dim: evaluator_claims(e),
    "02_register": lambda e, dim: registration_claims(e, dim=dim),
    "03_traditional": lambda e, dim: traditional_claims(e),
    "04_translation": lambda e, dim: [translation_claim(e)],
    "05_spatial_error": lambda e, dim: [correlation_claim(e)],
    "06_shuffle_remap_ablation": lambda e, dim: [ablation_claim(e)],
    "07_robustness": lambda e, dim: robustness_claims(e),
    "08_qa": lambda e, dim: [qa_claim(e)],
}

HEADER = """# The paper's claims, and what this study finds

Each claim of the paper (Kong et al., CVPR 2023) with its status **on the phantom**: **reproduced**
(the effect the paper describes shows up here: not the paper's numbers, since data, sizes and
budgets differ), **not reproduced** (we ran the test and the effect does not show, or goes the
other way), **partly**, **not testable** (it needs data or resources this study does not
have) or **pending** (not run in this book yet).

One rule decides every status, here and in each experiment page's verdict
(`imse_study/study/verdict.py`): a claim is tested by one check per direction, pair or setting;
a check on a difference passes only when its 95 % interval (paired bootstrap over the test pairs)
lies on the claimed side of zero, and a difference whose interval includes zero never counts as
support. Every check passes: **reproduced**; some: **partly**; none: **not reproduced**.

This page is generated (`python -m imse_study.study.claims`) from the CSV files the executed notebooks
wrote (`book/experiments/<page>.csv`) with fixed rules (see `imse_study/study/claims.py`); the paper's
numbers are in `book/paper_tables.yaml`. Nothing on it is typed by hand.
"""

NOTES = """
## Notes

- The paper's T2 → T1 IMSE PSNR of 91.6 dB (Table 5) cannot go with its own NMAE of 0.029: the
  root-mean-square error is at least the mean absolute error, so an NMAE of 0.029 bounds the PSNR
  at about 31 dB whatever the intensity range. We take it for a typo and compare NMAE and SSIM.
- The phantom is a phantom: a brain template with procedural skull and scalp and textbook tissue
  properties (see the data page). A claim reproduced here is evidence for the mechanism, not for
  the paper's clinical numbers.
"""


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\\\\|", "\\|")


def all_claims(experiments: str | Path | Mapping | Evidence) -> list[tuple[str, list[Claim]]]:
    """(section title, claims) for every section of the claims page."""
    ev = _source(experiments)
    return [(title, build(ev)) for title, build in SECTIONS]


def claims_markdown(experiments: str | Path | Mapping | Evidence) -> str:
    """The whole claims page as Markdown."""
    out = [HEADER]
    for title, found in all_claims(experiments):
        out += [f"\n## {title}\n", "| # | claim (where in the paper) | what we measured | status |", "|---|---|---|---|"]
        out += [f"| {c.key} | {_escape(c.claim)} | {_escape(c.evidence)} | {c.status}: {_escape(c.verdict.why)} |"
                for c in found]
    out.append(NOTES)
    return "\n".join(out)


def page_verdict(stem: str, results_csv: str | Path, modality: str | None = None, dim: int = 2) -> str:
    """The verdict of one experiment page as Markdown: the claims it tests, decided by the same rule
    and code as the claims page, from this run's results file(s) only (``results_csv`` and its
    ``_correlations`` sibling where the page writes one)."""
    results_csv = Path(results_csv)
    name = stem + (f"_{modality}" if modality else "") + ("" if dim in (None, 2) else f"_{dim}d")  # as the claims read
    tables = {name: pd.read_csv(results_csv)}
    sibling = results_csv.with_name(results_csv.stem + "_correlations.csv")
    if sibling.exists():
        tables[f"{name}_correlations"] = pd.read_csv(sibling)
    if stem not in PAGE_CLAIMS:
        raise ValueError(f"no claim is tested on {stem}; pages with claims: {', '.join(PAGE_CLAIMS)}")
    found = PAGE_CLAIMS[stem](Evidence(tables), dim)
    lines = ["**Verdict of this run** (the claims page decides with the same rule: "
             "`imse_study/study/verdict.py`)" + _profile_note(*tables.values()), ""]
    if any("profile" in t and (t["profile"] == "smoke").any() for t in tables.values()):
        lines += ["*Smoke profile: tiny models trained for seconds; this verdict only shows that the page works.*", ""]
    for c in found:
        lines.append(f"- **{c.key}** {c.claim}: {c.status}. {c.verdict.why}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# The intro's tally


TALLY_START = "<!-- claims-tally:start (generated by python -m imse_study.study.claims; do not edit) -->"
TALLY_END = "<!-- claims-tally:end -->"
N_FINDINGS = 3


def findings(claims: list[Claim], n: int = N_FINDINGS) -> list[Claim]:
    """The findings that matter most, by a fixed rule: among the claims with a verdict (not pending,
    not testable), the ``n`` whose largest check is furthest from no effect (``Claim.gap``: a
    difference between IMSE and its best competitor, or a score's distance to its threshold, on a
    unitless scale: Dice, SSIM, correlation, AUC), at most one per claim number (R1 or R1 (3D))."""
    decided = [c for c in claims if c.verdict.status in (REPRODUCED, PARTLY, NOT_REPRODUCED) and math.isfinite(c.gap)]
    out, seen = [], set()
    for c in sorted(decided, key=lambda c: -abs(c.gap)):
        family = c.key.split(" ")[0]
        if family not in seen:
            seen.add(family)
            out.append(c)
    return out[:n]


def tally_markdown(experiments: str | Path | Mapping | Evidence) -> str:
    """The intro's generated part: the count of each verdict and the three findings that matter most."""
    flat = [c for _, found in all_claims(experiments) for c in found]
    counts = {s: sum(c.verdict.status == s for c in flat) for s in (REPRODUCED, PARTLY, NOT_REPRODUCED, NOT_TESTABLE,
                                                                     PENDING)}
    lines = [TALLY_START, "", "## What this study finds", "",
             f"Of the {len(flat)} claims on [the claims page](claims.md) (the paper's and a few of our own): "
             f"**{counts[REPRODUCED]} reproduced**, **{counts[PARTLY]} partly**, **{counts[NOT_REPRODUCED]} not "
             f"reproduced**, **{counts[NOT_TESTABLE]} not testable** here"
             + (f", {counts[PENDING]} pending" if counts[PENDING] else "") + ".", ""]
    top = findings(flat)
    if top:
        lines += ["The findings that matter most (the largest gaps between IMSE and its best competitor, chosen by "
                  "a fixed rule in `imse_study/study/claims.py`):", ""]
        for c in top:
            worst = max((k for k in c.checks if math.isfinite(k.effect)), key=lambda k: abs(k.effect))
            lines.append(f"1. **{c.key}**, {c.status}: {c.claim}. "
                         f"Largest gap: {worst.text()}.")
    lines += ["", TALLY_END]
    return "\n".join(lines)


def write_tally(intro: str | Path, experiments: str | Path | Mapping | Evidence) -> Path | None:
    """Rewrite the generated part of ``intro`` (between the marker comments), atomically; an intro
    without the markers is left alone (returns None)."""
    intro = Path(intro)
    if not intro.exists():
        return None
    text = intro.read_text()
    if TALLY_START not in text or TALLY_END not in text:
        return None
    head, rest = text.split(TALLY_START, 1)
    _, tail = rest.split(TALLY_END, 1)
    new = head + tally_markdown(experiments) + tail
    return atomic_write(intro, lambda tmp: Path(tmp).write_text(new))


def write_claims(experiments: str | Path, out: str | Path | None = None) -> Path:
    """Write the claims page (default: ``claims.md`` beside ``experiments``, i.e. ``book/claims.md``),
    atomically, and the tally of ``intro.md`` beside it (if that file has the tally's markers)."""
    path = Path(out) if out else Path(experiments).parent / "claims.md"
    ev = Evidence(experiments)
    text = claims_markdown(ev)
    written = atomic_write(path, lambda tmp: Path(tmp).write_text(text))
    write_tally(path.parent / "intro.md", ev)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m imse_study.study.claims", description=__doc__.split("\n")[0])
    parser.add_argument("--experiments", type=Path, help="folder of executed notebooks + CSVs (default: the "
                                                          "checkout's book/experiments)")
    parser.add_argument("--repo", type=Path, help="the checkout (default: the one the working folder is in)")
    parser.add_argument("--out", type=Path, help="output Markdown (default: claims.md beside the experiments folder)")
    args = parser.parse_args(argv)
    if args.experiments is None:
        try:
            args.experiments = find_checkout(args.repo) / "book" / "experiments"
        except FileNotFoundError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
    if not args.experiments.is_dir():
        print(f"error: {args.experiments} is not a folder of executed notebooks", file=sys.stderr)
        return 2
    print(f"claims: {write_claims(args.experiments, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
