"""Codes files: crops of a frozen autoencoder's code maps, the TCAE's training data.

A codes file (npz) holds ``qi`` (M, h, w), ``luma`` (M, n_y, h, w), ``chroma`` (M, n_c, h, w)
as uint8 (level indices, 0 where masked), ``image`` (M,) image index, ``knob`` (M,), ``names``
(image file names), ``levels`` (L), ``code_levels`` (T) and ``stride`` (T = 8 and stride 8 when
absent, as in files made before network v2). ``make-codes`` writes them
(:mod:`lcodec.train.tcae.make_codes`); :func:`synthetic_codes` fakes them for tests.
"""

from __future__ import annotations

import math
import zlib
from pathlib import Path

import numpy as np


def load_codes(path: Path | str) -> dict[str, np.ndarray]:
    """A codes file, or several joined (``a.npz,b.npz``: e.g. the codes of two models)."""
    parts = str(path).split(",")
    if len(parts) > 1:
        return _join([load_codes(Path(p)) for p in parts])
    with np.load(path, allow_pickle=False) as z:
        out = {k: z[k] for k in z.files}
    for key in ("qi", "luma", "chroma"):
        if key not in out:
            raise SystemExit(f"{path} lacks the array {key!r}; make it with make-codes")
    out.setdefault("levels", np.array(16))
    out.setdefault("code_levels", np.array(8))  # files from before network v2: T = 8
    out.setdefault("stride", np.array(8))
    out.setdefault("image", np.arange(len(out["qi"])))
    out.setdefault("knob", np.zeros(len(out["qi"]), np.float32))
    return out


def _join(files: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    first = files[0]
    for f in files[1:]:
        for key in ("levels", "code_levels", "stride"):
            if int(f[key]) != int(first[key]):
                raise SystemExit(f"codes files differ in {key}: {int(f[key])} vs {int(first[key])}")
    out = {k: np.concatenate([f[k] for f in files]) for k in ("qi", "luma", "chroma", "knob")}
    offsets = np.cumsum([0] + [int(f["image"].max()) + 1 for f in files[:-1]])
    out["image"] = np.concatenate([f["image"] + o for f, o in zip(files, offsets, strict=True)])
    if all("names" in f for f in files):
        out["names"] = np.concatenate([f["names"] for f in files])
    out.update({k: first[k] for k in ("levels", "code_levels", "stride")})
    return out


def pixels_per_position(codes: dict[str, np.ndarray]) -> int:
    """Image pixels per code position (the model's stride squared)."""
    return int(codes.get("stride", 8)) ** 2


def split(codes: dict[str, np.ndarray], fraction: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Train / validation crop indices, split by a hash of the image name (or index)."""
    names = codes.get("names")
    img = codes["image"]
    keys = [str(names[i]) if names is not None and len(names) > i else str(i)
            for i in range(int(img.max()) + 1 if len(img) else 0)]
    val_img = np.array([(zlib.crc32(k.encode()) % 10_000) < fraction * 10_000 for k in keys])
    is_val = val_img[img] if len(img) else np.zeros(0, bool)
    if is_val.all() or not is_val.any():  # tiny sets: hold out every 20th crop instead
        is_val = np.arange(len(img)) % 20 == 19
        if is_val.all() or not is_val.any():
            is_val = np.zeros(len(img), bool)
    return np.nonzero(~is_val)[0], np.nonzero(is_val)[0]


def _smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing of the last two axes (periodic, via FFT)."""
    h, w = x.shape[-2:]
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[None, :]
    g = np.exp(-2 * (math.pi * sigma) ** 2 * (fy**2 + fx**2))
    return np.real(np.fft.ifft2(np.fft.fft2(x) * g))


def synthetic_codes(count: int, size: int | tuple[int, int], seed: int = 0, n_luma: int = 32,
                    n_chroma: int = 8, levels: int = 16, classes: int = 8) -> dict:
    """Spatially and cross-channel correlated fake codes (development and tests only)."""
    rng = np.random.default_rng(seed)
    h, w = (size, size) if isinstance(size, int) else size

    def field(*shape: int, sigma: float) -> np.ndarray:
        f = _smooth(rng.standard_normal((*shape, h, w)), sigma)
        return f / (f.std(axis=(-2, -1), keepdims=True) + 1e-9)

    base = field(count, sigma=3.0)
    qi = np.clip(np.floor(levels / (1 + np.exp(-(1.2 * base + 0.3 * field(count, sigma=1.0)))))
                 , 0, levels - 1).astype(np.int64)

    def cuboid(n: int) -> np.ndarray:
        shared = field(count, 1, sigma=2.0)
        own = field(count, n, sigma=1.5)
        mix = 0.6 * shared + 0.5 * own + 0.3 * np.abs(base)[:, None]
        mix = mix + 0.35 * rng.standard_normal(mix.shape)
        lv = np.clip(np.floor((mix + 2.0) / 4.0 * classes), 0, classes - 1).astype(np.int64)
        k = np.arange(n).reshape(1, n, 1, 1)
        return np.where(k * levels < n * qi[:, None], lv, 0)

    return {"qi": qi.astype(np.uint8), "luma": cuboid(n_luma).astype(np.uint8),
            "chroma": cuboid(n_chroma).astype(np.uint8), "image": np.arange(count),
            "knob": np.zeros(count, np.float32), "levels": np.array(levels)}

