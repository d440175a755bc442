"""Hand check of ``lcodec eval``'s JPEG rows with plain Pillow and numpy (nothing from lcodec).

``python scripts/jpeg_hand_check.py out/eval-kodak/per_image.csv [--kodak DIR]`` encodes a
few Kodak images at a few qualities (4:2:0, ``optimize=True``, as the eval's JPEG baseline),
computes bytes and RGB PSNR independently and prints them beside the eval's rows.
"""

from __future__ import annotations

import argparse
import csv
import io
from pathlib import Path

import numpy as np
from PIL import Image

IMAGES = ("kodim01.png", "kodim08.png", "kodim15.png", "kodim23.png")
QUALITIES = (10, 30, 50, 80, 95)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("per_image_csv", type=Path)
    ap.add_argument("--kodak", type=Path, default=Path("../shared/data/kodak"))
    args = ap.parse_args()
    with args.per_image_csv.open() as f:
        rows = {(r["image"], round(float(r["setting"]))): r
                for r in csv.DictReader(f) if r["codec"] == "jpeg"}
    print("| image | q | bytes (hand) | bytes (eval) | bpp (hand) | PSNR hand | PSNR eval |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in IMAGES:
        img = Image.open(args.kodak / name).convert("RGB")
        ref = np.asarray(img, dtype=np.float64)
        for q in QUALITIES:
            buf = io.BytesIO()
            img.save(buf, "JPEG", quality=q, subsampling="4:2:0", optimize=True)
            data = buf.getvalue()
            back = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float64)
            psnr = 10 * np.log10(255**2 / np.mean((ref - back) ** 2))
            bpp = len(data) * 8 / (ref.shape[0] * ref.shape[1])
            r = rows.get((name, q))
            eval_bytes = r["bytes"] if r else "–"
            eval_psnr = f"{float(r['psnr']):.3f}" if r else "–"
            print(f"| {name} | {q} | {len(data)} | {eval_bytes} | {bpp:.4f} | {psnr:.3f} | "
                  f"{eval_psnr} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
