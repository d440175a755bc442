"""The correction layer on and off at ``--bpp`` targets: achieved bpp and RGB PSNR per image.

``python scripts/correction_ab.py ../shared/data/kodak/kodim23.png … --targets 0.1,0.25,0.5,1``
prints a Markdown row per (image, target): the file without the correction layer and with it,
and the encode seconds of each.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from lcodec import api
from lcodec.imageio import load_image
from lcodec.metrics import psnr


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("images", type=Path, nargs="+")
    ap.add_argument("--targets", default="0.1,0.25,0.5,1.0")
    ap.add_argument("--model", default=None)
    args = ap.parse_args(argv)
    print("| image, target | no correction | with it |")
    print("|---|---|---|")
    for path in args.images:
        src = load_image(path, str(path), alpha="drop", strip=True)
        for t in (float(x) for x in args.targets.split(",")):
            cells = []
            for correction in (False, True):
                t0 = time.perf_counter()
                res = api.encode_with_stats(src, bpp=t, model=args.model,
                                            correction=correction)
                seconds = time.perf_counter() - t0
                dec = api.decode_array(res.data)
                cells.append(f"{res.bpp:.4f} bpp, {psnr(src.rgb, dec):.2f} dB, {seconds:.1f} s")
            print(f"| {path.stem}, {t} | {cells[0]} | {cells[1]} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
