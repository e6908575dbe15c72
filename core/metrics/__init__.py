"""Metrics: how well a classifier did on the real test images (`classification`), and the verdict on
each method against the strongest fair baseline (`verdict`). Generated-image quality (FID/KID, diversity,
memorisation) will live beside them in `generative/`."""
from .classification import (SCALARS, aggregate, bootstrap_f1_ci, classification_metrics, macro_f1,
                             paired_bootstrap_gain, seed_gain)
from .verdict import leaderboard, verdict

__all__ = ["SCALARS", "aggregate", "bootstrap_f1_ci", "classification_metrics", "leaderboard", "macro_f1",
           "paired_bootstrap_gain", "seed_gain", "verdict"]
