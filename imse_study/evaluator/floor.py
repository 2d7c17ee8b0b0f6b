"""What a mean |E| means for one evaluator: its floor on aligned test pairs, and a plain reading.

An evaluator is never exactly silent on aligned multi-modal pairs (Eq. 5 learns the other image's
look, and contrasts that differ by anatomy, such as scalp fat on T1 and CSF on T2, leave error).
The FLOOR of an evaluator is what it reports where nothing is misaligned: mean |E| over the joint
foreground (union of the two masks, as the ranking check and section 4.5's score) of the phantom's
aligned test pairs, its reference modality against each other modality, and of each test image
against itself; with the 95th percentile of the aligned pairs. It is stored as a ``floor`` block in
the ``<name>.json`` beside the evaluator's ``.pt`` (the weights are not touched) by

    python -m imse_study.evaluator.floor NAME|FILE [--overwrite]

and :func:`reading` turns a score into words against it ("like aligned test pairs", "worse than
95 % of aligned test pairs", ...), wherever a score or an error map is shown.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from imse_study.atomic import atomic_write_json

FOREGROUND_THRESHOLD = -0.9  # images in [-1, 1]: air sits at -1 (evaluator.use.foreground_mask)
PERCENTILE = 95.0
FLOOR_SPLIT = "test"
NO_FLOOR = "no floor recorded"
# The legend of every error map: what E is, its unit and what each sign means (Eq. 5).
ERROR_UNITS = "E = reference - other as if in the reference's contrast, in image units ([-1, 1] images, |E| <= 2)"
SIGN_MEANING = ("red (E > 0): the other image is darker there than the reference predicts; "
                "blue (E < 0): brighter")


def foreground_score(reference: np.ndarray, other: np.ndarray, error: np.ndarray,
                     threshold: float = FOREGROUND_THRESHOLD) -> float:
    """Mean |E| over the joint foreground (voxels above ``threshold`` in either image, both in
    [-1, 1]): the score the floor is measured in. The whole image when neither has foreground."""
    reference, other, error = np.asarray(reference), np.asarray(other), np.asarray(error)
    mask = (reference > threshold) | (other > threshold)
    if not mask.any():
        return float(np.abs(error).mean())
    return float(np.abs(error[mask]).mean())


def evaluator_json(evaluator: str | Path) -> Path:
    """The metadata file of an evaluator: ``pretrained/<name>.json`` for a shipped name, else the
    ``.json`` beside the checkpoint file."""
    from imse_study.evaluator.pretrained import PRETRAINED_DIR

    if isinstance(evaluator, str) and (PRETRAINED_DIR / f"{evaluator}.pt").exists():
        return PRETRAINED_DIR / f"{evaluator}.json"
    return Path(evaluator).with_suffix(".json")


def load_floor(evaluator: str | Path) -> dict[str, Any] | None:
    """The evaluator's recorded floor, or None when its metadata has none (or no readable .json)."""
    path = evaluator_json(evaluator)
    try:
        floor = json.loads(path.read_text()).get("floor")
    except (OSError, ValueError, AttributeError):
        return None
    return floor if isinstance(floor, dict) and "aligned_p95" in floor else None


def _stats(values: np.ndarray) -> dict[str, float | int]:
    return {"mean": round(float(np.mean(values)), 5), "p95": round(float(np.percentile(values, PERCENTILE)), 5),
            "pairs": int(values.size)}


def measure_floor(model, meta, modalities: list[str] | None = None) -> dict[str, Any]:
    """The floor block of an evaluator trained on the phantom (``meta``: its EvaluatorMeta).

    Aligned pairs: each test image of ``meta.modality`` against the same slice or volume in every
    other phantom modality (``modalities``, default all), pooled, per modality and over the MR ones
    (``by_modality["mr"]``); self pairs: each image against itself. Scores are mean |E| over the
    union of the foreground masks, per pair.
    """
    import torch

    from imse_study.data.datasets import is_phantom
    from imse_study.data.phantom import MODALITIES
    from imse_study.evaluator.train import MR_MODALITIES, load_images, mean_abs_error

    if not is_phantom(meta.dataset):
        raise ValueError(f"the floor is measured on the phantom's aligned test pairs; this evaluator was trained on "
                         f"{meta.dataset!r}")
    others = [m for m in (modalities or MODALITIES) if m != meta.modality]
    version = (meta.extra.get("recipe") or {}).get("phantom_version") if isinstance(meta.extra, dict) else None
    images = load_images([meta.modality, *others], FLOOR_SPLIT, meta.dim, meta.profile, phantom_version=version)
    reference = images[meta.modality]
    with torch.no_grad():
        by_modality = {m: mean_abs_error(model, reference, images[m]) for m in others}
        itself = mean_abs_error(model, reference, reference)
    aligned = np.concatenate(list(by_modality.values()))
    pooled, own = _stats(aligned), _stats(itself)
    groups = {m: _stats(v) for m, v in by_modality.items()}
    mr = [v for m, v in by_modality.items() if m in MR_MODALITIES]
    if mr:  # what --other-modality mr (any MR image) is read against
        groups["mr"] = _stats(np.concatenate(mr))
    data = f"phantom{'' if version is None else f' version {version}'}, {FLOOR_SPLIT} split, profile {meta.profile}"
    return {
        "aligned_mean": pooled["mean"], "aligned_p95": pooled["p95"], "aligned_pairs": pooled["pairs"],
        "self_mean": own["mean"], "self_p95": own["p95"],
        "by_modality": groups,
        "score": "mean |E| over the union of the two foreground masks (> -0.9 in [-1, 1] images), per pair",
        "data": f"{data}, {meta.dim}D, {meta.modality} against {', '.join(others)} and against itself",
    }


def reading(score: float, floor: dict[str, Any] | None, other_modality: str | None = None) -> str:
    """A plain reading of a foreground mean |E| (:func:`foreground_score`) against ``floor``.

    The aligned pairs of ``other_modality`` when the floor has them, else all aligned pairs:
    at or below an image against itself, like aligned test pairs (within their 95th percentile),
    worse than 95 % of them, or above twice that percentile (likely misaligned, or images unlike
    the phantom's). Without a floor, says so.
    """
    if floor is None:
        return f"{NO_FLOOR} for this evaluator (python -m imse_study.evaluator.floor records one)"
    mean, p95, which = _reference_pairs(floor, other_modality)
    return (f"{verdict(score, floor, other_modality)} ({which}: mean {mean:.3f}, 95 % below {p95:.3f}; "
            f"image against itself {floor['self_mean']:.3f})")


def _reference_pairs(floor: dict[str, Any], other_modality: str | None) -> tuple[float, float, str]:
    """(mean, 95th percentile, what they are) of the aligned pairs a score is read against."""
    ref = (floor.get("by_modality") or {}).get(other_modality or "")
    if ref:
        name = "MR" if other_modality == "mr" else other_modality
        return ref["mean"], ref["p95"], f"aligned {name} test pairs"
    return floor["aligned_mean"], floor["aligned_p95"], "aligned test pairs"


def verdict(score: float, floor: dict[str, Any] | None, other_modality: str | None = None) -> str:
    """The first words of :func:`reading` (for a figure's caption): its verdict without the figures."""
    if floor is None:
        return NO_FLOOR
    mean, p95, which = _reference_pairs(floor, other_modality)
    if score <= floor["self_mean"] < mean:  # only where an image against itself scores below aligned pairs
        return "as low as an image against itself"
    if score <= p95:
        return f"like {which}"
    if score <= 2 * p95:
        return f"worse than 95 % of {which}"
    return f"over twice the 95th percentile of {which}: likely misaligned"


def floor_summary(floor: dict[str, Any] | None) -> str:
    """The floor in a few characters for a table: ``aligned 0.041 (95 % < 0.055), self 0.012``."""
    if floor is None:
        return NO_FLOOR
    return f"aligned {floor['aligned_mean']:.3f} (95 % < {floor['aligned_p95']:.3f}), self {floor['self_mean']:.3f}"


def record_floor(evaluator: str | Path, overwrite: bool = False) -> tuple[Path, dict[str, Any]]:
    """Measure the floor of ``evaluator`` (a shipped name or a .pt file) and write it, atomically,
    as the ``floor`` block of its metadata .json (created from the checkpoint's metadata when
    missing; the rest of the file is kept). A recorded floor is replaced only with ``overwrite``."""
    from dataclasses import asdict

    from imse_study.evaluator.pretrained import load_any

    path = evaluator_json(evaluator)
    if load_floor(evaluator) is not None and not overwrite:
        raise ValueError(f"{path} already records a floor; pass --overwrite to measure it again")
    model, meta = load_any(str(evaluator))
    floor = measure_floor(model, meta)
    floor["command"] = f"python -m imse_study.evaluator.floor {Path(str(evaluator)).name}"
    data = json.loads(path.read_text()) if path.exists() else asdict(meta)
    data["floor"] = floor
    atomic_write_json(data, path)
    return path, floor


def shipped_rows() -> list[dict[str, str]]:
    """One row per shipped evaluator, read from its ``.json`` (no weights loaded): name, modality,
    dimension, training spacing, noise, network, training steps and floor."""
    from imse_study.evaluator.checkpoint import EvaluatorMeta, evaluator_spacing
    from imse_study.evaluator.pretrained import PRETRAINED_DIR, available_pretrained

    rows = []
    for name in available_pretrained():
        data = json.loads((PRETRAINED_DIR / f"{name}.json").read_text())
        meta = EvaluatorMeta.from_dict(data)
        spacing = evaluator_spacing(meta)
        noise = meta.noise + (f" N {meta.n_range[0]}-{meta.n_range[1]}" if meta.noise == "shuffle_remap" and meta.n_range
                              else "")
        floor = data.get("floor") if isinstance(data.get("floor"), dict) and "aligned_p95" in data["floor"] else None
        rows.append({"name": name, "modality": meta.modality, "dim": f"{meta.dim}D",
                     "spacing mm": "?" if spacing is None else " x ".join(f"{s:g}" for s in spacing),
                     "noise": noise, "network": f"{meta.arch} w{meta.width} b{meta.n_blocks}", "steps": str(meta.steps),
                     "floor (mean |E|)": floor_summary(floor)})
    return rows


def evaluator_table() -> str:
    """The shipped evaluators as a text table (``imse-study evaluators``)."""
    rows = shipped_rows()
    if not rows:
        return "no evaluator is shipped with this installation; train one with `imse-study train-evaluator`"
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns).rstrip()]
    lines += ["  ".join(r[c].ljust(widths[c]) for c in columns).rstrip() for r in rows]
    return "\n".join(lines) + ("\nfloor: mean |E| over the joint foreground of aligned phantom test pairs (95th "
                               "percentile) and of an image against itself; scores near it mean 'aligned'")


def main(argv: list[str] | None = None) -> int:
    """``python -m imse_study.evaluator.floor NAME|FILE ...``: record the floor of each evaluator."""
    import torch

    from imse_study.evaluator.pretrained import available_pretrained

    torch.set_num_threads(1)  # a few hundred small forward passes; leave the other cores to other work
    parser = argparse.ArgumentParser(prog="python -m imse_study.evaluator.floor",
                                     description="Measure an evaluator's floor (mean |E| of aligned phantom test "
                                                 "pairs and of an image against itself) into its metadata .json.")
    parser.add_argument("evaluators", nargs="*", help="shipped names (e.g. phantom-t1-2d) or .pt files")
    parser.add_argument("--all", action="store_true", help="every shipped evaluator")
    parser.add_argument("--overwrite", action="store_true", help="measure again where a floor is recorded")
    args = parser.parse_args(argv)
    names = [*args.evaluators, *(available_pretrained() if args.all else [])]
    if not names:
        parser.error("name at least one evaluator, or pass --all")
    for name in names:
        try:
            path, floor = record_floor(name, overwrite=args.overwrite)
        except (ValueError, OSError) as err:
            print(f"{parser.prog}: error: {name}: {' '.join(str(err).split())}", file=sys.stderr)
            return 2
        print(f"{name}: {floor_summary(floor)} -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
