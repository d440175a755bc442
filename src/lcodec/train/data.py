"""Training images: loaded once into memory, random crops and flips, a held-out split."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def is_validation(path: Path, fraction: float) -> bool:
    """Stable split by a hash of the file name (independent of folder order)."""
    return (zlib.crc32(path.name.encode()) % 10_000) < fraction * 10_000


def load_rgb(path: Path, min_side: int) -> np.ndarray | None:
    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB"))
    return arr if min(arr.shape[:2]) >= min_side else None


class CropSampler:
    """Random ``size``×``size`` crops with horizontal flips from images held as uint8 arrays."""

    def __init__(self, images: list[np.ndarray], size: int, seed: int) -> None:
        if not images:
            raise ValueError("no training images at least as large as the crop size")
        self.images = images
        self.size = size
        self.rng = np.random.default_rng(seed)

    def batch(self, n: int) -> torch.Tensor:
        out = np.empty((n, self.size, self.size, 3), dtype=np.uint8)
        for b in range(n):
            img = self.images[self.rng.integers(len(self.images))]
            h, w = img.shape[:2]
            i = self.rng.integers(h - self.size + 1)
            j = self.rng.integers(w - self.size + 1)
            crop = img[i : i + self.size, j : j + self.size]
            out[b] = crop[:, ::-1] if self.rng.random() < 0.5 else crop
        return torch.from_numpy(out).permute(0, 3, 1, 2).float() / 255.0

    def state(self) -> dict:
        return self.rng.bit_generator.state

    def set_state(self, state: dict) -> None:
        self.rng.bit_generator.state = state


def centre_crops(images: list[np.ndarray], size: int) -> torch.Tensor:
    """Deterministic validation batch: the centre ``size``×``size`` of each image."""
    crops = []
    for img in images:
        h, w = img.shape[:2]
        i, j = (h - size) // 2, (w - size) // 2
        crops.append(img[i : i + size, j : j + size])
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 255.0
