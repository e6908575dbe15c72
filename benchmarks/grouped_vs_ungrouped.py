"""What leakage did to the numbers: the same K-fold run on magnetic_tile with `--groups auto` and `--groups none`.

    .venv/bin/python benchmarks/grouped_vs_ungrouped.py                       # 5 folds x seed 0, the cheap methods
    .venv/bin/python benchmarks/grouped_vs_ungrouped.py --methods smote --baselines equal_steps,class_weighted \
        --folds 3 --epochs 15 --procs 2                                       # what fits a busy machine

Both runs use the same code, data, folds count, seeds and classifier; only the groups differ: `none` deals single
images into the folds (a tile's other exposures land in training), `auto` keeps each group of near-duplicates
(core.data.groups) in one fold, and the simulated imbalance cuts defect classes by whole groups. Also a
class-balanced logistic regression on the raw pixels (seconds), the check the issue was filed with. Prints a
table, writes it to RESULTS.md (section grouped_vs_ungrouped) unless --no-write, and keeps the run folders under
--out so that a later change to the aggregate (the verdict) can be re-read with --reaggregate.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._results import machine, write_section  # noqa: E402

METHODS = "smote,borderline_smote,adasyn,random_oversample,augment,mixup,cutmix"


def _seeds(a, groups: str) -> str:
    return a.seeds_none if groups == "none" and a.seeds_none else a.seeds


def _config(a, groups: str) -> dict:
    return dict(data=a.data, methods=[m for m in a.methods.split(",") if m],
                seeds=[int(s) for s in _seeds(a, groups).split(",")],
                ratio=a.ratio, image_size=a.image_size, folds=a.folds, groups=groups, device="auto",
                save_images=False, quality=False, baselines=a.baselines.split(","),
                overrides={"classifier": {"epochs": a.epochs}})


def linear_check(data: str, image_size: int, folds: int, ratio: float) -> dict[str, dict]:
    """Macro F1 and per-class recall of a class-balanced logistic regression on standardised raw pixels, pooled
    over K folds drawn with each grouping (the imbalance simulated on each fold's training part)."""
    from core.data import find_groups, load_dataset
    full, _ = load_dataset(data, image_size=image_size)
    at64, _ = load_dataset(data, image_size=64)
    return linear_scores(full, {spec: find_groups(full, spec, images64=at64.images).groups
                                for spec in ("none", "auto")}, folds, ratio)


def linear_scores(full, groupings: dict[str, list[str]], folds: int, ratio: float, seed: int = 0) -> dict[str, dict]:
    """linear_check's model on `full` with each named grouping (one group name per image)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score, recall_score
    from sklearn.preprocessing import StandardScaler

    from core.data import fold_split, simulate_imbalance
    out = {}
    for spec, groups in groupings.items():
        gm = dict(zip(full.sources, groups))
        ys, ps = [], []
        for pool, test in fold_split(full, folds, seed, groups=groups):
            train = simulate_imbalance(pool, ratio, seed, groups=[gm[s] for s in pool.sources])
            sc = StandardScaler().fit(train.images.reshape(len(train), -1).astype(np.float32))
            lr = LogisticRegression(class_weight="balanced", max_iter=300, C=0.1)
            lr.fit(sc.transform(train.images.reshape(len(train), -1).astype(np.float32)), train.labels)
            ps.append(lr.predict(sc.transform(test.images.reshape(len(test), -1).astype(np.float32))))
            ys.append(test.labels)
        y, p = np.concatenate(ys), np.concatenate(ps)
        rec = recall_score(y, p, average=None, labels=range(len(full.classes)), zero_division=0)
        out[spec] = {"f1": float(f1_score(y, p, average="macro")),
                     "recall": {c: float(r) for c, r in zip(full.classes, rec)}}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets" / "magnetic_tile"))
    ap.add_argument("--methods", default=METHODS)
    ap.add_argument("--baselines", default="paper,equal_steps,class_weighted")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--seeds-none", default="", help="other seeds for the ungrouped run (e.g. 0 where the grouped "
                    "one has 0,1,2: the size of the leak does not need three)")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--ratio", type=float, default=0.1)
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=35)
    ap.add_argument("--procs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "grouped_vs_ungrouped"))
    ap.add_argument("--only", default="auto,none", help="which groupings to run (both by default; any --groups "
                    "spec, e.g. frames:200, runs too)")
    ap.add_argument("--reaggregate", action="store_true", help="re-read finished runs in --out (no training)")
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()
    from core.experiment import run, run_in_processes
    import json
    cache = Path(a.out) / "linear.json"                 # the linear check once per --out (it is not the question)
    if cache.exists():
        lin = json.loads(cache.read_text())
    else:
        t_lin = time.time()
        lin = linear_check(a.data, a.image_size, a.folds, a.ratio)
        print(f"linear check ({time.time() - t_lin:.0f} s): {lin}", flush=True)
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(lin))
    metrics, minutes = {}, {}
    for spec in a.only.split(","):
        t0 = time.time()
        folder = Path(a.out) / spec
        if a.reaggregate:
            metrics[spec] = run(_config(a, spec), folder, resume=True)
        else:
            metrics[spec] = run_in_processes(_config(a, spec), folder, a.procs,
                                             1 if a.procs > 1 else (os.cpu_count() or 1), resume=True,
                                             on_chain=lambda ids: print(f"[{time.strftime('%H:%M:%S')}] "
                                                                        f"{', '.join(ids)} done", flush=True))
        minutes[spec] = (time.time() - t0) / 60
        print(f"{spec}: {minutes[spec]:.1f} min", flush=True)
    body = table(metrics, lin, a, minutes)
    print(body)
    if not a.no_write:
        write_section("grouped_vs_ungrouped", body)


def table(metrics: dict, lin: dict, a, minutes: dict) -> str:
    specs = [s for s in ("none", "auto") if s in metrics] + [s for s in metrics if s not in ("none", "auto")]
    first = metrics[specs[0]]
    classes = first["classes"]
    lines = [f"Machine: {machine()}.",
             f"magnetic_tile, {a.folds} folds x seeds "
             + "; ".join(f"{_seeds(a, s)} ({s})" for s in specs) + f", ratio {a.ratio} on each fold's training part, "
             f"{a.image_size} px, small CNN {a.epochs} epochs; baselines {a.baselines}; methods {a.methods}. "
             + "; ".join(f"--groups {s}: {minutes.get(s, 0):.1f} min" for s in specs) + ".", "",
             "| groups | model | macro F1 | 95% CI | " + " | ".join(f"recall {c}" for c in classes)
             + " | verdict vs strongest (gain, interval; smallest visible gain) |",
             "|---|---|---|---|" + "---|" * len(classes) + "---|"]
    for s in specs:
        m = metrics[s]
        for r in m["leaderboard"]:
            src = m["methods"][r["name"]] if r["kind"] == "method" else m["baselines"][r["name"].split(":", 1)[1]]
            v = src.get("verdict")
            verdict = (f"{v['label']} ({v['gain']:+.3f}, {100 * v['level']:.1f}% {v['ci'][0]:+.3f} to "
                       f"{v['ci'][1]:+.3f}; {v['mdg']:.3f}; resampled {v.get('resampled', 'images')})" if v else "-")
            lines.append(f"| {s} | {r['name']} | **{src['f1_macro']:.3f}** | [{src['f1_ci'][0]:.3f}, "
                         f"{src['f1_ci'][1]:.3f}] | "
                         + " | ".join(f"{src['per_class'][c]['recall']:.3f}" for c in classes) + f" | {verdict} |")
    lines += ["", "| groups | test images with a near-duplicate in training | groups | linear model macro F1 | "
                  + " | ".join(f"linear recall {c}" for c in classes) + " |",
              "|---|---|---|---|" + "---|" * len(classes)]
    for s in dict.fromkeys(("none", "auto", *specs)):
        lk = metrics[s].get("leakage", {}) if s in metrics else {}
        grouping = metrics[s].get("grouping", {}) if s in metrics else {}
        share = f"{100 * lk['share']:.1f}% ({lk['leaking']} of {lk['test_images']})" if lk else "-"
        linear = (f"{lin[s]['f1']:.3f} | " + " | ".join(f"{lin[s]['recall'][c]:.3f}" for c in classes) if s in lin
                  else "- | " + " | ".join("-" for _ in classes))
        lines.append(f"| {s} | {share} | {grouping.get('groups', '-')} | {linear} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
