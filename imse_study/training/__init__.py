"""What every training of the package shares: ONE loop (:mod:`~imse_study.training.loop`) and its
parts, one job each: checkpoints (plain data, atomic, safe to load), the run folder (refuse to
clobber, exact resume), seeding (per-step generators), processes (torchrun, devices), the budget
(``--epochs``, ``--time-limit``) and early stopping.

The public names are re-exported here: ``from imse_study.training import X``.
"""

from imse_study.atomic import atomic_write, atomic_write_json, remove_leftover_temp_files
from imse_study.training.budget import budget_arguments, time_deadline, time_is_up, with_budget
from imse_study.training.checkpoints import (
    atomic_torch_save, meta_from_dict, package_version, plain, read_payload, safe_load, save_model_checkpoint,
)
from imse_study.training.distributed import (
    agree, average_gradients_before_steps, device_of, distributed, training_device, unwrap,
)
from imse_study.training.early_stopping import EarlyStopping, best_epoch, plateau_reached
from imse_study.training.loop import BEST, Progress, Run, Trainer, run_training, start_run
from imse_study.training.run_folder import (
    RUN_LOG, RUN_STATE, networks_state, prepare_run_folder, restore_networks, resume_state, run_settings,
    write_log_csv,
)
from imse_study.training.seeding import seeded_init, step_generator

__all__ = [
    "BEST", "RUN_LOG", "RUN_STATE", "EarlyStopping", "Progress", "Run", "Trainer", "agree", "atomic_torch_save",
    "atomic_write", "atomic_write_json", "average_gradients_before_steps", "best_epoch", "budget_arguments",
    "device_of", "distributed", "meta_from_dict", "networks_state", "package_version", "plain", "plateau_reached",
    "prepare_run_folder", "read_payload", "remove_leftover_temp_files", "restore_networks", "resume_state",
    "run_settings", "run_training", "safe_load", "save_model_checkpoint", "seeded_init", "start_run",
    "step_generator", "time_deadline", "time_is_up", "training_device", "unwrap", "with_budget", "write_log_csv",
]
