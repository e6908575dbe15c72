"""The verdict's seed level, three rules side by side on many A/A runs (macro F1 only, Holm over 3 methods).

    .venv/bin/python benchmarks/verdict_rules_aa.py --pool-tag 32px_r0.03 --pool 36 --runs 1000
    .venv/bin/python benchmarks/verdict_rules_aa.py --pool-tag 16px_r0.03_e5 --pool 28 --runs 1000
    .venv/bin/python benchmarks/verdict_rules_aa.py --simulate          # constructed trainings, no pool needed

The pools are verdict_calibration.py's cached trainings (benchmarks/out/verdict_calibration/aa_s*_<tag>.npz: the
equal-steps baseline, independently seeded, on magnetic_tile). Each A/A run draws 12 distinct trainings: 3 as the
baseline, 3 x 3 as three "methods" (all the same model, so any "helps"/"hurts" is false). Rules:
  now     core.metrics.intervals.paired_gain: test-image bootstrap for what the seeds share, Student-t(n - 1) term
          for the seeds' spread;
  before  the same function at bb2a8ce (read with `git show`): the seeds drawn with replacement, then the images;
  t       a paired t-test on the 3 per-seed gains (no test-image level at all), for reference.
--simulate: constructed test sets and trainings, either far from converged (each seed right on 35-85% of the
images) or converged (70% each, independent errors), 400 A/A runs each, 3 and 5 seeds.
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


def _before():
    """core/metrics/intervals.py as it was at BEFORE, as a module."""
    src = subprocess.run(["git", "show", f"{BEFORE}:core/metrics/intervals.py"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "intervals_before.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("intervals_before", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["intervals_before"] = mod
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pool-tag", default="32px_r0.03")
    ap.add_argument("--pool", type=int, default=36)
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=777)
    ap.add_argument("--simulate", action="store_true")
    a = ap.parse_args()
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
