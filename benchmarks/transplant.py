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
    head = ["model", "macro F1", *[f"recall {c.replace('MT_', '')}" for c in classes], "gain vs " + strongest,
            "error cut", "verdict"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in m["leaderboard"]:
        src = m["methods"][r["name"]] if r["kind"] == "method" else m["baselines"][r["name"].split(":", 1)[1]]
        f1 = src["f1_macro"]
        cut = (f1 - base["f1_macro"]) / (1 - base["f1_macro"])
        row = [r["name"], f"**{f1:.3f}**", *[f"{src['per_class'][c]['recall']:.3f}" for c in classes]]
        if r["kind"] == "method":
            v = src["verdict"]
            row += [f"{f1 - base['f1_macro']:+.3f}", f"{100 * cut:+.0f}%",
                    f"{v['label']} ({100 * v['level']:.1f}% {v['ci'][0]:+.3f} to {v['ci'][1]:+.3f}; MDG {v['mdg']:.3f})"]
        else:
            row += ["-", "-", "-"]
        lines.append("| " + " | ".join(row) + " |")
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
    args = ap.parse_args()
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
