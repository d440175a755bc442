"""The Python API: ``encode(image, bpp=…) -> bytes`` and ``decode(bytes) -> PIL.Image``.

Models are loaded once per process and reused.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from lcodec import codec, container, models
from lcodec.errors import LcodecError
from lcodec.evaluate.metrics import psnr  # noqa: F401  (re-exported for API users)
from lcodec.imageio import load_rgb
from lcodec.ratecontrol import fit_budget

DEFAULT_KNOB = 0.0


@dataclass
class EncodeResult:
    data: bytes
    width: int
    height: int
    knob: float
    model: str

    @property
    def bpp(self) -> float:
        return len(self.data) * 8 / (self.width * self.height)


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise LcodecError("--device cuda was asked for, but no CUDA device is available")
    if device not in ("cpu", "cuda"):
        raise LcodecError(f"unknown device {device!r}; use auto, cpu or cuda")
    return device


def _as_rgb(image: Any) -> np.ndarray:
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise LcodecError("arrays must be (H, W, 3) uint8 RGB")
        return image
    if isinstance(image, Image.Image):
        if "A" in image.getbands():
            raise LcodecError("the image has an alpha channel, which lcodec cannot store yet")
        return np.asarray(image.convert("RGB"))
    if isinstance(image, str | Path):
        return load_rgb(image, str(image))
    raise LcodecError(f"cannot encode an object of type {type(image).__name__}")


def encode_with_stats(image: Any, *, bpp: float | None = None, size: int | None = None,
                      knob: float | None = None, model: str | None = None,
                      device: str = "cpu") -> EncodeResult:
    """Encode and report what was achieved. At most one of ``bpp``, ``size``, ``knob``.

    ``bpp``/``size``: the largest file not above the target (bisection on real bytes).
    ``knob``: a fixed importance-map offset in [-1, 1], no search. Default: knob 0.
    """
    if sum(v is not None for v in (bpp, size, knob)) > 1:
        raise LcodecError("give at most one of bpp, size and knob")
    rgb = _as_rgb(image)
    h, w = rgb.shape[:2]
    if h < 1 or w < 1:
        raise LcodecError("the image is empty")
    info = models.find(model)
    loaded = models.load(info, resolve_device(device))
    analysis = codec.analyse(loaded, rgb)
    if bpp is not None or size is not None:
        if bpp is not None and not (math.isfinite(bpp) and bpp > 0):
            raise LcodecError(f"bpp must be a positive number, not {bpp}")
        budget = int(size) if size is not None else math.floor(bpp * w * h / 8)
        res = fit_budget(analysis.encode, budget)
        return EncodeResult(res.data, w, h, res.knob, info.name)
    k = DEFAULT_KNOB if knob is None else knob
    if not (math.isfinite(k) and codec.KNOB_MIN <= k <= codec.KNOB_MAX):
        raise LcodecError(f"knob must be in [{codec.KNOB_MIN}, {codec.KNOB_MAX}], not {k}")
    return EncodeResult(analysis.encode(k), w, h, round(k, 3), info.name)


def encode(image: Any, *, bpp: float | None = None, size: int | None = None,
           knob: float | None = None, model: str | None = None, device: str = "cpu") -> bytes:
    """Encode an image (path, PIL image or (H, W, 3) uint8 array) to `.lic` bytes."""
    return encode_with_stats(image, bpp=bpp, size=size, knob=knob, model=model,
                             device=device).data


def decode_array(data: bytes, device: str = "cpu") -> np.ndarray:
    """Decode `.lic` bytes to an (H, W, 3) uint8 array."""
    lic = container.unpack(data)
    info = models.find(model_id=lic.header.model_id)
    loaded = models.load(info, resolve_device(device))
    codes = codec.decode_codes(loaded, lic)
    return codec.reconstruct(loaded, codes, lic.header.width, lic.header.height)


def decode(data: bytes, device: str = "cpu") -> Image.Image:
    """Decode `.lic` bytes to a PIL RGB image."""
    return Image.fromarray(decode_array(data, device), "RGB")
