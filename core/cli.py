"""The headless command line: the same calls the app makes.

python -m core methods
python -m core inspect DATA [--image-size 64] [--groups auto] [--check-groups csv:parts.csv|frames:200]
python -m core run --data DATA --methods smote,adasyn --ratio 0.1 --seeds 0,1,2 --preset quick --out runs/x \
                   [--set smote.k_neighbors=3 --set classifier.epochs=5] [--image-size 64] [--test-per-class 20]
                   [--folds 5] [--groups auto|none|regex:PATTERN|csv:FILE|frames:GAP]
                   [--target-ratio 1.0] [--device auto] [--threads 2]
python -m core export RUN --method smote --out balanced.zip [--seed 0] [--layout flat|split] [--real all|train]
                      [--size 128]
python -m core sample RUN --method dcgan --class MT_Crack --n 100 [--seed 0] [--out folder]
python -m core predict RUN --model smote --seed 0 IMAGES_DIR [--out scores.csv] [--fold 0]
python -m core worker [--workspace W] [--once]
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

from .errors import DefectAugError, ParamError


def _parse_sets(items: list[str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        owner, dot, name = key.partition(".")
        if not sep or not dot or not owner or not name:
            raise ParamError(f"--set takes METHOD.PARAM=VALUE (e.g. smote.k_neighbors=3), got {item!r}")
        out.setdefault(owner.strip(), {})[name.strip()] = value.strip()
    return out


class _Bar:
    """One-line terminal progress: overall %, stage, elapsed and remaining time; warnings on their own line."""

    def __init__(self, stream=sys.stderr) -> None:
        self.stream, self.t0, self.last, self.frac, self.stage = stream, time.time(), 0.0, 0.0, ""
        self.tty = stream.isatty()

    def __call__(self, ev: dict) -> None:
        kind = ev.get("kind")
        if kind == "warning":
            self._line(f"warning: {ev.get('message')}")
            return
        if kind == "error":
            self._line(f"error: {ev.get('message')}")
            return
        if "overall" in ev:
            self.frac = float(ev["overall"])
        if kind == "stage":
            self.stage = ev.get("stage", "")
            if not self.tty:
                self._line(f"[{self.frac * 100:5.1f}%] {self.stage}: {ev.get('message', '')}")
        now = time.time()
        if self.tty and (now - self.last > 0.2 or kind in ("stage", "done")):
            self.last = now
            el = now - self.t0
            eta = el / self.frac - el if self.frac > 0.01 else float("nan")
            filled = int(30 * self.frac)
            msg = (f"\r[{'#' * filled}{'.' * (30 - filled)}] {self.frac * 100:5.1f}% {self.stage[:40]:40s} "
                   f"{el:6.0f}s elapsed" + (f", ~{eta:.0f}s left" if eta == eta else ""))
            self.stream.write(msg)
            self.stream.flush()

    def _line(self, text: str) -> None:
        self.stream.write(("\r\n" if self.tty else "") + text + "\n")
        self.stream.flush()


def cmd_methods(args) -> int:
    from .methods import all_methods, plugin_errors
    specs = all_methods()
    w = max(len(m.name) for m in specs)
    wf = max(len(m.family) for m in specs)
    for m in specs:
        reason = m.unavailable_reason()
        print(f"{m.name:{w}s}  {m.family:{wf}s}  " + (f"UNAVAILABLE: {reason}" if reason else m.paper))
    for module, why in plugin_errors().items():
        print(f"plugin {module}: {why}")
    return 0


def cmd_upload_limit(args) -> int:
    from .data import Limits
    print(Limits.from_env().upload_size_mb())
    return 0


def cmd_inspect(args) -> int:
    from .data import load_dataset
    from .data.groups import GROUP_SIZE, check_spec, find_groups, pairwise_agreement
    spec = check_spec(args.groups)
    check = check_spec(args.check_groups) if args.check_groups else None
    ds, report = load_dataset(args.data, image_size=args.image_size)
    print(report.summary())
    if spec == "none" and check is None:
        return 0
    small = ds if args.image_size == GROUP_SIZE else load_dataset(args.data, image_size=GROUP_SIZE)[0]
    grouping = find_groups(ds, spec, images64=small.images if small.sources == ds.sources else None)
    print(grouping.summary())
    if check is not None:
        ref = find_groups(ds, check, images64=small.images if small.sources == ds.sources else None)
        ag = pairwise_agreement(grouping.groups, ref.groups, ds.labels)
        print(f"Agreement with {check} ({len(set(ref.groups))} groups), pairs within a class: precision "
              f"{ag['precision']:.3f}, recall {ag['recall']:.3f}, adjusted Rand index {ag['ari']:.3f} "
              f"({ag['pairs_found']} pairs found, {ag['pairs_reference']} in the reference)")
        if ref.unassigned:
            # a table or pattern that names some images only: the images it leaves out have no reference part
            named = [i for i, (g, s) in enumerate(zip(ref.groups, ds.sources)) if g != s]
            ag = pairwise_agreement([grouping.groups[i] for i in named], [ref.groups[i] for i in named],
                                    ds.labels[named])
            print(f"On the {len(named)} images {check} names ({ref.unassigned} it leaves out): precision "
                  f"{ag['precision']:.3f}, recall {ag['recall']:.3f}, adjusted Rand index {ag['ari']:.3f} "
                  f"({ag['pairs_found']} pairs found, {ag['pairs_reference']} in the reference)")
    return 0


def cmd_run(args) -> int:
    from .experiment import ExperimentConfig
    from .rundir import RunDir
    overrides = _parse_sets(args.set)
    ratio = None if str(args.ratio).lower() in ("none", "0", "off") else float(args.ratio)
    tpc = float(args.test_per_class)
    cfg = ExperimentConfig.from_dict(dict(
        data=args.data, methods=args.methods, seeds=args.seeds, ratio=ratio, target_ratio=args.target_ratio,
        image_size=args.image_size, test_per_class=int(tpc) if tpc >= 1 else tpc, split_seed=args.split_seed,
        folds=args.folds, normal_class=args.normal_class, groups=args.groups, preset=args.preset, overrides=overrides,
        device=args.device, num_threads=args.threads, save_images=not args.no_images, quality=not args.no_quality,
        quality_gate=args.quality_gate, **({"baselines": args.baselines} if args.baselines else {})))
    from .jobs import check_classifier, check_methods
    from .jobs.kinds import run_local
    from .jobs.preflight import quick_protocol
    check_classifier(cfg)
    from .data.groups import check_on_files
    check_on_files(cfg.groups, cfg.data)      # before the run folder is made: nothing written on a bad pattern
    proto = quick_protocol(cfg)
    if proto is not None:      # a method that cannot use this data is refused before anything trains
        check_methods(cfg, proto.train)
    out = Path(args.out)
    if args.resume and args.force:
        raise ParamError("--resume keeps what the run directory holds and --force deletes it: choose one")
    if RunDir(out).has_metrics() and not (args.force or args.resume):
        raise ParamError(f"{out} already holds a finished run; choose another --out, add --resume to reuse "
                         "its trained models, or --force to replace it")
    if out.exists() and args.force:
        shutil.rmtree(out)
    from .experiment.cluster import run_on_ray, runner_settings
    runner, address = runner_settings()
    if runner == "ray":        # DEFECTAUG_RUNNER=ray: the plan's tasks on the cluster
        metrics = run_on_ray(cfg, out, address, callback=_Bar(), resume=args.resume)
    else:
        metrics = run_local(cfg, out, callback=_Bar(), resume=args.resume)   # trainings side by side if long
    print()
    print(format_leaderboard(metrics))
    print(f"\nrun directory: {out}")
    return 0


def format_leaderboard(metrics: dict) -> str:
    lines = [f"{'model':28s} {'macro F1':>16s} {'recall':>7s} {'prec.':>7s}  gain vs strongest baseline "
             f"({metrics.get('strongest_baseline')})"]
    for r in metrics["leaderboard"]:
        f1 = f"{r['f1_macro']:.3f}" + (f" ±{r['f1_std']:.3f}" if r.get("f1_std") else "")
        gain = ""
        if r["kind"] == "method":
            v = metrics["methods"][r["name"]]["verdict"]
            gain = f"{v['gain']:+.3f} [{v['ci'][0]:+.3f}, {v['ci'][1]:+.3f}] {v['label']}"
        lines.append(f"{r['name']:28s} {f1:>16s} {r['recall_macro']:7.3f} {r['precision_macro']:7.3f}  {gain}")
    for name, why in metrics.get("failed", {}).items():
        lines.append(f"{name:28s} FAILED: {why}")
    return "\n".join(lines)


def cmd_export(args) -> int:
    from .views.export import export_zip
    from .files import check_output_path
    check_output_path(Path(args.out))          # before the zip is built: a folder or a device is refused
    result = export_zip(args.run, args.method, args.out, seed=args.seed, layout=args.layout, real=args.real,
                        size=args.size)
    w = max([5] + [len(c) for c in result.counts])
    print(f"{'class':{w}s}  {'train':>6s} {'test':>6s} {'held':>6s}  {'synth':>6s} {'sampled':>7s} {'missing':>7s}")
    for cls, c in result.counts.items():
        print(f"{cls:{w}s}  {c['train']:6d} {c['test']:6d} {c['held_back']:6d}  {c['synthetic']:6d} "
              f"{c['sampled']:7d} {c['missing']:7d}")
    for note in result.notes:
        print(f"note: {note}")
    print(f"wrote {result.path} ({result.layout} layout)")
    return 0


def cmd_sample(args) -> int:
    import numpy as np
    from PIL import Image
    from .errors import RunError
    from .methods import Context, get_method
    from .rundir import RunDir
    from .runtime import pick_device
    rd = RunDir(args.run)
    seeds = rd.config().get("seeds") or [0]
    seed = seeds[0] if args.seed is None else args.seed
    if not rd.has_sampler(args.method, seed):
        raise RunError(f"no trained {args.method} (seed {seed}) in {rd.root}; run it first")
    spec = get_method(args.method)
    sampler = spec.load_sampler(rd.checkpoint_dir(args.method, seed),
                                Context(device=pick_device(args.device), seed=seed, method=args.method))
    if args.cls not in sampler.classes_:
        raise ParamError(f"unknown class {args.cls!r}; classes: {', '.join(sampler.classes_)}")
    batch = sampler.sample(args.cls, args.n, seed=args.sample_seed)
    out = Path(args.out) if args.out else rd.root / "sampled" / args.method / args.cls
    out.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(batch.images):
        Image.fromarray(img[..., 0] if img.shape[2] == 1 else img).save(out / f"{args.method}_{i:05d}.png")
    print(f"wrote {len(batch.images)} images of {args.cls} to {out}")
    return int(len(batch.images) != args.n or not np.isfinite(batch.images).all())


def cmd_predict(args) -> int:
    from .views.predict import predict_folder, scores_csv, write_scores_csv
    from .runtime import pick_device
    if args.out:
        from .files import check_output_path
        check_output_path(Path(args.out))      # before scoring, not after: a folder or a device is refused
    rd_seeds = _run_seeds(args.run)
    seed = rd_seeds[0] if args.seed is None else args.seed
    scores = predict_folder(args.run, args.model, seed, args.images, fold=args.fold,
                            device=str(pick_device(args.device)))
    for s in scores.skipped:
        print(f"skipped {s.path}: {s.reason}", file=sys.stderr)
    if args.out:
        print(f"wrote {len(scores.files)} rows ({scores.model_id}) to {write_scores_csv(scores, args.out)}",
              file=sys.stderr)
    else:
        sys.stdout.write(scores_csv(scores))
    return 0 if scores.files else 1


def _run_seeds(run: str) -> list[int]:
    from .experiment.config import parse_seeds
    from .rundir import RunDir
    seeds = RunDir(run).config().get("seeds")
    if seeds in (None, [], ""):
        return [0]
    try:
        return parse_seeds(seeds)
    except ParamError as err:      # a tampered config.json ("abc", {}): said, never a traceback
        raise ParamError(f"{run}'s config.json is damaged: {err}; give --seed") from None


def cmd_worker(args) -> int:
    from .jobs import worker_main
    worker_main(Path(args.workspace), once=args.once)
    return 0


GROUPS_HELP = ("which images show one part, kept on one side of every split: auto (near-duplicates found from "
               "the pixels; the default), regex:PATTERN (its first capture group over the file's path), "
               "csv:FILE (columns file,group), frames:GAP (within a class, shots whose file names' last numbers "
               "lie within GAP of the previous one) or none (every image its own group)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m core", description="DefectAug: synthetic defect images, "
                                 "measured on real held-out images.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("methods", help="list the registered methods")
    p = sub.add_parser("inspect", help="class counts and problems of a dataset folder or zip")
    p.add_argument("data")
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--groups", default="auto", help=GROUPS_HELP)
    p.add_argument("--check-groups", default=None, metavar="SPEC",
                   help="compare the groups with a reference grouping (regex:PATTERN, csv:FILE or frames:GAP): "
                        "pairwise precision and recall, adjusted Rand index")
    p = sub.add_parser("run", help="run an experiment")
    p.add_argument("--data", required=True)
    p.add_argument("--methods", default="smote")
    p.add_argument("--seeds", default="0")
    p.add_argument("--ratio", default="0.1", help="imbalance ratio in (0,1], or none to keep the data's own")
    p.add_argument("--target-ratio", type=float, default=1.0)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--test-per-class", default="20")
    p.add_argument("--split-seed", type=int, default=0)
    p.add_argument("--folds", type=int, default=1, help="1: one split; K: stratified K-fold (every image tested once)")
    p.add_argument("--normal-class", default=None,
                   help="the defect-free class (kept whole by --ratio; the source of translation methods); "
                        "default: the class named like normal/good/ok/free/pass, else the largest")
    p.add_argument("--groups", default="auto", help=GROUPS_HELP)
    p.add_argument("--preset", default="quick", choices=["quick", "paper"])
    p.add_argument("--baselines", default=None, help="the baselines to train, comma-separated (default: all of "
                   "paper, equal_steps, class_weighted, logit_adjusted, drw, linear); methods are judged against "
                   "the strongest")
    p.add_argument("--set", action="append", default=[], metavar="METHOD.PARAM=VALUE")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", required=True)
    p.add_argument("--force", action="store_true", help="replace an existing run directory")
    p.add_argument("--resume", action="store_true",
                   help="reuse the models an interrupted run in --out already trained with the same settings")
    p.add_argument("--no-images", action="store_true", help="do not write synthetic PNGs")
    p.add_argument("--quality-gate", action="store_true",
                   help="also train each method on what its quality gate keeps (as <method>+gate)")
    p.add_argument("--no-quality", action="store_true", help="do not measure the synthetic images")
    p = sub.add_parser("export", help="balanced dataset zip of one method")
    p.add_argument("run")
    p.add_argument("--method", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--layout", default="flat", choices=["flat", "split"],
                   help="flat: <class>/ (ImageFolder); split: train/<class>/ and test/<class>/ (the run's test split)")
    p.add_argument("--real", default="all", choices=["all", "train"],
                   help="all: every real image of the dataset (default); train: only what the run trained on")
    p.add_argument("--size", type=int, default=None,
                   help="resize the synthetic images to SIZE px (default: the run's size); real images are "
                        "never resized")
    p = sub.add_parser("sample", help="more images from a trained generator")
    p.add_argument("run")
    p.add_argument("--method", required=True)
    p.add_argument("--class", dest="cls", required=True)
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--seed", type=int, default=None, help="which trained seed to load")
    p.add_argument("--sample-seed", type=int, default=12345)
    p.add_argument("--device", default="auto")
    p.add_argument("--out", default=None)
    p = sub.add_parser("predict", help="score new images with a classifier the run trained (CSV: file, pred, "
                                       "probability per class)")
    p.add_argument("run")
    p.add_argument("--model", required=True, help="a baseline (baseline_equal_steps, equal_steps, linear, ...) or a method "
                                                  "(smote, smote+gate)")
    p.add_argument("--seed", type=int, default=None, help="which seed's classifier (default: the run's first)")
    p.add_argument("--fold", type=int, default=None, help="with K folds: which fold's classifier (default 0)")
    p.add_argument("images", help="a folder of images (sub-folders included)")
    p.add_argument("--out", default=None, help="CSV file to write (default: standard output)")
    p.add_argument("--device", default="auto")
    sub.add_parser("upload-limit", help="the browser upload limit in MiB that DEFECTAUG_MAX_ZIP_BYTES allows "
                                        "(scripts/serve.sh passes it to Streamlit)")
    p = sub.add_parser("worker", help="the background job worker (started by the app)")
    p.add_argument("--workspace", default="workspace")
    p.add_argument("--once", action="store_true", help="run queued jobs, then exit")
    args = ap.parse_args(argv)
    handlers = {"methods": cmd_methods, "inspect": cmd_inspect, "run": cmd_run, "export": cmd_export,
                "sample": cmd_sample, "predict": cmd_predict, "worker": cmd_worker,
                "upload-limit": cmd_upload_limit}
    try:
        return handlers[args.cmd](args)
    except DefectAugError as err:
        print(f"\nerror: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted; the run directory keeps what was written", file=sys.stderr)
        return 130
