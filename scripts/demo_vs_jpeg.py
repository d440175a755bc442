"""``make demo``'s last line: lcodec's PSNR next to JPEG's at the same file size.

``python scripts/demo_vs_jpeg.py ORIGINAL FILE.lic DECODED.png`` finds the highest JPEG quality
(Pillow, 4:2:0, ``optimize=True``, as ``lcodec eval``'s baseline) whose file is not larger
than the `.lic` file and prints both sizes and RGB PSNRs.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from lcodec.metrics import psnr


def jpeg_at_most(img: Image.Image, budget: int) -> tuple[int, bytes] | None:
    """(quality, bytes) of the best JPEG quality that fits in ``budget`` bytes, or None."""
    best = None
    lo, hi = 1, 100
    while lo <= hi:  # JPEG size grows with quality: bisect for the largest that fits
        q = (lo + hi) // 2
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=q, subsampling="4:2:0", optimize=True)
        if buf.tell() <= budget:
            best, lo = (q, buf.getvalue()), q + 1
        else:
            hi = q - 1
    return best


def main(argv: list[str]) -> int:
    original, lic, decoded = (Path(a) for a in argv)
    img = Image.open(original).convert("RGB")
    ref = np.asarray(img)
    size = lic.stat().st_size
    bpp = size * 8 / (img.width * img.height)
    ours = psnr(ref, np.asarray(Image.open(decoded).convert("RGB")))
    print(f"lcodec: {size} bytes ({bpp:.3f} bpp), PSNR {ours:.2f} dB")
    found = jpeg_at_most(img, size)
    if found is None:
        print(f"JPEG:   no quality fits in {size} bytes")
        return 0
    q, data = found
    back = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    print(f"JPEG:   {len(data)} bytes ({len(data) * 8 / (img.width * img.height):.3f} bpp, "
          f"quality {q}), PSNR {psnr(ref, back):.2f} dB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
