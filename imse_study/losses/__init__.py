"""Similarity losses between a warped moving image and a target (Eq. 1 and Eq. 6 of the paper):
classic ones (NCC, LNCC, MI, MAE), MIND, IMSE (Eq. 3) and their combinations (``imse_robust``)."""

from imse_study.losses.similarity import similarity

__all__ = ["similarity"]
