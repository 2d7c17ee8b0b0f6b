"""The study's translation and spatial-error pages (notebooks 04 and 05): models, tables, readings.

* Section 4.4, Table 5 and Figure 6: IMSE translates a source image y into the evaluator's modality
  as ``x - E(x, y)`` with a reference x of that modality (misaligned on purpose);
  CycleGAN / RegGAN translate y with a generator and never see a reference. All three are scored
  against the phantom's true image of the same slice (NMAE, PSNR, SSIM).
* Section 4.5, Figure 7: error maps |G(y) - x| and |E(x, y)| on a misaligned and an aligned pair.
  (Figure 8's correlations live in :mod:`imse_study.study.correlation`.)

Direction (both pages): the evaluator's modality is the target, the other modality of the pair the
source, i.e. the paper's Table 5 rows T2 -> T1 (pair ``t1t2``) and MR -> CT (pair ``ctmr``, MR = T1).
The reading functions write the pages' Markdown from the result tables, so no number is typed
into prose.
"""

from __future__ import annotations

import math
import shlex
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from imse_study.augment import random_spatial_displacement
from imse_study.data.datasets import dataset_phrase, is_phantom
from imse_study.modalities import T1T2, pair, pair_title
from imse_study.study.models import PageModel, obtain_evaluator, shipped_text, trained_text
from imse_study.warp import warp

__all__ = [
    "COMPETITORS",
    "METHOD_NAMES",
    "TRANSLATOR_KINDS",
    "UNTRANSLATED",
    "Direction",
    "PageModel",
    "availability_table",
    "direction",
    "figure6_references",
    "figure6_translations",
    "figure7_cases",
    "load_translators",
    "page_evaluator",
    "spatial_error_reading",
    "table5_comparison",
    "table5_items",
    "translation_reading",
    "translator_command",
]

TRANSLATOR_KINDS = ("cyclegan", "reggan")
METHOD_NAMES = {"cyclegan": "CycleGAN", "reggan": "RegGAN", "imse": "IMSE", "reference": "reference x as is"}
FIGURE6_SEED = 66_666
FIGURE7_SEED = 77_777
UNTRANSLATED = "|y - x| (no translation)"  # a reference score: no model at all
COMPETITORS = ("CycleGAN", "RegGAN")


@dataclass(frozen=True)
class Direction:
    """What a notebook's ``modality`` means for translation: source -> target (= evaluator modality)."""

    pair: str
    source: str  # the other modality of the pair: translated from
    target: str  # the evaluator's modality: translated into, and the reference's modality
    paper_key: str  # the paper's Table 5 row (paper_tables.yaml)

    @property
    def label(self) -> str:
        return f"{self.source.upper()} -> {self.target.upper()}"


def direction(modality: str) -> Direction:
    """``t1t2``: T2 -> T1 (evaluator T1); ``ctmr``: T1 (MR) -> CT (evaluator CT)."""
    found = pair(modality)
    return Direction(modality, found.other, found.evaluator, found.paper_table5)


# --------------------------------------------------------------------------------------------
# Models: shipped or trained here


def _must_be_2d(dim: int) -> None:
    if dim != 2:
        raise ValueError(f"the translation and spatial-error pages run in 2D (shipped models, slice figures); got dim={dim}")


def page_evaluator(modality: str, dim: int = 2, profile: str = "quick", train: bool = False, seed: int = 0,
                   dataset: str = "phantom", data_root: str | None = None,
                   out: str | Path | None = None) -> PageModel:
    """The evaluator trained on ``modality`` as notebook 01 gets it (:func:`imse_study.study.models.obtain_evaluator`),
    in 2D only."""
    _must_be_2d(dim)
    return obtain_evaluator(modality, dim, profile, train, seed, dataset, data_root, out)


def translator_command(kind: str, source: str, target: str, dim: int = 2, profile: str = "quick", seed: int = 0) -> str:
    """The shell commands that train a translator and ship it into the package's zoo."""
    out = f"runs/{kind}-{source}-{target}-{dim}d"
    train = ["imse-study", "train-translator", "--kind", kind, "--source", source, "--target", target,
             "--dim", str(dim), "--profile", profile, "--seed", str(seed), "--out", out]
    return f"{shlex.join(train)} && python -m imse_study.study.zoo {out}"


def load_translators(source: str, target: str, dim: int = 2, profile: str = "quick", train: bool = False,
                     seed: int = 0, kinds: tuple[str, ...] = TRANSLATOR_KINDS, dataset: str = "phantom",
                     data_root: str | None = None, out: str | Path | None = None) -> dict[str, PageModel]:
    """The ``source -> target`` CycleGAN and RegGAN generators.

    Quick profile: the shipped ``<kind>-<source>-<target>-<dim>d`` (a missing one comes back with
    ``model=None`` and the command that makes it: the page shows the row as not available). Smoke
    profile, ``train=True``, or a missing file in another profile: trained here with that profile.
    The shipped translators are phantom-trained: another ``dataset`` needs the smoke profile or ``train``.
    """
    from imse_study.baselines.train import train_translator
    from imse_study.baselines.translator import load_translator
    from imse_study.evaluator.pretrained import refuse_shipped
    from imse_study.study.zoo import translator_path

    _must_be_2d(dim)
    if not (train or profile == "smoke"):
        refuse_shipped(dataset, "translators")
    out_root = Path(out) if out else None
    choices = {}
    for kind in kinds:
        path = None if (train or profile == "smoke") else translator_path(kind, source, target, dim, profile)
        command = translator_command(kind, source, target, dim, profile, seed)
        if path is not None:
            model = load_translator(path, source, target).eval()
            choices[kind] = PageModel(model, path, shipped_text(path.stem), model.meta.command, model.meta)
        elif profile == "quick" and not train:
            choices[kind] = PageModel(None, None, "missing", command)
        else:
            run = (out_root / f"{kind}-{source}-{target}") if out_root else Path(tempfile.mkdtemp(prefix=f"imse-{kind}-"))
            result = train_translator(kind, source, target, run, dim=dim, profile=profile, seed=seed, progress=False,
                                      dataset=dataset, root=data_root)
            model = load_translator(result.checkpoint, source, target).eval()
            choices[kind] = PageModel(model, result.checkpoint, trained_text(profile, result.steps), model.meta.command,
                                      model.meta)
    return choices


def availability_table(models: dict[str, PageModel]) -> pd.DataFrame:
    """One row per model: method, status (origin or how to train it), the command that reproduces it."""
    return pd.DataFrame([{"method": METHOD_NAMES.get(k, k), "status": c.status,
                          "reproduce": c.command if c.available else ""} for k, c in models.items()])


# --------------------------------------------------------------------------------------------
# Table 5


def table5_items(evaluator: torch.nn.Module, translators: dict[str, PageModel], source: str, target: str,
                 dim: int = 2, profile: str = "quick", split: str = "test", limit: int | None = None,
                 dataset: str = "phantom", data_root: str | None = None, reference_row: bool = True) -> pd.DataFrame:
    """Per-item Table 5 scores: ``method, source, target, item, nmae, psnr, ssim``.

    IMSE: :func:`imse_study.evaluator.quality.translation_scores` (reference = the target-modality
    image of the same slice under a random transform; ``x - E(x, y)``). GANs: ``G(y)``. Truth: the
    target-modality image of the same slice, aligned with y (the phantom's, or a manifest set's
    aligned image; ``dataset``/``data_root``). Missing translators give no rows.
    ``reference_row`` adds method ``reference``: the misaligned reference itself, unchanged, as a
    yardstick (IMSE's translation has to do better than returning its input).
    """
    from imse_study.baselines.translator import translate_with, translation_metrics
    from imse_study.evaluator.quality import misaligned_reference, translation_scores
    from imse_study.evaluator.train import load_images

    images = load_images([target, source], split, dim, profile, dataset, data_root)
    truth, src = images[target], images[source]
    if limit is not None:
        truth, src = truth[:limit], src[:limit]
    frames = [translation_scores(evaluator, truth, src, target, source)]
    if reference_row:  # the same misaligned reference IMSE's translation gets, returned unchanged
        reference = misaligned_reference(truth)
        frames.append(pd.DataFrame({"item": np.arange(src.shape[0]), "source": source, "target": target,
                                    "method": "reference", **translation_metrics(reference, truth)}))
    for kind, choice in translators.items():
        if not choice.available:
            continue
        with torch.no_grad():
            pred = torch.cat([translate_with(choice.model, src[i:i + 16]) for i in range(0, src.shape[0], 16)])
        scores = translation_metrics(pred, truth)
        frames.append(pd.DataFrame({"item": np.arange(src.shape[0]), "source": source, "target": target,
                                    "method": kind, **scores}))
    cols = ["method", "source", "target", "item", "nmae", "psnr", "ssim"]
    return pd.concat(frames, ignore_index=True)[cols]


def table5_comparison(items: pd.DataFrame, paper: dict, paper_key: str,
                      models: dict[str, PageModel] | None = None, dataset: str = "phantom") -> pd.DataFrame:
    """Our Table 5 (mean and standard deviation over items per method and source) next to the paper's row.

    ``items`` has columns ``method, source, target, nmae, psnr, ssim`` (:func:`table5_items`, or
    :func:`imse_study.evaluator.quality.translation_quality` rows, whose method is ``imse``); a
    method scored from several sources gets one row per source. ``models`` (method ->
    :class:`PageModel`) adds a row for a method with no scores, its status saying how to train
    it, and the ``input`` column says what each method was given. Means and standard deviations
    are over the finite values: an exact prediction's infinite PSNR
    (:mod:`imse_study.metrics.image`) is left out of them, not averaged into an infinite mean.
    """
    rows = []
    order = list(dict.fromkeys([*(models or {}), *items["method"].unique()]))
    for method in order:
        scored = items[items["method"] == method]
        groups = [g for _, g in scored.groupby("source", sort=False)] if len(scored) else [scored]
        status = (models[method].status if models and method in models else
                  "yardstick: the misaligned reference, unchanged" if method == "reference" else "computed here")
        for g in groups:
            row = {"study": f"this study ({'phantom' if is_phantom(dataset) else dataset})",
                   "direction": _direction_label(items, g), "method": METHOD_NAMES.get(method, method),
                   "input": _input(method), "items": len(g), "status": status}
            for m in ("nmae", "psnr", "ssim"):
                vals = g[m].to_numpy(float)
                vals = vals[np.isfinite(vals)]
                row[m] = float(vals.mean()) if vals.size else math.nan
                row[f"{m}_std"] = float(vals.std(ddof=1)) if vals.size > 1 else math.nan
            rows.append(row)
    for method, v in paper["table5_translation"][paper_key].items():
        rows.append({"study": "paper (Table 5)", "direction": paper_key.replace("_to_", " -> ").upper(),
                     "method": METHOD_NAMES.get(method, method), "input": _input(method), "items": None,
                     "status": "published", "nmae": v["nmae"], "psnr": v["psnr"], "ssim": v["ssim"]})
    out = pd.DataFrame(rows)
    out["items"] = out["items"].astype("Int64")
    return out


def _direction_label(items: pd.DataFrame, g: pd.DataFrame) -> str:
    src = (g if len(g) else items)["source"].iloc[0] if len(items) else "?"
    tgt = (g if len(g) else items)["target"].iloc[0] if len(items) else "?"
    return f"{str(src).upper()} -> {str(tgt).upper()}"


def _input(method: str) -> str:
    return {"imse": "source + misaligned target-modality reference",
            "reference": "misaligned target-modality reference only"}.get(method, "source only")


# --------------------------------------------------------------------------------------------
# Figure 6: one source, several references


def figure6_references(truth: torch.Tensor, subjects: np.ndarray, item: int = 0, n_misaligned: int = 2,
                       n_subjects: int = 2, seed: int = FIGURE6_SEED) -> dict[str, torch.Tensor]:
    """References x (1, 1, *S) of the target modality for the source of test item ``item``:
    the same slice under ``n_misaligned`` random transforms (the paper's, seeded), and slices of up
    to ``n_subjects`` other test subjects (different anatomy altogether)."""
    if not 0 <= item < truth.shape[0]:
        raise ValueError(f"item {item} is outside the {truth.shape[0]} test items")
    g = torch.Generator().manual_seed(seed)
    out = {}
    if n_misaligned:
        fields = random_spatial_displacement(tuple(truth.shape[2:]), n_misaligned, generator=g)
        moved = warp(truth[item:item + 1].expand(n_misaligned, *truth.shape[1:]), fields)
        for k in range(n_misaligned):
            out[f"same slice, transform {k + 1}"] = moved[k:k + 1]
    subjects = [str(s) for s in np.asarray(subjects).tolist()]  # the phantom's int ids or a manifest's names
    seen = {subjects[item]}
    for j in range(truth.shape[0]):
        if len(seen) > n_subjects:
            break
        if subjects[j] not in seen:
            seen.add(subjects[j])
            out[f"subject {subjects[j]}, item {j}"] = truth[j:j + 1]
    return out


@torch.no_grad()
def figure6_translations(evaluator: torch.nn.Module, source: torch.Tensor, truth: torch.Tensor,
                         references: dict[str, torch.Tensor]) -> tuple[dict[str, tuple], pd.DataFrame]:
    """``x' = x - E(x, y)`` for one source y (1, 1, *S) and each reference x (section 4.4, Figure 6).

    Returns ``{name: (x, E(x, y), x')}`` and a table: reference, and NMAE / PSNR / SSIM of x'
    against the truth (y's anatomy in the target modality) and of x' against the reference x (how
    much of the reference's geometry leaked through: high similarity to x means little of y's).
    """
    from imse_study.evaluator.use import error_map
    from imse_study.evaluator.quality import image_quality

    outputs, rows = {}, []
    for name, x in references.items():
        e = error_map(evaluator, x, source)
        translated = (x - e).clamp(-1.0, 1.0)
        outputs[name] = (x[0, 0], e[0, 0], translated[0, 0])
        row = {"reference": name}
        row.update({f"{k}_vs_truth": v for k, v in image_quality(translated[0, 0].numpy(), truth[0, 0].numpy()).items()})
        row.update({f"{k}_vs_reference": v for k, v in image_quality(translated[0, 0].numpy(), x[0, 0].numpy()).items()})
        rows.append(row)
    return outputs, pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Figure 7: error maps on one misaligned and one aligned pair


@torch.no_grad()
def figure7_cases(evaluator: torch.nn.Module, translators: dict[str, PageModel], reference: torch.Tensor,
                  other: torch.Tensor, labels: torch.Tensor, item: int = 0, strength: float = 1.0,
                  seed: int = FIGURE7_SEED, untranslated: bool = False) -> dict[str, dict]:
    """For test ``item``: ``{"misaligned": case, "aligned": case}``, each case holding ``reference``
    x, ``moved`` y, ``labels`` (true, x's), ``moved_labels`` and ``maps`` (method -> |error| map:
    |G(y) - x| per available translator, |E(x, y)| for IMSE and, with ``untranslated``, the plain
    |y - x| as a reference), all (H, W)."""
    from imse_study.baselines.translator import translate_with
    from imse_study.evaluator.use import error_map

    x, y = reference[item:item + 1], other[item:item + 1]
    lab = labels[item:item + 1].long().unsqueeze(1)
    g = torch.Generator().manual_seed(seed)
    fld = random_spatial_displacement(tuple(x.shape[2:]), 1, generator=g) * strength
    cases = {}
    for name, (yy, ll) in {"misaligned": (warp(y, fld), warp(lab, fld, mode="nearest")), "aligned": (y, lab)}.items():
        maps = {METHOD_NAMES[k]: (translate_with(c.model, yy) - x).abs()[0, 0]
                for k, c in translators.items() if c.available}
        maps["IMSE"] = error_map(evaluator, x, yy).abs()[0, 0]
        if untranslated:
            maps[UNTRANSLATED] = (yy - x).abs()[0, 0]
        cases[name] = {"reference": x[0, 0], "moved": yy[0, 0], "labels": lab[0, 0], "moved_labels": ll[0, 0],
                       "maps": maps}
    return cases


# --------------------------------------------------------------------------------------------
# Readings (Markdown written from the numbers)


def _fmt(v: float, digits: int = 3) -> str:
    return "n/a" if v is None or (isinstance(v, float) and not math.isfinite(v)) else f"{v:.{digits}f}"


def translation_reading(modality: str, profile: str, comparison: pd.DataFrame, figure6: pd.DataFrame | None = None,
                        dataset: str = "phantom") -> str:
    """The translation page's reading (Table 5, Figure 6), from the comparison table."""
    d = direction(modality)
    lines = []
    if profile == "smoke":
        lines.append("*Smoke profile*: tiny models trained for a few steps on 48 × 48 px images. The numbers below "
                     "only show that the page runs; they say nothing about the methods.")
    ours = comparison[comparison["study"].str.startswith("this")]
    paper = comparison[comparison["study"].str.startswith("paper")].set_index("method")
    yard = ours[ours["method"] == METHOD_NAMES["reference"]]
    ours = ours[ours["method"] != METHOD_NAMES["reference"]]
    scored = ours[ours["items"] > 0]
    missing = ours[ours["items"] == 0]
    if len(scored):
        parts = "; ".join(f"{r.method} NMAE {_fmt(r.nmae)}, PSNR {_fmt(r.psnr, 1)} dB, SSIM {_fmt(r.ssim, 2)}"
                          for r in scored.itertuples())
        best = scored.sort_values("nmae").iloc[0]
        lines.append(f"**Table 5 ({d.label}, {int(scored['items'].max())} test slices of {dataset_phrase(dataset)}).** {parts}. "
                     f"Lowest NMAE: {best.method}.")
        imse = scored[scored["method"] == "IMSE"]
        gans = scored[scored["method"] != "IMSE"]
        if len(imse) and len(gans):
            i = imse.iloc[0]
            better = [g.method for g in gans.itertuples() if i.nmae < g.nmae and i.ssim > g.ssim]
            worse = [g.method for g in gans.itertuples() if i.nmae > g.nmae and i.ssim < g.ssim]
            order = ("IMSE beats " + " and ".join(better) + " on both NMAE and SSIM, as in the paper" if better and not worse
                     else "IMSE is worse than " + " and ".join(worse) + " on both NMAE and SSIM, unlike the paper" if worse and not better
                     else "the ranking of IMSE against the GANs is mixed (NMAE and SSIM disagree, or the GANs split)")
            lines.append(f"Here {order}.")
        if len(imse) and len(yard) and yard.iloc[0]["items"] > 0:
            i, y = imse.iloc[0], yard.iloc[0]
            gain = "improves on" if i.nmae < y.nmae and i.ssim > y.ssim else \
                "does not improve on" if i.nmae >= y.nmae and i.ssim <= y.ssim else "is mixed against"
            lines.append(f"Yardstick: the misaligned reference itself, returned unchanged, scores NMAE {_fmt(y.nmae)}, "
                         f"SSIM {_fmt(y.ssim, 2)} against the truth; IMSE's translation {gain} it, i.e. "
                         + ("the evaluator moves the reference's anatomy towards the source's." if gain == "improves on"
                            else "much of IMSE's score is the reference's own similarity to the truth."))
    if len(missing):
        lines.append("Not scored: " + ", ".join(missing["method"]) + " (no shipped translator; the table gives the "
                     "command that trains one).")
    lines.append("**The comparison is not like for like** (the paper says so too): IMSE's translation x − E(x, y) is "
                 f"given a reference image x of the target modality ({d.target.upper()}), of the same slice but moved "
                 "by a random transform, and keeps its contrast; CycleGAN and RegGAN see only the source image. The "
                 "reference carries the target modality's intensities (here even the same subject's), which a GAN "
                 "has to learn.")
    if len(paper):
        p = "; ".join(f"{m} NMAE {_fmt(r.nmae)}, PSNR {_fmt(r.psnr, 1)}, SSIM {_fmt(r.ssim, 2)}" for m, r in paper.iterrows())
        lines.append(f"The paper's row ({d.paper_key.replace('_to_', ' → ').upper()}, on "
                     f"{pair(modality).paper_data}): {p}. Different data, "
                     "image sizes and training budgets: compare orders of magnitude and the ranking, not the digits."
                     + (" (The paper's IMSE PSNR of 91.6 dB cannot go with its own NMAE of 0.029: RMSE ≥ MAE bounds "
                        "PSNR at about 31 dB, so it is most likely a typo.)" if modality == T1T2 else ""))
    if figure6 is not None and len(figure6):
        same = figure6[figure6["reference"].str.startswith("same")]
        other = figure6[~figure6["reference"].str.startswith("same")]
        bits = []
        if len(same):
            bits.append(f"with the same slice as reference under random transforms, x′ against the truth: mean NMAE "
                        f"{_fmt(same['nmae_vs_truth'].mean())}, SSIM {_fmt(same['ssim_vs_truth'].mean(), 2)}")
        if len(other):
            follows = (other["ssim_vs_truth"] > other["ssim_vs_reference"]).mean()
            bits.append(f"with other subjects' slices as reference: NMAE {_fmt(other['nmae_vs_truth'].mean())}, SSIM "
                        f"{_fmt(other['ssim_vs_truth'].mean(), 2)} against the truth and SSIM "
                        f"{_fmt(other['ssim_vs_reference'].mean(), 2)} against the reference itself; x′ is closer to "
                        f"the source's anatomy than to the reference's in {follows:.0%} of them"
                        + (" (as the paper's Figure 6 shows)" if follows >= 0.5 else
                           " (so here the output keeps too much of the reference's geometry, unlike the paper's Figure 6)"))
        lines.append("**Figure 6.** " + "; ".join(bits) + ".")
    return "\n\n".join(lines)


def spatial_error_reading(modality: str, profile: str, correlations: pd.DataFrame,
                          differences: pd.DataFrame | None = None, missing: list[str] | None = None,
                          aligned_vs_misaligned: pd.DataFrame | None = None, dataset: str = "phantom") -> str:
    """The spatial-error page's reading (Figures 7 and 8), from the correlation table.

    ``correlations``: :func:`imse_study.study.correlation.correlation_table` output (columns ``method``,
    ``correlation``, ``r``, ``low``, ``high``, ``n``); ``differences``: rows ``first``, ``second``,
    ``difference``, ``low``, ``high`` (Spearman, IMSE minus a GAN); ``aligned_vs_misaligned``:
    method, case, mean_error for Figure 7's pair.
    """
    title = pair_title(modality)
    lines = []
    if profile == "smoke":
        lines.append("*Smoke profile*: tiny models trained for a few steps on 48 × 48 px images. The numbers below "
                     "only show that the page runs; they say nothing about the methods.")
    if aligned_vs_misaligned is not None and len(aligned_vs_misaligned):
        piv = aligned_vs_misaligned.pivot_table(index="method", columns="case", values="mean_error", sort=False)
        if {"aligned", "misaligned"} <= set(piv.columns):
            bits = [f"{m} {_fmt(r['aligned'])} aligned vs {_fmt(r['misaligned'])} misaligned "
                    f"(ratio {_fmt(r['misaligned'] / r['aligned'], 1) if r['aligned'] > 0 else 'n/a'})"
                    for m, r in piv.iterrows()]
            lines.append("**Figure 7** (mean absolute error over the whole image, for the one pair shown): " + "; ".join(bits) + ". "
                         "The paper's point is that the GANs' |G(y) − x| stays large on the aligned pair (residual "
                         "translation error), while IMSE's drops; the ratio says how much each map changes with the "
                         "misalignment alone.")
    sp = correlations[correlations["correlation"] == "spearman"].set_index("method")
    pe = correlations[correlations["correlation"] == "pearson"].set_index("method")
    if len(sp):
        n = int(sp["n"].max())
        bits = []
        for m, r in sp.iterrows():
            p = pe.loc[m] if m in pe.index else None
            bits.append(f"{m} Spearman {_fmt(r['r'], 2)} [{_fmt(r['low'], 2)}, {_fmt(r['high'], 2)}]"
                        + (f", Pearson {_fmt(p['r'], 2)} [{_fmt(p['low'], 2)}, {_fmt(p['high'], 2)}]" if p is not None else ""))
        lines.append(f"**Figure 8 ({title}, {n} transformed test pairs).** Correlation of each method's error score "
                     f"(mean over the foreground) with the Dice of the moved labels, 95 % intervals: " + "; ".join(bits) + ". "
                     "An error score that tracks misalignment correlates *negatively* with Dice (the paper plots "
                     "1 − normalised error, which flips the sign).")
        verdicts = []
        for m, r in sp.iterrows():
            if not math.isfinite(r["r"]):
                verdicts.append(f"{m}: undefined (constant scores)")
            elif r["high"] < 0:
                strength = "strongly" if r["r"] <= -0.7 else "moderately" if r["r"] <= -0.4 else "weakly"
                verdicts.append(f"{m} tracks Dice {strength} (interval below zero)")
            elif r["low"] > 0:
                verdicts.append(f"{m} goes the wrong way (higher error with higher Dice)")
            else:
                verdicts.append(f"{m} shows no clear correlation (interval includes zero)")
        lines.append("; ".join(verdicts) + ".")
    if differences is not None and len(differences):
        bits = []
        for r in differences.itertuples():
            if not math.isfinite(r.difference):
                continue
            verdict = (f"{r.first} clearly stronger" if r.high < 0 else f"{r.first} clearly weaker" if r.low > 0
                       else "not distinguishable")
            bits.append(f"{r.first} − {r.second}: {_fmt(r.difference, 2)} [{_fmt(r.low, 2)}, {_fmt(r.high, 2)}] ({verdict})")
        if bits:
            lines.append("Paired bootstrap of the difference in Spearman correlation on the same pairs: " + "; ".join(bits) + ".")
    claim = ("The paper's claim (Figure 8): IMSE correlates with Dice, CycleGAN and RegGAN much less, especially for "
             "T1-T2.")
    lines.append(claim + " Whether this run reproduces it is the page's verdict (the paired differences above, "
                         "decided by the rule of `imse_study/study/verdict.py`: a difference whose interval includes "
                         "zero is not support).")
    if UNTRANSLATED in sp.index and math.isfinite(sp.loc[UNTRANSLATED, "r"]):
        u = sp.loc[UNTRANSLATED, "r"]
        beats = ""
        if "IMSE" in sp.index and math.isfinite(sp.loc["IMSE", "r"]):
            beats = f" (here IMSE's is {'more' if sp.loc['IMSE', 'r'] < u else 'not more'} negative)"
        lines.append(f"For scale: the plain |y − x| with no model at all has Spearman {_fmt(u, 2)}; part of any "
                     "score's correlation comes from the transforms alone (a stronger transform moves more of the "
                     "head outline and changes the foreground region), so a method earns credit only beyond it"
                     + beats + ".")
    if missing:
        lines.append("Not computed: " + ", ".join(missing) + " (no shipped translator; see the models table for the "
                     "command that trains one).")
    lines.append("Caveats: " + ("the phantom's subjects differ by smooth deformations and tissue jitter, not by pathology "
                                "or scanner; " if is_phantom(dataset) else "") + "the transforms are the paper's random affine + elastic field at graded strength, so Dice "
                 "and the error scores are driven by the same displacement; the paper's test was in 3D, this one is "
                 "on 2D slices.")
    return "\n\n".join(lines)
