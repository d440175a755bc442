"""sRGB colorimetry shared by evaluation (ΔE00) and training (differentiable CIELAB), so both
measure colour the same way."""

from __future__ import annotations

import numpy as np

# sRGB primaries, D65 white (IEC 61966-2-1), linear RGB -> XYZ with Y of white = 1.
RGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375],
                        [0.2126729, 0.7151522, 0.0721750],
                        [0.0193339, 0.1191920, 0.9503041]])
D65 = RGB_TO_XYZ.sum(axis=1)  # (0.95047, 1.0, 1.08883)
