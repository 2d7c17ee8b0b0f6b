"""RegGAN (Kong et al., "Breaking the dilemma of medical image-to-image translation", NeurIPS 2021)
as a translation baseline (IMSE paper, sections 4.2, 4.4, 4.5).

Paired but misaligned: each step takes the same subject and slice in both modalities, each under
its own random affine + elastic transform (the IMSE paper's transforms, section 4.1), so the pair
shows the same anatomy, misaligned. A generator G (source -> target), a PatchGAN discriminator D
on the target modality and a registration network R (:func:`~imse_study.baselines.translator.
registration_net`: MONAI's VoxelMorphUNet) are trained together; R registers the translation onto
the real target and the L1 "correction" loss is taken after that warp, so G is not punished for
the misalignment. G and R minimise, in one joint step (RegGAN's ``regist`` mode without cycle):

    adv * (D(G(x)) - 1)^2 + corr * |warp(G(x), R(G(x), y)) - y| + smooth * S(R(G(x), y))

with ``S`` RegGAN's ``smooothing_loss``: the sum over spatial axes of the mean squared forward
difference of the field, i.e. ``ndim * imse_study.metrics.gradient_loss`` (that function divides the
sum by ``ndim``); the field is in voxels in both codes. D then minimises
``adv * [(D(y) - 1)^2 + D(G(x))^2]`` (no factor 0.5, as RegGAN's trainer). Weights, optimiser
and update order as RegGAN's public code (Kid-Liet/Reg-GAN: ``Yaml/CycleGan.yaml`` ``Adv_lamda 1,
Corr_lamda 20, Smooth_lamda 10, lr 0.0001``; ``trainer/CycTrainer.py`` NC+R mode, Adam betas
(0.5, 0.999); ``trainer/utils.py`` ``smooothing_loss``): ``adv`` 1, ``corr`` 20, ``smooth`` 10.
Differences: RegGAN misaligns its pairs with torchvision's ``RandomAffine`` (noise level 1:
+-1 degree, +-2 % shift and scale); here the IMSE paper's larger affine + elastic transforms are
used, as for every method of the study. RegGAN's own R is a larger residual UNet; its
discriminator update recomputes the translation with the updated G, here this step's translation
is reused.
"""

from __future__ import annotations

import torch
from torch import nn

from imse_study.baselines.translator import Discriminator, Translator, TranslatorTraining, registration_net
from imse_study.metrics import gradient_loss
from imse_study.warp import warp

WEIGHTS: dict[str, float] = {"adv": 1.0, "corr": 20.0, "smooth": 10.0}
LR = 1e-4
BETAS = (0.5, 0.999)
LR_DECAY = False  # RegGAN's trainer keeps lr constant (its config's decay_epoch is unused)


def build(cfg: TranslatorTraining, dim: int) -> dict[str, nn.Module]:
    """G, R and D; ``generator`` (G) is the network a checkpoint keeps."""
    return {
        "generator": Translator(dim, cfg.width, cfg.n_blocks),
        "registration": registration_net(dim, cfg.reg_channels, cfg.reg_final),
        "disc_target": Discriminator(dim, cfg.disc_width, cfg.disc_layers),
    }


def make_optimizers(models: dict[str, nn.Module], lr: float) -> dict[str, torch.optim.Optimizer]:
    """One Adam per network, as RegGAN."""
    return {name: torch.optim.Adam(m.parameters(), lr, betas=BETAS) for name, m in models.items()}


def draw_indices(n: int, batch: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Paired: the same items (subject and slice) for the source and the target images."""
    index = torch.randint(0, n, (batch,), generator=generator)
    return index, index


def smoothing_loss(field: torch.Tensor) -> torch.Tensor:
    """RegGAN's smoothness term: sum over axes of the mean squared forward difference (voxels)."""
    return (field.ndim - 2) * gradient_loss(field)


def _lsgan(prediction: torch.Tensor, real: bool) -> torch.Tensor:
    return nn.functional.mse_loss(prediction, torch.full_like(prediction, 1.0 if real else 0.0))


def train_step(models: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer], source: torch.Tensor,
               target: torch.Tensor, weights: dict[str, float]) -> dict[str, float]:
    """One joint G + R update, then one D update; returns the loss terms."""
    G, R, D = models["generator"], models["registration"], models["disc_target"]
    D.requires_grad_(False)
    fake = G(source)
    field = R(torch.cat([fake, target], 1))
    corr = nn.functional.l1_loss(warp(fake, field), target)
    smooth = smoothing_loss(field)
    adv = _lsgan(D(fake), True)
    loss = weights["adv"] * adv + weights["corr"] * corr + weights["smooth"] * smooth
    optimizers["generator"].zero_grad(set_to_none=True)
    optimizers["registration"].zero_grad(set_to_none=True)
    loss.backward()
    optimizers["generator"].step()
    optimizers["registration"].step()

    D.requires_grad_(True)
    d_loss = weights["adv"] * (_lsgan(D(target), True) + _lsgan(D(fake.detach()), False))
    optimizers["disc_target"].zero_grad(set_to_none=True)
    d_loss.backward()
    optimizers["disc_target"].step()
    return {"g_total": float(loss.detach()), "g_adv": float(adv.detach()), "corr": float(corr.detach()),
            "smooth": float(smooth.detach()), "field_abs": float(field.detach().abs().mean()),
            "d_total": float(d_loss.detach())}
