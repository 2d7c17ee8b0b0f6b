"""Translation baselines, shared parts: networks, settings per profile, checkpoints, translation.

The paper's GAN baselines (sections 4.2, 4.4 Table 5, 4.5 Figure 7) translate the moving image into
the target modality with a generator, then compare it with the target by MAE. Two ways of training
that generator live beside this module: :mod:`~imse_study.baselines.cyclegan` (Zhu et al., ICCV 2017,
unpaired) and :mod:`~imse_study.baselines.reggan` (Kong et al., NeurIPS 2021, paired but misaligned,
corrected by a registration network). Both use the networks of :mod:`imse_study.nets`:

* generator: CycleGAN's ResNet generator, :class:`imse_study.nets.Translator` (the evaluator's with
  one input channel and its ``tanh`` output used as is: images in [-1, 1], not the evaluator's x2);
* discriminator: the 70 x 70 PatchGAN of pix2pix/CycleGAN (Isola et al. 2017), MONAI's
  ``PatchDiscriminator`` with instance normalisation, LSGAN (least-squares) targets 1/0;
* registration net (RegGAN only): MONAI's ``VoxelMorphUNet`` (Balakrishnan et al. 2019), its
  last convolution initialised near zero (N(0, 1e-5), as VoxelMorph) so training starts from the
  identity; it outputs a displacement in voxels for :func:`imse_study.warp.warp`.

Training is :mod:`imse_study.baselines.train` (``imse-study train-translator``), which imports the
kinds; the kinds import this module, never the other way round.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from imse_study.config import get_profile
from imse_study.metrics.image import image_quality_per_item as translation_metrics
from imse_study.nets import Discriminator, Translator, pad_to_multiple, registration_net
from imse_study.training import meta_from_dict, package_version, read_payload, save_model_checkpoint

__all__ = [
    "KINDS", "Translator", "Discriminator", "registration_net", "TranslatorTraining", "translator_config",
    "TranslatorMeta", "save_translator", "load_translator", "read_translator_payload",
    "translate_with", "translation_metrics", "evaluate_translation",
]

KINDS = ("cyclegan", "reggan")  # the ways of training a translator (imse_study.baselines.train)


# --------------------------------------------------------------------------------------------
# Settings per profile


@dataclass(frozen=True)
class TranslatorTraining:
    """Sizes and budget of a translation baseline for one profile and dimension.

    Defined here rather than in :mod:`imse_study.config` so this module could be written alone; the
    lead may move it into ``Profile``. ``lr=None`` takes the kind's published learning rate
    (CycleGAN 2e-4, RegGAN 1e-4); ``steps_per_epoch=None`` is one pass over the training images.
    """

    width: int  # generator base width (CycleGAN: 64)
    n_blocks: int  # generator residual blocks (CycleGAN: 9)
    disc_width: int  # discriminator base width (CycleGAN: 64)
    disc_layers: int  # PatchGAN layers (CycleGAN: 3, a 70 x 70 receptive field)
    reg_channels: tuple[int, ...]  # VoxelMorphUNet widths (RegGAN only)
    reg_final: tuple[int, ...]
    batch_size: int
    epochs: int
    steps_per_epoch: int | None
    lr: float | None = None
    val_items: int = 8


_VOXELMORPH = ((16, 32, 32, 32, 32, 32), (16, 16))
_TRANSLATOR_PROFILES: dict[tuple[str, int], TranslatorTraining] = {
    ("smoke", 2): TranslatorTraining(4, 1, 4, 2, (4, 8, 8, 8), (8,), 2, 2, 3, lr=1e-3, val_items=4),
    ("smoke", 3): TranslatorTraining(2, 1, 2, 2, (4, 8, 8, 8), (8,), 1, 2, 2, lr=1e-3, val_items=2),
    # quick, 2D 120 x 120 on 2 CPU cores: generator width 16 with 4 blocks (0.34 M parameters), a
    # 3-layer PatchGAN of width 16 (0.17 M), VoxelMorph-1's UNet (0.07 M); 8 epochs of 150 steps of
    # batch 4. Measured: RegGAN t2->t1 13.5 min on 1 thread beside two other trainings (0.67 s a
    # step; test NMAE 0.051, PSNR 18.4, SSIM 0.66: learning, not converged). A CycleGAN step (two
    # generators, two discriminators) costs about 2.3 RegGAN steps.
    ("quick", 2): TranslatorTraining(16, 4, 16, 3, *_VOXELMORPH, batch_size=4, epochs=8, steps_per_epoch=150),
    ("quick", 3): TranslatorTraining(8, 3, 8, 3, *_VOXELMORPH, batch_size=1, epochs=5, steps_per_epoch=60),
    # paper: CycleGAN / RegGAN published sizes (width 64, 9 blocks, 70 x 70 PatchGAN, batch 1);
    # RegGAN's config trains 80 epochs. For a GPU.
    ("paper", 2): TranslatorTraining(64, 9, 64, 3, *_VOXELMORPH, batch_size=1, epochs=80, steps_per_epoch=None),
    ("paper", 3): TranslatorTraining(32, 9, 32, 3, *_VOXELMORPH, batch_size=1, epochs=80, steps_per_epoch=None),
}


def translator_config(profile: str, dim: int) -> TranslatorTraining:
    """The translation-baseline settings of ``profile`` (smoke, quick, paper) for ``dim`` (2 or 3)."""
    name = get_profile(profile).name
    if dim not in (2, 3):
        raise ValueError(f"dim must be 2 or 3, not {dim!r}")
    return _TRANSLATOR_PROFILES[(name, dim)]


# --------------------------------------------------------------------------------------------
# Checkpoints


@dataclass
class TranslatorMeta:
    """What a translator was trained for: kind, direction, sizes, budget and how to reproduce it."""

    kind: str
    source: str
    target: str
    dim: int
    size: tuple[int, ...]
    width: int
    n_blocks: int
    profile: str
    dataset: str = "phantom"
    steps: int = 0
    epochs: int = 0
    seed: int = 0
    weights: dict[str, float] = field(default_factory=dict)
    package_version: str = field(default_factory=package_version)
    command: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TranslatorMeta":
        return meta_from_dict(cls, data, "translator")


def save_translator(path: str | Path, model: nn.Module, meta: TranslatorMeta, train_state: dict | None = None) -> Path:
    """Write ``path`` (.pt: generator state_dict + metadata [+ training state]) and ``path.json``, atomically."""
    return save_model_checkpoint(path, model.state_dict(), asdict(meta), train_state)


def read_translator_payload(path: str | Path) -> dict[str, Any]:
    """The raw translator checkpoint dictionary (``last.pt`` included), read safely with clear errors."""
    hint = "train one with `imse-study train-translator --kind reggan --source t2 --target t1 --out DIR`"
    return read_payload(path, "translator checkpoint", hint, check=_not_a_translator)


def _not_a_translator(payload: dict) -> str | None:
    if "kind" not in payload["meta"] or "source" not in payload["meta"]:
        return "it is another kind of checkpoint (an IMSE evaluator? load it with load_evaluator)"
    return None


def load_translator(
    path: str | Path, source: str | None = None, target: str | None = None, map_location: str | torch.device = "cpu"
) -> Translator:
    """The source -> target generator stored in ``path``, in eval mode, its metadata as ``.meta``.

    ``source`` / ``target``, when given, must be the modalities it was trained to translate from and
    to; otherwise a ValueError says what the checkpoint does and how to get the one asked for.
    """
    payload = read_translator_payload(path)
    meta = TranslatorMeta.from_dict(payload["meta"])
    asked = (source or meta.source, target or meta.target)
    if (asked[0].lower(), asked[1].lower()) != (meta.source.lower(), meta.target.lower()):
        raise ValueError(
            f"{Path(path).name} translates {meta.source!r} -> {meta.target!r} images ({meta.kind}), not "
            f"{asked[0]!r} -> {asked[1]!r}. Train one for that direction: `imse-study train-translator "
            f"--kind {meta.kind} --source {asked[0]} --target {asked[1]} --out DIR`."
        )
    model = Translator(meta.dim, meta.width, meta.n_blocks)
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as err:
        raise ValueError(f"{path}: weights do not fit the generator its metadata describes: {err}") from None
    model.meta = meta
    return model.to(map_location).eval()


# --------------------------------------------------------------------------------------------
# Using a translator


@torch.no_grad()
def translate_with(translator: nn.Module, image: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    """Translate ``image`` (in [-1, 1]) into the translator's target modality; same type and shape back.

    ``image`` is one image ``(*S)`` or a batch ``(B, 1, *S)`` with ``len(S)`` the translator's
    dimension. Sizes not divisible by 4 are padded (:func:`imse_study.nets.pad_to_multiple`) and cropped back.
    """
    dim = getattr(translator, "dim", 2)
    is_numpy = isinstance(image, np.ndarray)
    x = torch.from_numpy(np.asarray(image, dtype=np.float32)) if is_numpy else image
    if x.ndim == dim:
        batch = x[None, None]
    elif x.ndim == dim + 2 and x.shape[1] == 1:
        batch = x
    else:
        raise ValueError(
            f"a {dim}D translator takes one image of {dim} axes or a batch (B, 1, *S), got shape {tuple(x.shape)}"
        )
    param = next(translator.parameters())
    batch = batch.to(device=param.device, dtype=param.dtype)
    batch, crop = pad_to_multiple(batch)
    was_training = translator.training
    translator.eval()
    out = translator(batch)[(slice(None), slice(None), *crop)]
    translator.train(was_training)
    out = out.reshape(x.shape).to(x.device if not is_numpy else "cpu")
    return out.numpy() if is_numpy else out.to(x.dtype)


def evaluate_translation(
    translator: nn.Module, source: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray, batch: int = 8
) -> dict[str, float]:
    """Mean NMAE, PSNR, SSIM of ``translator(source)`` against aligned ``target`` images (N, [1,] *S)."""
    src = torch.as_tensor(np.asarray(source, dtype=np.float32)) if isinstance(source, np.ndarray) else source
    dim = getattr(translator, "dim", 2)
    src = src.reshape(src.shape[0], 1, *src.shape[-dim:])
    pred = torch.cat([translate_with(translator, src[i : i + batch]) for i in range(0, src.shape[0], batch)])
    scores = translation_metrics(pred, target.reshape(tuple(pred.shape)))
    return {k: float(v.mean()) for k, v in scores.items()}
