"""Are the verdicts calibrated? A/A runs: the baseline against itself with independent seeds, on magnetic_tile.

    .venv/bin/python benchmarks/verdict_calibration.py                 # 32 px, ratio 0.03, ~15 min on 2 cores
    .venv/bin/python benchmarks/verdict_calibration.py --pool 24 --planted 6 --runs 10 --no-write   # a quick look
    .venv/bin/python benchmarks/verdict_calibration.py --groups auto   # grouped split + cluster bootstrap

A pool of independently seeded trainings of the equal-steps baseline (the imbalanced set, as many steps as a
balanced run) gives the A/A runs: each run draws 3 seeds as "the baseline" and 3 "methods" of 3 seeds each, all
the same model, so every "helps" or "hurts" is a false verdict; the run's methods are one family, as in a real
run. With the verdict rule of `core.metrics.verdict` (test-image bootstrap, Student-t seed term, Holm over the
methods) the share of A/A runs with any false verdict should be at most 5%; beside it, the rule the product used
before issue 24 (paired bootstrap over test images, "mean gain larger than its seed SD", no correction) on the
same runs.

Planted gain: a "method" that trains on the same imbalanced set plus the real defect images the imbalance held
out (the whole training pool, as many steps), beside two A/A methods: its verdict should be "helps" in most runs.
Runs share trainings (they are drawn from one pool, each run's members distinct), so the runs are not
independent; the rates are estimated over many more runs than the pool has trainings.

Six baselines (issue 33): a run now takes its verdicts against the strongest of up to six baselines, the one with
the highest mean macro F1, and the largest of six noisy means is too high. The worst case for that is six baselines
that are in truth the same model, so each A/A run here also draws `--baselines` (6) groups of 3 seeds of the same
baseline, takes the strongest of them as the run does, and judges the 3 A/A methods against it: once with the rule
alone, once with the correction `core.metrics.verdict.judge(picked_from=6)` applies (a "hurts" held to alpha / 6).

Ratio 0.03 (every defect class cut to 27 images, Fray's 16 kept) so that the held-out real images exist; 32 px
and 35 epochs as the seed protocol. The trainings are cached (benchmarks/out/verdict_calibration/*.npz), so the
analysis can be redone without training again.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._results import machine, write_section  # noqa: E402

OUT = ROOT / "benchmarks" / "out" / "verdict_calibration"
_DATA: dict = {}


def _sets(data: str, image_size: int, ratio: float, groups: str = "none"):
    """(train, pool, test, the test images' groups or None); with groups the split and the imbalance take whole
    groups (core.data.groups)."""
    from core.data import find_groups, load_dataset, simulate_imbalance, split
    key = (data, image_size, ratio, groups)
    if key not in _DATA:
        full, _ = load_dataset(data, image_size=image_size)
        if groups == "none":
            pool, test = split(full, 20, seed=0)
            _DATA[key] = (simulate_imbalance(pool, ratio, seed=0), pool, test, None)
        else:
            at64, _ = load_dataset(data, image_size=64)
            g = find_groups(full, groups, images64=at64.images).by_source()
            pool, test = split(full, 20, seed=0, groups=[g[s] for s in full.sources])
            _DATA[key] = (simulate_imbalance(pool, ratio, seed=0, groups=[g[s] for s in pool.sources]), pool, test,
                          [g[s] for s in test.sources])
    return _DATA[key]


def _train(job: tuple) -> tuple[str, int, np.ndarray]:
    """One training of the kind `kind` ("aa": the imbalanced set; "planted": + the held-out real defects)."""
    import torch
    from core import classifier as clf
    from core.data import balance_targets
    from core.params import build_params
    kind, seed, data, image_size, ratio, groups, epochs = job
    torch.set_num_threads(1)
    path = OUT / (f"{kind}_s{seed}_{image_size}px_r{ratio}" + ("" if groups == "none" else f"_g{groups}")
                  + ("" if epochs == 35 else f"_e{epochs}") + ".npz")
    if path.exists():
        return kind, seed, np.load(path)["pred"]
    train, pool, test, _ = _sets(data, image_size, ratio, groups)
    p = build_params(clf.ClassifierParams, {"epochs": epochs}, "classifier")
    steps = clf.steps_for(len(train) + sum(balance_targets(train.counts(), 1.0).values()), p)
    res = clf.train(train if kind == "aa" else pool, p, seed, steps=steps)
    pred = clf.predict(res.model, test).argmax(1)
    OUT.mkdir(parents=True, exist_ok=True)
    np.savez(path, pred=pred)
    return kind, seed, pred


def train_all(fn, jobs: list[tuple], procs: int) -> list:
    """`fn` over `jobs` (cached trainings), one torch thread each, in `procs` spawned processes (or this one)."""
    os.environ["OMP_NUM_THREADS"] = "1"
    if procs > 1:
        with mp.get_context("spawn").Pool(procs) as pool:
            return list(pool.imap_unordered(fn, jobs))
    return [fn(j) for j in jobs]


def old_rule(y: np.ndarray, base: list[np.ndarray], meth: list[np.ndarray], k: int) -> str:
    """The verdict rule before the change (one family member at a time, no correction)."""
    from core.metrics import macro_f1, paired_bootstrap_gain, seed_gain
    boot = paired_bootstrap_gain(y, base, meth, k)
    g = seed_gain([macro_f1(y, b, k) for b in base], [macro_f1(y, m, k) for m in meth])
    lo, hi = boot["ci"]
    if lo > 0 and g["mean"] > g["std"]:
        return "helps"
    if hi < 0 and g["mean"] < -g["std"]:
        return "hurts"
    return "no clear difference"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets" / "magnetic_tile"))
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=35, help="the classifier's epochs (35: the product's)")
    ap.add_argument("--ratio", type=float, default=0.03)
    ap.add_argument("--pool", type=int, default=36, help="independently seeded trainings of the baseline")
    ap.add_argument("--planted", type=int, default=9, help="trainings of the planted method")
    ap.add_argument("--runs", type=int, default=200, help="A/A runs (and planted runs) drawn from the pools")
    ap.add_argument("--procs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--groups", default="none", help="auto: the split, the imbalance and the bootstrap by groups "
                                                     "of images of one part (core.data.groups); section "
                                                     "verdict_calibration_groups")
    ap.add_argument("--baselines", type=int, default=6, help="baselines the strongest is picked from (A/A, tied)")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--train-only", action="store_true", help="fill the cache of trainings and stop")
    a = ap.parse_args()
    from core.metrics.verdict import judge
    t0 = time.time()
    jobs = [("aa", s, a.data, a.image_size, a.ratio, a.groups, a.epochs) for s in range(a.pool)]
    jobs += [("planted", 1000 + s, a.data, a.image_size, a.ratio, a.groups, a.epochs) for s in range(a.planted)]
    done = train_all(_train, jobs, a.procs)
    minutes = (time.time() - t0) / 60
    if a.train_only:
        print(f"{len(done)} trainings in the cache ({minutes:.1f} min)")
        return
    preds = {(kind, seed): p for kind, seed, p in done}
    train, _, test, test_groups = _sets(a.data, a.image_size, a.ratio, a.groups)
    gbf = None if test_groups is None else [test_groups]
    y, classes, k = test.labels, test.classes, len(test.classes)
    aa = [preds[("aa", s)] for s in range(a.pool)]
    planted = [preds[("planted", 1000 + s)] for s in range(a.planted)]
    rng = np.random.default_rng(12345)
    rng6 = np.random.default_rng(54321)   # its own draws: the runs above stay those of before

    def summary(pr: list[np.ndarray]) -> dict:
        from core.metrics import aggregate, classification_metrics
        return aggregate({i: classification_metrics(y, p, classes) for i, p in enumerate(pr)}, classes)

    def strongest(groups: list[list[np.ndarray]]) -> list[np.ndarray]:
        """The group of seeds with the highest mean macro F1, as a run picks its strongest baseline."""
        from core.metrics import macro_f1
        return max(groups, key=lambda g: np.mean([macro_f1(y, p, k) for p in g]))

    def labels(base: list[np.ndarray], methods: dict[str, list[np.ndarray]], picked_from: int) -> dict:
        v = judge({n: [m] for n, m in methods.items()}, [base], [y], classes,
                  {n: summary(m) for n, m in methods.items()}, summary(base), "equal_steps", "MT_Free",
                  picked_from=picked_from, groups_by_fold=gbf)
        return {n: x["label"] for n, x in v.items()}

    def verdicts(base: list[np.ndarray], methods: dict[str, list[np.ndarray]]) -> tuple[dict, dict]:
        new = judge({n: [m] for n, m in methods.items()}, [base], [y], classes,
                    {n: summary(m) for n, m in methods.items()}, summary(base), "equal_steps", "MT_Free",
                    groups_by_fold=gbf)
        old = {n: old_rule(y, base, m, k) for n, m in methods.items()}
        return {n: v["label"] for n, v in new.items()}, old

    aa_new = aa_old = 0
    nb = a.baselines
    six = {"plain": {"helps": 0, "hurts": 0, "any": 0}, "corrected": {"helps": 0, "hurts": 0, "any": 0}}
    six_planted = {"plain": 0, "corrected": 0}
    planted_new = planted_old = 0
    false_planted_new = 0
    mdg = []
    for r in range(a.runs):
        pick = rng.choice(a.pool, size=12, replace=False)
        base = [aa[i] for i in pick[:3]]
        methods = {f"copy{j}": [aa[i] for i in pick[3 + 3 * j: 6 + 3 * j]] for j in range(3)}
        new, old = verdicts(base, methods)
        aa_new += any(v != "no clear difference" for v in new.values())
        aa_old += any(v != "no clear difference" for v in old.values())
        # planted: 3 baseline seeds, the planted method (3 seeds) and two A/A methods
        pick = rng.choice(a.pool, size=9, replace=False)
        base = [aa[i] for i in pick[:3]]
        methods = {"planted": [planted[i] for i in rng.choice(a.planted, size=3, replace=False)],
                   "copy0": [aa[i] for i in pick[3:6]], "copy1": [aa[i] for i in pick[6:9]]}
        new, old = verdicts(base, methods)
        # the same, against the strongest of `nb` tied baselines (3 seeds each), with and without the correction
        pick6 = rng6.choice(a.pool, size=3 * nb + 9, replace=False)
        base6 = strongest([[aa[i] for i in pick6[3 * j: 3 * j + 3]] for j in range(nb)])
        rest = pick6[3 * nb:]
        copies6 = {f"copy{j}": [aa[i] for i in rest[3 * j: 3 * j + 3]] for j in range(3)}
        for rule, picked in (("plain", 1), ("corrected", nb)):
            got = labels(base6, copies6, picked)
            for word in ("helps", "hurts"):
                six[rule][word] += any(v == word for v in got.values())
            six[rule]["any"] += any(v != "no clear difference" for v in got.values())
            planted6 = {"planted": methods["planted"], "copy0": copies6["copy0"], "copy1": copies6["copy1"]}
            six_planted[rule] += labels(base6, planted6, picked)["planted"] == "helps"
        planted_new += new["planted"] == "helps"
        planted_old += old["planted"] == "helps"
        false_planted_new += any(new[n] != "no clear difference" for n in ("copy0", "copy1"))
        if r < 20:
            full = judge({n: [m] for n, m in methods.items()}, [base], [y], classes,
                         {n: summary(m) for n, m in methods.items()}, summary(base), "equal_steps", "MT_Free",
                         groups_by_fold=gbf)
            mdg.append(full["copy0"]["mdg"])
    f1_aa = summary(aa)["f1_macro"]
    f1_planted = summary(planted)["f1_macro"]
    lines = [
        "## Verdicts calibrated by A/A runs (`benchmarks/verdict_calibration.py`"
        + ("" if a.groups == "none" else f" --groups {a.groups}: split, imbalance and cluster bootstrap by groups") + ")",
        "",
        f"Machine: {machine()}.",
        f"magnetic_tile, {a.image_size} px, ratio {a.ratio} (training counts {train.counts()}), 20 real test images "
        f"per class ({len(y)}"
        + ("" if test_groups is None else f" in {len(set(test_groups))} groups, as close to 20 per class as whole "
           "groups allow") + f"), small CNN {a.epochs} epochs, the equal-steps baseline. {a.pool} independently seeded "
        f"trainings of it (macro F1 {f1_aa:.3f} over them) and {a.planted} of the planted method (the same "
        f"steps on the whole training pool, every real defect image the imbalance held out included: macro F1 "
        f"{f1_planted:.3f}, a planted gain of {f1_planted - f1_aa:+.3f}); {minutes:.1f} min on {a.procs} "
        f"processes. {a.runs} A/A runs and {a.runs} planted runs drawn from them (3 seeds each; runs share "
        "trainings, each run's members distinct).",
        "",
        "| rule | A/A runs with any false \"helps\"/\"hurts\" (3 methods per run) | planted runs where the planted "
        "method \"helps\" |",
        "|---|---|---|",
        f"| test-image bootstrap + Student-t seed term + Holm (now) | **{aa_new} of {a.runs} "
        f"({100 * aa_new / a.runs:.1f}%)** | "
        f"{planted_new} of {a.runs} ({100 * planted_new / a.runs:.0f}%) |",
        f"| test-image bootstrap + seed SD, no correction (before) | {aa_old} of {a.runs} ({100 * aa_old / a.runs:.1f}%) | "
        f"{planted_old} of {a.runs} ({100 * planted_old / a.runs:.0f}%) |",
        "",
        f"In the planted runs, the two A/A methods beside the planted one got a false verdict in {false_planted_new} "
        f"of {a.runs} runs (now). Smallest gain these runs could have called \"helps\" (half the interval of an A/A "
        f"method, first 20 runs): median {np.median(mdg):.3f}, range {min(mdg):.3f} to {max(mdg):.3f} macro F1.",
    ]
    lines += [
        "",
        f"**Against the strongest of {nb} baselines (issue 33).** The same {a.runs} A/A runs' draws, with {nb} groups "
        f"of 3 seeds of the same baseline (tied in truth: the worst case for picking the largest mean) and the 3 A/A "
        "methods judged against the group with the highest mean macro F1, as a run picks its strongest; planted: the "
        "planted method and two A/A methods against it.",
        "",
        "| rule | A/A runs with a false \"helps\" | with a false \"hurts\" | with any | planted runs where the planted "
        "method \"helps\" |",
        "|---|---|---|---|---|",
    ]
    for rule, text in (("plain", "strongest of six, the rule alone"),
                       ("corrected", f"strongest of six, \"hurts\" held to alpha / {nb} (now)")):
        r = six[rule]
        lines.append(f"| {text} | {r['helps']} of {a.runs} ({100 * r['helps'] / a.runs:.1f}%) | {r['hurts']} of "
                     f"{a.runs} ({100 * r['hurts'] / a.runs:.1f}%) | **{r['any']} of {a.runs} "
                     f"({100 * r['any'] / a.runs:.1f}%)** | {six_planted[rule]} of {a.runs} "
                     f"({100 * six_planted[rule] / a.runs:.0f}%) |")
    body = "\n".join(lines)
    print(body)
    if not a.no_write:
        write_section("verdict_calibration" + ("" if a.groups == "none" else "_groups"), body)


if __name__ == "__main__":
    main()
