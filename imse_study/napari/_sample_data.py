"""Sample data: the bundled phantom (``quick`` profile, test split) in every modality with its labels.

Each function returns napari layer data ``[(data, kwargs, layer_type), ...]``. Intensities are in
[-1, 1] (the package's convention); the voxel spacing is the layers' scale. The first call builds
the phantom (about 15 s on 2 CPU cores) and caches it (see ``imse_study.data.phantom.cache_dir``).
"""

from __future__ import annotations

import numpy as np

from imse_study.data.phantom import LABELS, MODALITIES, load_phantom, subject_name
from imse_study.modalities import CT, T1

PROFILE = "quick"
SPLIT = "test"
SLICE = 4  # a mid-slab axial slice of each subject (8 per subject in the quick profile)


def _layers(ph, index: int, prefix: str, modalities=MODALITIES, visible_first_only: bool = True) -> list[tuple]:
    meta = {"affine": np.asarray(ph.affines[index]), "subject": int(ph.subjects[index]), "phantom": True}
    layers = []
    for k, modality in enumerate(modalities):
        layers.append((ph.images[modality][index].copy(), {
            "name": f"{prefix} {modality}".strip(), "scale": ph.spacing, "colormap": "gray",
            "contrast_limits": (-1.0, 1.0), "metadata": dict(meta, modality=modality),
            "visible": (k == 0) or not visible_first_only,
        }, "image"))
    layers.append((ph.labels[index].astype(np.uint8), {
        "name": f"{prefix} labels".strip(), "scale": ph.spacing, "opacity": 0.4, "visible": False,
        "metadata": dict(meta, label_names=dict(LABELS)),
    }, "labels"))
    return layers


def phantom_2d() -> list[tuple]:
    """One axial slice of a test subject: t1, t2, pd, ct and the label map, aligned."""
    ph = load_phantom(SPLIT, 2, PROFILE)
    return _layers(ph, SLICE, "phantom")


def phantom_3d() -> list[tuple]:
    """One test subject's head volume (z, y, x): t1, t2, pd, ct and the label map, aligned."""
    ph = load_phantom(SPLIT, 3, PROFILE)
    return _layers(ph, 0, "phantom")


def phantom_pair_2d() -> list[tuple]:
    """A pair to register: t1 of one test subject (moving) and ct of another (target), with labels.

    The two subjects differ by a large smooth deformation, as in the study's registration pairs.
    """
    ph = load_phantom(SPLIT, 2, PROFILE)
    per_subject = int(np.sum(ph.subjects == ph.subjects[0]))
    moving, target = SLICE, SLICE + per_subject
    out = []
    for index, role, modality in ((target, "target", CT), (moving, "moving", T1)):
        name = f"{role} {modality} ({subject_name(ph.subjects[index])})"
        image, labels = _layers(ph, index, "", modalities=(modality,))
        image[1].update(name=name, visible=True, opacity=1.0 if role == "target" else 0.5)
        labels[1].update(name=f"{role} labels ({subject_name(ph.subjects[index])})")
        out += [image, labels]
    return out
