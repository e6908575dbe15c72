"""The six baselines on magnetic_tile (issue 33): which is strongest, and what that does to the methods' verdicts.

    .venv/bin/python benchmarks/baselines_six.py                       # 32 px, 5 folds x 3 seeds, smote, mixup, augment
    .venv/bin/python benchmarks/baselines_six.py --image-size 64 --folds 5 --seeds 0 --methods smote

One run (`core.experiment.run_in_processes`, every baseline of `core.experiment.BASELINES` and the methods given),
then its metrics twice: as the product computes them now (the verdict against the strongest of the six) and
with the three baselines the product had before (paper, equal_steps, class_weighted; the same trainings, only the
aggregate redone), so the table shows how each method's verdict moves when the stronger baselines join. The run
folder's metrics.json is the six-baseline one at the end.

Writes the section `baselines_six_<size>px` of benchmarks/RESULTS.md with the machine and its load.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._results import machine, write_section  # noqa: E402

OLD = ["paper", "equal_steps", "class_weighted"]


def _load() -> str:
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


def _verdict(v: dict) -> str:
    return (f"{v['label']} ({v['gain']:+.3f}, {100 * v['level']:.1f}% {v['ci'][0]:+.3f} to {v['ci'][1]:+.3f}; "
            f"{v['mdg']:.3f})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets" / "magnetic_tile"))
    ap.add_argument("--methods", default="smote,mixup,augment")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--ratio", type=float, default=0.1)
    ap.add_argument("--image-size", type=int, default=32)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--out", default=None)
    ap.add_argument("--note", default="", help="a sentence added under the table (what was cut, why)")
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()
    from core.experiment import BASELINE_HELP, BASELINES, run, run_in_processes
    out = Path(a.out or ROOT / "benchmarks" / "out" / f"baselines_six_{a.image_size}px")
    seeds = [int(s) for s in a.seeds.split(",")]
    config = dict(data=a.data, methods=a.methods.split(","), seeds=seeds, ratio=a.ratio, image_size=a.image_size,
                  folds=a.folds, test_per_class=20, device="cpu", save_images=False, quality=False,
                  baselines=list(BASELINES))
    load_before, started = _load(), time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    t0 = time.time()
    six = run_in_processes(config, out, a.procs, 1, resume=True)
    minutes = (time.time() - t0) / 60
    load_after = _load()
    three = run(dict(config, baselines=OLD, num_threads=1), out, tasks=["aggregate"])
    six = run(dict(config, num_threads=1), out, tasks=["aggregate"])          # metrics.json as the product has it
    classes = six["classes"]
    defects = [c for c in classes if c != six["protocol"]["normal_class"]]
    lines = [f"## The six baselines on magnetic_tile, {a.image_size} px (`benchmarks/baselines_six.py`, issue 33)", "",
             f"Machine: {machine()}; the 2 cores shared with other helpers' work (1-minute / 5 / 15 load average "
             f"{load_before} before, {load_after} after). Measured {started}, {minutes:.1f} min on {a.procs} "
             f"processes of one thread.",
             f"magnetic_tile, ratio {a.ratio}, {a.image_size} px, {a.folds} folds x seeds {a.seeds} (every one of the "
             f"{sum(six['protocol']['test_counts'].values())} images tested once per seed; today's split by image, "
             "not by tile: see the groups issue), small CNN 35 epochs, the quick preset, methods "
             f"{', '.join(config['methods'])}. First fold's training counts {six['protocol']['train_counts']}.", "",
             "| baseline | precision | recall | macro F1 (mean ± sd over seeds) | 95% CI | " +
             " | ".join(f"recall {c.replace('MT_', '')}" for c in defects) + " | s per training |",
             "|---|---|---|---|---|" + "---|" * len(defects) + "---|"]
    for b in sorted(six["baselines"], key=lambda b: -six["baselines"][b]["f1_macro"]):
        m = six["baselines"][b]
        lines.append(f"| {b}{' (strongest)' if b == six['strongest_baseline'] else ''} | {m['precision_macro']:.3f} | "
                     f"{m['recall_macro']:.3f} | **{m['f1_macro']:.3f}** ± {m['std']['f1_macro']:.3f} | "
                     f"[{m['f1_ci'][0]:.3f}, {m['f1_ci'][1]:.3f}] | " +
                     " | ".join(f"{m['per_class'][c]['recall']:.3f}" for c in defects) + f" | {m['seconds']:.1f} |")
    lines += ["", "| method | macro F1 | verdict vs the strongest of the three before "
              f"({three['strongest_baseline']}) | verdict vs the strongest of six ({six['strongest_baseline']}) |",
              "|---|---|---|---|"]
    for name in sorted(six["methods"], key=lambda n: -six["methods"][n]["f1_macro"]):
        lines.append(f"| {name} | {six['methods'][name]['f1_macro']:.3f} ± {six['methods'][name]['std']['f1_macro']:.3f}"
                     f" | {_verdict(three['methods'][name]['verdict'])} | {_verdict(six['methods'][name]['verdict'])} |")
    lines += ["", "Verdict cells: label (gain in macro F1, the interval at the method's Holm level; the smallest gain "
              "the run could have seen). Baselines: " + "; ".join(f"**{b}** {BASELINE_HELP[b]}" for b in BASELINES) + ".",
              "", f"Command: `.venv/bin/python benchmarks/baselines_six.py --image-size {a.image_size} --folds {a.folds} "
              f"--seeds {a.seeds} --methods {a.methods} --procs {a.procs}`."]
    if a.note:
        lines += ["", a.note]
    body = "\n".join(lines)
    print(body)
    (out / "summary.json").write_text(json.dumps({"six": six["leaderboard"], "three": three["leaderboard"]}, indent=1))
    if not a.no_write:
        write_section(f"baselines_six_{a.image_size}px", body)


if __name__ == "__main__":
    main()
