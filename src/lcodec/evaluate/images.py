"""The evaluation's view of an image: loaded as the codecs see it, and its centre crop."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lcodec.imageio import SourceImage, load_image

CROP_SIZE = 256  # side of the side-by-side crops in the report


def load_source(path: Path) -> SourceImage:
    """An evaluation image: alpha dropped and metadata stripped, as every codec gets it."""
    return load_image(path, str(path), alpha="drop", strip=True)


def centre_crop(rgb: np.ndarray) -> np.ndarray:
    """The central CROP_SIZE² pixels (or less of a smaller image), contiguous."""
    h, w = rgb.shape[:2]
    ch, cw = min(CROP_SIZE, h), min(CROP_SIZE, w)
    i, j = (h - ch) // 2, (w - cw) // 2
    return np.ascontiguousarray(rgb[i:i + ch, j:j + cw])
