"""Synthesis FLOAT: the float decoder networks (every model has them; files of format 1.0).

Pixels may differ by rounding between machines. Large images decode in windows of
``TILE_PIXELS``² (1024²) with a halo of ``HALO_PIXELS`` (128) on every side, which covers
the decoders' receptive field, so the result equals a whole-image pass up to float rounding.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np
import torch

from lcodec.color import ycbcr_to_rgb
from lcodec.container import Synthesis
from lcodec.nets.codes import Encoded
from lcodec.synthesis.registry import register_synthesis

if TYPE_CHECKING:
    from lcodec.models import LoadedModel
    from lcodec.synthesis.registry import CodeWindow

TILE_PIXELS = 1024
HALO_PIXELS = 128


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """(1, C, H, W) float -> (H, W, C) uint8, clamped, rounded half up."""
    x = torch.clamp(x[0], 0.0, 1.0).permute(1, 2, 0)
    return torch.floor(x * 255.0 + 0.5).to(torch.uint8).cpu().numpy()


@register_synthesis(Synthesis.FLOAT)
class FloatSynthesis:
    """FLOAT for the codec: the model's float decoder networks, then :func:`to_uint8`."""

    exact = False

    def available(self, model: LoadedModel) -> bool:
        return True

    def encodes(self, model: LoadedModel) -> bool:
        return True

    def window(self, stride: int) -> tuple[int, int]:
        return max(1, TILE_PIXELS // stride), max(1, HALO_PIXELS // stride)

    def check(self, model: LoadedModel, grids: bytes) -> None:
        return None

    @torch.no_grad()
    def pixels(self, model: LoadedModel, state: None, codes: CodeWindow, gray: bool
               ) -> np.ndarray:
        rec = model.net.decompress(Encoded.from_window(codes, model.device), luma_only=gray)
        return to_uint8(rec.expand(-1, 3, -1, -1) if gray else ycbcr_to_rgb(rec))

    def grids_size(self, model: LoadedModel) -> int:
        return 0

    def grids(self, model: LoadedModel, windows: Iterable[Encoded]) -> bytes:
        return b""
