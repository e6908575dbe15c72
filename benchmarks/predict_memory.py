"""Peak memory of `core predict` against the number of images it scores: a 256-px RGB run's classifier on 1,000
and 10,000 images (each decoded to 192 KiB).

    nice -n 10 .venv/bin/python benchmarks/predict_memory.py 1000 10000

Makes a tiny 256-px run (3 classes, one epoch) and a folder of N 256x256 RGB PNGs (flat colour with a noise
corner, so the files stay small and the decoded arrays do not), then runs `python -m core predict` in a fresh
process per N and prints its peak resident memory (ru_maxrss of that child) and wall time. The images are scored a
chunk at a time (core.data.iter_images): the peak should not grow with N. Before chunking, 10,000 images peaked at
4,429 MB (issue 37).
"""
from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def make_images(folder: Path, n: int, size: int = 256) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        a = np.full((size, size, 3), (i * 7) % 256, np.uint8)
        a[:16, :16] = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
        Image.fromarray(a).save(folder / f"img_{i:06d}.png")


def make_run(tmp: Path) -> Path:
    sys.path.insert(0, str(REPO))
    from core.experiment import run
    rng = np.random.default_rng(1)
    data = tmp / "data"
    for c in ("normal", "crack", "spot"):
        (data / c).mkdir(parents=True)
        for i in range(8):
            Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(data / c / f"{c}_{i}.png")
    run({"data": str(data), "methods": ["random_oversample"], "seeds": [0], "ratio": None, "image_size": 256,
         "test_per_class": 2, "quality": False, "device": "cpu",
         "overrides": {"classifier": {"epochs": 1, "width": 4}}}, tmp / "run")
    return tmp / "run"


def peak_of_predict(run_dir: Path, images: Path, out: Path) -> tuple[float, float]:
    """(peak RSS in MB, seconds) of `core predict` in a fresh process."""
    code = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)")
    t0 = time.time()
    res = subprocess.run([sys.executable, "-c", code, sys.executable, "-m", "core", "predict", str(run_dir),
                          "--model", "random_oversample", "--seed", "0", str(images), "--out", str(out),
                          "--device", "cpu"], cwd=REPO, capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(REPO)))
    if res.returncode != 0:
        raise SystemExit(res.stderr)
    return int(res.stdout.split()[-1]) / 1024, time.time() - t0


def main(counts: list[int]) -> None:
    print(f"load: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        run_dir = make_run(tmp)
        made = 0
        for n in sorted(counts):
            make_images(tmp / "images", n) if made == 0 else _add(tmp / "images", made, n)
            made = n
            peak, seconds = peak_of_predict(run_dir, tmp / "images", tmp / f"scores_{n}.csv")
            rows = sum(1 for _ in open(tmp / f"scores_{n}.csv")) - 1
            print(f"{n:>7,} images: peak {peak:,.0f} MB, {seconds:.1f} s, {rows:,} rows")
    print(f"load: {os.getloadavg()}")


def _add(folder: Path, have: int, want: int) -> None:
    """Images have..want-1 (the same as a fresh folder of `want` would hold)."""
    rng = np.random.default_rng(0)
    for i in range(want):
        corner = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
        if i >= have:
            a = np.full((256, 256, 3), (i * 7) % 256, np.uint8)
            a[:16, :16] = corner
            Image.fromarray(a).save(folder / f"img_{i:06d}.png")


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    main([int(a) for a in sys.argv[1:]] or [1000, 10000])
