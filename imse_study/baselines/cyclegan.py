"""CycleGAN (Zhu et al., "Unpaired image-to-image translation using cycle-consistent adversarial
networks", ICCV 2017) as a translation baseline (IMSE paper, sections 4.2, 4.4, 4.5).

Unpaired: each step takes source and target images at independent random indices, so a batch
never holds two views of the same slice. Two generators (G: source -> target, F: target -> source)
and two PatchGAN discriminators (D_target, D_source), least-squares GAN losses (LSGAN, as CycleGAN's
public code). The generators minimise

    adv * [(D_t(G(a)) - 1)^2 + (D_s(F(b)) - 1)^2]
    + cycle * [|F(G(a)) - a| + |G(F(b)) - b|]
    + identity * cycle * [|G(b) - b| + |F(a) - a|]

(means over voxels); the discriminators ``0.5 * [(D(real) - 1)^2 + D(fake)^2]`` each. Weights:
``adv`` 1, ``cycle`` 10 (CycleGAN's lambda, also RegGAN's ``Cyc_lamda``). The identity term is
off by default (``identity`` 0): CycleGAN's code offers it (0.5) for photo <-> painting, where
colour should be kept, but a T1 image is not a valid T2 image, so asking G(T1) = T1 fights the
translation; RegGAN's CycleGAN mode has none either. Adam with betas (0.5, 0.999), lr 2e-4.
Left out: the history pool of 50 generated images fed to the discriminators (a stabiliser; here
they see the current batch), which keeps a step a pure function of the seed and the step count.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

from imse_study.baselines.translator import Discriminator, Translator, TranslatorTraining

WEIGHTS: dict[str, float] = {"adv": 1.0, "cycle": 10.0, "identity": 0.0}
LR = 2e-4
BETAS = (0.5, 0.999)
LR_DECAY = True  # constant, then linear decay (CycleGAN)


def build(cfg: TranslatorTraining, dim: int) -> dict[str, nn.Module]:
    """The four networks; ``generator`` is G (source -> target), the one a checkpoint keeps."""
    return {
        "generator": Translator(dim, cfg.width, cfg.n_blocks),
        "generator_back": Translator(dim, cfg.width, cfg.n_blocks),
        "disc_target": Discriminator(dim, cfg.disc_width, cfg.disc_layers),
        "disc_source": Discriminator(dim, cfg.disc_width, cfg.disc_layers),
    }


def make_optimizers(models: dict[str, nn.Module], lr: float) -> dict[str, torch.optim.Optimizer]:
    """One Adam for both generators, one for both discriminators (as CycleGAN)."""
    gens = itertools.chain(models["generator"].parameters(), models["generator_back"].parameters())
    discs = itertools.chain(models["disc_target"].parameters(), models["disc_source"].parameters())
    return {"generators": torch.optim.Adam(gens, lr, betas=BETAS),
            "discriminators": torch.optim.Adam(discs, lr, betas=BETAS)}


def draw_indices(n: int, batch: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Unpaired: independent random indices for the source and the target images."""
    return torch.randint(0, n, (batch,), generator=generator), torch.randint(0, n, (batch,), generator=generator)


def _lsgan(prediction: torch.Tensor, real: bool) -> torch.Tensor:
    return nn.functional.mse_loss(prediction, torch.full_like(prediction, 1.0 if real else 0.0))


def train_step(models: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer], source: torch.Tensor,
               target: torch.Tensor, weights: dict[str, float]) -> dict[str, float]:
    """One generator update, then one discriminator update; returns the loss terms."""
    G, F = models["generator"], models["generator_back"]
    D_t, D_s = models["disc_target"], models["disc_source"]
    l1 = nn.functional.l1_loss

    for d in (D_t, D_s):
        d.requires_grad_(False)
    fake_t, fake_s = G(source), F(target)
    adv = _lsgan(D_t(fake_t), True) + _lsgan(D_s(fake_s), True)
    cycle = l1(F(fake_t), source) + l1(G(fake_s), target)
    loss = weights["adv"] * adv + weights["cycle"] * cycle
    identity = torch.zeros(())
    if weights["identity"] > 0:
        identity = l1(G(target), target) + l1(F(source), source)
        loss = loss + weights["identity"] * weights["cycle"] * identity
    optimizers["generators"].zero_grad(set_to_none=True)
    loss.backward()
    optimizers["generators"].step()

    for d in (D_t, D_s):
        d.requires_grad_(True)
    d_t = 0.5 * (_lsgan(D_t(target), True) + _lsgan(D_t(fake_t.detach()), False))
    d_s = 0.5 * (_lsgan(D_s(source), True) + _lsgan(D_s(fake_s.detach()), False))
    optimizers["discriminators"].zero_grad(set_to_none=True)
    (d_t + d_s).backward()
    optimizers["discriminators"].step()
    return {"g_total": float(loss.detach()), "g_adv": float(adv.detach()), "cycle": float(cycle.detach()),
            "identity": float(identity.detach()), "d_total": float((d_t + d_s).detach())}
