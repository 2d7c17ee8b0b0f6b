"""Run profiles: one config object for every size and count the study uses.

``smoke`` runs in seconds (tests), ``quick`` in minutes on 2 CPU cores (the book's default) and
``paper`` uses the paper's sizes (section 4.1, Table 1) and is meant for a GPU. Later parts of the
package (evaluator, registration) add their own fields here rather than scattering constants.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

PROFILE_NAMES = ("smoke", "quick", "paper")


@dataclass(frozen=True)
class PhantomConfig:
    """Sizes and counts of the bundled phantom for one profile.

    The 2D field of view is 240 x 240 mm (BraTS' 240 x 240 px at 1 mm), so ``size2d`` sets the
    pixel spacing. The 3D field of view is 160 x 240 x 240 mm (axes z, y, x). The phantom's version
    and held-out variant are not profile settings: each call of ``load_phantom`` names them, and
    version 2's appearance ranges live in :mod:`imse_study.data.appearance` (the same for every
    profile). Adding a field here changes every cached set's key.
    """

    size2d: tuple[int, int]
    size3d: tuple[int, int, int]
    subjects: dict[str, int] = field(default_factory=lambda: {"train": 24, "val": 4, "test": 8})
    slices_per_subject: int = 8
    slab_mm: tuple[float, float] = (-4.0, 36.0)  # axial slab (MNI z) the 2D slices come from
    fov2d_mm: tuple[float, float] = (240.0, 240.0)
    fov3d_mm: tuple[float, float, float] = (160.0, 240.0, 240.0)


@dataclass(frozen=True)
class EvaluatorTraining:
    """Evaluator size and training recipe (Eq. 5). ``batch_size`` is per process under torchrun.

    ``steps_per_epoch=None`` means one pass over the training images per epoch. The fields after
    ``val_items`` are opt-in; their defaults are the paper's recipe (the ResNet generator, Adam at a
    constant learning rate, float32, no early stopping, Shuffle Remap as the only appearance change).
    """

    width: int
    n_blocks: int  # residual blocks of the ResNet generator (unused by ``arch="unet"``)
    batch_size: int
    epochs: int
    steps_per_epoch: int | None
    lr: float = 1e-4
    val_items: int = 32  # validation images (L1) and pairs per other modality (ranking AUC)
    arch: str = "resnet"  # "resnet" (the paper's generator) or "unet" (MONAI's BasicUNet)
    lr_schedule: str = "constant"  # "constant" or "cosine" (linear warm-up, then cosine decay to 0)
    warmup_steps: int = 0  # linear warm-up steps of the "cosine" schedule
    schedule_epochs: int | None = None  # epochs the cosine spans (None: the run's epochs)
    patience: int | None = None  # early stopping: epochs without a better validation L1 (None: off)
    min_delta: float = 0.0  # how much lower the validation L1 must be to count as better
    appearance: str = "none"  # reference-modality appearance changes: "none", "mild" or "strong"
    precision: str = "float32"  # "float32" or "bfloat16" (autocast of the training forward pass)
    aligned_fraction: float = 0.0  # share of Eq. 5 pairs anchored at the truth (evaluator.objective.anchor_at_truth)
    init_weights: str | None = None  # start from this evaluator checkpoint's weights (fine-tuning)
    anchor_sides: str = "reference"  # which image an anchored pair keeps unresampled: "reference" or "both"


@dataclass(frozen=True)
class RegistrationTraining:
    """VoxelMorph training budget (Eq. 6 + 7). ``batch_size`` is per process under torchrun."""

    batch_size: int
    epochs: int
    steps_per_epoch: int | None
    lr: float = 1e-4
    integration_steps: int = 0  # 0: a displacement field; > 0: a diffeomorphic (scaling and squaring) field
    val_items: int = 16


@dataclass(frozen=True)
class Profile:
    """Everything size- and budget-related for one profile name."""

    name: str
    phantom: PhantomConfig
    evaluator2d: EvaluatorTraining = EvaluatorTraining(16, 6, 8, 15, 200)
    # 3D is sized for a GPU: on 2 CPU cores one step (batch 4, 32 x 64 x 64) takes ~5 s, so the
    # shipped 3D evaluators were trained on an H100 (see the zoo README). CPU-sized 3D budgets
    # (width 8, 500 steps) learned no ranking (T1: AUC 0.14 on T2; CT: 0.16-0.5).
    evaluator3d: EvaluatorTraining = EvaluatorTraining(16, 6, 4, 20, 200, lr=2e-4)
    registration2d: RegistrationTraining = RegistrationTraining(8, 8, 100, lr=1e-3)
    registration3d: RegistrationTraining = RegistrationTraining(4, 8, 100, lr=1e-3)  # GPU-sized, as above

    def evaluator(self, dim: int) -> EvaluatorTraining:
        """Evaluator training settings for ``dim`` (2 or 3)."""
        if dim not in (2, 3):
            raise ValueError(f"dim must be 2 or 3, not {dim!r}")
        return self.evaluator2d if dim == 2 else self.evaluator3d

    def registration(self, dim: int) -> RegistrationTraining:
        """VoxelMorph training settings for ``dim`` (2 or 3)."""
        if dim not in (2, 3):
            raise ValueError(f"dim must be 2 or 3, not {dim!r}")
        return self.registration2d if dim == 2 else self.registration3d


_PROFILES = {
    "smoke": Profile(
        "smoke",
        PhantomConfig(size2d=(48, 48), size3d=(16, 32, 32),
                      subjects={"train": 4, "val": 2, "test": 2}, slices_per_subject=2),
        evaluator2d=EvaluatorTraining(4, 1, 2, 2, 3, lr=1e-3, val_items=4),
        evaluator3d=EvaluatorTraining(2, 1, 1, 2, 2, lr=1e-3, val_items=2),
        registration2d=RegistrationTraining(2, 2, 3, lr=1e-3, val_items=4),
        registration3d=RegistrationTraining(1, 2, 2, lr=1e-3, val_items=2),
    ),
    # quick: a usable evaluator on 2 CPU cores in about 15 minutes (width 16, 6 blocks, 0.49 M
    # parameters, 120x120 px, 3000 steps of batch 8).
    "quick": Profile("quick", PhantomConfig(size2d=(120, 120), size3d=(32, 64, 64))),
    # paper: section 4.2 (width 64, 9 blocks, batch 8, 200 epochs), for a GPU.
    "paper": Profile(
        "paper",
        PhantomConfig(size2d=(240, 240), size3d=(48, 128, 128), slices_per_subject=16),
        evaluator2d=EvaluatorTraining(64, 9, 8, 200, None),
        evaluator3d=EvaluatorTraining(32, 9, 1, 200, None),
        registration2d=RegistrationTraining(8, 200, None),
        registration3d=RegistrationTraining(1, 200, None),
    ),
}


def get_profile(name: str | Profile) -> Profile:
    """Return the profile called ``name`` (``smoke``, ``quick`` or ``paper``)."""
    if isinstance(name, Profile):
        return name
    try:
        return _PROFILES[name]
    except KeyError:
        raise ValueError(
            f"unknown profile {name!r}: choose one of {', '.join(PROFILE_NAMES)}"
        ) from None


def with_phantom(profile: Profile, **changes) -> Profile:
    """A copy of ``profile`` with some phantom fields changed (e.g. ``subjects``)."""
    return replace(profile, phantom=replace(profile.phantom, **changes))
