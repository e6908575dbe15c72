"""Seed-to-seed spread of the equal-steps baseline's macro F1 on magnetic_tile, for classifier settings.

    .venv/bin/python benchmarks/classifier_stability.py '{}'                           # the defaults
    .venv/bin/python benchmarks/classifier_stability.py '{"lr": 1e-3}' '{"ema_halflife": 0.2}' --threads 1
    .venv/bin/python benchmarks/classifier_stability.py '{}' --flip-tta    # also score flip-averaged predictions

The same split, imbalance (ratio 0.1) and step count as benchmarks/seed_protocol.py's equal_steps baseline
(3080 steps at 64 px); each JSON argument is a set of ClassifierParams overrides. Prints one line per setting:
the five F1 values, mean and SD (ddof=1). A 5-seed SD is itself uncertain (about +-35%), so compare settings
on more than one run. Results go into benchmarks/RESULTS.md by hand (section seed_stability).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._results import machine  # noqa: E402
from core import classifier as clf  # noqa: E402
from core.data import balance_targets, load_dataset, simulate_imbalance, split  # noqa: E402
from core.metrics import macro_f1  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("settings", nargs="*", default=["{}"], help="JSON ClassifierParams overrides, one per setting")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets" / "magnetic_tile"))
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--flip-tta", action="store_true", help="also score predictions averaged over 4 flips")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    print(f"Machine: {machine()}", flush=True)
    full, _ = load_dataset(a.data, image_size=64)
    pool, test = split(full, 20, seed=0)
    train = simulate_imbalance(pool, 0.1, seed=0)
    needed = balance_targets(train.counts(), 1.0)
    k = len(full.classes)
    seeds = [int(s) for s in a.seeds.split(",")]
    for text in a.settings:
        p = clf.ClassifierParams(**json.loads(text))
        steps = clf.steps_for(len(train) + sum(needed.values()), p)
        f1, tta, t0 = [], [], time.time()
        for s in seeds:
            model = clf.train(train, p, s, steps=steps).model
            f1.append(macro_f1(test.labels, clf.predict(model, test).argmax(1), k))
            if a.flip_tta:
                x = test.images
                prob = sum(clf.predict(model, v) for v in (x, x[:, :, ::-1].copy(), x[:, ::-1].copy(),
                                                           x[:, ::-1, ::-1].copy()))
                tta.append(macro_f1(test.labels, prob.argmax(1), k))
        line = (f"{text} threads {a.threads} steps {steps}: F1 {[round(v, 3) for v in f1]} mean {np.mean(f1):.3f} "
                f"SD {np.std(f1, ddof=1):.3f} ({time.time() - t0:.0f} s)")
        if tta:
            line += f"; flip-TTA F1 {[round(v, 3) for v in tta]} mean {np.mean(tta):.3f}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
