"""The training loop of every network of the package: evaluator (Eq. 5), registration network
(Eq. 6-7) and the translation baselines (CycleGAN, RegGAN).

A kind of training supplies only what differs, as a :class:`Trainer`: its networks and optimisers,
one training step, validation, its metadata and checkpoint format. :func:`run_training` does the
rest, the same for all:

* epochs of ``steps_per_epoch`` steps; step ``s`` of process ``r`` draws all its randomness from
  :func:`~imse_study.training.seeding.step_generator` ``(seed, r, s)``;
* under ``torchrun``, gradients averaged over the processes before every optimiser step
  (:mod:`~imse_study.training.distributed`);
* at the end of every epoch (rank 0): validation, a row of ``log.csv``, and ``last.pt`` with every
  network and optimiser, written atomically, from which ``resume`` continues exactly (a learning
  rate schedule is a function of the step and epoch numbers, so nothing else needs saving);
* optional early stopping on a validation column (``best.pt``, which becomes the final model);
* ``time_limit``: the run stops at the end of the epoch in which the time runs out. A trainer that
  can describe the shortened run as an ``--epochs <reached>`` run (:attr:`Trainer.shorten`) then
  finishes it; otherwise the run pauses with ``last.pt`` and ``--resume`` continues it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from imse_study.progress import progress_bar

from imse_study.training.budget import time_deadline, time_is_up
from imse_study.training.distributed import agree, average_gradients_before_steps, distributed, training_device
from imse_study.training.early_stopping import EarlyStopping
from imse_study.training.run_folder import (
    RUN_LOG, RUN_STATE, networks_state, prepare_run_folder, restore_networks, resume_state, write_log_csv,
)
from imse_study.training.seeding import step_generator

BEST = "best.pt"


@dataclass(frozen=True)
class Run:
    """Where and how this process trains: the run folder, the final model's file name, the process's
    rank among ``world``, its device, the ``time_limit`` deadline and whether it resumes."""

    out: Path
    final: str
    rank: int
    world: int
    device: torch.device
    deadline: float | None
    resume: bool


def start_run(out: str | Path, final: str, what: str, resume: bool = False, overwrite: bool = False,
              device: str | None = None, time_limit: float | None = None) -> Run:
    """Join the process group (under torchrun), pick the device, check ``time_limit`` and prepare the
    run folder (:func:`~imse_study.training.run_folder.prepare_run_folder`: never clobber a run)."""
    rank, world = distributed()
    dev = training_device(device, world)
    deadline = time_deadline(time_limit, world)
    prepare_run_folder(out, final, what, resume, overwrite, rank)
    return Run(Path(out), final, rank, world, dev, deadline, resume)


@dataclass
class Trainer:
    """What one kind of training supplies to :func:`run_training`."""

    name: str  # the progress bar's label
    models: dict[str, nn.Module]  # its networks, seeded and on the run's device
    optimizers: dict[str, torch.optim.Optimizer]
    keep: str  # the network a checkpoint holds (models[keep])
    meta: Any  # its metadata dataclass: the loop sets steps, epochs, extra["train_seconds"] (and "validation")
    settings: dict[str, Any]  # what resume compares (run_settings)
    save: Callable[..., Path]  # save(path, model, meta, train_state=None): its checkpoint format
    read: Callable[[Path], dict]  # its checkpoint reader (safe, one-line errors)
    step: Callable[[torch.Generator, int], dict[str, float]]  # one optimisation step -> loss terms of the log
    validate: Callable[[], dict[str, float]] | None = None  # rank 0, after each epoch: validation columns
    record_validation: bool = False  # also keep the last validation in meta.extra["validation"]
    learning_rate: Callable[[int, int], float] | None = None  # (step, epoch) -> rate of every parameter group
    log_lr: bool = False  # write that rate (of the epoch's last step) into log.csv
    shorten: Callable[[int], None] | None = None  # describe a time-limited run as an `--epochs <n>` run

    @property
    def kept(self) -> nn.Module:
        """The network a checkpoint holds."""
        return self.models[self.keep]


@dataclass
class Progress:
    """Where a run stands when :func:`run_training` returns."""

    step: int
    epoch: int
    history: list[dict]
    elapsed: float  # training seconds, summed over resumed parts, validation excluded
    finished: bool  # every epoch has run (or early stopping ended it): the final model is written


def run_training(run: Run, trainer: Trainer, seed: int, epochs: int, steps_per_epoch: int,
                 stop_after_epochs: int | None = None, stopping: EarlyStopping | None = None,
                 progress: bool = True) -> Progress:
    """Train ``trainer`` for ``epochs`` epochs (resuming ``run.out/last.pt`` if ``run.resume``) and
    write ``run.final`` when they have run. ``stop_after_epochs`` ends early, as an interruption would."""
    step, epoch, history, elapsed = _resume(run, trainer) if run.resume else (0, 0, [], 0.0)
    if run.world > 1:
        average_gradients_before_steps(trainer.optimizers.values(), run.world)
    run.out.mkdir(parents=True, exist_ok=True)
    stop_epoch = epochs if stop_after_epochs is None else min(epochs, epoch + stop_after_epochs)
    plateau = stopping is not None and stopping.reached(history)
    bar = progress_bar(total=steps_per_epoch * epochs, initial=step, desc=trainer.name,
               disable=not progress or run.rank != 0)
    while epoch < stop_epoch and not plateau:
        start = time.perf_counter()
        losses, lr = _train_epoch(run, trainer, seed, step, epoch, steps_per_epoch, bar)
        step, epoch = step + steps_per_epoch, epoch + 1
        elapsed += time.perf_counter() - start
        if run.rank == 0:
            row = _epoch_row(trainer, losses, lr, step, epoch, elapsed)
            _record_epoch(run, trainer, history, row, elapsed, stopping)
            plateau = stopping is not None and stopping.reached(history)
            if progress:
                bar.write(", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()))
        if run.world > 1:
            plateau = agree(plateau, run.device)
            dist.barrier()
        if time_is_up(run.deadline) and epoch < epochs and not plateau:
            if trainer.shorten is not None:
                trainer.shorten(epoch)
                epochs = epoch
            break
    bar.close()
    finished = epoch >= epochs or plateau
    if run.rank == 0 and finished:
        if stopping is not None:
            _take_best(run, trainer, epoch)
        trainer.save(run.out / run.final, trainer.kept, trainer.meta)
    return Progress(step, epoch, history, elapsed, finished)


def _resume(run: Run, trainer: Trainer) -> tuple[int, int, list[dict], float]:
    """Restore networks and optimisers from ``last.pt`` (same settings only); (step, epoch, history, seconds)."""
    payload, state = resume_state(run.out / RUN_STATE, trainer.read, trainer.settings)
    restore_networks(payload, state, trainer.models, trainer.optimizers)
    return state["step"], state["epoch"], list(state["history"]), float(state.get("elapsed", 0.0))


def _train_epoch(run: Run, trainer: Trainer, seed: int, step: int, epoch: int, steps_per_epoch: int,
                 bar) -> tuple[list[dict[str, float]], float | None]:
    """One epoch of seeded steps: the loss terms of each step and the learning rate of the last."""
    for model in trainer.models.values():
        model.train()
    losses, lr = [], None
    for s in range(step, step + steps_per_epoch):
        if trainer.learning_rate is not None:
            lr = trainer.learning_rate(s, epoch)
            for optimizer in trainer.optimizers.values():
                for group in optimizer.param_groups:
                    group["lr"] = lr
        losses.append(trainer.step(step_generator(seed, run.rank, s), s))
        bar.update(1)
        bar.set_postfix({k: f"{v:.4f}" for k, v in list(losses[-1].items())[:2]})
    return losses, lr


def _epoch_row(trainer: Trainer, losses: list[dict[str, float]], lr: float | None, step: int, epoch: int,
               elapsed: float) -> dict[str, Any]:
    """The log's row of an epoch: mean loss terms, training time, learning rate, validation."""
    row: dict[str, Any] = {"epoch": epoch, "step": step}
    row.update({k: float(np.mean([loss[k] for loss in losses])) for k in losses[0]})
    row["seconds"] = round(elapsed, 1)
    if trainer.log_lr and lr is not None:
        row["lr"] = lr
    if trainer.validate is not None:
        validation = trainer.validate()
        row.update(validation)
        if trainer.record_validation:
            trainer.meta.extra["validation"] = dict(validation)
    return row


def _record_epoch(run: Run, trainer: Trainer, history: list[dict], row: dict[str, Any], elapsed: float,
                  stopping: EarlyStopping | None) -> None:
    """Log the row; write ``best.pt`` (before ``last.pt``: a resumed run never misses it), ``last.pt``
    with the training state that resume needs, and ``log.csv``."""
    history.append(row)
    meta = trainer.meta
    meta.steps, meta.epochs = row["step"], row["epoch"]
    if stopping is not None and stopping.is_best(history):
        trainer.save(run.out / BEST, trainer.kept, meta)
    meta.extra["train_seconds"] = round(elapsed, 1)
    state = {**networks_state(trainer.models, trainer.optimizers), "step": row["step"], "epoch": row["epoch"],
             "history": history, "elapsed": elapsed, "settings": trainer.settings}
    trainer.save(run.out / RUN_STATE, trainer.kept, meta, train_state=state)
    write_log_csv(run.out / RUN_LOG, history)


def _take_best(run: Run, trainer: Trainer, stopped: int) -> None:
    """Load the best epoch's weights (``best.pt``) into the kept network and describe them in the metadata."""
    best = trainer.read(run.out / BEST)
    saved = best["meta"]
    trainer.kept.load_state_dict(best["state_dict"])
    meta = trainer.meta
    meta.steps, meta.epochs = saved["steps"], saved["epochs"]
    meta.extra.update(best_epoch=saved["epochs"], stopped_epoch=stopped,
                      validation=saved.get("extra", {}).get("validation"))
