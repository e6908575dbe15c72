"""Seed-to-seed spread of the equal-steps baseline's macro F1 on magnetic_tile, for classifier settings.

    .venv/bin/python benchmarks/classifier_stability.py '{}'                           # the defaults
    .venv/bin/python benchmarks/classifier_stability.py '{"lr": 1e-3}' '{"ema_halflife": 0.2}' --threads 1
    .venv/bin/python benchmarks/classifier_stability.py '{}' --flip-tta    # also score flip-averaged predictions
    .venv/bin/python benchmarks/classifier_stability.py '{}' '{"label_smoothing": 0}' --seeds 0-19 --threads 1
    .venv/bin/python benchmarks/classifier_stability.py '{}' --seeds 0-19 --procs 2   # seeds split over 2 processes

The same split, imbalance (ratio 0.1) and step count as benchmarks/seed_protocol.py's equal_steps baseline
(3080 steps at 64 px); each JSON argument is a set of ClassifierParams overrides. Prints one line per setting:
the F1 values, mean, SD (ddof=1) and a 90% interval of the SD (chi-square). A 5-seed SD is itself uncertain
(about +-35%), a 20-seed one about +-16%: compare settings on many seeds. Results go into
benchmarks/RESULTS.md by hand (section seed_stability). --procs N trains N seeds at a time, each in
its own process with --threads threads (use --threads 1 with --procs 2 on 2 cores).

Each setting is a run of the experiment's plan with the equal-steps baseline only
(`core.experiment.run_in_processes`, one run folder per setting under benchmarks/out/classifier_stability/),
so the numbers are those the product computes. --members and --flip-tta score what the product does not train
(an ensemble per seed, flip-averaged predictions) and train the seeds here directly.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
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
from core.experiment import run_in_processes  # noqa: E402
from core.metrics import macro_f1  # noqa: E402

OUT = ROOT / "benchmarks" / "out" / "classifier_stability"


def parse_seeds(text: str) -> list[int]:
    """"0,1,2" or "0-19"."""
    if "-" in text:
        a, b = text.split("-", 1)
        return list(range(int(a), int(b) + 1))
    return [int(s) for s in text.split(",")]


def sd_interval(values: list[float], level: float = 0.90) -> tuple[float, float]:
    """Interval of the population SD from a sample SD (chi-square, normal values)."""
    from scipy.stats import chi2
    n, sd = len(values), float(np.std(values, ddof=1))
    a = (1 - level) / 2
    return sd * np.sqrt((n - 1) / chi2.ppf(1 - a, n - 1)), sd * np.sqrt((n - 1) / chi2.ppf(a, n - 1))


def _load(data: str, image_size: int):
    full, _ = load_dataset(data, image_size=image_size)
    pool, test = split(full, 20, seed=0)
    train = simulate_imbalance(pool, 0.1, seed=0)
    return full, train, test


_DATA: dict = {}


def _loaded(data: str, image_size: int):
    """`_load` once per process (the seeds of one process share it)."""
    if (data, image_size) not in _DATA:
        _DATA[data, image_size] = _load(data, image_size)
    return _DATA[data, image_size]


def _one_seed(job: tuple[str, str, int, int, int, bool, int]) -> tuple[float, float | None]:
    """Macro F1 of one seed (and of its flip-averaged predictions when asked), in this process."""
    data, text, s, members, threads, flip_tta, image_size = job
    torch.set_num_threads(threads)
    full, train, test = _loaded(data, image_size)
    k = len(full.classes)
    p = clf.ClassifierParams(**json.loads(text))
    steps = clf.steps_for(len(train) + sum(balance_targets(train.counts(), 1.0).values()), p)
    models = [clf.train(train, p, s + 1000 * j, steps=steps).model for j in range(members)]
    f1 = macro_f1(test.labels, sum(clf.predict(m, test) for m in models).argmax(1), k)
    tta = None
    if flip_tta:
        x = test.images
        prob = sum(clf.predict(models[0], v) for v in (x, x[:, :, ::-1].copy(), x[:, ::-1].copy(),
                                                       x[:, ::-1, ::-1].copy()))
        tta = macro_f1(test.labels, prob.argmax(1), k)
    return f1, tta


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("settings", nargs="*", default=["{}"], help="JSON ClassifierParams overrides, one per setting")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets" / "magnetic_tile"))
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--procs", type=int, default=1, help="seeds trained at a time, one process each")
    ap.add_argument("--image-size", type=int, default=64, help="side in pixels the images are resized to")
    ap.add_argument("--flip-tta", action="store_true", help="also score predictions averaged over 4 flips")
    ap.add_argument("--members", type=int, default=1,
                    help="score the averaged probabilities of this many classifiers per seed (seeds s, s+1000, ...): "
                         "what an ensemble would buy, at that many times the cost")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    os.environ["OMP_NUM_THREADS"] = str(a.threads)    # for spawned processes, before torch loads there
    print(f"Machine: {machine()}", flush=True)
    _, train, _ = _loaded(a.data, a.image_size)          # the seeds run in this process reuse it
    seeds = parse_seeds(a.seeds)
    direct = a.members > 1 or a.flip_tta
    pool = mp.get_context("spawn").Pool(a.procs) if a.procs > 1 and direct else None
    for i, text in enumerate(a.settings):
        p = clf.ClassifierParams(**json.loads(text))
        steps = clf.steps_for(len(train) + sum(balance_targets(train.counts(), 1.0).values()), p)
        t0 = time.time()
        if a.members == 1 and not a.flip_tta:     # what the product trains: the plan's equal-steps baseline
            config = dict(data=a.data, methods=[], baselines=["equal_steps"], seeds=seeds, ratio=0.1,
                          image_size=a.image_size, test_per_class=20, save_images=False,
                          overrides={"classifier": json.loads(text)})
            shutil.rmtree(OUT / f"setting{i}", ignore_errors=True)
            m = run_in_processes(config, OUT / f"setting{i}", a.procs, a.threads)
            f1 = [m["baselines"]["equal_steps"]["seeds"][str(s)]["f1_macro"] for s in seeds]
            tta = []
        else:
            jobs = [(a.data, text, s, a.members, a.threads, a.flip_tta, a.image_size) for s in seeds]
            results = pool.map(_one_seed, jobs, chunksize=1) if pool else [_one_seed(j) for j in jobs]
            f1 = [r[0] for r in results]
            tta = [r[1] for r in results if r[1] is not None]
        lo, hi = sd_interval(f1)
        line = (f"{text} {a.image_size} px members {a.members} threads {a.threads} x {a.procs} processes bf16 {clf.use_bf16(p, torch.device('cpu'))} steps {steps}: "
                f"F1 {[round(v, 3) for v in f1]} mean {np.mean(f1):.3f} SD {np.std(f1, ddof=1):.3f} "
                f"(90% interval {lo:.3f} to {hi:.3f}; {time.time() - t0:.0f} s)")
        if tta:
            line += f"; flip-TTA F1 {[round(v, 3) for v in tta]} mean {np.mean(tta):.3f}"
        print(line, flush=True)
    if pool:
        pool.close()


if __name__ == "__main__":
    main()
