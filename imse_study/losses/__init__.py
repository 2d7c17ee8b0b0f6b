"""Losses of the registration (Eq. 1, Eq. 6-7 of the paper): the similarities (classic ones: NCC, LNCC,
MI, MAE; MIND; IMSE, Eq. 3; their combinations, ``imse_robust``), each an ``nn.Module``, and the
smoothness regulariser of Eq. 7 (:mod:`.regularisers`)."""

from imse_study.losses.regularisers import gradient_loss
from imse_study.losses.similarity import similarity

__all__ = ["gradient_loss", "similarity"]
