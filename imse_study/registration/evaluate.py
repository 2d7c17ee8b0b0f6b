"""Registration evaluation: test pairs, methods x pairs -> one tidy table.

Test pairs are the test subjects' aligned images of two modalities, the moving image (and its label
map, nearest-neighbour) moved by the paper's random spatial transforms with a fixed seed per pair,
so every method sees the same misalignments. A method is any callable
``(moving (1, 1, *S), target (1, 1, *S)) -> displacement (1, ndim, *S)`` in voxels.

Columns: ``pair, method, direction, dim, dice, hd95, grad, neg_jac, seconds`` and ``dice_<label>``
per label. ``dice`` and ``hd95`` average over the foreground labels (HD95 in mm); ``grad`` is the
paper's ||grad phi||_2 (:func:`imse_study.metrics.gradient_smoothness`); ``neg_jac`` the fraction
of voxels whose Jacobian determinant is <= 0. The ``initial`` row has no field (grad = NaN).
"""

from __future__ import annotations

import shlex
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from imse_study.progress import progress_bar

from imse_study.augment import random_spatial_displacement
from imse_study.data.aligned import AlignedSet, load_aligned
from imse_study.data.datasets import data_arguments, is_phantom
from imse_study.metrics import dice, gradient_smoothness, hd95, nonpositive_jacobian_fraction
from imse_study.warp import warp

Registrar = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
TEST_SEED = 2023


@dataclass
class TestPairs:
    """Misaligned test pairs with their label maps (tensors (N, 1, *S))."""

    moving: torch.Tensor
    target: torch.Tensor
    moving_labels: torch.Tensor
    target_labels: torch.Tensor
    spacing: tuple[float, ...]
    ids: list[str]
    moving_modality: str
    target_modality: str
    label_names: dict[str, int]

    @property
    def direction(self) -> str:
        return direction_name(self.moving_modality, self.target_modality)

    def __len__(self) -> int:
        return int(self.moving.shape[0])


def direction_name(moving: str, target: str) -> str:
    """e.g. ``t1->t2``."""
    return f"{moving}->{target}"


def make_test_pairs(
    moving_modality: str, target_modality: str, split: str = "test", dim: int = 2, profile: str = "quick",
    limit: int | None = None, seed: int = TEST_SEED, dataset: str = "phantom", root: str | None = None,
    version: int | None = None, variant: str | None = None,
) -> TestPairs:
    """Test pairs of ``dataset`` (the phantom or a manifest set with label maps, data folder ``root``):
    the moving image and its labels moved by seeded paper transforms (one seed per pair).

    ``version``/``variant``: the phantom's generation and held-out appearance (None: the defaults).
    A variant's pair ``i`` shows the plain test set's subject and slice ``i`` under the same transform.
    """
    aligned = load_aligned(moving_modality, target_modality, split, dim, profile, dataset, root,
                           version=version, variant=variant)
    return misalign(aligned, moving_modality, target_modality, limit, seed)[0]


def misalign(aligned: AlignedSet, moving_modality: str, target_modality: str, limit: int | None = None,
             seed: int = TEST_SEED) -> tuple[TestPairs, torch.Tensor]:
    """The first ``limit`` aligned items as test pairs, and the fields (N, dim, *S) that moved them:
    pair ``i``'s moving image and labels are warped by the paper's random transform of seed ``seed + i``."""
    if aligned.labels is None:
        raise ValueError(f"the {aligned.dataset!r} items were loaded without label maps; test pairs need them")
    n = len(aligned) if limit is None else min(limit, len(aligned))
    moving = aligned.images[moving_modality][:n]
    shape = tuple(moving.shape[2:])
    fields = torch.cat([
        random_spatial_displacement(shape, 1, generator=torch.Generator().manual_seed(seed + i)) for i in range(n)
    ])
    pairs = TestPairs(
        moving=warp(moving, fields), target=aligned.images[target_modality][:n],
        moving_labels=warp(aligned.labels[moving_modality][:n], fields, mode="nearest"),
        target_labels=aligned.labels[target_modality][:n], spacing=aligned.spacing, ids=aligned.ids[:n],
        moving_modality=moving_modality, target_modality=target_modality,
        label_names={k: v for k, v in aligned.label_names.items() if v != 0},
    )
    return pairs, fields


def work_folder(work_dir: str | Path | None, prefix: str, dataset: str = "phantom") -> Path:
    """Where models trained for an experiment go: ``work_dir`` (a new temporary folder if None); a
    manifest data set gets its own sub-folder, so that models of one data set are never reused for another."""
    work = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix=prefix))
    return work if is_phantom(dataset) else work / f"dataset-{Path(str(dataset)).stem}"


def data_flags(dataset: str, root: str | None = None) -> str:
    """`` --dataset NAME --root DIR`` of a training command for a manifest set; nothing for the phantom."""
    args = data_arguments(dataset, root)
    return " " + shlex.join(args) if args else ""


def _row(pairs: TestPairs, i: int, method: str, displacement: torch.Tensor | None, seconds: float) -> dict:
    moving_labels = pairs.moving_labels[i : i + 1]
    if displacement is not None:
        moving_labels = warp(moving_labels, displacement, mode="nearest")
    target_labels = pairs.target_labels[i : i + 1]
    names = pairs.label_names
    d = dice(moving_labels, target_labels, label_names=names)
    h = hd95(moving_labels, target_labels, spacing=pairs.spacing, label_names=names)
    row = {
        "pair": pairs.ids[i], "method": method, "direction": pairs.direction, "dim": pairs.moving.dim() - 2,
        "dice": d["mean"], "hd95": h["mean"],
        "grad": gradient_smoothness(displacement) if displacement is not None else np.nan,
        "neg_jac": nonpositive_jacobian_fraction(displacement) if displacement is not None else np.nan,
        "seconds": seconds,
    }
    row.update({f"dice_{name}": d[name] for name in names})
    return row


def evaluate(methods: dict[str, Registrar], pairs: TestPairs, include_initial: bool = True,
             progress: bool = True) -> pd.DataFrame:
    """Run every method on every pair; one row per pair x method (plus ``initial``)."""
    rows = []
    total = len(pairs) * (len(methods) + int(include_initial))
    with progress_bar(total=total, desc=f"evaluate {pairs.direction}", disable=not progress) as bar:
        for i in range(len(pairs)):
            if include_initial:
                rows.append(_row(pairs, i, "initial", None, 0.0))
                bar.update(1)
            moving, target = pairs.moving[i : i + 1], pairs.target[i : i + 1]
            for name, register in methods.items():
                start = time.perf_counter()
                displacement = register(moving, target)
                seconds = time.perf_counter() - start
                rows.append(_row(pairs, i, name, displacement.detach(), seconds))
                bar.update(1)
    return pd.DataFrame(rows)


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation of each metric per direction and method (the paper's "mean ± std")."""
    metrics = ["dice", "hd95", "grad", "neg_jac", "seconds"]
    grouped = table.groupby(["direction", "method"], sort=False)[metrics]
    return grouped.agg(["mean", "std"])


def network_registrar(model: torch.nn.Module) -> Registrar:
    """A trained registration network as a method (inference without autograd)."""
    model.eval()

    def register(moving: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model(moving, target)

    return register
