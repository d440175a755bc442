"""Freeze a training checkpoint into shipped weights.

``python -m lcodec.train.export RUN NAME [--images N]`` (RUN: a run folder, its
``last.ckpt``, or a ``snapshot.safetensors``) casts the network to fp16, fits
the STATIC_CONTEXT_V1 tables on training-set codes (never Kodak) produced by those fp16
weights at several rate knobs, and writes ``models/<name>-<sha8>.safetensors`` and a card.

Network v1 (``cwic``) runs come from :mod:`lcodec.train.v1`; its tables are fitted at
:data:`FIT_KNOBS` (as the shipped v1 models were). Network v2 (``cwic2``) runs come from
:mod:`lcodec.train.v2`; its tables are fitted over the whole knob range rate control
searches (:data:`FIT_KNOBS_V2`), and its card carries the learning curve of ``val.csv``.
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
from lcodec.config import CONFIGS, NetConfig
from lcodec.entropy import static_context as sc
from lcodec.imageio import list_images
from lcodec.models import MODEL_ID_BYTES, models_dir
from lcodec.nets import CWIC, CWIC2
from lcodec.quant import code_mask
from lcodec.train.data import is_validation, load_rgb
from lcodec.train.v1.weights import load_weights

FIT_KNOBS = (-0.3, -0.15, 0.0, 0.15, 0.3)
FIT_KNOBS_V2 = tuple(round(-1.0 + 0.25 * i, 2) for i in range(9))


def fit_entropy_tables(net: CWIC | CWIC2, images: list[np.ndarray],
                       knobs: tuple[float, ...] = FIT_KNOBS) -> dict[str, np.ndarray]:
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
        for knob in knobs:
            codes = net.quantize(e_y, e_c, p, knob)
            qi = codes.qi[0, 0].numpy()
            sc.count_importance(qi, counts["entropy.qi"])
            for key, sym, n in (("entropy.luma", codes.luma, cfg.n_luma),
                                ("entropy.chroma", codes.chroma, cfg.n_chroma)):
                mask = code_mask(codes.qi, n, lv)[0].numpy()
                sc.count_codes(sym[0].numpy(), mask, counts[key])
    return {k: sc.fit_tables(v) for k, v in counts.items()}


def kmac_per_pixel(net: CWIC | CWIC2, size: int = 256) -> dict[str, float]:
    """Multiply-accumulates per pixel of the encoder and decoder networks (convolutions and
    GDN), counted with forward hooks on a ``size``² image."""
    macs = {"total": 0}

    def hook(mod, inp, out):
        if isinstance(mod, torch.nn.Conv2d):
            k = mod.weight[0].numel()
            macs["total"] += k * out.numel() // out.shape[0]

    handles = [m.register_forward_hook(hook) for m in net.modules()
               if isinstance(m, torch.nn.Conv2d)]
    x = torch.rand(1, 3, size, size)
    with torch.no_grad():
        e_y, e_c, p = net.analyse(x)
        enc = macs["total"]
        net.decompress(net.quantize(e_y, e_c, p, 0.0))
    for h in handles:
        h.remove()
    px = size * size
    return {"encoder": round(enc / px / 1000, 1), "decoder": round((macs["total"] - enc) / px
                                                                   / 1000, 1)}


def _load_run(path: Path) -> tuple[CWIC | CWIC2, dict, dict]:
    """(network, training config, progress) of a v1 or v2 run folder/checkpoint/snapshot."""
    if path.is_dir():
        path = path / "last.ckpt"
    if path.suffix == ".ckpt":
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
        if "net_config" in ckpt:  # a v2 run (lcodec.train.v2)
            net = CWIC2(NetConfig.from_json(json.dumps(ckpt["net_config"])))
            net.load_state_dict(ckpt["model"])
            progress = {"steps_done": ckpt["step"], "cpu_hours": round(ckpt["cpu_s"] / 3600, 3),
                        "wall_hours": round(ckpt["wall_s"] / 3600, 3),
                        "steps_per_s": round(ckpt["step"] / max(ckpt["wall_s"], 1e-9), 2)}
            return net, ckpt["config"], progress
    weights, tcfg, steps_done = load_weights(path)
    net = CWIC(CONFIGS[tcfg["net"]])
    net.load_state_dict(weights, strict=False)
    return net, tcfg, {"steps_done": steps_done}


def learning_curve(run: Path) -> list[dict]:
    """The validation rows of a v2 run's ``val.csv`` (step, CPU-hours, knob, bpp, PSNR and,
    where logged, MS-SSIM) on the path to its last state: rows a resume went back behind (a
    run resumed from an earlier checkpoint, or from ``stable.ckpt`` after a decay) are
    dropped."""
    path = (run if run.is_dir() else run.parent) / "val.csv"
    if not path.exists():
        return []
    rows: list[dict] = []
    for line in path.read_text().splitlines():
        step, cpu_h, knob, bpp, psnr, *rest = line.split(",")
        row = {"step": int(step), "cpu_hours": float(cpu_h), "knob": float(knob),
               "bpp": float(bpp), "psnr": float(psnr)}
        if len(rest) >= 2 and rest[1]:  # MS-SSIM: newer runs log it (crops over 96 px)
            row["msssim"] = float(rest[1])
        if rows and row["step"] < rows[-1]["step"]:
            rows = [r for r in rows if r["step"] < row["step"]]
        rows.append(row)
    return rows


def export(run: Path, name: str, n_images: int, out_dir: Path,
           notes: dict | None = None, data: Path | None = None) -> Path:
    """Write ``<name>-<sha8>.safetensors`` and its card from a run; ``data`` overrides the
    training image folder recorded in the run (for the entropy tables)."""
    net, tcfg, progress = _load_run(run)
    arch = "cwic2" if isinstance(net, CWIC2) else "cwic"
    knobs = FIT_KNOBS_V2 if arch == "cwic2" else FIT_KNOBS
    half = {k: v.half() for k, v in net.state_dict().items() if v.is_floating_point()}
    net.load_state_dict({k: v.float() for k, v in half.items()}, strict=False)
    net.eval()

    paths = [p for p in list_images(Path(data or tcfg["data"]))
             if not is_validation(p, tcfg["val_fraction"])]
    rng = np.random.default_rng(0)
    chosen = rng.choice(len(paths), size=min(n_images, len(paths)), replace=False)
    images = [a for a in (load_rgb(paths[i], 8) for i in sorted(chosen)) if a is not None]
    with torch.no_grad():
        tables = fit_entropy_tables(net, images, knobs)

    tensors = dict(half)
    tensors.update({k: torch.from_numpy(v) for k, v in tables.items()})
    meta = {"architecture": arch, "config": net.cfg.to_json(), "name": name,
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
        "architecture": arch,
        "config": json.loads(net.cfg.to_json()),
        "training": {**tcfg, **progress, **(notes or {})},
        "entropy": {"method": "STATIC_CONTEXT_V1", "fitted_on_images": len(images),
                    "knobs": list(knobs)},
    }
    if arch == "cwic2":
        card["compute"] = {"kmac_per_pixel": kmac_per_pixel(net)}
        card["learning_curve"] = learning_curve(run)
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
