"""Encoder effort levels measured: seconds per encode and BD-rate against effort 1.

``python scripts/effort_table.py ../shared/data/kodak --efforts 1,2,4,5,7 --targets
0.15,0.3,0.6,1.0 [--every N] [--threads T] [--rows rows.jsonl]`` encodes every image at every
``--bpp`` target with each effort (in-process, the model loaded once; the seconds are
``api.encode`` alone), decodes each file and prints, per effort: mean encode seconds, mean
bpp and PSNR, and the mean over images of the PSNR BD-rate (0.1–1 bpp) against the first
effort listed and against the last. ``--rows`` keeps one JSON line per file and is read back
on a rerun, so an interrupted measurement resumes.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from lcodec import api
from lcodec.evaluate.bdrate import bd_rate
from lcodec.imageio import list_images, load_image
from lcodec.metrics import psnr


def measure(path: Path, effort: int, target: float) -> dict:
    src = load_image(str(path), str(path), "keep", False)
    t0 = time.perf_counter()
    data = api.encode(src, bpp=target, effort=effort, verify=True)
    seconds = time.perf_counter() - t0
    decoded = api.decode_array(data)
    return {"image": path.name, "effort": effort, "target": target,
            "bpp": len(data) * 8 / (src.width * src.height), "psnr": psnr(src.rgb, decoded),
            "seconds": seconds}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("folder", type=Path)
    ap.add_argument("--efforts", default="1,2,4,5,7")
    ap.add_argument("--targets", default="0.15,0.3,0.6,1.0")
    ap.add_argument("--every", type=int, default=1, help="every N-th image only")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--rows", type=Path, default=None, help="JSON lines kept and resumed")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    efforts = [int(e) for e in args.efforts.split(",")]
    targets = [float(t) for t in args.targets.split(",")]
    rows: list[dict] = []
    if args.rows and args.rows.exists():
        rows = [json.loads(line) for line in args.rows.read_text().splitlines() if line]
    done = {(r["image"], r["effort"], r["target"]) for r in rows}
    images = list_images(args.folder)[:: args.every]
    api.encode(np.zeros((16, 16, 3), np.uint8))  # load the model before timing
    for path in images:
        for effort in efforts:
            for target in targets:
                if (path.name, effort, target) in done:
                    continue
                row = measure(path, effort, target)
                rows.append(row)
                print(json.dumps(row), flush=True)
                if args.rows:
                    with args.rows.open("a") as f:
                        f.write(json.dumps(row) + "\n")
    print(f"\n{len(images)} images, targets {targets} bpp\n")
    print("| effort | encode s (mean) | bpp | PSNR dB | BD-rate vs effort "
          f"{efforts[0]} | vs effort {efforts[-1]} |")
    print("|---:|---:|---:|---:|---:|---:|")

    def curve(name: str, effort: int) -> tuple[np.ndarray, np.ndarray]:
        rs = sorted((r for r in rows if r["image"] == name and r["effort"] == effort),
                    key=lambda r: r["bpp"])
        return np.array([r["bpp"] for r in rs]), np.array([r["psnr"] for r in rs])

    names = [p.name for p in images]
    for effort in efforts:
        mine = [r for r in rows if r["effort"] == effort and r["image"] in names]
        bds = []
        for anchor in (efforts[0], efforts[-1]):
            vals = [bd_rate(*curve(n, anchor), *curve(n, effort), rate_range=(0.1, 1.0))
                    for n in names]
            vals = [v for v in vals if not math.isnan(v)]
            bds.append(f"{np.mean(vals):+.2f} %" if vals else "–")
        print(f"| {effort} | {np.mean([r['seconds'] for r in mine]):.2f} | "
              f"{np.mean([r['bpp'] for r in mine]):.4f} | "
              f"{np.mean([r['psnr'] for r in mine]):.3f} | {bds[0]} | {bds[1]} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
