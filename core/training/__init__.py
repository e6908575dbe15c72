"""The generic training loop of the generative methods (`Trainer`), and what it is built from.

    from core.training import Trainer, TrainingProcess, LoopSettings, Who, train_models

A method gives the loop a `TrainingProcess` (its networks, optimisers, random stream and one visible
training step); the loop owns steps, cancellation, monitors, the sample-grid timeline, resumable
checkpoints and, through `train_models`, per-class models trained side by side. Nothing here names a
method, a mode or a loss.
"""
from .checkpoint import save_tensors
from .images import mean_pairwise_distance, save_grid, to_signed, to_uint8
from .loop import LOOP_FIELDS, LoopSettings, Trainer, TrainingProcess, Who, settings_fingerprint
from .parallel import Stopped, side_by_side, train_models
from .pool import ImagePool

__all__ = ["ImagePool", "LOOP_FIELDS", "LoopSettings", "Stopped", "Trainer", "TrainingProcess", "Who",
           "mean_pairwise_distance", "save_grid", "save_tensors", "settings_fingerprint", "side_by_side", "to_signed",
           "to_uint8", "train_models"]
