"""Are the synthetic images any good, and did the generator copy its training images?

    report, table = assess(train, synth, feature_model, test, normal_class, ...)

Per class that received synthetic images (real training images of the class vs its synthetic images):
  fd_cls, kd_cls, kd_cls_std   Frechet / kernel distance on the features of a classifier the run trained on the
                               real training images only (`features`: named with the numbers, never "FID")
  fid, kid                     the same on Inception-v3 features, when a checked local weights file is set
  precision, recall, density, coverage   k-NN manifolds (Kynkaanniemi et al.; Naeem et al.)
  ssim_real, ssim_synthetic    mean pairwise SSIM within the class: synthetic near 1 while real is lower is mode
                               collapse, said in words by `collapse_note`
  near_copies                  share of synthetic images closer to one real image than a quarter of the real
                               images' typical spacing (memorisation); per image its nearest real image
  wrong_class                  share the real-data classifier puts in another class with high confidence
  gate_dropped                 what the quality gate drops: wrong-class images, and a generator's near-copies
Overall: the same distances over every synthetic image, and the train-on-synthetic accuracy (CAS): a classifier
trained on the synthetic defect images plus the real normal images, scored on the real test set.
`table` holds one row per synthetic image (nearest real image, distance, copy, predicted class, confidence, kept):
the Gallery shows each image beside its nearest real neighbour, and the export can keep only `kept` ones.
"""
from __future__ import annotations

import time

import numpy as np

from ...imageset import ImageSet
from .distribution import fd_reliable, frechet_distance, kernel_distance, prdc
from .features import penultimate
from .images import near_copies, ssim_diversity

GATE_CONFIDENCE = 0.9     # the real-data classifier this sure of another class: the image is dropped by the gate
SSIM_SAMPLE = 30          # images per set for the pairwise SSIM (435 pairs, 150 of them measured)
COLLAPSE_SSIM = 0.8       # synthetic SSIM diversity at least this, and 0.2 above the real one: mode collapse
TSNE_PER_SET = 100        # points per class and set in the 2-D embedding


def _sample(n: int, k: int, seed: int) -> np.ndarray:
    return np.sort(np.random.default_rng(seed).choice(n, size=min(n, k), replace=False))


def _distances(real_f: np.ndarray, syn_f: np.ndarray, seed: int) -> dict:
    out: dict = {}
    if len(real_f) >= 2 and len(syn_f) >= 2:
        out["fd"] = round(frechet_distance(real_f, syn_f), 4)
        out["fd_reliable"] = fd_reliable(len(real_f), len(syn_f), real_f.shape[1])
        kd, kd_std = kernel_distance(real_f, syn_f, seed=seed)
        out["kd"], out["kd_std"] = round(kd, 5), round(kd_std, 5)
        out.update({k: round(v, 4) if isinstance(v, float) else v for k, v in prdc(real_f, syn_f).items()})
    return out


def assess(train: ImageSet, synth: ImageSet, feature_model, test: ImageSet | None = None,
           normal_class: str | None = None, seed: int = 0, inception=None, cas=None,
           embed: bool = False, gate_confidence: float = GATE_CONFIDENCE,
           gate_copies: bool = True) -> tuple[dict, list[dict]]:
    """The quality report of one method's synthetic images for one seed, and its per-image table.
    `feature_model`: a classifier trained on the real training images (its penultimate layer gives the
    'cls' features). `inception`: an `InceptionFeatures` or None. `cas(train_set) -> {f1_macro, accuracy}`
    trains and scores the train-on-synthetic classifier (None: not measured). `gate_copies`: whether the gate
    drops near-copies too (a generator's memorised images); off for methods that copy or interpolate real
    images by design (random_oversample, SMOTE...), whose near-copy share is reported all the same."""
    t0 = time.time()
    real_f, _ = penultimate(feature_model, train.images)
    syn_f, syn_p = penultimate(feature_model, synth.images)
    real_i = inception.features(train.images) if inception is not None and len(synth) else None
    syn_i = inception.features(synth.images) if inception is not None and len(synth) else None
    per_class: dict[str, dict] = {}
    rows: list[dict] = [{} for _ in range(len(synth))]
    predicted = syn_p.argmax(1) if len(synth) else np.zeros(0, np.int64)
    confidence = syn_p.max(1) if len(synth) else np.zeros(0)
    kept = np.ones(len(synth), bool)
    for ci, c in enumerate(synth.classes):
        s_idx = np.flatnonzero(synth.labels == ci)
        if not len(s_idx):
            continue
        r_idx = np.flatnonzero(train.labels == ci)
        block = _distances(real_f[r_idx], syn_f[s_idx], seed)
        block = {("fd_cls" if k == "fd" else "kd_cls" if k == "kd" else "kd_cls_std" if k == "kd_std" else
                  "fd_cls_reliable" if k == "fd_reliable" else k): v for k, v in block.items()}
        if real_i is not None:
            inc = _distances(real_i[r_idx], syn_i[s_idx], seed)
            block.update({"fid": inc.get("fd"), "kid": inc.get("kd"), "kid_std": inc.get("kd_std")})
        real_imgs, syn_imgs = train.images[r_idx], synth.images[s_idx]
        block["ssim_real"] = round(ssim_diversity(real_imgs[_sample(len(r_idx), SSIM_SAMPLE, seed)]), 4)
        block["ssim_synthetic"] = round(ssim_diversity(syn_imgs[_sample(len(s_idx), SSIM_SAMPLE, seed)]), 4)
        copies = near_copies(syn_imgs, real_imgs) if len(r_idx) else None
        wrong = (predicted[s_idx] != ci) & (confidence[s_idx] >= gate_confidence)
        copy = copies["copy"] if copies is not None else np.zeros(len(s_idx), bool)
        drop = wrong | (copy & gate_copies)
        kept[s_idx] = ~drop
        block.update(n_real=int(len(r_idx)), n_synthetic=int(len(s_idx)),
                     near_copies=round(float(copy.mean()), 4), wrong_class=round(float(wrong.mean()), 4),
                     gate_dropped=int(drop.sum()))
        per_class[c] = block
        for j, i in enumerate(s_idx):
            rows[i] = {"class": c, "nearest": train.sources[r_idx[copies["nearest"][j]]] if copies is not None else "",
                       "distance": round(float(copies["distance"][j]), 5) if copies is not None else None,
                       "copy": bool(copy[j]), "predicted": train.classes[int(predicted[i])],
                       "confidence": round(float(confidence[i]), 4), "kept": bool(kept[i])}
    minority = [i for i, c in enumerate(train.classes) if c in per_class]
    r_all = np.flatnonzero(np.isin(train.labels, minority))
    overall = _distances(real_f[r_all], syn_f, seed) if len(synth) else {}
    overall = {("fd_cls" if k == "fd" else "kd_cls" if k == "kd" else "kd_cls_std" if k == "kd_std" else
                "fd_cls_reliable" if k == "fd_reliable" else k): v for k, v in overall.items()}
    overall.update(near_copies=round(float(np.mean([r["copy"] for r in rows])), 4) if rows else 0.0,
                   gate_kept=int(kept.sum()), gate_dropped=int((~kept).sum()))
    report = {"features": f"cls: the penultimate layer ({real_f.shape[1]}-d) of a classifier trained on the "
                          f"real training images only", "per_class": per_class, "overall": overall,
              "gate": {"confidence": gate_confidence, "copies": gate_copies,
                       "dropped": {c: b["gate_dropped"] for c, b in per_class.items()}}}
    if inception is not None:
        report["inception"] = "Inception-v3 (torchvision, local weights, SHA-256 checked), 2048-d pool features"
    if cas is not None and len(synth):
        normal = train.of_class(normal_class) if normal_class in train.classes else ImageSet.empty(
            train.classes, train.shape)
        report["cas"] = cas(ImageSet.concat([normal, synth.subset(np.flatnonzero(synth.labels != (
            train.classes.index(normal_class) if normal_class in train.classes else -1)))]))
    if embed and len(synth):
        shown = list(minority)      # and the normal class's real images: a translation's came from them
        if normal_class in train.classes and train.classes.index(normal_class) not in shown:
            shown.append(train.classes.index(normal_class))
        report["embedding"] = embedding(real_f, train.labels, syn_f, synth.labels, train.classes, shown, seed)
    report["seconds"] = round(time.time() - t0, 2)
    return report, rows


def embedding(real_f: np.ndarray, real_y: np.ndarray, syn_f: np.ndarray, syn_y: np.ndarray, classes: list[str],
              which: list[int], seed: int) -> list[dict]:
    """A 2-D t-SNE of real and synthetic features of the classes in `which` (up to TSNE_PER_SET each)."""
    from sklearn.manifold import TSNE
    pts, meta = [], []
    for ci in which:
        for origin, f, y in (("real", real_f, real_y), ("synthetic", syn_f, syn_y)):
            idx = np.flatnonzero(y == ci)
            idx = idx[_sample(len(idx), TSNE_PER_SET, seed + ci)]
            pts.append(f[idx])
            meta += [(classes[ci], origin)] * len(idx)
    x = np.concatenate(pts) if pts else np.zeros((0, 2))
    if len(x) < 5:
        return []
    xy = TSNE(n_components=2, perplexity=min(30.0, (len(x) - 1) / 3), init="pca", random_state=seed).fit_transform(x)
    return [{"class": c, "origin": o, "x": round(float(a), 3), "y": round(float(b), 3)}
            for (c, o), (a, b) in zip(meta, xy)]


def latent_embedding(codes: np.ndarray, labels: np.ndarray, classes: list[str], seed: int = 0,
                     per_class: int = 150) -> list[dict]:
    """A 2-D t-SNE of a generator's latent codes (up to `per_class` per class): do the minority classes
    form their own clusters, or sit inside the normal one (the BAGAN vs BAGAN-GP figure of seminar 004)?"""
    from sklearn.manifold import TSNE
    idx = np.concatenate([np.flatnonzero(labels == c)[_sample(int((labels == c).sum()), per_class, seed + c)]
                          for c in np.unique(labels)]) if len(labels) else np.zeros(0, int)
    if len(idx) < 5:
        return []
    x = codes[idx].astype(np.float32)
    xy = TSNE(n_components=2, perplexity=min(30.0, (len(x) - 1) / 3), init="pca", random_state=seed).fit_transform(x)
    return [{"class": classes[int(labels[i])] if int(labels[i]) < len(classes) else str(int(labels[i])),
             "origin": "code", "x": round(float(a), 3), "y": round(float(b), 3)} for i, (a, b) in zip(idx, xy)]


def collapse_note(quality: dict) -> str:
    """Mode collapse in words, from the SSIM diversity per class: '' when there is none."""
    flagged = [(c, b) for c, b in (quality.get("per_class") or {}).items()
               if b.get("ssim_synthetic") is not None and b.get("ssim_real") is not None
               and b["ssim_synthetic"] >= COLLAPSE_SSIM and b["ssim_synthetic"] - b["ssim_real"] >= 0.2]
    if not flagged:
        return ""
    parts = ", ".join(f"{c} (SSIM {b['ssim_synthetic']:.2f} vs {b['ssim_real']:.2f} among real images)"
                      for c, b in flagged)
    return f"Its synthetic images of {parts} look alike: likely mode collapse."


def summarise_quality(per_seed: dict[int, dict]) -> dict:
    """The quality reports of a method (one per seed, and per fold): every number the mean over them (per class
    and overall), the gate's dropped counts summed, the embedding of the first."""
    seeds = sorted(per_seed)
    first = per_seed[seeds[0]]

    def mean(blocks: list[dict]) -> dict:
        out = {}
        for key in blocks[0]:
            values = [b.get(key) for b in blocks]
            numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
            if len(numbers) == len(values):
                out[key] = round(float(np.nanmean(numbers)), 5) if numbers else None
            elif all(isinstance(v, bool) for v in values):
                out[key] = all(values)
        return out

    classes = [c for c in first["per_class"] if all(c in per_seed[s]["per_class"] for s in seeds)]
    out = {"features": first["features"], "reports": len(seeds),
           "per_class": {c: mean([per_seed[s]["per_class"][c] for s in seeds]) for c in classes},
           "overall": mean([per_seed[s]["overall"] for s in seeds]),
           "gate": {"confidence": first["gate"]["confidence"],
                    "dropped": {c: int(sum(per_seed[s]["gate"]["dropped"].get(c, 0) for s in seeds)) for c in classes}},
           "seconds": round(float(np.mean([per_seed[s]["seconds"] for s in seeds])), 2)}
    if all("cas" in per_seed[s] for s in seeds):
        out["cas"] = {k: round(float(np.mean([per_seed[s]["cas"][k] for s in seeds])), 4)
                      for k in ("f1_macro", "accuracy")}
    for key in ("inception", "embedding"):
        if key in first:
            out[key] = first[key]
    return out
