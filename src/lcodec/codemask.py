"""The code mask of eq. 4 on numpy arrays: which code channels a position's importance level
keeps (the entropy coders' and the exact decoders' view; ``quant.code_mask`` is the torch one)."""

from __future__ import annotations

import numpy as np


def code_mask_np(qi: np.ndarray, channels: int, levels: int) -> np.ndarray:
    """m_k = [k < n·QI/L] in integers (k·L < n·QI) for an (h, w) QI map: (channels, h, w)
    bool."""
    k = np.arange(channels).reshape(channels, 1, 1)
    return k * levels < channels * qi[None].astype(np.int64)
