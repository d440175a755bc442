"""Quantizer ablation: LCMQ vs Lloyd-Max vs fixed uniform (seed 004 Table 1 / Fig. 10a).

``python scripts/quantizer_ablation.py KODAK RUN... [--knobs=-0.3,0,0.3]``

Each RUN is a training run folder (same init, same steps; only ``quantizer`` differs). Its
snapshot is exported (fp16 + static tables) into a temporary models folder, then measured on
the images: the quantization error of the codes, mean (e − Q(e))² over every luma / chroma code
position, and the RD of real `.lic` files at each knob (mean bpp, PSNR, MS-SSIM). Prints
Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch


def quantization_error(name: str, folder: Path) -> tuple[float, float]:
    """Mean squared quantization error of the luma and chroma codes over the images."""
    from lcodec import encoder, models
    from lcodec.imageio import list_images, load_image

    loaded = models.load(models.find(name))
    net = loaded.net
    errs_y, errs_c = [], []
    for path in list_images(folder):
        a = encoder.analyse(loaded, load_image(path, str(path), alpha="drop", strip=True),
                          "static")
        with torch.no_grad():
            for e, q, errs in ((a.e_y, net.luma_q, errs_y), (a.e_c, net.chroma_q, errs_c)):
                errs.append(float(torch.mean((q.dequantize(q.indices(e)) - e) ** 2)))
    return float(np.mean(errs_y)), float(np.mean(errs_c))


def ablation_setup(argv: list[str] | None, doc: str, knobs: str
                   ) -> tuple[argparse.Namespace, list[float], Path]:
    """The arguments of an ablation script (images, runs, --knobs, --table-images), its knobs,
    and a fresh temporary models folder that LCODEC_MODELS now points at."""
    ap = argparse.ArgumentParser(description=doc,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("images", type=Path)
    ap.add_argument("runs", type=Path, nargs="+")
    ap.add_argument("--knobs", default=knobs)
    ap.add_argument("--table-images", type=int, default=100,
                    help="training images for each export's static tables")
    args = ap.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="lcodec-ablation-"))
    os.environ["LCODEC_MODELS"] = str(tmp)
    return args, [float(k) for k in args.knobs.split(",")], tmp


def main(argv: list[str] | None = None) -> int:
    args, knobs, tmp = ablation_setup(argv, __doc__, "-0.3,0,0.3")
    from lcodec.evaluate import rd
    from lcodec.train.export import export

    results = {}
    for run in args.runs:
        cfg = json.loads((run / "config.json").read_text())
        name = f"ablation-{cfg['quantizer']}"
        export(run / "snapshot.safetensors", name, args.table_images, tmp,
               data=Path(cfg["data"]))
        qy, qc = quantization_error(name, args.images)
        rows = rd.sweep(args.images, knobs, name, "cpu")
        results[cfg["quantizer"]] = (qy, qc, rows)
        print(f"{name}: done", file=sys.stderr)

    print("| quantizer | quantization MSE, luma codes | chroma codes |")
    print("|---|---:|---:|")
    for q, (qy, qc, _) in results.items():
        print(f"| {q} | {qy:.3e} | {qc:.3e} |")
    for q, (_, _, rows) in results.items():
        print(f"\n{q}:\n")
        print(rd.table(rows, knobs))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
