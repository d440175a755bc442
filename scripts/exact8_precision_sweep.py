"""Which layers of EXACT_INT_V2 need 13-bit weights and which tensors need 15 bits.

    OMP_NUM_THREADS=1 python scripts/exact8_precision_sweep.py [--images N] [--crop PX]

On held-out *training* photos (the validation split of ../shared/data/train, never Kodak),
coded by the default model at knobs −0.6 / 0 / 0.6, prints the PSNR change against
EXACT_INT_V1 and the decoder's CPU seconds for: every layer fine (13-bit), none fine, each
layer alone fine, and each wide tensor made narrow; then the configuration in
``lcodec.synthesis.exact_int_v2`` (WIDE, FINE). docs/format.md quotes the result.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from lcodec import models
from lcodec.color import rgb_to_ycbcr
from lcodec.synthesis.exact_int_v1 import ExactIntV1
from lcodec.synthesis.exact_int_v2 import FINE, ExactIntV2
from lcodec.synthesis.exact_int_v2_grids import calibrate
from lcodec.synthesis.exact_int_v2_spec import SHARED, WIDE
from lcodec.train.data import centre_crops, is_validation, load_rgb

KNOBS = (-0.6, 0.0, 0.6)


def layer_names(refine: int) -> list[str]:
    names = ["luma_dec.s8.0.conv", "luma_dec.s8.1", "luma_dec.s4.0.conv", "luma_dec.s4.1",
             "luma_dec.s2.0.conv", "luma_dec.s2.1"]
    for i in range(refine):
        names += [f"luma_dec.refine.{i}.a", f"luma_dec.refine.{i}.b"]
    names += ["luma_dec.s1.conv", "chroma_dec.s8.0.conv", "chroma_dec.s8.1", "chroma_dec.fuse8",
              "chroma_dec.s4.0.conv", "chroma_dec.s4.1", "chroma_dec.fuse4",
              "chroma_dec.s2.0.conv", "chroma_dec.s2.1", "chroma_dec.fuse2",
              "chroma_dec.s1.conv"]
    return names


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255**2 / np.mean((a.astype(float) - b.astype(float)) ** 2)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/train")
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--crop", type=int, default=256)
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    torch.set_num_threads(1)
    lm = models.load(models.find("v2-mse"))
    net = lm.net
    paths = sorted(p for p in Path(args.data).glob("*.jpg") if is_validation(p, 0.02))
    imgs = [a for a in (load_rgb(p, args.crop) for p in paths) if a is not None][: args.images]
    crops = centre_crops(imgs, args.crop)
    exact_v1 = ExactIntV1(net)
    cases = []
    for x in crops:
        rgb = (x.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        y_y, y_c, lg = net.analyse(rgb_to_ycbcr(x[None]))
        for knob in KNOBS:
            enc = net.quantize(y_y, y_c, lg, knob)
            ref = psnr(exact_v1.pixels(enc.qi, enc.luma, enc.chroma, knob), rgb)
            cases.append((rgb, enc, knob, ref))

    def run(label: str, fine: frozenset[str], wide: frozenset[str]) -> None:
        e8 = ExactIntV2.from_net(net, fine)
        d, t = [], 0.0
        for rgb, enc, knob, ref in cases:
            spec = calibrate(net, [enc], wide=wide)
            e8.layers(spec, round(knob * 1000))
            t0 = time.process_time()
            out = e8.pixels(enc.qi, enc.luma, enc.chroma, knob, spec)
            t += time.process_time() - t0
            d.append(psnr(out, rgb) - ref)
        print(f"{label:44s} mean {np.mean(d):+.3f} dB  worst {np.min(d):+.3f} dB  "
              f"{t / len(cases):.2f} s", flush=True)

    layers = layer_names(net.cfg.refine)
    every, none = frozenset(layers), frozenset()
    run("all 13-bit, WIDE", every, WIDE)
    run("all 7-bit, WIDE", none, WIDE)
    run("configured (FINE, WIDE)", FINE, WIDE)
    for name in layers:
        run(f"7-bit but {name}", frozenset({name}), WIDE)
    pairs = {c: y for c, y in SHARED} | {y: c for c, y in SHARED}
    for name in sorted(WIDE):
        if name in pairs and name.startswith("c."):
            continue  # a shared pair is narrowed together, under its luma name
        narrow = WIDE - {name, pairs.get(name, name)}
        run(f"13-bit, narrow {name}", every, frozenset(narrow))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
