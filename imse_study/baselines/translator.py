"""Translation baselines, shared parts: networks, settings per profile, checkpoints, the training loop.

The paper's GAN baselines (sections 4.2, 4.4 Table 5, 4.5 Figure 7) translate the moving image into
the target modality with a generator, then compare it with the target by MAE. Two ways of training
that generator live beside this module: :mod:`~imse_study.baselines.cyclegan` (Zhu et al., ICCV 2017,
unpaired) and :mod:`~imse_study.baselines.reggan` (Kong et al., NeurIPS 2021, paired but misaligned,
corrected by a registration network). Both use the networks defined here:

* generator: CycleGAN's ResNet generator, i.e. :class:`imse_study.evaluator.model.Evaluator` with
  one input channel and its ``tanh`` output used as is (images in [-1, 1], not the evaluator's x2);
* discriminator: the 70 x 70 PatchGAN of pix2pix/CycleGAN (Isola et al. 2017), MONAI's
  ``PatchDiscriminator`` with instance normalisation, LSGAN (least-squares) targets 1/0;
* registration net (RegGAN only): MONAI's ``VoxelMorphUNet`` (Balakrishnan et al. 2019), its
  last convolution initialised near zero (N(0, 1e-5), as VoxelMorph) so training starts from the
  identity; it outputs a displacement in voxels for :func:`imse_study.warp.warp`.

Training (:func:`train_translator`) follows :mod:`imse_study.evaluator.train`: the weights are
initialised from the run's seed, every step draws its randomness from a generator seeded by
``(seed, step)``, and ``last.pt`` (all networks and optimisers) is written atomically every epoch,
so ``resume=True`` finishes exactly like an uninterrupted run. Each epoch scores the generator on
held-out, aligned validation pairs (NMAE, PSNR, SSIM; :func:`translation_metrics`) into ``log.csv``.
Both kinds see every training image under the paper's random affine + elastic transform
(section 4.1, :func:`imse_study.augment.random_spatial_displacement`); for RegGAN these independent
transforms of source and target are what make a pair misaligned. Learning rate: CycleGAN's
schedule (constant for the first half of the epochs, then linearly towards zero) where the kind
sets ``LR_DECAY`` (CycleGAN), constant otherwise (RegGAN's trainer). Run from a shell with
``imse-study train-translator --kind reggan --source t2 --target t1 --out runs/reggan``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from monai.networks.nets import PatchDiscriminator, VoxelMorphUNet
from torch import nn
from tqdm.auto import tqdm

from imse_study.augment import random_spatial_displacement
from imse_study.config import PROFILE_NAMES, get_profile
from imse_study.data.datasets import data_arguments
from imse_study.evaluator.model import Evaluator
from imse_study.training import (
    meta_from_dict, package_version, prepare_run_folder, read_payload, resume_state, run_settings,
    save_model_checkpoint, seeded_init, step_generator, write_log_csv,
)
from imse_study.warp import warp

__all__ = [
    "KINDS", "Translator", "Discriminator", "registration_net", "TranslatorTraining", "translator_config",
    "TranslatorMeta", "TranslatorResult", "train_translator", "save_translator", "load_translator",
    "read_translator_payload",
    "translate_with", "translation_metrics", "evaluate_translation", "main",
]

KINDS = ("cyclegan", "reggan")
FINAL_NAME, LAST_NAME = "translator.pt", "last.pt"


# --------------------------------------------------------------------------------------------
# Networks


class Translator(Evaluator):
    """CycleGAN's ResNet generator (Zhu et al. 2017) mapping one image (B, 1, *S) to (B, 1, *S) in [-1, 1].

    The evaluator's network with ``in_channels=1``; ``forward`` returns the ``tanh`` output without
    the evaluator's factor 2. Each spatial size must be divisible by 4 (:func:`translate_with` pads).
    """

    def __init__(self, dim: int = 2, width: int = 64, n_blocks: int = 9) -> None:
        super().__init__(dim, width, n_blocks, in_channels=1)
        self.meta: TranslatorMeta | None = None  # set by load_translator

    def forward(self, image: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return self.net(image)


class Discriminator(nn.Module):
    """PatchGAN (Isola et al. 2017, CycleGAN's discriminator): a map of real/fake scores per patch.

    MONAI's ``PatchDiscriminator`` (it returns every intermediate feature map; only the last, the
    score map, is kept), instance norm and biases as in CycleGAN, N(0, 0.02) initial weights.
    ``n_layers=3`` is CycleGAN's 70 x 70 PatchGAN.
    """

    def __init__(self, dim: int = 2, width: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        self.net = PatchDiscriminator(dim, width, in_channels=1, num_layers_d=n_layers, norm="INSTANCE", bias=True)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.net(image)[-1]


def registration_net(dim: int, channels: tuple[int, ...], final: tuple[int, ...]) -> nn.Module:
    """MONAI's ``VoxelMorphUNet``: ``cat([moving, fixed], 1)`` -> displacement (B, dim, *S) in voxels.

    ``channels`` pairs the encoder/decoder widths (VoxelMorph-1 is ``(16, 32, 32, 32, 32, 32)``),
    ``final`` the widths of the convolutions after the UNet. The output convolution starts at
    N(0, 1e-5) weights and zero bias (as in VoxelMorph), i.e. near the identity transform.
    """
    net = VoxelMorphUNet(dim, 2, channels[0], channels, final)
    out = net.net[1].final_conv_out.conv
    nn.init.normal_(out.weight, 0.0, 1e-5)
    nn.init.zeros_(out.bias)
    return net


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


@dataclass
class TranslatorResult:
    """What :func:`train_translator` produced."""

    checkpoint: Path  # out/translator.pt (written once every epoch has run)
    model: Translator  # the source -> target generator, in train mode as left by training
    steps: int
    history: list[dict]
    seconds: float  # training time, summed over resumed parts, validation excluded


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
            f"{asked[0]!r} -> {asked[1]!r}. Train one for that direction: `python -m "
            f"imse_study.baselines.translator --kind {meta.kind} --source {asked[0]} --target {asked[1]} --out DIR`."
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
    dimension. Sizes not divisible by 4 are padded (edge values) and cropped back.
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
    spatial = batch.shape[2:]
    pad = [(-n) % 4 for n in spatial]
    if any(pad):
        flat = [p for axis in reversed(pad) for p in (0, axis)]  # F.pad order: last axis first
        batch = nn.functional.pad(batch, flat, mode="replicate")
    was_training = translator.training
    translator.eval()
    out = translator(batch)[(..., *[slice(0, n) for n in spatial])]
    translator.train(was_training)
    out = out.reshape(x.shape).to(x.device if not is_numpy else "cpu")
    return out.numpy() if is_numpy else out.to(x.dtype)


def translation_metrics(prediction: np.ndarray | torch.Tensor, truth: np.ndarray | torch.Tensor) -> dict[str, np.ndarray]:
    """Per-image NMAE, PSNR and SSIM (paper Table 5) of images ``(N, *S)`` or ``(N, 1, *S)`` in [-1, 1].

    NMAE is ``mean|prediction - truth| / 2``: the mean absolute error normalised by the intensity
    range of [-1, 1]. PSNR and SSIM are scikit-image's with ``data_range=2`` (SSIM: default 7-pixel
    window, Gaussian weights off), over the whole image, background included.
    """
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    p, t = (np.asarray(x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x, dtype=np.float64)
            for x in (prediction, truth))
    if p.shape != t.shape:
        raise ValueError(f"prediction {p.shape} and truth {t.shape} must have the same shape")
    if p.ndim >= 4 and p.shape[1] == 1:  # (N, 1, *S) -> (N, *S)
        p, t = p[:, 0], t[:, 0]
    nmae = np.abs(p - t).reshape(len(p), -1).mean(1) / 2.0
    psnr = np.array([peak_signal_noise_ratio(ti, pi, data_range=2.0) for pi, ti in zip(p, t)])
    ssim = np.array([structural_similarity(ti, pi, data_range=2.0) for pi, ti in zip(p, t)])
    return {"nmae": nmae, "psnr": psnr, "ssim": ssim}


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


# --------------------------------------------------------------------------------------------
# Training


def _kind(kind: str) -> ModuleType:
    """The module that defines a kind's networks, optimisers, pairing and training step."""
    if kind == "cyclegan":
        from imse_study.baselines import cyclegan

        return cyclegan
    if kind == "reggan":
        from imse_study.baselines import reggan

        return reggan
    raise ValueError(f"unknown translator kind {kind!r}: choose one of {', '.join(KINDS)}")


def _lr_factor(epoch: int, epochs: int) -> float:
    """CycleGAN's schedule: 1 for the first half of the epochs, then linearly towards 0."""
    constant = epochs // 2
    return 1.0 - max(0, epoch - constant) / float(epochs - constant + 1)


def _images(modalities: list[str], split: str, dim: int, profile: str, dataset: str, root: str | None):
    from imse_study.evaluator.train import load_images

    return load_images(modalities, split, dim, profile, dataset, root)


def train_translator(
    kind: str,
    source: str,
    target: str,
    out: str | Path,
    dim: int = 2,
    profile: str = "smoke",
    seed: int = 0,
    resume: bool = False,
    progress: bool = True,
    stop_after_epochs: int | None = None,
    weights: dict[str, float] | None = None,
    dataset: str = "phantom",
    root: str | None = None,
    device: str | None = None,
    overwrite: bool = False,
) -> TranslatorResult:
    """Train a ``source`` -> ``target`` generator of ``kind`` (cyclegan, reggan) on the training subjects.

    Writes ``out/last.pt`` and ``out/log.csv`` every epoch and ``out/translator.pt`` (+ ``.json``)
    when all epochs have run. ``weights`` overrides some of the kind's loss weights (see
    ``cyclegan.WEIGHTS``, ``reggan.WEIGHTS``). ``stop_after_epochs`` ends early, as an interruption
    would; ``resume=True`` continues from ``out/last.pt`` (with the same settings; only ``device``
    may change). A folder that holds a run is refused unless ``resume`` or ``overwrite`` is given.
    """
    module = _kind(kind)
    if source == target:
        raise ValueError(f"source and target are both {source!r}: a translator needs two modalities")
    weights = _weights(module.WEIGHTS, weights, kind)
    prof = get_profile(profile)
    cfg = translator_config(prof.name, dim)
    lr = cfg.lr if cfg.lr is not None else module.LR
    out = Path(out)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    prepare_run_folder(out, FINAL_NAME, f"{kind} translator", resume, overwrite)

    data = _images([source, target], "train", dim, prof.name, dataset, root)
    src, tgt = data[source].to(dev), data[target].to(dev)
    if src.shape[0] == 0:
        raise ValueError(f"no training images of {source!r} and {target!r} in data set {dataset!r}")
    val = _images([source, target], "val", dim, prof.name, dataset, root)
    pick = torch.linspace(0, val[source].shape[0] - 1, min(cfg.val_items, val[source].shape[0])).round().long()
    val = (val[source][pick], val[target][pick])  # spread over the validation subjects
    steps_per_epoch = cfg.steps_per_epoch or max(1, src.shape[0] // cfg.batch_size)
    total_steps = steps_per_epoch * cfg.epochs

    models = {name: m.to(dev) for name, m in seeded_init(seed, lambda: module.build(cfg, dim)).items()}
    optimizers = module.make_optimizers(models, lr)
    meta = TranslatorMeta(
        kind=kind, source=source, target=target, dim=dim, size=tuple(src.shape[2:]), width=cfg.width,
        n_blocks=cfg.n_blocks, profile=prof.name, dataset=dataset, seed=seed, weights=weights,
        command=reproduce_command(kind, source, target, out, dim, prof.name, seed, weights, module.WEIGHTS,
                                  dataset, root),
        extra={"batch_size": cfg.batch_size, "lr": lr, "steps_per_epoch": steps_per_epoch,
               "config": asdict(cfg), "parameters": {n: sum(p.numel() for p in m.parameters())
                                                     for n, m in models.items()}},
    )
    # CycleGAN's learning rate schedule follows the epochs: every budget field counts, epochs included
    settings = run_settings(meta, _SETTINGS, cfg, free=(), lr=lr, steps_per_epoch=steps_per_epoch)
    step, epoch, history, elapsed = 0, 0, [], 0.0
    if resume:
        step, epoch, history, elapsed = _restore(out / LAST_NAME, models, optimizers, settings)

    out.mkdir(parents=True, exist_ok=True)
    stop_epoch = cfg.epochs if stop_after_epochs is None else min(cfg.epochs, epoch + stop_after_epochs)
    shape = tuple(src.shape[2:])
    bar = tqdm(total=total_steps, initial=step, desc=f"{kind} {source}->{target} {dim}D", disable=not progress)
    while epoch < stop_epoch:
        for opt in optimizers.values():
            for group in opt.param_groups:
                group["lr"] = lr * (_lr_factor(epoch, cfg.epochs) if module.LR_DECAY else 1.0)
        for m in models.values():
            m.train()
        start, losses = time.perf_counter(), []
        for _ in range(steps_per_epoch):
            g = step_generator(seed, 0, step)
            ia, ib = module.draw_indices(src.shape[0], cfg.batch_size, g)
            a = warp(src[ia], random_spatial_displacement(shape, len(ia), generator=g, device=dev))
            b = warp(tgt[ib], random_spatial_displacement(shape, len(ib), generator=g, device=dev))
            losses.append(module.train_step(models, optimizers, a, b, weights))
            step += 1
            bar.update(1)
            bar.set_postfix({k: f"{v:.3f}" for k, v in losses[-1].items() if k in ("g_total", "d_total")})
        epoch += 1
        elapsed += time.perf_counter() - start
        row: dict[str, Any] = {"epoch": epoch, "step": step}
        row.update({k: float(np.mean([loss[k] for loss in losses])) for k in losses[0]})
        row["seconds"] = round(elapsed, 1)
        row.update({f"val_{k}": v for k, v in evaluate_translation(models["generator"], *val).items()})
        history.append(row)
        meta.steps, meta.epochs = step, epoch
        meta.extra["train_seconds"] = round(elapsed, 1)
        meta.extra["validation"] = {k: v for k, v in row.items() if k.startswith("val_")}
        state = {"models": {n: m.state_dict() for n, m in models.items()},
                 "optimizers": {n: o.state_dict() for n, o in optimizers.items()},
                 "step": step, "epoch": epoch, "history": history, "elapsed": elapsed, "settings": settings}
        save_translator(out / LAST_NAME, models["generator"], meta, train_state=state)
        write_log_csv(out / "log.csv", history)
        if progress:
            bar.write(", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
    bar.close()
    final = out / FINAL_NAME
    if epoch >= cfg.epochs:
        save_translator(final, models["generator"], meta)
    return TranslatorResult(checkpoint=final, model=models["generator"], steps=step, history=history,
                            seconds=elapsed)


def _weights(defaults: dict[str, float], given: dict[str, float] | None, kind: str) -> dict[str, float]:
    unknown = sorted(set(given or {}) - set(defaults))
    if unknown:
        raise ValueError(f"unknown {kind} loss weight(s) {unknown}: the weights are {sorted(defaults)}")
    return {**defaults, **{k: float(v) for k, v in (given or {}).items()}}


def reproduce_command(kind, source, target, out, dim, profile, seed, weights, defaults, dataset, root) -> str:
    """The shell command that reproduces a run."""
    args = ["imse-study", "train-translator", "--kind", kind, "--source", source, "--target",
            target, "--dim", str(dim), "--profile", profile, "--seed", str(seed), "--out", str(out)]
    args += [a for k, v in weights.items() if v != defaults[k] for a in ("--weight", f"{k}={v:g}")]
    args += data_arguments(dataset, root)
    return shlex.join(args)


# what decides a translator's weights besides its budget (TranslatorTraining): resume compares them
_SETTINGS = ("kind", "source", "target", "dim", "size", "profile", "seed", "dataset", "weights")


def _restore(path: Path, models: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer],
             settings: dict[str, Any]) -> tuple[int, int, list[dict], float]:
    _, state = resume_state(path, read_translator_payload, settings)
    for name, model in models.items():
        model.load_state_dict(state["models"][name])
    for name, opt in optimizers.items():
        opt.load_state_dict(state["optimizers"][name])
    return state["step"], state["epoch"], list(state["history"]), float(state.get("elapsed", 0.0))


# --------------------------------------------------------------------------------------------
# Command line


def _parse_weight(text: str) -> tuple[str, float]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"--weight takes NAME=VALUE, got {text!r}")
    return key.strip(), float(value)


def add_translator_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``imse-study train-translator``."""
    parser.add_argument("--kind", choices=KINDS, required=True)
    parser.add_argument("--source", required=True, help="modality translated from, e.g. t2")
    parser.add_argument("--target", required=True, help="modality translated into, e.g. t1")
    parser.add_argument("--out", required=True, help="output folder (last.pt, log.csv, translator.pt)")
    parser.add_argument("--dim", type=int, choices=(2, 3), default=2)
    parser.add_argument("--profile", choices=PROFILE_NAMES, default="quick")
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--weight", type=_parse_weight, action="append", default=[], metavar="NAME=VALUE",
                        help="override a loss weight (cyclegan: adv, cycle, identity; reggan: adv, corr, smooth)")
    parser.add_argument("--dataset", default="phantom")
    parser.add_argument("--root", default=None)
    parser.add_argument("--resume", action="store_true", help="continue from OUT/last.pt (same settings)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the run that OUT holds (without it, a folder with a run is refused)")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice; use 1 when "
                        "two jobs share a 2-core machine)")


def run_translator(args: argparse.Namespace) -> int:
    """Train the translator that parsed ``args`` describe."""
    if args.threads:
        torch.set_num_threads(args.threads)
    result = train_translator(args.kind, args.source, args.target, args.out, dim=args.dim, profile=args.profile,
                              seed=args.seed, resume=args.resume, overwrite=args.overwrite,
                              progress=not args.no_progress,
                              weights=dict(args.weight), dataset=args.dataset, root=args.root)
    print(f"{result.checkpoint} ({result.steps} steps, {result.seconds:.0f} s)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m imse_study.baselines.translator`` (the same as ``imse-study train-translator``)."""
    parser = argparse.ArgumentParser(prog="imse-study train-translator", description=__doc__.split("\n")[0])
    add_translator_arguments(parser)
    return run_translator(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
