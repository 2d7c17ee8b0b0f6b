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

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from imse_study.augment import random_spatial_displacement
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
    limit: int | None = None, seed: int = TEST_SEED,
) -> TestPairs:
    """Phantom test pairs: moving image and labels moved by seeded paper transforms (one seed per pair)."""
    from imse_study.data.phantom import LABELS, load_phantom, subject_name

    data = load_phantom(split, dim, profile, (moving_modality, target_modality))
    n = len(data) if limit is None else min(limit, len(data))
    moving = torch.from_numpy(data.images[moving_modality][:n]).unsqueeze(1)
    target = torch.from_numpy(data.images[target_modality][:n]).unsqueeze(1)
    labels = torch.from_numpy(data.labels[:n].astype(np.float32)).unsqueeze(1)
    shape = tuple(moving.shape[2:])
    fields = torch.cat([
        random_spatial_displacement(shape, 1, generator=torch.Generator().manual_seed(seed + i)) for i in range(n)
    ])
    counts: dict[int, int] = {}
    ids = []
    for subject in data.subjects[:n]:
        counts[int(subject)] = counts.get(int(subject), -1) + 1
        ids.append(f"{subject_name(int(subject))}/{counts[int(subject)]}")
    return TestPairs(
        moving=warp(moving, fields), target=target, moving_labels=warp(labels, fields, mode="nearest"),
        target_labels=labels, spacing=tuple(data.spacing), ids=ids, moving_modality=moving_modality,
        target_modality=target_modality, label_names={k: v for k, v in LABELS.items() if v != 0},
    )


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
    with tqdm(total=total, desc=f"evaluate {pairs.direction}", disable=not progress) as bar:
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
