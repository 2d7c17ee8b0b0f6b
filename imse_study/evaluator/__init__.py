"""The IMSE evaluator: model, training (Eq. 5), checkpoints and its uses (error map, loss, translation)."""

from imse_study.evaluator.checkpoint import EvaluatorMeta, load_evaluator, save_checkpoint
from imse_study.evaluator.use import error_map, imse_loss, spatial_error_score, translate
from imse_study.evaluator.model import Evaluator
from imse_study.evaluator.pretrained import available_pretrained, load_any, load_pretrained

__all__ = [
    "Evaluator", "EvaluatorMeta", "available_pretrained", "error_map", "imse_loss", "load_any",
    "load_evaluator", "load_pretrained", "save_checkpoint", "spatial_error_score", "translate",
]
