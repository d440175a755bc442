"""The discrete codes of an image batch: what the analysis quantizes to, the entropy coder
codes and every synthesis decodes (both network generations)."""

from __future__ import annotations

from dataclasses import dataclass

import torch


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
