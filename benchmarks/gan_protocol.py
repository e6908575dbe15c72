"""The papers' protocol for the GAN family on magnetic_tile: ratio 0.1, 3 seeds, the same classifier before
and after, three baselines (core.experiment), plus a sample grid per method under benchmarks/figures/.

    .venv/bin/python benchmarks/gan_protocol.py --write               # 5 GANs + SMOTE family, seeds 0,1,2
    .venv/bin/python benchmarks/gan_protocol.py --methods dcgan,smote,borderline_smote,adasyn --seeds 0
    .venv/bin/python benchmarks/gan_protocol.py --preset paper --image-size 128     # on a GPU
    .venv/bin/python benchmarks/gan_protocol.py --fit-only --methods dcgan --seeds 0  # minutes per method
    .venv/bin/python benchmarks/gan_protocol.py --methods dcgan --seeds 0 --set dcgan.steps=5 \
        --set classifier.epochs=1 --out benchmarks/out/smoke --figures benchmarks/out/smoke  # plumbing check

The full run takes hours on 2 CPU cores (five GANs x 3 seeds x up to 10 minutes, plus the classifiers).
`--fit-only` skips the classifiers: it runs only the plan's `prepare` and `fit` tasks (the training set exactly
as the experiment makes it, each method fitted and sampled for what every class needs) and reports the
wall-clock minutes: how the quick preset's "each method under 10 minutes on 2 cores" is checked.
Results: the run directory (default benchmarks/out/gan_protocol, not committed), a markdown table on
stdout (--table FILE writes it too; --write puts it in benchmarks/RESULTS.md), and figures/<method>.png:
8 synthetic images per minority class (one row each) from the first seed.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._results import machine, write_section  # noqa: E402

GANS = ["gan", "dcgan", "cgan", "wgan_gp", "acgan"]
SMOTE_FAMILY = ["smote", "borderline_smote", "adasyn"]   # beside the GANs, as in paper 000's Table 2
DATA = ROOT.parent / "shared" / "datasets" / "magnetic_tile"


def parse_sets(items: list[str]) -> dict[str, dict[str, str]]:
    """--set dcgan.steps=200 -> {"dcgan": {"steps": "200"}} (typed later by the method's parameters)."""
    out: dict[str, dict[str, str]] = {}
    for item in items:
        key, _, value = item.partition("=")
        method, _, name = key.partition(".")
        if not (method and name and _):
            raise SystemExit(f"--set expects METHOD.PARAM=VALUE, got {item!r}")
        out.setdefault(method, {})[name] = value
    return out


def figure_from_images(per_class: dict[str, np.ndarray], path: Path, cols: int = 8) -> None:
    """One row of up to `cols` images per class."""
    from core.training import save_grid
    rows = []
    for imgs in per_class.values():
        row = imgs[:cols]
        if len(row) < cols:
            row = np.concatenate([row, np.full((cols - len(row), *row.shape[1:]), 128, np.uint8)])
        rows.append(row)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_grid(np.concatenate(rows), path, cols=cols)


def figure_from_run(run_dir: Path, method: str, path: Path, seed: int = 0, cols: int = 8) -> bool:
    from core.rundir import RunDir
    rd = RunDir(run_dir)
    if not rd.synthetic_npz(method, seed).exists():
        return False
    synth = rd.load_synthetic(method, seed)
    per_class = {c: synth.of_class(c).images[:cols] for c in synth.classes if synth.counts()[c]}
    if per_class:
        figure_from_images(per_class, path, cols)
    return bool(per_class)


def fit_only(args, overrides: dict) -> dict:
    """The plan's prepare and fit tasks only (no classifier); minutes per method and seed."""
    from core.experiment import run
    from core.rundir import RunDir
    config = {"data": str(args.data), "methods": args.methods, "seeds": args.seeds, "ratio": args.ratio,
              "preset": args.preset, "image_size": args.image_size, "overrides": overrides,
              "num_threads": args.threads}
    rd = RunDir(args.out / "fit_only")
    run(config, rd.root, tasks=["prepare"])
    split = rd.split()
    print(f"train counts {split['train_counts']}; needed {split['needed']}", flush=True)
    out: dict = {"train_counts": split["train_counts"], "needed": split["needed"], "methods": {}}
    for name in args.methods:
        for seed in args.seeds:
            t0 = time.time()
            load_before = round(__import__("os").getloadavg()[0], 1)
            run(config, rd.root, tasks=[f"fit:{name}_s{seed}"])
            total = time.time() - t0
            rec = rd.fit(name, seed) or {}
            fit_info = {}
            if rd.has_sampler(name, seed):
                fit_info = json.loads((rd.checkpoint_dir(name, seed) / "meta.json").read_text()).get("fit", {})
            # per class ({"crack": {"seconds": ...}}) for per-class GANs, one record for a model of every class
            per_class = [v for v in fit_info.values() if isinstance(v, dict)]
            trained = (sum(v.get("seconds", 0.0) for v in per_class) if per_class
                       else float(fit_info.get("seconds", 0.0) or 0.0))
            row = {"seed": seed, "fit_min": round((trained or rec.get("fit_seconds", total)) / 60, 2),
                   "total_min": round(total / 60, 2), "when": time.strftime("%Y-%m-%d %H:%M", time.localtime(t0)),
                   "load": load_before, "fit": fit_info, "failed": rec.get("failed")}
            out["methods"].setdefault(name, []).append(row)
            print(f"{name} seed {seed}: fit {row['fit_min']:.2f} min, fit + sample {total / 60:.2f} min", flush=True)
            if args.figures and seed == args.seeds[0]:
                figure_from_run(rd.root, name, args.figures / f"{name}.png", seed=seed)
    return out


def fit_table(result: dict, args) -> str:
    """The minutes table; rows of methods not measured in this call are kept from RESULTS.md."""
    from benchmarks._results import RESULTS
    kept = []
    if RESULTS.exists():
        text = RESULTS.read_text(encoding="utf-8")
        start, end = "<!-- gan_quick_minutes:start -->", "<!-- gan_quick_minutes:end -->"
        if start in text and end in text:
            for line in text.split(start, 1)[1].split(end, 1)[0].splitlines():
                cells = [c.strip() for c in line.strip().strip("|").split("|")]
                if line.startswith("| ") and cells[0] not in ("method", *result["methods"]) and len(cells) == 6:
                    kept.append(line)
    lines = ["## GAN family: quick preset, minutes per method (benchmarks/gan_protocol.py --fit-only --write)", "",
             f"Machine: {machine()}. Shared machine: the 1-minute load average when the method started is "
             f"given (2.0 = both cores busy with other work already).", "",
             f"magnetic_tile, ratio {args.ratio}, {args.image_size} px, preset {args.preset}: train counts "
             f"{result['train_counts']}; every minority class sampled up to the majority count. Fit = training "
             f"(one model per class for gan/dcgan/wgan_gp, one for all classes for cgan/acgan); total adds "
             f"sampling. Budget: 10 minutes per method.", "",
             "| method | seed | fit (min) | fit + sample (min) | measured | load at start |",
             "|---|---|---|---|---|---|", *kept]
    for name, rows in result["methods"].items():
        lines += [f"| {name} | {r['seed']} | {r['fit_min']:.2f} | {r['total_min']:.2f} | {r['when']} | "
                  f"{r['load']} |" for r in rows]
    return "\n".join(lines)


def table(metrics: dict) -> str:
    """Macro F1 per method beside the three baselines, the gain over each, verdict and fit minutes."""
    bases = list(metrics["baselines"])
    lines = ["| method | macro F1 (mean +- std over seeds) | " + " | ".join(f"gain vs {b}" for b in bases)
             + " | verdict (vs strongest) | fit minutes per seed |",
             "|---|---|" + "---|" * len(bases) + "---|---|"]
    for b, m in metrics["baselines"].items():
        lines.append(f"| baseline: {b} | {m['f1_macro']:.4f} +- {m['std']['f1_macro']:.4f} |"
                     + " |" * len(bases) + " | |")
    for name, m in metrics["methods"].items():
        fit = m.get("timing", {}).get("fit_seconds", [])
        gains = " | ".join(f"{m['gain'][b]['mean']:+.4f}" if b in m.get("gain", {}) else "" for b in bases)
        lines.append(f"| {name} | {m['f1_macro']:.4f} +- {m['std']['f1_macro']:.4f} | {gains} | "
                     f"{m.get('verdict', {}).get('label', '')} | "
                     f"{np.mean(fit) / 60 if fit else float('nan'):.1f} |")
    for name, err in metrics.get("failed", {}).items():
        lines.append(f"| {name} | failed: {err} |" + " |" * len(bases) + " | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--methods", default=",".join(GANS + SMOTE_FAMILY))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--ratio", type=float, default=0.1)
    ap.add_argument("--preset", default="quick", choices=["quick", "paper"])
    ap.add_argument("--image-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=None, help="torch threads on CPU (default: torch's)")
    ap.add_argument("--set", action="append", default=[], metavar="METHOD.PARAM=VALUE",
                    help="override a parameter, e.g. --set dcgan.steps=200 --set classifier.epochs=5")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out" / "gan_protocol")
    ap.add_argument("--figures", type=Path, default=ROOT / "benchmarks" / "figures",
                    help="where figures/<method>.png go ('' for none)")
    ap.add_argument("--table", type=Path, default=None, help="also write the markdown table to this file")
    ap.add_argument("--fit-only", action="store_true", help="time fit + sample per method, no classifiers")
    ap.add_argument("--resume", action="store_true",
                    help="reuse the models an interrupted run in --out already trained (same settings)")
    ap.add_argument("--write", action="store_true",
                    help="write the table into benchmarks/RESULTS.md (section gan_protocol, or gan_quick_minutes "
                         "with --fit-only)")
    args = ap.parse_args(argv)
    args.methods = [m for m in args.methods.split(",") if m]
    args.seeds = [int(s) for s in args.seeds.split(",") if s]
    args.figures = args.figures if str(args.figures) not in ("", ".") else None
    overrides = parse_sets(args.set)

    if args.fit_only:
        result = fit_only(args, overrides)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "fit_only.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
        text = fit_table(result, args)
        print(text)
        if args.write:
            write_section("gan_quick_minutes", text)
        return 0

    from core.experiment import run
    config = {"data": str(args.data), "methods": args.methods, "seeds": args.seeds, "ratio": args.ratio,
              "preset": args.preset, "image_size": args.image_size, "overrides": overrides,
              "num_threads": args.threads}
    t0 = time.time()

    def show(event: dict) -> None:
        if event["kind"] in ("stage", "warning", "error", "done"):
            print(f"[{time.time() - t0:7.0f}s] {event['kind']}: {event.get('message', '')}", flush=True)

    metrics = run(config, args.out, callback=show, resume=args.resume)
    figures = []
    if args.figures:
        for name in args.methods:
            if figure_from_run(args.out, name, args.figures / f"{name}.png", seed=args.seeds[0]):
                figures.append(name)
                print(f"figure: {args.figures / f'{name}.png'}")
    p = metrics["protocol"]
    text = "\n".join([
        "## GAN family: paper protocol on magnetic_tile (benchmarks/gan_protocol.py)", "",
        f"Machine: {machine()}.", "",
        f"`{' '.join(['benchmarks/gan_protocol.py', *(argv if argv is not None else sys.argv[1:])])}`: ratio "
        f"{p['ratio']}, seeds {p['seeds']}, preset {args.preset}, {p['image_size']} px; train counts "
        f"{p['train_counts']}, test counts {p['test_counts']}. Macro F1 on the real test split; gain and verdict "
        f"against the strongest of the three baselines ({metrics['strongest_baseline']}). Total "
        f"{metrics['seconds_total'] / 60:.0f} min" + (" in the last (resumed) session; models trained before the "
                                                      "interruption were reused" if args.resume else "") + ".", "",
        table(metrics), "",
        *(f"![{n}](figures/{n}.png)" for n in figures)])
    print(text)
    if args.table:
        args.table.write_text(text + "\n", encoding="utf-8")
    if args.write:
        write_section("gan_protocol", text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
