"""How well `defect_paste` finds defects without masks, measured against magnetic_tile's real pixel masks.

    nice -n 10 .venv/bin/python benchmarks/transplant.py localise --sizes 32,64      # ~1-3 min on 2 cores
    nice -n 10 .venv/bin/python benchmarks/transplant.py localise --sizes 32 --show runs/loc_examples
    nice -n 10 .venv/bin/python benchmarks/transplant.py classify --folds 5 --seeds 0 --out runs/transplant32

For every defect image of magnetic_tile (all of them; the normal class is the bank / the reference, as a run's
training split would be), each localiser of core.methods.transplant makes its cleaned mask at the run's image
size; the real mask (../shared/datasets/magnetic_tile_masks/<class>/<name>.png, benchmark only) is brought to the
same size (a pixel is defect when any of it was: small blowholes would vanish otherwise). Per class: mean IoU of
the automatic mask with the real one, and the share of images whose anomaly map peaks inside the real defect.
Two references frame the figures: `centre` (a centred box covering the mean defect share) and `random` (the
peak anywhere: the share of the image the real defect covers).
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

from core.data import load_dataset  # noqa: E402
from core.methods import get_method  # noqa: E402
from core.methods.transplant import localise  # noqa: E402
from core.metrics.classification import FALSE_ALARMS, recall_at_false_alarms  # noqa: E402

DATA = ROOT.parent / "shared" / "datasets" / "magnetic_tile"
MASKS = ROOT.parent / "shared" / "datasets" / "magnetic_tile_masks"
NORMAL = "MT_Free"


def real_masks(sources: list[str], size: int) -> np.ndarray:
    """[N, size, size] bool: the real masks at the run's size (any coverage counts)."""
    from PIL import Image
    out = []
    for src in sources:
        path = (MASKS / src).with_suffix(".png")
        m = np.asarray(Image.open(path).convert("L").resize((size, size), Image.BOX), dtype=np.float32)
        out.append(m > 0)
    return np.stack(out)


def localise_table(size: int, localisers: list[str], show: Path | None = None) -> dict:
    ds, _ = load_dataset(DATA, image_size=size, channels=1)
    k_normal = ds.classes.index(NORMAL)
    normals = ds.images[ds.labels == k_normal]
    idx = np.flatnonzero(ds.labels != k_normal)
    truth = real_masks([ds.sources[i] for i in idx], size)
    classes = [ds.classes[ds.labels[i]] for i in idx]
    spec = get_method("defect_paste")
    rows: dict[str, dict] = {}
    for name in localisers:
        t0 = time.time()
        if name in ("centre", "random"):
            share = float(truth.mean())
            side = max(1, int(round(size * np.sqrt(share))))
            box = np.zeros((size, size), bool)
            box[(size - side) // 2:(size + side) // 2, (size - side) // 2:(size + side) // 2] = True
            masks = np.repeat(box[None], len(idx), 0)
            peak_in = (truth[:, size // 2, size // 2] if name == "centre" else truth.mean(axis=(1, 2)))
        else:
            p = spec.make_params("quick", {"localiser": name})
            scores, masks = localise(ds.images[idx], normals, p)
            masks = masks > 0
            peaks = [np.unravel_index(int(_smooth(s).argmax()), s.shape) for s in scores]
            peak_in = np.array([truth[i][pk] for i, pk in enumerate(peaks)], dtype=np.float64)
            if show is not None:
                _examples(show / f"{name}_{size}px", ds, idx, masks, truth, scores)
        inter = (masks & truth).sum(axis=(1, 2))
        union = (masks | truth).sum(axis=(1, 2))
        iou = inter / np.maximum(union, 1)
        per = {}
        for c in sorted(set(classes)):
            sel = np.array([x == c for x in classes])
            per[c] = {"iou": round(float(iou[sel].mean()), 3), "peak_in_defect": round(float(peak_in[sel].mean()), 3),
                      "mask_share": round(float(masks[sel].mean()), 4), "true_share": round(float(truth[sel].mean()), 4),
                      "n": int(sel.sum())}
        rows[name] = {"per_class": per, "iou": round(float(iou.mean()), 3),
                      "peak_in_defect": round(float(np.mean(peak_in)), 3), "seconds": round(time.time() - t0, 1)}
        print(size, name, json.dumps({k: v for k, v in rows[name].items() if k != "per_class"}), flush=True)
    return {"size": size, "images": len(idx), "normals": len(normals), "rows": rows}


def _smooth(s: np.ndarray) -> np.ndarray:
    import cv2
    return cv2.GaussianBlur(s.astype(np.float32), (0, 0), max(0.5, s.shape[0] / 64))


def _examples(folder: Path, ds, idx, masks, truth, scores, per_class: int = 3) -> None:
    """A sheet per class: image | real mask outline (green) | automatic mask outline (red), best and worst IoU."""
    import cv2
    from PIL import Image
    folder.mkdir(parents=True, exist_ok=True)
    iou = (masks & truth).sum((1, 2)) / np.maximum((masks | truth).sum((1, 2)), 1)
    for c in sorted({ds.labels[i] for i in idx}):
        sel = [j for j, i in enumerate(idx) if ds.labels[i] == c]
        order = sorted(sel, key=lambda j: iou[j])
        tiles = []
        for j in order[:per_class] + order[-per_class:]:
            g = np.repeat(ds.images[idx[j]], 3, axis=2).copy()
            for m, colour in ((truth[j], (0, 255, 0)), (masks[j], (255, 0, 0))):
                edge = m.astype(np.uint8) - cv2.erode(m.astype(np.uint8), np.ones((3, 3), np.uint8))
                g[edge > 0] = colour
            tiles.append(np.kron(g, np.ones((4, 4, 1), np.uint8)))
        Image.fromarray(np.concatenate(tiles, axis=1)).save(folder / f"{ds.classes[c]}.png")


def classify(a) -> dict:
    """One run: the baselines, random_oversample, cmo, defect_paste at its own and at a random position
    (`defect_paste_random`, from the benchmark plugin benchmarks.transplant_variants)."""
    import os
    os.environ["DEFECTAUG_PLUGINS"] = "benchmarks.transplant_variants"
    from core.experiment import run_in_processes
    cfg = dict(data=a.data, methods=a.methods.split(","), seeds=[int(s) for s in a.seeds.split(",")],
               ratio=0.1, image_size=a.image_size, folds=a.folds, device="cpu", quality=a.quality, groups=a.groups,
               baselines=a.baselines.split(","), save_images=True, overrides={"classifier": {"epochs": a.epochs}})
    t0 = time.time()
    m = run_in_processes(cfg, Path(a.out), a.procs, 1, resume=a.resume,
                         on_chain=lambda ids: print(time.strftime("%H:%M:%S"), ", ".join(ids), "done", flush=True))
    print(f"{(time.time() - t0) / 60:.1f} min")
    return m


def table(run: Path, loc: dict | None = None) -> str:
    """The run's models in one table: macro F1, per-class recall, gain over the strongest baseline, the share of
    its macro-F1 error (1 - F1) the method removes (the issue's target: 30%), the verdict; localisation below."""
    m = json.loads((run / "metrics.json").read_text())
    strongest = m["strongest_baseline"]
    base = m["baselines"][strongest]
    classes = list(base["per_class"])
    normal = json.loads((run / "config.json").read_text()).get("normal_class")
    head = ["model", "macro F1", *[f"recall {c.replace('MT_', '')}" for c in classes], "defects flagged (any class)",
            "gain vs " + strongest, "error cut", "verdict"]

    def flagged(src: dict) -> str:
        """Share of the defect test images called a defect of any class (pooled over seeds)."""
        cm, names = src.get("confusion_matrix"), src.get("classes") or classes
        if not cm or normal not in names:
            return "-"
        k = names.index(normal)
        rows = [r for i, r in enumerate(cm) if i != k]
        return f"{1 - sum(r[k] for r in rows) / max(1, sum(map(sum, rows))):.3f}"

    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in m["leaderboard"]:
        src = m["methods"][r["name"]] if r["kind"] == "method" else m["baselines"][r["name"].split(":", 1)[1]]
        f1 = src["f1_macro"]
        cut = (f1 - base["f1_macro"]) / (1 - base["f1_macro"])
        row = [r["name"], f"**{f1:.3f}**", *[f"{src['per_class'][c]['recall']:.3f}" for c in classes], flagged(src)]
        if r["kind"] == "method":
            v = src["verdict"]
            row += [f"{f1 - base['f1_macro']:+.3f}", f"{100 * cut:+.0f}%",
                    f"{v['label']} ({100 * v['level']:.1f}% {v['ci'][0]:+.3f} to {v['ci'][1]:+.3f}; MDG {v['mdg']:.3f})"]
        else:
            row += ["-", "-", "-"]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def failures(run: Path, method: str, out_png: Path | None, per_class: int = 4) -> str:
    """Where `method` fails against the strongest baseline: each defect test image called right or wrong by the
    majority of seeds, per class (found by both / only one / neither), recall by the real defect's size (the
    dataset's masks/ tree, when it has one), and a sheet of images each class misses and finds (real mask outlined
    in red, the majority prediction under each)."""
    import csv
    from collections import Counter

    from PIL import Image, ImageDraw
    m = json.loads((run / "metrics.json").read_text())
    data = Path(json.loads((run / "config.json").read_text())["data"])
    strongest = m["strongest_baseline"]
    groups = json.loads((run / "groups.json").read_text())
    group_of = dict(zip(groups["sources"], groups["groups"]))

    def votes(stem: str) -> dict[str, Counter]:
        out: dict[str, Counter] = {}
        for f in sorted((run / "predictions").glob(f"{stem}_s*.csv")):
            for r in csv.DictReader(f.open()):
                out.setdefault(r["file"], Counter())[r["pred"]] += 1
        return out

    vm, vb = votes(method), votes(f"baseline_{strongest}")
    truth = {f: f.split("/", 1)[0] for f in vm}
    normal = json.loads((run / "config.json").read_text()).get("normal_class")

    def right(v: dict[str, Counter], f: str) -> bool:
        return v[f][truth[f]] * 2 > sum(v[f].values())

    def flagged(v: dict[str, Counter], f: str) -> bool:
        return v[f][normal] * 2 < sum(v[f].values())

    def area(f: str) -> float | None:
        p = data / "masks" / Path(f).with_suffix(".png")
        return float((np.asarray(Image.open(p).convert("L")) > 127).mean()) if p.exists() else None

    defects = sorted(f for f in vm if truth[f] != normal)
    share = {f: area(f) for f in defects}
    lines = [f"{method} against baseline:{strongest}, each test image by the majority of "
             f"{max(sum(v.values()) for v in vm.values())} seeds",
             "", "| class | test images | found by both | only " + method + " | only " + strongest +
             " | by neither | missed by " + method + ": called | called a defect of any class: " + method + " / "
             + strongest + " | median defect area found / missed |",
             "|---|---|---|---|---|---|---|---|---|"]
    for c in sorted({truth[f] for f in defects}):
        fs = [f for f in defects if truth[f] == c]
        a, b = [right(vm, f) for f in fs], [right(vb, f) for f in fs]
        called = Counter(vm[f].most_common(1)[0][0] for f, ok in zip(fs, a) if not ok)
        med = [np.median([share[f] for f, ok in zip(fs, a) if ok == want and share[f] is not None] or [np.nan])
               for want in (True, False)]
        lines.append(f"| {c} | {len(fs)} | {sum(x and y for x, y in zip(a, b))} | "
                     f"{sum(x and not y for x, y in zip(a, b))} | {sum(y and not x for x, y in zip(a, b))} | "
                     f"{sum(not x and not y for x, y in zip(a, b))} | "
                     + ", ".join(f"{k.replace('MT_', '')} {n}" for k, n in called.most_common(3))
                     + f" | {np.mean([flagged(vm, f) for f in fs]):.3f} / {np.mean([flagged(vb, f) for f in fs]):.3f}"
                     f" | {100 * med[0]:.2f}% / {100 * med[1]:.2f}% |")
    sized = [f for f in defects if share[f] is not None]
    if sized:
        cuts = np.quantile([share[f] for f in sized], [1 / 3, 2 / 3])
        lines += ["", "| real defect area (share of the image) | images | recall " + method + " | recall " +
                  strongest + " |", "|---|---|---|---|"]
        for k, (lo, hi) in enumerate(((0, cuts[0]), (cuts[0], cuts[1]), (cuts[1], 1.0))):
            fs = [f for f in sized if (lo <= share[f] < hi) or (k == 2 and share[f] >= lo)]
            lines.append(f"| {100 * lo:.2f}-{100 * hi:.2f}% | {len(fs)} | "
                         f"{np.mean([right(vm, f) for f in fs]):.3f} | {np.mean([right(vb, f) for f in fs]):.3f} |")
    if out_png is not None:
        rng = np.random.default_rng(0)
        rows, tile = [], 112
        for c in sorted({truth[f] for f in defects}):
            fs = [f for f in defects if truth[f] == c]
            picked = []
            for want in (False, True):
                seen, pool = set(), [f for f in fs if right(vm, f) == want]
                for f in rng.permutation(pool):
                    if group_of.get(f) not in seen and len([p for p in picked if p[1] == want]) < per_class:
                        seen.add(group_of.get(f))
                        picked.append((f, want))
            cells = []
            for f, ok in picked:
                g = Image.open(data / f).convert("L").resize((tile, tile), Image.BILINEAR).convert("RGB")
                mp = data / "masks" / Path(f).with_suffix(".png")
                if mp.exists():
                    mk = np.asarray(Image.open(mp).convert("L").resize((tile, tile), Image.BOX)) > 0
                    edge = mk & ~np.pad(mk, 1)[2:, 1:-1] | mk & ~np.pad(mk, 1)[:-2, 1:-1] \
                        | mk & ~np.pad(mk, 1)[1:-1, 2:] | mk & ~np.pad(mk, 1)[1:-1, :-2]
                    a = np.asarray(g).copy()
                    a[edge] = (255, 0, 0)
                    g = Image.fromarray(a)
                cell = Image.new("RGB", (tile + 4, tile + 18), (0, 160, 0) if ok else (200, 0, 0))
                cell.paste(g, (2, 2))
                ImageDraw.Draw(cell).text((4, tile + 4), ("found" if ok else "-> " + vm[f].most_common(1)[0][0]
                                                          .replace("MT_", "")), fill=(255, 255, 255))
                cells.append(cell)
            row = Image.new("RGB", (90 + len(cells) * (tile + 6), tile + 18), (255, 255, 255))
            ImageDraw.Draw(row).text((4, tile // 2), c.replace("MT_", ""), fill=(0, 0, 0))
            for k, cell in enumerate(cells):
                row.paste(cell, (90 + k * (tile + 6), 0))
            rows.append(row)
        sheet = Image.new("RGB", (max(r.width for r in rows), sum(r.height + 6 for r in rows)), (255, 255, 255))
        for k, r in enumerate(rows):
            sheet.paste(r, (0, k * (r.height + 6)))
        out_png.parent.mkdir(parents=True, exist_ok=True)
        sheet.convert("P", palette=Image.Palette.ADAPTIVE, colors=128).save(out_png, optimize=True)
    return "\n".join(lines)


def detection(run: Path, reps: int = 1000, false_alarms: float = FALSE_ALARMS) -> str:
    """Defect against normal, whatever the defect class: the question "is something wrong with this part?". Per
    model, the AUROC of 1 - p(normal) over the test images and the share of defect images found when the threshold
    lets `false_alarms` of the normal ones through (both averaged over seeds), and the AUROC's gain over the
    strongest baseline by this AUROC with a 95% interval from a bootstrap over test groups (one draw for both models
    and every seed: the images of a part move together). Read from the run's predictions/; not the run's verdict."""
    import csv
    from collections import defaultdict

    from scipy.stats import rankdata
    from sklearn.metrics import roc_auc_score
    normal = json.loads((run / "config.json").read_text()).get("normal_class")
    groups = json.loads((run / "groups.json").read_text())
    group_of = dict(zip(groups["sources"], groups["groups"]))
    preds: dict[str, list] = defaultdict(list)
    order = None
    for f in sorted((run / "predictions").glob("*_s*.csv")):
        rows = sorted(csv.DictReader(f.open()), key=lambda r: r["file"])
        files = [r["file"] for r in rows]
        order = order or files
        if files != order:
            continue                                  # another test set (a one-split run's extra file): not paired
        y = np.array([r["true"] != normal for r in rows])
        preds[f.stem.rsplit("_s", 1)[0]].append(1 - np.array([float(r[f"p_{normal}"]) for r in rows]))
    gid = np.unique([group_of.get(f, f) for f in order], return_inverse=True)[1]
    members = [np.flatnonzero(gid == g) for g in range(gid.max() + 1)]

    def at(score: np.ndarray, idx: np.ndarray) -> float:
        """AUROC by the rank sum (Mann-Whitney; ties share their rank), as sklearn's roc_auc_score."""
        pos, r = y[idx], rankdata(score[idx])
        n1 = int(pos.sum())
        return float((r[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * (len(idx) - n1)))

    rng = np.random.default_rng(0)
    draws = [np.concatenate([members[g] for g in rng.integers(0, len(members), len(members))]) for _ in range(reps)]
    everything = np.arange(len(order))
    assert abs(at(preds[next(iter(preds))][0], everything) - roc_auc_score(y, preds[next(iter(preds))][0])) < 1e-9
    strongest = max((n for n in preds if n.startswith("baseline_")),          # the strongest by this measure
                    key=lambda n: np.mean([at(s, everything) for s in preds[n]]))
    base = preds[strongest]
    k = sum(not n.startswith("baseline_") and len(v) == len(base) for n, v in preds.items())
    lines = [f"Defect (any class) against {normal}, {len(order)} test images ({int(y.sum())} defect) in "
             f"{len(members)} groups; AUROC gain over the baseline with the highest AUROC "
             f"({strongest.replace('baseline_', 'baseline:')}), 95% interval from {reps} draws of whole groups "
             "(each method on its own: not corrected for the number of methods)", "",
             f"| model | AUROC (seeds) | defect recall at {100 * false_alarms:.0f}% false alarms | AUROC gain | "
             f"95% interval | {100 * (1 - 0.05 / k):.1f}% interval (Bonferroni over {k} methods) | gain per seed |",
             "|---|---|---|---|---|---|---|"]
    rows_out = []
    q = 0.05 / k / 2
    for name, scores in preds.items():
        auc = [at(s, everything) for s in scores]
        row = [f"{np.mean(auc):.3f} ({', '.join(f'{a:.3f}' for a in auc)})",
               f"{np.mean([recall_at_false_alarms(y, s, false_alarms) for s in scores]):.3f}"]
        if not name.startswith("baseline_") and len(scores) == len(base):
            d = [np.mean([at(s, i) - at(b, i) for s, b in zip(scores, base)]) for i in draws]
            per = [at(s, everything) - at(b, everything) for s, b in zip(scores, base)]
            row += [f"{np.mean(per):+.3f}", f"{np.quantile(d, 0.025):+.3f} to {np.quantile(d, 0.975):+.3f}",
                    f"{np.quantile(d, q):+.3f} to {np.quantile(d, 1 - q):+.3f}", ", ".join(f"{x:+.3f}" for x in per)]
        else:
            row += ["-", "-", "-", "-"]
        rows_out.append((np.mean(auc), name.replace("baseline_", "baseline:"), row))
    for _, name, row in sorted(rows_out, key=lambda r: -r[0]):
        lines.append("| " + " | ".join([name, *row]) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    cl = sub.add_parser("classify")
    cl.add_argument("--methods", default="random_oversample,cmo,defect_paste,defect_paste_random")
    cl.add_argument("--baselines", default="equal_steps,class_weighted")
    cl.add_argument("--seeds", default="0")
    cl.add_argument("--data", default=str(DATA), help="magnetic_tile; or a copy of it with a masks/ tree of its real "
                    "masks (the oracle: defect_paste then cuts the real defects out, as from a user's masks)")
    cl.add_argument("--groups", default="auto", help="auto (the product's default) or none (split by single images)")
    cl.add_argument("--folds", type=int, default=5)
    cl.add_argument("--image-size", type=int, default=32)
    cl.add_argument("--epochs", type=int, default=35)
    cl.add_argument("--procs", type=int, default=2)
    cl.add_argument("--quality", action="store_true")
    cl.add_argument("--resume", action="store_true")
    cl.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "transplant32"))
    loc = sub.add_parser("localise")
    loc.add_argument("--sizes", default="32,64")
    loc.add_argument("--localisers", default="patch_nn,nearest_normal,centre,random")
    loc.add_argument("--show", default=None, help="folder for example sheets (best and worst IoU per class)")
    loc.add_argument("--json", default=None, help="write the figures here too")
    tb = sub.add_parser("table")
    tb.add_argument("run")
    fl = sub.add_parser("failures", help="which defect images a method misses and finds, against the strongest "
                        "baseline (a sheet of examples with --png)")
    fl.add_argument("run")
    fl.add_argument("--method", default="defect_paste")
    fl.add_argument("--png", default=None)
    dt = sub.add_parser("detection", help="defect (any class) against normal: AUROC and recall at a false-alarm "
                        "rate per model, the AUROC gain over the strongest baseline with a group-bootstrap interval")
    dt.add_argument("run")
    dt.add_argument("--reps", type=int, default=1000)
    args = ap.parse_args()
    if args.cmd == "detection":
        print(detection(Path(args.run), args.reps))
        return
    if args.cmd == "failures":
        print(failures(Path(args.run), args.method, Path(args.png) if args.png else None))
        return
    if args.cmd == "table":
        print(table(Path(args.run)))
        return
    if args.cmd == "classify":
        classify(args)
        return
    if args.cmd == "localise":
        out = [localise_table(int(s), args.localisers.split(","), Path(args.show) if args.show else None)
               for s in args.sizes.split(",")]
        for t in out:
            print(f"\n{t['size']} px, {t['images']} defect images, {t['normals']} normal images")
            print("| localiser | class | IoU | peak inside the defect | mask share | real share |")
            print("|---|---|---|---|---|---|")
            for name, r in t["rows"].items():
                for c, v in r["per_class"].items():
                    print(f"| {name} | {c} | {v['iou']:.3f} | {v['peak_in_defect']:.3f} | {v['mask_share']:.4f} | "
                          f"{v['true_share']:.4f} |")
                print(f"| **{name}** | all | **{r['iou']:.3f}** | **{r['peak_in_defect']:.3f}** | | | ({r['seconds']} s)")
        if args.json:
            Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
