"""Training the translation baselines (CycleGAN, RegGAN) with the package's loop.

Each kind (:mod:`~imse_study.baselines.cyclegan`, :mod:`~imse_study.baselines.reggan`) supplies its
networks, optimisers, pairing and one training step (:class:`TranslatorKind`); they are found by
name in :data:`KIND_MODULES`. :func:`train_translator` runs them in
:func:`imse_study.training.run_training`, as the evaluator and the registration network are run:
weights initialised from the run's seed, every step drawing its randomness from a generator seeded
by ``(seed, rank, step)``, ``last.pt`` (all networks and optimisers) written atomically every epoch
so that ``resume=True`` finishes exactly like an uninterrupted run, gradients averaged over the
processes under ``torchrun``, and ``time_limit``. Each epoch scores the generator on held-out,
aligned validation pairs (NMAE, PSNR, SSIM; :func:`~imse_study.baselines.translator.
translation_metrics`) into ``log.csv``.

Both kinds see every training image under the paper's random affine + elastic transform
(section 4.1, :func:`imse_study.augment.random_spatial_displacement`); for RegGAN these independent
transforms of source and target are what make a pair misaligned. Learning rate: CycleGAN's
schedule (constant for the first half of the epochs, then linearly towards zero) where the kind
sets ``LR_DECAY`` (CycleGAN), constant otherwise (RegGAN's trainer). As that schedule depends on
the planned epochs, a run stopped by ``time_limit`` pauses (``last.pt``, no ``translator.pt``) and
``--resume`` continues it. Run from a shell with
``imse-study train-translator --kind reggan --source t2 --target t1 --out runs/reggan``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Protocol

import torch
from torch import nn

from imse_study.augment import random_spatial_displacement
from imse_study.baselines import cyclegan, reggan
from imse_study.baselines.translator import (
    KINDS, Translator, TranslatorMeta, TranslatorTraining, evaluate_translation, read_translator_payload,
    save_translator, translator_config,
)
from imse_study.config import PROFILE_NAMES, get_profile
from imse_study.data.datasets import data_arguments
from imse_study.training import Trainer, run_settings, run_training, seeded_init, start_run
from imse_study.warp import warp

FINAL_NAME = "translator.pt"


class TranslatorKind(Protocol):
    """What a kind's module defines (see :mod:`~imse_study.baselines.cyclegan`)."""

    WEIGHTS: dict[str, float]  # its loss weights
    LR: float  # its published learning rate
    LR_DECAY: bool  # CycleGAN's decay over the second half of the epochs

    def build(self, cfg: TranslatorTraining, dim: int) -> dict[str, nn.Module]: ...

    def make_optimizers(self, models: dict[str, nn.Module], lr: float) -> dict[str, torch.optim.Optimizer]: ...

    def draw_indices(self, n: int, batch: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]: ...

    def train_step(self, models: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer],
                   source: torch.Tensor, target: torch.Tensor, weights: dict[str, float]) -> dict[str, float]: ...


#: the kinds by name (the registry ``--kind`` chooses from)
KIND_MODULES: dict[str, TranslatorKind] = {"cyclegan": cyclegan, "reggan": reggan}


@dataclass
class TranslatorResult:
    """What :func:`train_translator` produced."""

    checkpoint: Path  # out/translator.pt (written once every epoch has run)
    model: Translator  # the source -> target generator, in train mode as left by training
    steps: int
    history: list[dict]
    seconds: float  # training time, summed over resumed parts, validation excluded


def kind_module(kind: str) -> TranslatorKind:
    """The module that defines a kind's networks, optimisers, pairing and training step."""
    if kind not in KIND_MODULES:
        raise ValueError(f"unknown translator kind {kind!r}: choose one of {', '.join(KINDS)}")
    return KIND_MODULES[kind]


def lr_factor(epoch: int, epochs: int) -> float:
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
    time_limit: float | None = None,
) -> TranslatorResult:
    """Train a ``source`` -> ``target`` generator of ``kind`` (cyclegan, reggan) on the training subjects.

    Writes ``out/last.pt`` and ``out/log.csv`` every epoch and ``out/translator.pt`` (+ ``.json``)
    when all epochs have run. ``weights`` overrides some of the kind's loss weights (see
    ``cyclegan.WEIGHTS``, ``reggan.WEIGHTS``). ``stop_after_epochs`` ends early, as an interruption
    would, and so does ``time_limit`` (seconds) after the epoch in which it runs out; ``resume=True``
    continues from ``out/last.pt`` (with the same settings; only ``device`` and ``time_limit`` may
    change). A folder that holds a run is refused unless ``resume`` or ``overwrite`` is given.
    """
    module = kind_module(kind)
    if source == target:
        raise ValueError(f"source and target are both {source!r}: a translator needs two modalities")
    weights = _weights(module.WEIGHTS, weights, kind)
    prof = get_profile(profile)
    cfg = translator_config(prof.name, dim)
    lr = cfg.lr if cfg.lr is not None else module.LR
    out = Path(out)
    run = start_run(out, FINAL_NAME, f"{kind} translator", resume, overwrite, device, time_limit)

    data = _images([source, target], "train", dim, prof.name, dataset, root)
    src, tgt = data[source].to(run.device), data[target].to(run.device)
    if src.shape[0] == 0:
        raise ValueError(f"no training images of {source!r} and {target!r} in data set {dataset!r}")
    steps_per_epoch = cfg.steps_per_epoch or max(1, src.shape[0] // (cfg.batch_size * run.world))

    models = {name: m.to(run.device) for name, m in seeded_init(seed, lambda: module.build(cfg, dim)).items()}
    optimizers = module.make_optimizers(models, lr)
    processes = {"world_size": run.world} if run.world > 1 else {}  # a one-process run records none, as before
    meta = TranslatorMeta(
        kind=kind, source=source, target=target, dim=dim, size=tuple(src.shape[2:]), width=cfg.width,
        n_blocks=cfg.n_blocks, profile=prof.name, dataset=dataset, seed=seed, weights=weights,
        command=reproduce_command(kind, source, target, out, dim, prof.name, seed, weights, module.WEIGHTS,
                                  dataset, root),
        extra={"batch_size": cfg.batch_size, "lr": lr, "steps_per_epoch": steps_per_epoch, **processes,
               "config": asdict(cfg), "parameters": {n: sum(p.numel() for p in m.parameters())
                                                     for n, m in models.items()}},
    )
    # CycleGAN's learning rate schedule follows the epochs: every budget field counts, epochs included
    settings = run_settings(meta, _SETTINGS, cfg, free=(), lr=lr, steps_per_epoch=steps_per_epoch, **processes)
    val: list = []  # held-out aligned pairs, loaded by the first validation (rank 0 only validates)

    def validate() -> dict[str, float]:
        if not val:
            val.append(_validation_pairs(source, target, dim, prof.name, dataset, root, cfg.val_items))
        return {f"val_{k}": v for k, v in evaluate_translation(models["generator"], *val[0]).items()}

    trainer = Trainer(
        name=f"{kind} {source}->{target} {dim}D", models=models, optimizers=optimizers, keep="generator", meta=meta,
        settings=settings, save=save_translator, read=read_translator_payload,
        step=_training_step(module, models, optimizers, src, tgt, cfg.batch_size, weights, run.device),
        validate=validate, record_validation=True,
        learning_rate=(lambda step, epoch: lr * lr_factor(epoch, cfg.epochs)) if module.LR_DECAY else None,
    )
    done = run_training(run, trainer, seed, cfg.epochs, steps_per_epoch, stop_after_epochs, progress=progress)
    return TranslatorResult(checkpoint=out / FINAL_NAME, model=models["generator"], steps=done.step,
                            history=done.history, seconds=done.elapsed)


def _training_step(module: TranslatorKind, models: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer],
                   src: torch.Tensor, tgt: torch.Tensor, batch_size: int, weights: dict[str, float],
                   dev: torch.device) -> Callable[[torch.Generator, int], dict[str, float]]:
    """One step of the kind: its pairing of source and target items, each image under the paper's
    random transform, then the kind's updates."""
    shape = tuple(src.shape[2:])

    def step(g: torch.Generator, _: int) -> dict[str, float]:
        ia, ib = module.draw_indices(src.shape[0], batch_size, g)
        a = warp(src[ia], random_spatial_displacement(shape, len(ia), generator=g, device=dev))
        b = warp(tgt[ib], random_spatial_displacement(shape, len(ib), generator=g, device=dev))
        return module.train_step(models, optimizers, a, b, weights)

    return step


def _validation_pairs(source: str, target: str, dim: int, profile: str, dataset: str, root: str | None,
                      limit: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Up to ``limit`` aligned validation pairs, spread over the validation subjects."""
    val = _images([source, target], "val", dim, profile, dataset, root)
    pick = torch.linspace(0, val[source].shape[0] - 1, min(limit, val[source].shape[0])).round().long()
    return val[source][pick], val[target][pick]


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
    parser.add_argument("--device", help="torch device, e.g. cuda or cpu (default: a GPU when there is one)")
    parser.add_argument("--time-limit", type=float, metavar="SECONDS",
                        help="stop after the epoch in which this many seconds run out, keeping last.pt: "
                             "continue the run with --resume")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--threads", type=int, help="CPU threads for torch (default: torch's choice; use 1 when "
                        "two jobs share a 2-core machine)")


def run_translator(args: argparse.Namespace) -> int:
    """Train the translator that parsed ``args`` describe."""
    if args.threads:
        torch.set_num_threads(args.threads)
    result = train_translator(args.kind, args.source, args.target, args.out, dim=args.dim, profile=args.profile,
                              seed=args.seed, resume=args.resume, overwrite=args.overwrite,
                              progress=not args.no_progress, weights=dict(args.weight), dataset=args.dataset,
                              root=args.root, device=args.device, time_limit=args.time_limit)
    if result.checkpoint.exists():
        print(f"{result.checkpoint} ({result.steps} steps, {result.seconds:.0f} s)")
    else:
        epoch = result.history[-1]["epoch"] if result.history else 0
        print(f"stopped after epoch {epoch} ({result.steps} steps, {result.seconds:.0f} s): continue it with "
              f"the same command and --resume")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m imse_study.baselines.train`` (the same as ``imse-study train-translator``)."""
    parser = argparse.ArgumentParser(prog="imse-study train-translator", description=__doc__.split("\n")[0])
    add_translator_arguments(parser)
    return run_translator(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
