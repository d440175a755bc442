"""Code-grid artefacts: spectral energy of the decoded luma at the code grid's period.

A decoder that paints a fixed pattern on its code grid shows up as a peak in the row and
column spectra at period ``stride`` (and its harmonics). :func:`grid_peak_ratio` compares the
magnitude at one period with the mean of its four neighbouring frequencies; a natural image
gives about 1.0.
"""

from __future__ import annotations

import numpy as np

_LUMA = np.array([0.299, 0.587, 0.114])


def luma(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma (float64, 0..255) of an (H, W, 3) uint8 image."""
    return rgb.astype(np.float64) @ _LUMA


def _axis_ratio(y: np.ndarray, period: int) -> float:
    """Along axis 1: mean |FFT| over rows at frequency n/period vs its 4 neighbours."""
    n = y.shape[1] - y.shape[1] % period  # a whole number of periods: the peak is one bin
    spec = np.abs(np.fft.rfft(y[:, :n] - y[:, :n].mean(1, keepdims=True), axis=1)).mean(0)
    f = n // period
    neighbours = [spec[f + d] for d in (-2, -1, 1, 2) if 0 < f + d < len(spec)]
    return float(spec[f] / max(np.mean(neighbours), 1e-12))


def grid_peak_ratio(rgb: np.ndarray, period: int = 8) -> tuple[float, float]:
    """(rows, columns) ratio of the luma spectrum at ``period`` px to its neighbours.

    "rows": the spectrum along each row (vertical stripes); "columns": along each column
    (horizontal stripes).
    """
    y = luma(rgb)
    return _axis_ratio(y, period), _axis_ratio(y.T, period)
