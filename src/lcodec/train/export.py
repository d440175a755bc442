"""Freeze a training checkpoint into shipped weights.

``python -m lcodec.train.export RUN NAME [--images N]`` (RUN: a run folder, its
``last.ckpt``, or a ``snapshot.safetensors``) casts the network to fp16, fits
the STATIC_CONTEXT_V1 tables on training-set codes (never Kodak) produced by those fp16
weights at several rate knobs, and writes ``models/<name>-<sha8>.safetensors`` and a card.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from lcodec.color import pad_to_multiple, rgb_to_ycbcr
from lcodec.config import CONFIGS
from lcodec.entropy import static_context as sc
from lcodec.models import MODEL_ID_BYTES, models_dir
from lcodec.nets import CWIC
from lcodec.quant import code_mask
from lcodec.train.data import is_validation, list_images, load_rgb
from lcodec.train.loop import load_weights

FIT_KNOBS = (-0.3, -0.15, 0.0, 0.15, 0.3)


def fit_entropy_tables(net: CWIC, images: list[np.ndarray]) -> dict[str, np.ndarray]:
    cfg = net.cfg
    t, lv = cfg.levels, cfg.imp_levels
    counts = {
        "entropy.qi": np.zeros((lv + 1, lv + 1, lv), np.int64),
        "entropy.luma": np.zeros((cfg.n_luma, t + 1, t + 1, t), np.int64),
        "entropy.chroma": np.zeros((cfg.n_chroma, t + 1, t + 1, t), np.int64),
    }
    for img in images:
        x = torch.from_numpy(img.copy()).permute(2, 0, 1)[None].float() / 255
        e_y, e_c, p = net.analyse(rgb_to_ycbcr(pad_to_multiple(x, cfg.stride)))
        for knob in FIT_KNOBS:
            codes = net.quantize(e_y, e_c, p, knob)
            qi = codes.qi[0, 0].numpy()
            sc.count_importance(qi, counts["entropy.qi"])
            for key, sym, n in (("entropy.luma", codes.luma, cfg.n_luma),
                                ("entropy.chroma", codes.chroma, cfg.n_chroma)):
                mask = code_mask(codes.qi, n, lv)[0].numpy()
                sc.count_codes(sym[0].numpy(), mask, counts[key])
    return {k: sc.fit_tables(v) for k, v in counts.items()}


def export(run: Path, name: str, n_images: int, out_dir: Path,
           notes: dict | None = None, data: Path | None = None) -> Path:
    """Write ``<name>-<sha8>.safetensors`` and its card from a run; ``data`` overrides the
    training image folder recorded in the run (for the entropy tables)."""
    weights, tcfg, steps_done = load_weights(run / "last.ckpt" if run.is_dir() else run)
    net = CWIC(CONFIGS[tcfg["net"]])
    net.load_state_dict(weights, strict=False)
    half = {k: v.half() for k, v in net.state_dict().items() if v.is_floating_point()}
    net.load_state_dict({k: v.float() for k, v in half.items()}, strict=False)
    net.eval()

    paths = [p for p in list_images(Path(data or tcfg["data"]))
             if not is_validation(p, tcfg["val_fraction"])]
    rng = np.random.default_rng(0)
    chosen = rng.choice(len(paths), size=min(n_images, len(paths)), replace=False)
    images = [a for a in (load_rgb(paths[i], 8) for i in sorted(chosen)) if a is not None]
    with torch.no_grad():
        tables = fit_entropy_tables(net, images)

    tensors = dict(half)
    tensors.update({k: torch.from_numpy(v) for k, v in tables.items()})
    meta = {"architecture": "cwic", "config": net.cfg.to_json(), "name": name,
            "entropy_method": "STATIC_CONTEXT_V1"}
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f"{name}.tmp"
    save_file(tensors, str(tmp), metadata=meta)
    sha8 = hashlib.sha256(tmp.read_bytes()).digest()[:MODEL_ID_BYTES].hex()
    final = out_dir / f"{name}-{sha8}.safetensors"
    tmp.chmod(0o644)
    tmp.replace(final)
    card = {
        "name": name,
        "model_id": sha8,
        "architecture": "cwic",
        "config": json.loads(net.cfg.to_json()),
        "training": {**tcfg, "steps_done": steps_done, **(notes or {})},
        "entropy": {"method": "STATIC_CONTEXT_V1", "fitted_on_images": len(images),
                    "knobs": list(FIT_KNOBS)},
    }
    final.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    return final


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lcodec.train.export", description=__doc__)
    ap.add_argument("run", type=Path,
                    help="training run folder (holds last.ckpt), a checkpoint or a snapshot")
    ap.add_argument("--data", type=Path, default=None,
                    help="training images for the tables (default: the run's data folder)")
    ap.add_argument("name", help="model name, e.g. lite-mse")
    ap.add_argument("--images", type=int, default=400, help="training images for the tables")
    ap.add_argument("--out", type=Path, default=None, help="output folder (default: models/)")
    ap.add_argument("--hardware", default="", help="where it was trained, for the card")
    ap.add_argument("--wall-minutes", type=float, default=None, help="training wall time")
    ap.add_argument("--note", default="", help="free text for the card")
    args = ap.parse_args(argv)
    notes = {k: v for k, v in (("hardware", args.hardware), ("wall_minutes", args.wall_minutes),
                               ("note", args.note)) if v}
    print(export(args.run, args.name, args.images, args.out or models_dir(), notes, args.data))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
