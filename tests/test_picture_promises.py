"""What the default model must deliver about its pictures: no code-grid stripes at low
rates, flat colours that come back as the same colour, and no lattice painted over a dense
texture.

Flat colours hold since format 1.3: the networks alone leave them ΔE00 1.1–1.3 off at
0.25 bpp (one coherent quantization error over the whole image), and the encoder's correction
layer (``lcodec.correction``) takes them to 0.3–0.9 (docs/results.md, "Flat colours").
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import DATA

from lcodec import api
from lcodec.evaluate.artefacts import diagonal_energy_ratio, grid_peak_ratio
from lcodec.evaluate.quality import delta_e00
from lcodec.imageio import load_image

KODAK23 = DATA.parents[2] / "shared" / "data" / "kodak" / "kodim23.png"
KODAK19 = KODAK23.with_name("kodim19.png")
FENCE = (455, 495, 330, 440)  # kodim19's near white picket fence (top, bottom, left, right)


def test_the_grid_measure_finds_stripes_and_passes_a_photo(crop_rgb) -> None:
    assert max(grid_peak_ratio(crop_rgb, 8)) < 1.5
    striped = crop_rgb.astype(np.int16)
    striped[::8] += 40  # a bright row every 8 px: horizontal stripes
    striped = np.clip(striped, 0, 255).astype(np.uint8)
    rows, cols = grid_peak_ratio(striped, 8)
    assert cols > 3 and rows < 1.5


@pytest.mark.parametrize("bpp", [0.1, 0.25])
def test_low_rates_paint_no_code_grid(bpp) -> None:
    if not KODAK23.exists():
        pytest.skip("needs ../shared/data/kodak/kodim23.png beside the checkout")
    rgb = load_image(KODAK23, "kodim23").rgb
    dec = api.decode_array(api.encode(rgb, bpp=bpp))
    for period in (8, 16):
        rows, cols = grid_peak_ratio(dec, period)
        assert rows <= 1.5 and cols <= 1.5, (period, rows, cols)


@pytest.mark.parametrize("colour", [(10, 200, 30), (128, 128, 128), (250, 250, 250)])
def test_flat_colours_decode_as_the_same_colour(colour) -> None:
    rgb = np.empty((256, 256, 3), np.uint8)
    rgb[:] = colour
    dec = api.decode_array(api.encode(rgb, bpp=0.25))
    assert delta_e00(rgb, dec) <= 1.0, dec.reshape(-1, 3).mean(0)


def test_the_lattice_measure_passes_a_blur_and_finds_a_checker(crop_rgb) -> None:
    box = (0, crop_rgb.shape[0], 0, crop_rgb.shape[1])
    blurred = crop_rgb.astype(np.float64)
    blurred = (blurred + np.roll(blurred, 1, 0) + np.roll(blurred, 1, 1)) / 3
    assert diagonal_energy_ratio(crop_rgb, blurred.astype(np.uint8), box) < 1.0
    yy, xx = np.mgrid[: crop_rgb.shape[0], : crop_rgb.shape[1]]
    checker = crop_rgb.astype(np.int16) + (24 * (((yy + xx) // 2) % 2))[..., None]
    assert diagonal_energy_ratio(crop_rgb, np.clip(checker, 0, 255).astype(np.uint8), box) > 2


@pytest.mark.xfail(strict=True, reason="the default model paints a diagonal lattice over "
                   "kodim19's fence: 0.96x the photo's diagonal energy at 0.25 bpp, 3.7x at 0.5")
def test_a_dense_fence_is_not_replaced_by_a_lattice() -> None:
    if not KODAK19.exists():
        pytest.skip("needs ../shared/data/kodak/kodim19.png beside the checkout")
    rgb = load_image(KODAK19, "kodim19").rgb
    ratios = [diagonal_energy_ratio(rgb, api.decode_array(api.encode(rgb, bpp=b)), FENCE)
              for b in (0.25, 0.5)]
    assert max(ratios) <= 1.0, ratios
