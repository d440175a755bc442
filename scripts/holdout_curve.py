"""Held-out rate–distortion of v2 networks on centre crops, from run checkpoints or shipped
weights: the small training photos' validation split and the camera-resolution photos held
out of training (``hires_val_fraction`` of ``../shared/data/train-hires`` by name hash).

    python scripts/holdout_curve.py WEIGHTS... [--crop 384] [--threads 2] [--context RUN]

WEIGHTS: a run's ``last.ckpt``/``stable.ckpt`` or a ``models/*.safetensors``. Prints, per
set and knob, the estimated bpp (the training priors' code length) and PSNR (dB), as the
runs' ``val.csv`` does; with ``--context`` (a TCAE run folder, e.g. a ``rate: "context"``
run's ``context/``) also the bpp under those float context models (``bpp_context``), or, for
a checkpoint of such a run, under its own.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from lcodec.config import CONFIGS, NetConfig
from lcodec.imageio import list_images
from lcodec.nets.cwic2 import CWIC2
from lcodec.train.data import centre_crops, is_validation, load_rgb
from lcodec.train.v2.context_rate import ContextRate
from lcodec.train.v2.validation import validate


def load_net(path: Path) -> CWIC2:
    """A v2 network from a run checkpoint or a shipped safetensors file."""
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            cfg = NetConfig.from_json(f.metadata()["config"])
            state = {k: f.get_tensor(k).float() for k in f.keys()  # noqa: SIM118
                     if not k.startswith("entropy.")}
    else:
        st = torch.load(path, map_location="cpu", weights_only=False)
        cfg = NetConfig.from_json(json.dumps(st["net_config"])) if "net_config" in st \
            else CONFIGS["v2r"]
        state = st["model"]
    net = CWIC2(cfg)
    net.load_state_dict(state, strict=False)
    return net.eval()


def holdout(folder: Path, fraction: float, crop: int) -> torch.Tensor:
    imgs = [a for p in list_images(folder) if is_validation(p, fraction)
            if (a := load_rgb(p, crop)) is not None]
    return centre_crops(imgs, crop)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("weights", type=Path, nargs="+")
    ap.add_argument("--small", type=Path, default=Path("../shared/data/train"))
    ap.add_argument("--hires", type=Path, default=Path("../shared/data/train-hires"))
    ap.add_argument("--crop", type=int, default=384, help="hires centre crop side")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--context", type=Path, default=None,
                    help="TCAE run folder whose float models price the codes")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    sets = {"small": holdout(args.small, 0.02, 256), "hires": holdout(args.hires, 0.1, args.crop)}
    print("weights\tset\tknob\tbpp\tpsnr\tbpp_context")
    for w in args.weights:
        net = load_net(w)
        context = own_context(w) or (ContextRate.from_tcae_run(args.context)
                                     if args.context else None)
        for name, crops in sets.items():
            for row in validate(net, crops, context=context):
                ctx = "" if row["bpp_context"] is None else f"{row['bpp_context']:.4f}"
                print(f"{w}\t{name}\t{row['knob']:+.1f}\t{row['bpp']:.4f}\t{row['psnr']:.3f}"
                      f"\t{ctx}", flush=True)


def own_context(path: Path) -> ContextRate | None:
    """The context models a ``rate: "context"`` run's checkpoint trained, or None."""
    if path.suffix == ".safetensors":
        return None
    st = torch.load(path, map_location="cpu", weights_only=False)
    if st.get("context") is None or st.get("config", {}).get("rate") != "context":
        return None
    model = ContextRate.from_tcae_run(Path(st["config"]["context_init"]).expanduser())
    model.load_state_dict(st["context"])
    return model


if __name__ == "__main__":
    main()
