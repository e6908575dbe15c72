"""Metrics: how well a classifier did on the real test images (`classification`), and the verdict on
each method against the strongest fair baseline (`verdict`). Generated-image quality (FID/KID, diversity,
memorisation) will live beside them in `generative/`."""
from .classification import (SCALARS, aggregate, bootstrap_f1_ci, classification_metrics, detection, macro_f1,
                             paired_bootstrap_gain, seed_gain)
from .intervals import holm, paired_gain
from .verdict import judge, leaderboard, verdict_text

__all__ = ["SCALARS", "aggregate", "bootstrap_f1_ci", "classification_metrics", "detection", "holm", "judge",
           "leaderboard", "macro_f1", "paired_bootstrap_gain", "paired_gain", "seed_gain", "verdict_text"]
