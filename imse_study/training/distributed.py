"""Processes and devices: the process group under torchrun, each process's device, and gradient
averaging across processes (data parallelism).

Under ``torchrun`` every process trains the same networks on its own batches (drawn from its own
step generators) and the gradients are averaged before every optimiser step, so all processes keep
identical weights. The averaging is done by a pre-step hook on each optimiser rather than by
wrapping the networks in ``DistributedDataParallel``: a GAN step (:mod:`imse_study.baselines`)
updates several networks in turn while others are frozen or run twice, which DDP's reducer does not
follow; averaging just before ``optimizer.step()`` synchronises any such step the same way. Each
gradient is divided by the number of processes and then summed over them, as DDP's default does.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import torch
import torch.distributed as dist


def distributed() -> tuple[int, int]:
    """(rank, world size); starts the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


def training_device(device: str | None, world: int) -> torch.device:
    """The device of this process: the given one, else its GPU under torchrun, else the CPU."""
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dev.type == "cuda" and world > 1:
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True  # fixed input sizes: let cuDNN pick the fastest kernels
    return dev


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside a DistributedDataParallel wrapper (or the module itself)."""
    return model.module if hasattr(model, "module") else model


def device_of(model) -> torch.device:
    """Where a module's parameters live (the CPU for a parameter-free callable, e.g. a test oracle)."""
    params = model.parameters() if isinstance(model, torch.nn.Module) else iter(())
    return next(params, torch.empty(0)).device


def agree(flag: bool, device: torch.device) -> bool:
    """Rank 0's ``flag`` on every process (e.g. a decision that only rank 0, which validates, can take)."""
    value = torch.tensor([int(flag)], device=device)
    dist.broadcast(value, 0)
    return bool(value.item())


def average_gradients_before_steps(optimizers: Iterable[torch.optim.Optimizer], world: int) -> None:
    """Make every ``optimizer.step()`` first average its parameters' gradients over the ``world`` processes."""
    for optimizer in optimizers:
        optimizer.register_step_pre_hook(lambda opt, args, kwargs: _average_gradients(opt, world))


def _average_gradients(optimizer: torch.optim.Optimizer, world: int) -> None:
    """All-reduce (one flat buffer) the mean of the gradients an optimiser is about to apply."""
    grads = [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads]).div_(world)
    dist.all_reduce(flat)
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()
