"""The discrete codes of an image batch: what the analysis quantizes to, the entropy coder
codes and every synthesis decodes (both network generations)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from lcodec.synthesis.registry import CodeWindow


@dataclass
class Encoded:
    """Discrete codes of one image batch, all int64.

    qi: (N, 1, h, w) importance levels 0..L-1.
    luma: (N, n_luma, h, w) level indices 0..T-1 (meaningful where the mask is set).
    chroma: (N, n_chroma, h, w) likewise.
    knob: the rate knob the codes were made at (``cwic2`` decoders need it; ``cwic`` ignores it).
    """

    qi: torch.Tensor
    luma: torch.Tensor
    chroma: torch.Tensor
    knob: float = 0.0

    @classmethod
    def from_window(cls, win: CodeWindow, device: torch.device | str = "cpu") -> Encoded:
        """A window's numpy symbols as a batch of one (int64 tensors on ``device``)."""
        def batch(a) -> torch.Tensor:
            return torch.from_numpy(a.astype("int64", copy=False))[None].to(device)

        return cls(batch(win.qi[None]), batch(win.luma), batch(win.chroma), knob=win.knob)
