"""The paper protocol on magnetic_tile, with the three fair baselines and seed statistics.

    .venv/bin/python benchmarks/seed_protocol.py --stability   # ratio 0.1, 5 seeds, all 7 methods, 32 px (~18 min, 2 cores)
    .venv/bin/python benchmarks/seed_protocol.py --stability --image-size 64   # the same at 64 px (~45 min)
    .venv/bin/python benchmarks/seed_protocol.py --seeds 0,1 --methods smote --epochs 3   # a quick look

Images are 32 px by default: on magnetic_tile the small CNN scores higher there than at 64 px (equal-steps
baseline macro F1 0.794 against 0.764 over the same 5 seeds) and trains 2.5x faster on CPU, so the whole
table fits in 30 minutes on 2 cores; the 64 px table is kept in RESULTS.md (seed_protocol_64px).

Writes the table into benchmarks/RESULTS.md (section seed_protocol) with the machine it ran on:
macro P/R/F1 mean and std over seeds, the paired gain over each baseline, the verdict, seconds per
training step and peak memory. With --stability it also trains the equal-steps baseline the old way
(constant learning rate, last-epoch weights) to show what the schedule + weight average buys.

--procs N (default: one per core) trains the models in N processes of one torch thread each: a small
CNN on 64 px images uses two cores poorly from one process (per-op overhead dominates), so two
single-thread processes finish the 50 trainings sooner. The run is the experiment's plan of tasks
(`core.experiment.run_in_processes`): prepare once, then each baseline training and each method's fit and
training go to a pool of processes, all in one run folder, then aggregate. The numbers are those of the
sequential run up to float rounding of 1 vs 2 threads.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._results import machine, write_section  # noqa: E402
from core.experiment import run_in_processes  # noqa: E402
from core.rundir import RunDir  # noqa: E402

METHODS = "smote,borderline_smote,adasyn,random_oversample,augment,mixup,cutmix"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets" / "magnetic_tile"))
    ap.add_argument("--methods", default=METHODS)
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--ratio", type=float, default=0.1)
    ap.add_argument("--image-size", type=int, default=32,
                    help="side in pixels (32 by default; 64 is the product's default, 2.5x slower here)")
    ap.add_argument("--epochs", type=int, default=35)
    ap.add_argument("--folds", type=int, default=1, help="1: one split (20 test images per class); K: K-fold")
    ap.add_argument("--groups", default="none", help="images of one part (core.data.groups): auto, none, regex:..., "
                                                     "csv:...; none (every image its own group) by default")
    ap.add_argument("--section", default=None, help="RESULTS.md section (default seed_protocol, or "
                                                        "seed_protocol_folds<K> with --folds K)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "seed_protocol"))
    ap.add_argument("--stability", action="store_true", help="also run the constant-rate last-epoch baseline")
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    ap.add_argument("--quality", action="store_true", help="also measure each method's generative quality "
                                                          "(core.metrics.generative; a table after the main one)")
    ap.add_argument("--figures", default=None, help="copy each generator's last sample grid of the first seed "
                                                    "here as <method>.png (e.g. benchmarks/figures)")
    ap.add_argument("--procs", type=int, default=os.cpu_count() or 1,
                    help="processes of one torch thread each (1 = one process with all threads)")
    ap.add_argument("--set", action="append", default=[], metavar="METHOD.PARAM=VALUE",
                    help="a method's parameter, as the CLI's --set (repeatable)")
    a = ap.parse_args()
    seeds = [int(s) for s in a.seeds.split(",")]
    methods = a.methods.split(",")
    base = dict(data=a.data, seeds=seeds, ratio=a.ratio, image_size=a.image_size, test_per_class=20,
                folds=a.folds, groups=a.groups, device="auto", save_images=False, quality=a.quality)
    overrides: dict = {"classifier": {"epochs": a.epochs}}
    for item in a.set:
        key, _, value = item.partition("=")
        method, _, name = key.partition(".")
        overrides.setdefault(method, {})[name] = json.loads(value) if value[:1] in "0123456789-[{tf" else value
    main_cfg = dict(base, methods=methods, overrides=overrides)
    old_cfg = dict(base, methods=[], baselines=["equal_steps"],
                   overrides={"classifier": {"epochs": a.epochs, "schedule": "constant", "ema_halflife": 0.0}})
    out = Path(a.out)
    for d in ("main", "constant_lr_last_epoch", "parts"):   # a fresh measurement, never a resumed one
        shutil.rmtree(out / d, ignore_errors=True)
    t0 = time.time()
    threads = 1 if a.procs > 1 else (os.cpu_count() or 1)
    m = run_in_processes(main_cfg, out / "main", a.procs, threads, callback=_dots, on_chain=_done)
    old = (run_in_processes(old_cfg, out / "constant_lr_last_epoch", a.procs, threads, callback=_dots,
                            on_chain=_done) if a.stability else None)
    minutes = (time.time() - t0) / 60
    n_train = len(m["leaderboard"]) * len(seeds) + (len(seeds) if a.stability else 0)
    peak_mb = max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)) / 1024
    body = _table(m, old, seeds, a, minutes, n_train, peak_mb)
    if a.quality:
        body += "\n\n" + _quality_table(m)
    if a.figures:
        body += "\n\n" + _figures(out / "main", methods, seeds[0], Path(a.figures))
    print("\n" + body)
    if not a.no_write:
        write_section(a.section or ("seed_protocol" if a.folds == 1 else f"seed_protocol_folds{a.folds}"), body)
        (Path(a.out) / "metrics_summary.json").write_text(json.dumps(m["leaderboard"], indent=1))


def _quality_table(m: dict) -> str:
    """The generative-quality rows of the run (core.views.runs.quality_rows: the Compare page's table)."""
    from core.views.runs import quality_rows
    rows = quality_rows(m)
    if not rows:
        return "(no quality measures)"
    cols = list(rows[0])
    return "\n".join(["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols),
                      *("| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows)])


def _figures(run: Path, methods: list[str], seed: int, folder: Path) -> str:
    """The last sample grid of each generator (first seed), copied to folder/<method>.png."""
    from core.views.runs import sample_grids
    grids = sample_grids(run)
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for name in methods:
        last = [g for g in grids if g["method"] == name and g["seed"] == seed and g["class"] == "all"]
        if last:
            shutil.copyfile(last[-1]["path"], folder / f"{name}.png")
            lines.append(f"![{name}](figures/{name}.png)")
    return "\n".join(lines)


def _done(ids: list[str]) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {', '.join(ids)} done", flush=True)


def _dots(ev: dict) -> None:
    if ev["kind"] == "stage":
        print(f"[{time.strftime('%H:%M:%S')}] {ev['stage']}", flush=True)


def _table(m: dict, old: dict | None, seeds: list[int], a, minutes: float, n_train: int, peak_mb: float) -> str:
    p = m["protocol"]
    lines = [
        "## Core pipeline: the paper protocol on magnetic_tile (`benchmarks/seed_protocol.py`"
        + (f" --folds {a.folds})" if a.folds > 1 else ")"),
        "",
        f"Machine: {machine()}.",
        f"Protocol: ratio {a.ratio}, {len(seeds)} seeds ({a.seeds}), {a.image_size} px, small CNN, "
        f"{p['epochs']} epochs (cosine to zero, EMA weights), "
        + (f"{a.folds}-fold: every real image tested once ({sum(p['test_counts'].values())} images), the imbalance "
           "simulated on each fold's training part; first fold's " if a.folds > 1 else
           f"balanced real test set {sum(p['test_counts'].values())} images ({p['test_counts']}); ") +
        "training counts after imbalance "
        f"{p['train_counts']}; balanced runs {p['steps_balanced']} steps, paper baseline {p['steps_paper']} steps.",
        f"Wall time: **{minutes:.1f} min** for {n_train} trainings (+ synthesis), "
        + (f"{a.procs} processes of 1 torch thread each" if a.procs > 1 else "one process") +
        f"; peak memory {peak_mb:.0f} MB (max RSS of one process).",
        "",
        "| model | precision | recall | macro F1 (mean ± sd) | 95% CI | gain vs paper | vs equal_steps | "
        "vs class_weighted | verdict vs strongest (gain, interval at its Holm level; smallest gain it could see) "
        "| s/step |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in m["leaderboard"]:
        src = m["methods"][r["name"]] if r["kind"] == "method" else m["baselines"][r["name"].split(":", 1)[1]]
        sd = src["std"]
        row = (f"| {r['name']} | {src['precision_macro']:.3f} ± {sd['precision_macro']:.3f} | "
               f"{src['recall_macro']:.3f} ± {sd['recall_macro']:.3f} | **{src['f1_macro']:.3f}** ± {sd['f1_macro']:.3f} | "
               f"[{src['f1_ci'][0]:.3f}, {src['f1_ci'][1]:.3f}] | ")
        if r["kind"] == "method":
            g = src["gain"]
            row += " | ".join(f"{g[b]['mean']:+.3f} ± {g[b]['std']:.3f} ({g[b]['positive_seeds']}/{g[b]['n_seeds']})"
                              for b in ("paper", "equal_steps", "class_weighted"))
            v = src["verdict"]
            row += (f" | {v['label']} ({v['gain']:+.3f}, {100 * v['level']:.1f}% {v['ci'][0]:+.3f} to {v['ci'][1]:+.3f}; "
                    f"{v['mdg']:.3f})")
        else:
            row += " - | - | - | -"
        row += f" | {src['seconds_per_step'] * 1000:.1f} ms |"
        lines.append(row)
    eq = m["baselines"]["equal_steps"]
    eq_vals = ", ".join(f"{v['f1_macro']:.3f}" for v in eq["seeds"].values())
    lines += ["", f"Strongest baseline: **{m['strongest_baseline']}**. Gains are paired per seed: mean ± sd "
                  "(seeds where the method won / seeds).",
              f"Seed-to-seed SD of the equal-steps baseline's macro F1: **{eq['std']['f1_macro']:.3f}** "
              f"(values {eq_vals})."]
    swing = _late_swing(Path(a.out) / "main", seeds) if a.folds == 1 else []
    if swing:
        lines.append(f"Epoch-to-epoch swing of that baseline's test macro F1 over its last 10 epochs (max - min, per "
                     f"seed): {', '.join(f'{v:.3f}' for v in swing)} (mean {sum(swing) / len(swing):.3f}).")
    if old is not None:
        o = old["baselines"]["equal_steps"]
        o_vals = ", ".join(f"{v['f1_macro']:.3f}" for v in o["seeds"].values())
        lines.append(f"The same baseline with a constant learning rate and the last-epoch weights: SD "
                     f"**{o['std']['f1_macro']:.3f}** (values {o_vals}), "
                     f"mean {o['f1_macro']:.3f}.")
        old_swing = _late_swing(Path(a.out) / "constant_lr_last_epoch", seeds)
        if old_swing:
            lines.append(f"Its swing over the last 10 epochs: {', '.join(f'{v:.3f}' for v in old_swing)} "
                         f"(mean {sum(old_swing) / len(old_swing):.3f}): the schedule and the weight average make "
                         "the epoch a run stops at matter far less; what remains is the spread between seeds.")
    return "\n".join(lines)


def _late_swing(run_dir: Path, seeds: list[int], last: int = 10) -> list[float]:
    """max - min of the equal-steps baseline's per-epoch test macro F1 (the evaluated model) over the last epochs."""
    points: dict[str, list[float]] = {}
    for ev in RunDir(run_dir).events():       # every process of the pool wrote to the run's events
        if ev.get("kind") == "epoch" and str(ev.get("model", "")).startswith("baseline_equal_steps_s"):
            points.setdefault(ev["model"], []).append(ev["test_f1"])
    out = []
    for s in seeds:
        vals = points.get(f"baseline_equal_steps_s{s}", [])[-last:]
        if vals:
            out.append(max(vals) - min(vals))
    return out


if __name__ == "__main__":
    main()
