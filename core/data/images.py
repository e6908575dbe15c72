"""Decoding one image file into a normalised square array, with the decompression-bomb and memory guards.
"""
from __future__ import annotations

import contextlib
import hashlib
import warnings
from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image, UnidentifiedImageError

from .archive import Limits, human_size

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
MIN_SIDE = 8
REASON_NOT_IMAGE = "not an image (Pillow cannot identify it) despite its extension"
REASON_NO_MEMORY = ("too large to decode in the memory this server gives a dataset reader; downscale the image "
                    "and upload it again")


# --------------------------------------------------------------------------------------------------
# reading images
# --------------------------------------------------------------------------------------------------
_GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "F"})


def _is_gray_mode(mode: str) -> bool:
    return mode in _GRAY_MODES or mode.startswith("I;16")


@contextlib.contextmanager
def pillow_guard(max_pixels: int) -> Iterator[None]:
    """Pillow's decompression-bomb limit set from `Limits`, and its warning raised as an error."""
    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = max_pixels
    try:
        with warnings.catch_warnings():
            # Pillow warns (UserWarning) about damaged metadata it works around; the file then loads or is
            # skipped with a reason, so the warning would only be noise in logs.
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = old


_STRIP = 256   # rows converted at a time: float copies stay a strip, never the whole image


def _high_depth_to_l(im: Image.Image) -> Image.Image:
    """16/32-bit integer or float grayscale -> 8-bit L, scaled (never clipped), a strip of rows at a time."""
    a = np.asarray(im)
    out = np.empty(a.shape, np.uint8)
    strips = [slice(y, y + _STRIP) for y in range(0, a.shape[0], _STRIP)]
    if im.mode == "F":
        def clean(part: np.ndarray) -> np.ndarray:
            return np.nan_to_num(part.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        ranges = [(float(c.min()), float(c.max())) for c in (clean(a[r]) for r in strips) if c.size]
        lo, hi = (min(r[0] for r in ranges), max(r[1] for r in ranges)) if ranges else (0.0, 0.0)
    else:
        lo, hi = int(a.min()), int(a.max())
    for rows in strips:
        if im.mode == "F":
            part = clean(a[rows])
            if lo >= 0 and hi <= 1:
                part = part * 255.0
            elif not (lo >= 0 and hi <= 255):
                part = (part - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(part)
        else:
            part = a[rows].astype(np.int64)
            if lo >= 0 and hi <= 65535:
                part = part / 257.0  # 65535 -> 255 exactly, proportional in between
            else:
                part = (part - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros(part.shape)
        out[rows] = np.clip(np.rint(part), 0, 255)
    return Image.fromarray(out, "L")


def _on_white(im: Image.Image, mode: str) -> Image.Image:
    """Composite an image with alpha (mode LA or RGBA) over white, a strip of rows at a time."""
    a = np.asarray(im.convert(mode))
    out = np.empty(a.shape[:2] + (a.shape[2] - 1,), np.uint8)
    for y in range(0, a.shape[0], _STRIP):
        part = a[y:y + _STRIP].astype(np.float32)
        alpha = part[..., -1:] / 255.0
        out[y:y + _STRIP] = np.rint(part[..., :-1] * alpha + 255.0 * (1.0 - alpha))
    return Image.fromarray(out[..., 0] if mode == "LA" else out, "L" if mode == "LA" else "RGB")


def _normalise(im: Image.Image, flags: dict[str, int]) -> tuple[Image.Image, bool]:
    """Any Pillow mode -> (L or RGB image, was stored grayscale). Counts what it did in `flags`."""
    mode = im.mode
    gray = _is_gray_mode(mode)
    if mode == "1":
        return im.convert("L"), True
    if mode == "L":
        return im, True
    if mode in ("I", "F") or mode.startswith("I;"):
        flags["high_depth"] += 1
        return _high_depth_to_l(im), True
    if mode in ("LA", "La"):
        flags["alpha"] += 1
        return _on_white(im, "LA"), True
    if mode in ("P", "PA"):
        if mode == "PA" or "transparency" in im.info:
            im = im.convert("RGBA")
        else:
            return im.convert("RGB"), gray
    if im.mode in ("RGBA", "RGBa"):
        flags["alpha"] += 1
        return _on_white(im, "RGBA"), gray
    if im.mode == "RGB":
        return im, gray
    return im.convert("RGB"), gray  # CMYK, YCbCr, LAB, HSV, RGBX


# EXIF orientation -> the transpose that makes the image upright (what ImageOps.exif_transpose applies); used
# on the already reduced image, so a rotated photo never costs a full-resolution copy.
_ORIENT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
           5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
           8: Image.Transpose.ROTATE_90}


def _orientation(im: Image.Image) -> int:
    """The EXIF orientation (1 = as stored); a damaged EXIF block leaves the image as stored rather than losing it."""
    try:
        value = im.getexif().get(0x0112, 1)
    except Exception:  # noqa: BLE001  (EXIF parsers raise many types on damaged metadata)
        return 1
    return value if value in _ORIENT else 1


# Bytes per pixel Pillow holds for a mode (every mode of 2 to 4 bands takes 4), and the conversion a mode needs
# before it can be reduced (Image.reduce has no 1-bit, palette or 16-bit support).
def _bytes_per_pixel(mode: str) -> int:
    return 1 if mode in ("1", "L", "P") else 2 if mode.startswith("I;16") else 4


def _reducible(im: Image.Image) -> Image.Image:
    if im.mode == "1":
        return im.convert("L")
    if im.mode.startswith("I;16"):
        return im.convert("I")
    if im.mode == "P":
        return im.convert("RGBA" if "transparency" in im.info else "RGB")
    return im


def _pixel_hash(im: Image.Image) -> str:
    """A hash of the decoded pixels (mode, size, bytes), read a strip of rows at a time."""
    h = hashlib.blake2b(f"{im.mode}{im.size}".encode(), digest_size=16)
    for y in range(0, im.height, _STRIP):
        h.update(im.crop((0, y, im.width, min(im.height, y + _STRIP))).tobytes())
    return h.hexdigest()


def read_image(path: Path, size: int, flags: dict[str, int],
                max_decode_bytes: int = Limits.max_decode_bytes) -> tuple[Image.Image, bool, str]:
    """Decode, normalise and resize one file. Returns (resized L/RGB image, grayscale?, pixel hash).

    Memory stays near the decoded image itself: a JPEG is decoded at a reduced DCT scale (`draft`), any
    other image is box-reduced by a whole factor (`reduce`) to no less than twice the target before the
    float work of normalising; a decode that would need more than `max_decode_bytes` is refused.
    Raises `Unusable` with the reason when the file cannot be used.
    """
    try:
        with Image.open(path) as im:
            w, h = im.size
            limit = Image.MAX_IMAGE_PIXELS
            if limit and w * h > limit:
                raise Unusable(_bomb_reason(w, h, limit))
            if min(w, h) < MIN_SIDE:
                raise Unusable(f"too small: {w}x{h} px (at least {MIN_SIDE} px on a side)")
            if im.format == "JPEG":
                im.draft(im.mode, (size, size))  # decode at a reduced DCT scale, never below `size`
            pixels = im.width * im.height
            need = pixels * (_bytes_per_pixel(im.mode) + (4 if im.mode in ("P", "1") or im.mode.startswith("I;16")
                                                          else 0))
            if need > max_decode_bytes:
                raise Unusable(f"too large to decode: {w}x{h} px in mode {im.mode} needs {human_size(need)} of memory, "
                            f"more than the limit of {human_size(max_decode_bytes)}; downscale the image and upload "
                            "it again")
            im.load()
            digest = _pixel_hash(im)
            orientation = _orientation(im)
            fx, fy = max(1, im.width // (2 * size)), max(1, im.height // (2 * size))
            if fx > 1 or fy > 1:
                im = _reducible(im).reduce((fx, fy))
            if orientation != 1:
                im = im.transpose(_ORIENT[orientation])
                flags["rotated"] += 1
            norm, gray = _normalise(im, flags)
            shrink = norm.width > size or norm.height > size
            resample = Image.Resampling.LANCZOS if shrink else Image.Resampling.BILINEAR
            return norm.resize((size, size), resample), gray, digest
    except Unusable:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise Unusable(_bomb_reason_of(path, err)) from None
    except UnidentifiedImageError:
        raise Unusable(REASON_NOT_IMAGE) from None
    except MemoryError:
        raise Unusable(REASON_NO_MEMORY) from None
    except Exception as err:  # noqa: BLE001
        if isinstance(err, OSError) and err.errno is not None:  # permissions, I/O: not the file's content
            raise Unusable(f"cannot read the file ({err.strerror or err})") from None
        # Decoders fail on damaged files with many exception types (OSError for truncation, SyntaxError
        # for broken PNG chunks, ValueError, struct.error, EOFError...). Any failure to decode one user
        # file means that file is unusable, not that loading should stop.
        raise Unusable(f"truncated or corrupt image ({type(err).__name__}: {err})") from None


def _bomb_reason(w: int, h: int, limit: int) -> str:
    return (f"decompression bomb: {w}x{h} = {w * h} pixels is over the limit of {limit}; downscale the image "
            "and upload it again")


def _bomb_reason_of(path: Path, err: BaseException) -> str:
    """The same reason when Pillow's own guard stopped `Image.open`: its message has no size and no
    remedy, so read the size again from the header alone (no pixel is decoded with the guard off)."""
    limit = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = None
        with Image.open(path) as im:
            w, h = im.size
    except Exception:  # noqa: BLE001  (the header was readable a moment ago; keep Pillow's words if not)
        return f"decompression bomb: {err}"
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    return _bomb_reason(w, h, limit)


class Unusable(Exception):
    """A file that cannot be used; carries the reason shown to the user."""


