"""Sample figures of a finished diffusion run (benchmarks/seed_protocol.py with ddpm_cfg, ddpm_cfg_w75 and
ddpm_translate): one row of 8 synthetic images per defect class for each method, and for ddpm_translate rows of
(real normal source, translated result) pairs, from the run's saved synthetic images and provenance.

    .venv/bin/python benchmarks/diffusion_figures.py RUN_DIR --seed 0 --out benchmarks/figures
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.gan_protocol import figure_from_images, figure_from_run  # noqa: E402
from core.rundir import RunDir  # noqa: E402


def translate_pairs(run_dir: Path, path: Path, seed: int, pairs: int = 4) -> bool:
    """Per defect class `pairs` (source, result) pairs side by side: what SDEdit kept and what it changed."""
    rd = RunDir(run_dir)
    if not rd.synthetic_npz("ddpm_translate", seed).exists():
        return False
    synth = rd.load_synthetic("ddpm_translate", seed)
    rows = {}
    for c in synth.classes:
        part = synth.of_class(c)
        if not len(part.images):
            continue
        parents = [s.split(":", 3)[-1] for s in part.sources[:pairs]]   # synthetic:<method>:<seed>:<source>
        real = rd.images_by_source(parents)
        imgs = []
        for img, src in zip(part.images[:pairs], parents):
            imgs += [real.get(src, np.full_like(img, 128)), img]
        rows[c] = np.stack(imgs)
    if rows:
        figure_from_images(rows, path, cols=2 * pairs)
    return bool(rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "figures")
    a = ap.parse_args()
    for m in ("ddpm_cfg", "ddpm_cfg_w75", "ddpm_translate"):
        print(m, figure_from_run(a.run_dir, m, a.out / f"{m}.png", seed=a.seed))
    print("ddpm_translate pairs", translate_pairs(a.run_dir, a.out / "ddpm_translate_pairs.png", a.seed))


if __name__ == "__main__":
    main()
