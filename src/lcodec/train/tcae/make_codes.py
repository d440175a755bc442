"""``make-codes``: crops of a shipped autoencoder's code maps of training images, at several
rate knobs, written as a codes file (:mod:`lcodec.train.tcae.codes`)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch


def make_codes(args: argparse.Namespace) -> Path:
    from lcodec import encoder, models
    from lcodec.imageio import list_images
    from lcodec.train.data import load_rgb

    folder = Path(args.images)
    if "kodak" in str(folder.resolve()).lower():
        raise SystemExit("refusing to make training codes from Kodak (the test set)")
    if args.threads:
        torch.set_num_threads(args.threads)
    loaded = models.load(models.find(args.model))
    knobs = [float(k) for k in args.knobs.split(",")]
    paths = [p for p in list_images(folder) if "kodim" not in p.name.lower()]
    rng = np.random.default_rng(args.seed)
    if args.limit and args.limit < len(paths):  # a random subset, not the first sources
        paths = [paths[i] for i in sorted(rng.choice(len(paths), args.limit, replace=False))]
    cs = args.crop
    stride = loaded.config.stride
    out: dict[str, list] = {"qi": [], "luma": [], "chroma": [], "image": [], "knob": []}
    names = []
    t0 = time.time()
    for n, p in enumerate(paths):
        rgb = load_rgb(p, stride * cs)
        if rgb is None:
            continue
        img = len(names)
        names.append(p.name)
        an = encoder.analyse(loaded, _source(rgb))
        for knob in knobs:
            enc = an.codes(knob)
            qi = enc.qi[0, 0].cpu().numpy().astype(np.uint8)
            luma = enc.luma[0].cpu().numpy().astype(np.uint8)
            chroma = enc.chroma[0].cpu().numpy().astype(np.uint8)
            h, w = qi.shape
            for _ in range(args.crops_per_image):
                i = int(rng.integers(h - cs + 1))
                j = int(rng.integers(w - cs + 1))
                out["qi"].append(qi[i : i + cs, j : j + cs])
                out["luma"].append(luma[:, i : i + cs, j : j + cs])
                out["chroma"].append(chroma[:, i : i + cs, j : j + cs])
                out["image"].append(img)
                out["knob"].append(knob)
        if (n + 1) % 100 == 0:
            print(f"{n + 1}/{len(paths)} images, {time.time() - t0:.0f} s", file=sys.stderr)
    if not names:
        raise SystemExit(f"no images of at least {stride * cs} pixels in {folder}")
    arrays = {k: np.stack(v) for k, v in out.items() if k not in ("image", "knob")}
    np.savez_compressed(args.out, **arrays, image=np.array(out["image"], np.int32),
                        knob=np.array(out["knob"], np.float32), names=np.array(names),
                        levels=np.array(loaded.config.imp_levels),
                        code_levels=np.array(loaded.config.levels), stride=np.array(stride))
    print(f"{len(out['qi'])} crops of {cs}×{cs} codes from {len(names)} images -> {args.out}",
          file=sys.stderr)
    return Path(args.out)


def _source(rgb: np.ndarray):
    """What ``encoder.analyse`` takes: a SourceImage (newer codec) or the RGB array itself."""
    try:
        from lcodec.imageio import SourceImage
    except ImportError:
        return rgb
    return SourceImage(rgb=rgb)
