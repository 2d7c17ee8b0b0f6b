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
    pixel spacing. The 3D field of view is 160 x 240 x 240 mm (axes z, y, x).
    """

    size2d: tuple[int, int]
    size3d: tuple[int, int, int]
    subjects: dict[str, int] = field(default_factory=lambda: {"train": 24, "val": 4, "test": 8})
    slices_per_subject: int = 8
    slab_mm: tuple[float, float] = (-4.0, 36.0)  # axial slab (MNI z) the 2D slices come from
    fov2d_mm: tuple[float, float] = (240.0, 240.0)
    fov3d_mm: tuple[float, float, float] = (160.0, 240.0, 240.0)


@dataclass(frozen=True)
class Profile:
    """Everything size- and budget-related for one profile name."""

    name: str
    phantom: PhantomConfig


_PROFILES = {
    "smoke": Profile(
        "smoke",
        PhantomConfig(size2d=(48, 48), size3d=(16, 32, 32),
                      subjects={"train": 4, "val": 2, "test": 2}, slices_per_subject=2),
    ),
    "quick": Profile("quick", PhantomConfig(size2d=(120, 120), size3d=(32, 64, 64))),
    "paper": Profile(
        "paper",
        PhantomConfig(size2d=(240, 240), size3d=(48, 128, 128), slices_per_subject=16),
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
