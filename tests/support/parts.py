"""Images of parts photographed several times under other lights (for the grouping tests and the pages)."""
from __future__ import annotations

import numpy as np

from core.imageset import ImageSet


def texture(rng: np.random.Generator, side: int = 64) -> np.ndarray:
    """A part: smoothed noise with a few dark marks (its own, as a tile's grinding marks and pits)."""
    from core.data.groups import _blur
    a = _blur(rng.normal(0, 1, (1, side, side)).astype(np.float32), 1.2)[0]
    a = a / a.std()
    for _ in range(4):
        y, x = rng.integers(4, side - 4, 2)
        a[y - 2:y + 2, x - 2:x + 2] -= 3
    return a


def relit(a: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The same part under another light: a smooth illumination field, another gain and offset, a 1 px shift,
    sensor noise."""
    side = a.shape[0]
    yy, xx = np.mgrid[0:side, 0:side] / side
    field = 1 + rng.uniform(-0.25, 0.25) * xx + rng.uniform(-0.25, 0.25) * yy + rng.uniform(0, 0.3) * np.exp(
        -((xx - rng.uniform(0.2, 0.8)) ** 2 + (yy - rng.uniform(0.2, 0.8)) ** 2) / 0.05)
    b = np.roll(a, tuple(rng.integers(-1, 2, 2)), axis=(0, 1))
    img = (rng.uniform(90, 140) + rng.uniform(15, 30) * b) * field + rng.normal(0, 2, a.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def parts(n_parts: dict[str, int], shots: int = 5, seed: int = 0) -> tuple[ImageSet, list[str]]:
    """Per class, n parts each photographed `shots` times under other lights; the true part of each image."""
    rng = np.random.default_rng(seed)
    images, labels, sources, truth = [], [], [], []
    for ci, (c, n) in enumerate(n_parts.items()):
        for p in range(n):
            base = texture(rng)
            for k in range(shots):
                images.append(relit(base, rng))
                labels.append(ci)
                sources.append(f"{c}/part{p:03d}_light{k}.png")
                truth.append(f"{c}:{p}")
    return ImageSet(np.stack(images)[..., None], np.array(labels), list(n_parts), sources), truth


def write_parts_zip(path, n_parts: dict[str, int], shots: int = 4, seed: int = 0):
    """The parts as an uploadable zip `tiles/<class>/<i>.png` (names that say nothing of the part)."""
    import io
    import zipfile

    from PIL import Image
    ds, _ = parts(n_parts, shots, seed)
    with zipfile.ZipFile(path, "w") as zf:
        for i, (img, src) in enumerate(zip(ds.images, ds.sources)):
            buf = io.BytesIO()
            Image.fromarray(img[..., 0]).save(buf, format="PNG")
            zf.writestr(f"tiles/{src.split('/')[0]}/{i:04d}.png", buf.getvalue())
    return path
