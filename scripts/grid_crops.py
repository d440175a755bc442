"""Side-by-side crops for the code-grid promise (issue 11), with the numbers behind them.

``python scripts/grid_crops.py ../shared/data/kodak/kodim23.png docs/img/grid-kodim23.png``
encodes the image with ``--bpp 0.1`` and ``--bpp 0.25`` (the default model, as
``tests/test_picture_promises.py`` does), with the first network (``lite-mse``) at 0.25 bpp for
the stripes it painted, and with JPEG at the largest quality not bigger than the 0.25 file. It
prints each file's bpp, PSNR and period-8 / period-16 peak ratios of the *whole* decoded image
(rows, columns; the test's limit is 1.5) and saves the centre 256² crops side by side.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
from demo_compare import largest_within
from PIL import Image

from lcodec import api
from lcodec.evaluate.artefacts import grid_peak_ratio
from lcodec.evaluate.baselines import BASELINES
from lcodec.evaluate.images import centre_crop, load_source
from lcodec.evaluate.report import contact_sheet
from lcodec.metrics import psnr


def describe(name: str, rgb: np.ndarray, dec: np.ndarray, nbytes: int) -> str:
    """Print one Markdown row for a decoded image and return its tile caption."""
    bpp = nbytes * 8 / (rgb.shape[0] * rgb.shape[1])
    p8, p16 = grid_peak_ratio(dec, 8), grid_peak_ratio(dec, 16)
    print(f"| {name} | {bpp:.4f} | {psnr(rgb, dec):.2f} | {p8[0]:.2f} / {p8[1]:.2f} "
          f"| {p16[0]:.2f} / {p16[1]:.2f} |")
    return f"{name}\n{bpp:.3f} bpp, {psnr(rgb, dec):.2f} dB, period 8: {max(p8):.2f}"


def main(argv: list[str]) -> int:
    src, out = Path(argv[0]), Path(argv[1])
    rgb = load_source(src).rgb
    print("| file | bpp | PSNR dB | period 8 (rows / cols) | period 16 (rows / cols) |")
    print("|---|---:|---:|---:|---:|")
    o8, o16 = grid_peak_ratio(rgb, 8), grid_peak_ratio(rgb, 16)
    print(f"| original | | | {o8[0]:.2f} / {o8[1]:.2f} | {o16[0]:.2f} / {o16[1]:.2f} |")
    tiles = [("original", centre_crop(rgb))]
    files = [("lite-mse (v1), --bpp 0.25", dict(bpp=0.25, model="lite-mse-fcf1326f70791116")),
             ("v2-mse, --bpp 0.1", dict(bpp=0.1)), ("v2-mse, --bpp 0.25", dict(bpp=0.25))]
    for name, options in files:
        data = api.encode(rgb, **options)
        dec = api.decode_array(data)
        tiles.append((describe(name, rgb, dec, len(data)), centre_crop(dec)))
    fit = largest_within(BASELINES["jpeg"], rgb, len(data))
    assert fit is not None, "no JPEG quality fits the 0.25 bpp file"
    quality, jpeg = fit
    dec = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))
    tiles.append((describe(f"JPEG q{quality:g}, same size", rgb, dec, len(jpeg)), centre_crop(dec)))
    out.parent.mkdir(parents=True, exist_ok=True)
    contact_sheet(tiles).save(out, optimize=True)
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
