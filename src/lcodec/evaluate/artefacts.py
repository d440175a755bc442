"""Artefacts measured in the spectrum of the decoded luma.

Code-grid stripes: a decoder that paints a fixed pattern on its code grid shows up as a peak
in the row and column spectra at period ``stride`` (and its harmonics).
:func:`grid_peak_ratio` compares the magnitude at one period with the mean of its four
neighbouring frequencies; a natural image gives about 1.0.

Invented lattices: a decoder that cannot afford a dense texture (a far picket fence, grass)
may paint a diagonal checker lattice in its place. :func:`diagonal_energy_ratio` compares
the decoded region's energy at high frequencies in both directions at once (the diagonal
corners of the spectrum) with the original's: a codec that blurs what it cannot afford gives
less than 1, one that invents a lattice more.
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


def diagonal_energy_ratio(original: np.ndarray, decoded: np.ndarray,
                          box: tuple[int, int, int, int], cutoff: float = 0.12) -> float:
    """Decoded over original luma energy at frequencies of at least ``cutoff`` cycles/px
    along both axes, in ``box`` (top, bottom, left, right) of two (H, W, 3) uint8 images
    (mean removed, Hann-windowed)."""
    top, bottom, left, right = box
    return _diagonal_energy(luma(decoded[top:bottom, left:right]), cutoff) / max(
        _diagonal_energy(luma(original[top:bottom, left:right]), cutoff), 1e-12)


def _diagonal_energy(y: np.ndarray, cutoff: float) -> float:
    h, w = y.shape
    spec = np.abs(np.fft.fft2((y - y.mean()) * np.outer(np.hanning(h), np.hanning(w)))) ** 2
    fy = np.abs(np.fft.fftfreq(h))[:, None]
    fx = np.abs(np.fft.fftfreq(w))[None, :]
    return float(spec[(fy >= cutoff) & (fx >= cutoff)].sum())
