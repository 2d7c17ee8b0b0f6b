"""Registration quality without ground truth: the IMSE error map of one registered pair, a score,
and a calibrated estimate of the misalignment in mm and of the chance that the registration failed."""

from imse_study.qa.assess import QAResult, assess_arrays, assess_files, choose_evaluator

__all__ = ["QAResult", "assess_arrays", "assess_files", "choose_evaluator"]
