"""The verdict's seed level, three rules side by side on many A/A runs (macro F1 only, Holm over 3 methods).

    .venv/bin/python benchmarks/verdict_rules_aa.py --pool-tag 32px_r0.03 --pool 36 --runs 1000
    .venv/bin/python benchmarks/verdict_rules_aa.py --pool-tag 16px_r0.03_e5 --pool 28 --runs 1000
    .venv/bin/python benchmarks/verdict_rules_aa.py --simulate          # constructed trainings, no pool needed
    .venv/bin/python benchmarks/verdict_rules_aa.py --folds 5 --pool 12 --image-size 16 --epochs 5 --procs 2
                                              # K-fold A/A runs (grouped folds; trains 5 x 12, cached)

The pools are verdict_calibration.py's cached trainings (benchmarks/out/verdict_calibration/aa_s*_<tag>.npz: the
equal-steps baseline, independently seeded, on magnetic_tile). Each A/A run draws 12 distinct trainings: 3 as the
baseline, 3 x 3 as three "methods" (all the same model, so any "helps"/"hurts" is false). Rules:
  now     core.metrics.intervals.paired_gain: test-image bootstrap for what the seeds share, Student-t(n - 1) term
          for the seeds' spread;
  before  the same function at bb2a8ce (read with `git show`): the seeds drawn with replacement, then the images;
  t       a paired t-test on the 3 per-seed gains (no test-image level at all), for reference.
--simulate: constructed test sets and trainings, either far from converged (each seed right on 35-85% of the
images) or converged (70% each, independent errors), 400 A/A runs each, 3 and 5 seeds.
--folds K: A/A runs of a K-fold run (magnetic_tile, --groups auto folds, ratio 0.1 on each fold's training part, as
the product's K-fold runs): a pool of --pool trainings of the equal-steps baseline per fold (cached in
benchmarks/out/verdict_calibration/kfold/), each run draws 12 distinct seed numbers, the same in every fold (a
run's seed s starts every fold from the same weights); rules:
  now       the seed term read within each fold (core.metrics.intervals._seed_spread: K (n - 1) degrees of freedom)
  by seed   the rule of BEFORE_KFOLD: each seed index's gain pooled over the folds, n - 1 degrees of freedom
Also the median half-width of the A/A intervals (95%): the smallest gain each rule could have seen.
Only verdict_calibration.py covers the per-class verdicts, the six baselines and the planted gain; this one runs
5x more A/A runs in the same time, enough to read a rate near 5% to about +-1.4 points.
"""
from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BEFORE = "bb2a8ce"       # the last commit with the bootstrap over seeds
BEFORE_KFOLD = "8643230"  # the last commit whose seed term pooled each seed index over the folds (n - 1 df)


def _before(commit: str = BEFORE):
    """core/metrics/intervals.py as it was at `commit`, as a module."""
    src = subprocess.run(["git", "show", f"{commit}:core/metrics/intervals.py"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / f"intervals_{commit}.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location(f"intervals_{commit}", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[f"intervals_{commit}"] = mod
    spec.loader.exec_module(mod)
    return mod


def _t_p(y, base, meth, k) -> float:
    from scipy.stats import t as student_t
    from core.metrics import macro_f1
    d = np.array([macro_f1(y, m, k) - macro_f1(y, b, k) for b, m in zip(base, meth)])
    sd = d.std(ddof=1)
    return 1.0 if sd == 0 else float(2 * student_t.sf(abs(d.mean()) / (sd / np.sqrt(len(d))), len(d) - 1))


def rates(runs: list[tuple], k: int, before) -> dict[str, float]:
    """Share of runs with any false verdict per rule; `runs`: (y, base [seeds], methods [3][seeds])."""
    from core.metrics.intervals import holm, paired_gain
    hits = {"now": 0, "before": 0, "t": 0}
    for r, (y, base, meths) in enumerate(runs):
        p = {"now": [paired_gain([y], [base], [m], k, seed=r)[0].p for m in meths],
             "before": [before.paired_gain([y], [base], [m], k, seed=r)[0].p for m in meths],
             "t": [_t_p(y, base, m, k) for m in meths]}
        for rule, ps in p.items():
            hits[rule] += any(holm(ps)[0])
    return {rule: h / len(runs) for rule, h in hits.items()}


def pool_runs(tag: str, pool: int, n_runs: int, seed: int) -> tuple[list[tuple], int, str]:
    from core.metrics import macro_f1
    import benchmarks.verdict_calibration as vc
    out = ROOT / "benchmarks" / "out" / "verdict_calibration"
    aa = [np.load(out / f"aa_s{s}_{tag}.npz")["pred"] for s in range(pool)]
    size = int(tag.split("px")[0])
    ratio = float(tag.split("_r")[1].split("_")[0])
    _, _, test, _ = vc._sets(str(ROOT.parent / "shared" / "datasets" / "magnetic_tile"), size, ratio, "none")
    y, k = test.labels, len(test.classes)
    f1 = np.array([macro_f1(y, p, k) for p in aa])
    rng = np.random.default_rng(seed)
    runs = []
    for _ in range(n_runs):
        pick = rng.choice(pool, size=12, replace=False)
        runs.append((y, [aa[i] for i in pick[:3]], [[aa[i] for i in pick[3 + 3 * j: 6 + 3 * j]] for j in range(3)]))
    return runs, k, f"macro F1 over the pool {f1.mean():.3f} (seed SD {f1.std(ddof=1):.3f})"


def simulated_runs(kind: str, seeds: int, n_runs: int = 400, k: int = 3, n: int = 150) -> list[tuple]:
    rng = np.random.default_rng(5)

    def one(y):
        acc = rng.uniform(0.35, 0.85) if kind == "far from converged" else 0.7
        return np.where(rng.random(n) < acc, y, rng.integers(0, k, n))
    runs = []
    for _ in range(n_runs):
        y = rng.integers(0, k, n)
        runs.append((y, [one(y) for _ in range(seeds)], [[one(y) for _ in range(seeds)] for _ in range(3)]))
    return runs


KFOLD: dict = {}


def _kfold_sets(image_size: int, folds: int):
    """[(train, test, test groups)] per fold: grouped folds of magnetic_tile, ratio 0.1 on each training part."""
    from core.data import find_groups, fold_split, load_dataset, simulate_imbalance
    key = (image_size, folds)
    if key not in KFOLD:
        data = str(ROOT.parent / "shared" / "datasets" / "magnetic_tile")
        full, _ = load_dataset(data, image_size=image_size)
        at64, _ = load_dataset(data, image_size=64)
        g = find_groups(full, "auto", images64=at64.images).by_source()
        KFOLD[key] = [(simulate_imbalance(pool, 0.1, 0, groups=[g[s] for s in pool.sources]), test,
                       [g[s] for s in test.sources])
                      for pool, test in fold_split(full, folds, 0, groups=[g[s] for s in full.sources])]
    return KFOLD[key]


def _kfold_train(job: tuple) -> tuple[int, int, np.ndarray]:
    import torch
    from core import classifier as clf
    from core.data import balance_targets
    from core.params import build_params
    fold, seed, image_size, folds, epochs = job
    torch.set_num_threads(1)
    path = ROOT / "benchmarks" / "out" / "verdict_calibration" / "kfold" / \
        f"aa_f{fold}of{folds}_s{seed}_{image_size}px_e{epochs}.npz"
    if path.exists():
        return fold, seed, np.load(path)["pred"]
    train, test, _ = _kfold_sets(image_size, folds)[fold]
    p = build_params(clf.ClassifierParams, {"epochs": epochs}, "classifier")
    steps = clf.steps_for(len(train) + sum(balance_targets(train.counts(), 1.0).values()), p)
    pred = clf.predict(clf.train(train, p, seed, steps=steps).model, test).argmax(1)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, pred=pred)
    return fold, seed, pred


def kfold(a) -> None:
    """A/A runs of a K-fold run: 3 seeds per fold for the baseline and for each of 3 'methods', all the same
    model; false-verdict rates (Holm over the 3) and median 95% half-width, now and by seed index."""
    import time
    from benchmarks.verdict_calibration import train_all
    from core.metrics.intervals import holm, paired_gain
    t0 = time.time()
    done = train_all(_kfold_train, [(f, s, a.image_size, a.folds, a.epochs) for f in range(a.folds)
                                    for s in range(a.pool)], a.procs)
    print(f"{len(done)} trainings ({(time.time() - t0) / 60:.1f} min)", flush=True)
    preds = {(f, s): p for f, s, p in done}
    sets = _kfold_sets(a.image_size, a.folds)
    ys, gs = [t.labels for _, t, _ in sets], [g for _, _, g in sets]
    k = len(sets[0][1].classes)
    old = _before(BEFORE_KFOLD)
    rng = np.random.default_rng(a.seed)
    hits, widths = {"now": 0, "by seed": 0}, {"now": [], "by seed": []}
    for r in range(a.runs):
        pick = rng.choice(a.pool, size=12, replace=False)      # the same seed numbers in every fold, as a run's
        picks = [pick] * a.folds
        base = [[preds[(f, int(s))] for s in picks[f][:3]] for f in range(a.folds)]
        meths = [[[preds[(f, int(s))] for s in picks[f][3 + 3 * j:6 + 3 * j]] for f in range(a.folds)]
                 for j in range(3)]
        for rule, fn in (("now", paired_gain), ("by seed", old.paired_gain)):
            gains = [fn(ys, base, m, k, seed=r, n_boot=1000, groups_by_fold=gs)[0] for m in meths]
            hits[rule] += any(holm([g.p for g in gains])[0])
            widths[rule] += [g.half_width for g in gains]
    from core.metrics import macro_f1
    f1 = [macro_f1(np.concatenate(ys), np.concatenate([preds[(f, s)] for f in range(a.folds)]), k)
          for s in range(a.pool)]
    print(f"K-fold A/A: {a.folds} folds x {a.pool} trainings per fold, {a.image_size} px, {a.epochs} epochs, "
          f"pooled macro F1 {np.mean(f1):.3f} (SD over seeds {np.std(f1, ddof=1):.3f}); {a.runs} runs; "
          f"{(time.time() - t0) / 60:.1f} min")
    for rule in hits:
        print(f"| {rule} | {a.runs} | {100 * hits[rule] / a.runs:.1f}% | {np.median(widths[rule]):.3f} |")


def seed_effect(run: Path) -> None:
    """Is there a part of a gain that one seed number shares across the folds (the same initial weights in every
    fold)? The within-fold seed term assumes not. For every pair of models of a finished K-fold run: each fold's
    and seed's contribution to the pooled macro-F1 gain (that fold at that seed, the others at their seeds' mean),
    then a two-way analysis of variance, seeds against the fold x seed residual (F test). With no shared part the
    p-values are uniform: about 5% below 0.05."""
    import json
    from scipy.stats import f as fdist
    from core.metrics.intervals import _counts, _score
    m = json.loads((run / "metrics.json").read_text())
    folds, seeds, classes = m["protocol"]["folds"], [int(s) for s in m["protocol"]["seeds"]], m["classes"]
    k = len(classes)
    names = [f"baseline_{b}" for b in m["baselines"]] + list(m["methods"])
    ys = [np.array([classes.index(t.split("/")[0]) for t in
                    json.loads((run / "folds" / f"f{f}" / "split.json").read_text())["test"]]) for f in range(folds)]

    def counts(name):
        return np.array([[_counts(ys[f][None], np.asarray(json.loads(
            (run / "folds" / f"f{f}" / "results" / f"{name}_s{s}.json").read_text())["pred"])[None], k)[0]
            for s in seeds] for f in range(folds)])
    cs = {n: counts(n) for n in names}
    ps = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            fb, fm = cs[a], cs[b]
            mb, mm = fb.mean(1), fm.mean(1)
            c = np.array([_score(mm.sum(0) - mm[f] + fm[f], "f1", None) - _score(mb.sum(0) - mb[f] + fb[f], "f1", None)
                          for f in range(folds)])                           # [folds, seeds]
            resid = c - c.mean(1, keepdims=True) - c.mean(0, keepdims=True) + c.mean()
            ms_seed = folds * ((c.mean(0) - c.mean()) ** 2).sum() / (len(seeds) - 1)
            ms_res = (resid ** 2).sum() / ((folds - 1) * (len(seeds) - 1))
            ps.append(fdist.sf(ms_seed / ms_res, len(seeds) - 1, (folds - 1) * (len(seeds) - 1)))
    ps = np.array(ps)
    print(f"{run}: {len(names)} models, {len(ps)} pairs; seed-number effect p < 0.05 in "
          f"{100 * (ps < 0.05).mean():.1f}%, p < 0.20 in {100 * (ps < 0.2).mean():.1f}% (uniform: 5% and 20%), "
          f"median p {np.median(ps):.2f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pool-tag", default="32px_r0.03")
    ap.add_argument("--pool", type=int, default=36)
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=777)
    ap.add_argument("--simulate", action="store_true")
    ap.add_argument("--folds", type=int, default=0, help="K-fold A/A runs (see above)")
    ap.add_argument("--image-size", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--seed-effect", default="", help="a finished K-fold run folder: test for a part of the gain "
                    "one seed number shares across the folds (see seed_effect)")
    a = ap.parse_args()
    if a.seed_effect:
        seed_effect(Path(a.seed_effect))
        return
    if a.folds:
        kfold(a)
        return
    before = _before()
    if a.simulate:
        for kind in ("far from converged", "converged"):
            for seeds in (3, 5):
                r = rates(simulated_runs(kind, seeds), 3, before)
                print(f"| simulated, {kind}, {seeds} seeds | 400 | " +
                      " | ".join(f"{100 * r[x]:.1f}%" for x in ("now", "before", "t")) + " |")
        return
    runs, k, about = pool_runs(a.pool_tag, a.pool, a.runs, a.seed)
    r = rates(runs, k, before)
    print(f"| pool {a.pool_tag} ({a.pool} trainings, {about}) | {a.runs} | " +
          " | ".join(f"{100 * r[x]:.1f}%" for x in ("now", "before", "t")) + " |")


if __name__ == "__main__":
    main()
