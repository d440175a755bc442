"""PSNR of decoder-only fine-tunes at the very same symbols as the model they started from.

    OMP_NUM_THREADS=1 python scripts/decoder_finetune_eval.py ../shared/data/kodak RUN_DIR...
        [--model v2-mse] [--knobs -0.6,0,0.6] [--slice 0:24] [--wide NAME,...]
        [--float-only | --no-v1]

A decoder-only run (``train_part: decoder``) keeps the encoder, so every image codes to the
same symbols, hence the same bytes, at every knob: PSNR at equal knob is PSNR at equal rate.
For each image and knob this prints the PSNR of the start model's decoders (float;
EXACT_INT_V1; EXACT_INT_V2 with all-narrow grids, or ``--wide``) and of each run's (float;
EXACT_INT_V2, the 8-bit synthesis of ``synthesis/exact_int_v2.py``), the runs'
weights rounded to fp16 as an export stores them, then the means per knob (``--float-only``:
the float decoders alone; ``--no-v1``: without EXACT_INT_V1, the float decoder within 0.0001
dB, docs/format.md). ``--slice a:b`` takes images a to b of the sorted folder (to split
the work over processes).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from lcodec import models
from lcodec.color import rgb_to_ycbcr, ycbcr_to_rgb
from lcodec.config import NetConfig
from lcodec.imageio import list_images, load_image
from lcodec.nets.cwic2 import CWIC2
from lcodec.synthesis.exact_int_v1 import ExactIntV1
from lcodec.synthesis.exact_int_v2 import ExactIntV2
from lcodec.synthesis.exact_int_v2_grids import calibrate


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255**2 / np.mean((a.astype(float) - b.astype(float)) ** 2)))


def run_net(run: Path) -> CWIC2:
    """A run's last weights, rounded to fp16 as ``export`` stores them."""
    st = torch.load(run / "last.ckpt", map_location="cpu", weights_only=False)
    net = CWIC2(NetConfig.from_json(json.dumps(st["net_config"])))
    net.load_state_dict({k: v.half().float() for k, v in st["model"].items()})
    return net.eval()


def to8(ycc: torch.Tensor) -> np.ndarray:
    rgb = torch.floor(torch.clamp(ycbcr_to_rgb(ycc), 0, 1) * 255 + 0.5)
    return rgb[0].permute(1, 2, 0).to(torch.uint8).numpy()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("images", type=Path)
    ap.add_argument("runs", type=Path, nargs="*")
    ap.add_argument("--model", default="v2-mse")
    ap.add_argument("--knobs", default="-0.6,0,0.6")
    ap.add_argument("--slice", default="0:24", help="images a:b of the sorted folder")
    ap.add_argument("--wide", default="", help="the wide tensors of EXACT_INT_V2")
    ap.add_argument("--float-only", action="store_true", help="only the float decoders")
    ap.add_argument("--no-v1", action="store_true", help="skip EXACT_INT_V1")
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    knobs = [float(k) for k in args.knobs.split(",")]
    wide = frozenset(w for w in args.wide.split(",") if w)
    lm = models.load(models.find(args.model))
    nets = [("start", lm.net)] + [(r.name, run_net(r)) for r in args.runs]
    for _, net in nets[1:]:
        for key in ("luma_enc", "chroma_enc", "importance"):
            a, b = getattr(lm.net, key).state_dict(), getattr(net, key).state_dict()
            if any(not torch.equal(a[k], b[k]) for k in a):
                raise SystemExit("a run's encoder differs from the model's: not a decoder run")
    e8 = {name: ExactIntV2.from_net(net) for name, net in nets}
    a, b = (int(v) for v in args.slice.split(":"))
    paths = sorted(list_images(args.images))[a:b]
    exact = not args.float_only
    v1 = exact and not args.no_v1
    exact_v1 = ExactIntV1(lm.net) if v1 else None
    cols = ["start float"] + (["start V1"] if v1 else []) + (["start V2"] if exact else [])
    for name, _ in nets[1:]:
        cols += [f"{name} float"] + ([f"{name} V2"] if exact else [])
    print("image knob " + " | ".join(cols), flush=True)
    rows: dict[float, list[list[float]]] = {k: [] for k in knobs}
    for path in paths:
        rgb = load_image(path).rgb
        x = torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None].float() / 255
        h, w = (s - s % 16 for s in x.shape[2:])
        x, ref = x[:, :, :h, :w], rgb[:h, :w]
        y_y, y_c, lg = lm.net.analyse(rgb_to_ycbcr(x))
        for knob in knobs:
            enc = lm.net.quantize(y_y, y_c, lg, knob)
            vals = [psnr(to8(lm.net.decompress(enc)), ref)]
            if v1:
                vals.append(psnr(exact_v1.pixels(enc.qi, enc.luma, enc.chroma, knob),
                                 ref))
            for name, net in nets:
                if name != "start":
                    vals.append(psnr(to8(net.decompress(enc)), ref))
                if exact:
                    spec = calibrate(net, [enc], wide)
                    vals.append(psnr(e8[name].pixels(enc.qi, enc.luma, enc.chroma, knob,
                                                     spec), ref))
            rows[knob].append(vals)
            print(f"{path.stem} {knob:+.1f} " + " ".join(f"{v:.3f}" for v in vals), flush=True)
    print("mean per knob: " + " | ".join(cols))
    for knob in knobs:
        print(f"{knob:+.1f} " + " ".join(f"{v:.3f}" for v in np.mean(rows[knob], 0)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
