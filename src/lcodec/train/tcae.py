"""Train the inclined TCAE entropy models (seed 004 §4.5) on a frozen autoencoder's codes.

Usage::

    python -m lcodec.train.tcae make-codes --model lite-mse --images ../shared/data/train \\
        --out codes.npz --knobs -0.3,0,0.3 [--limit N]
    python -m lcodec.train.tcae --codes codes.npz --out runs/tcae [--steps N] [--max-minutes M]
    python -m lcodec.train.tcae freeze --run runs/tcae --codes codes.npz --out tcae.safetensors
    python -m lcodec.train.tcae eval --weights tcae.safetensors --codes codes.npz
    python -m lcodec.train.tcae static --model v2-mse --codes codes.npz   # the baseline
    python -m lcodec.train.tcae bench [--weights tcae.safetensors] [--codes codes.npz]
    python -m lcodec.train.tcae synth --out synth.npz      # spatially correlated fake codes

A codes file (npz) holds crops of code maps: ``qi`` (M, h, w), ``luma`` (M, n_y, h, w),
``chroma`` (M, n_c, h, w) as uint8 (level indices, 0 where masked), ``image`` (M,) image
index, ``knob`` (M,), ``names`` (image file names), ``levels`` (L), ``code_levels`` (T) and
``stride`` (T = 8 and stride 8 when absent, as in files made before network v2).

Training minimises the code length of eq. 25 summed over the three models (bits of all coded
symbols per pixel). Adam with the paper's schedule of four learning rates, each a third of the
previous one (paper: 3e-4 → 1e-4 → 3.33e-5 → 1.11e-5; default ``--lr 1e-3``, which converges
about three times faster from scratch on these small models): the next one is taken when the
validation loss has not improved for ``--patience`` validations, and at the latest at 60 %,
80 % and 90 % of ``--steps``. Each model's final bias starts at its per-channel log marginal
frequencies, so training starts from the order-0 code length. The run folder holds
``last.ckpt`` (models, optimizer, step, schedule and every RNG state: rerun to resume),
``log.csv``, ``config.json`` and, when the run completes, the frozen ``tcae.safetensors``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import random
import sys
import time
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from lcodec.container import knob_thousandths
from lcodec.entropy.coder import SymbolDecoder
from lcodec.entropy.tcae import TcaeConfig, TcaeModels
from lcodec.entropy.tcae_net import (
    DEFAULT_CONFIGS,
    TcaeNet,
    code_length_bits,
    freeze,
    init_marginals,
    luma_activity_torch,
)
from lcodec.entropy.tcae_net import side_classes_torch as _side
from lcodec.quant import code_mask, code_mask_np
from lcodec.train.rng import rng_state, set_rng_state

LR_STEPS = 4  # learning rates lr, lr/3, lr/9, lr/27 (paper §4.5: lr = 3e-4)
FORCED_DROPS = (0.6, 0.8, 0.9)
NAMES = ("importance", "luma", "chroma")


# ---------------------------------------------------------------- data


def load_codes(path: Path | str) -> dict[str, np.ndarray]:
    """A codes file, or several joined (``a.npz,b.npz``: e.g. the codes of two models)."""
    parts = str(path).split(",")
    if len(parts) > 1:
        return _join([load_codes(Path(p)) for p in parts])
    with np.load(path, allow_pickle=False) as z:
        out = {k: z[k] for k in z.files}
    for key in ("qi", "luma", "chroma"):
        if key not in out:
            raise SystemExit(f"{path} lacks the array {key!r}; make it with make-codes")
    out.setdefault("levels", np.array(16))
    out.setdefault("code_levels", np.array(8))  # files from before network v2: T = 8
    out.setdefault("stride", np.array(8))
    out.setdefault("image", np.arange(len(out["qi"])))
    out.setdefault("knob", np.zeros(len(out["qi"]), np.float32))
    return out


def _join(files: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    first = files[0]
    for f in files[1:]:
        for key in ("levels", "code_levels", "stride"):
            if int(f[key]) != int(first[key]):
                raise SystemExit(f"codes files differ in {key}: {int(f[key])} vs {int(first[key])}")
    out = {k: np.concatenate([f[k] for f in files]) for k in ("qi", "luma", "chroma", "knob")}
    offsets = np.cumsum([0] + [int(f["image"].max()) + 1 for f in files[:-1]])
    out["image"] = np.concatenate([f["image"] + o for f, o in zip(files, offsets, strict=True)])
    if all("names" in f for f in files):
        out["names"] = np.concatenate([f["names"] for f in files])
    out.update({k: first[k] for k in ("levels", "code_levels", "stride")})
    return out


def _pixels_per_position(codes: dict[str, np.ndarray]) -> int:
    """Image pixels per code position (the model's stride squared)."""
    return int(codes.get("stride", 8)) ** 2


def split(codes: dict[str, np.ndarray], fraction: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Train / validation crop indices, split by a hash of the image name (or index)."""
    names = codes.get("names")
    img = codes["image"]
    keys = [str(names[i]) if names is not None and len(names) > i else str(i)
            for i in range(int(img.max()) + 1 if len(img) else 0)]
    val_img = np.array([(zlib.crc32(k.encode()) % 10_000) < fraction * 10_000 for k in keys])
    is_val = val_img[img] if len(img) else np.zeros(0, bool)
    if is_val.all() or not is_val.any():  # tiny sets: hold out every 20th crop instead
        is_val = np.arange(len(img)) % 20 == 19
        if is_val.all() or not is_val.any():
            is_val = np.zeros(len(img), bool)
    return np.nonzero(~is_val)[0], np.nonzero(is_val)[0]


def configs_for(codes: dict[str, np.ndarray], overrides: dict | None = None
                ) -> dict[str, TcaeConfig]:
    """Default configs adapted to the channel counts and levels in the codes."""
    levels = int(codes["levels"])
    code_levels = int(codes.get("code_levels", 8))
    cfgs = {
        "importance": replace(DEFAULT_CONFIGS["importance"], classes=levels),
        "luma": replace(DEFAULT_CONFIGS["luma"], channels=int(codes["luma"].shape[1]),
                        classes=code_levels),
        "chroma": replace(DEFAULT_CONFIGS["chroma"], channels=int(codes["chroma"].shape[1]),
                          classes=code_levels),
    }
    for name, over in (overrides or {}).items():
        cfgs[name] = replace(cfgs[name], **over)
    return cfgs


def knob_buckets_torch(knob: torch.Tensor, buckets: int) -> torch.Tensor | None:
    """:func:`lcodec.entropy.tcae.knob_bucket` of (N,) float knobs (as a header stores them,
    in thousandths), or None for a model without knob buckets."""
    if not buckets:
        return None
    k = (knob.double() * 1000).round().long().clamp(-1000, 1000)
    return torch.div((k + 1000) * (buckets - 1) + 1000, 2000, rounding_mode="floor")


def batch_inputs(qi: torch.Tensor, luma: torch.Tensor, chroma: torch.Tensor, levels: int,
                 cfgs: dict[str, TcaeConfig], knob: torch.Tensor | None = None
                 ) -> dict[str, tuple]:
    """Model inputs (cls, active, side, knob buckets) for a batch of code crops (uint8
    tensors; ``knob``: (N,) the crops' rate knobs, needed by models with knob buckets)."""
    if knob is None:
        knob = torch.zeros(len(qi))
    qi = qi.long()[:, None]
    kb = knob_buckets_torch(knob, cfgs["importance"].knob_buckets)
    out = {"importance": (qi, torch.ones_like(qi, dtype=torch.bool), None, kb)}
    m_y = None
    for name, codes in (("luma", luma), ("chroma", chroma)):
        cfg = cfgs[name]
        m = code_mask(qi, codes.shape[1], levels)
        m_y = m if m_y is None else m_y
        cls = torch.where(m, codes.long() + 1, torch.zeros_like(m, dtype=torch.long))
        side = _side(m, cfg.side_classes) if cfg.side_classes else None
        if cfg.luma_classes:  # side class · Y + the co-located luma codes' activity class
            y = luma_activity_torch(luma, m_y, cfgs["luma"].classes, cfg.luma_classes)
            side = side * cfg.luma_classes + y[:, None]
        out[name] = (cls, m, side, knob_buckets_torch(knob, cfg.knob_buckets))
    return out


# ---------------------------------------------------------------- training


def _evaluate(nets: dict[str, TcaeNet], codes: dict, idx: np.ndarray, cfgs, device,
              batch: int) -> dict[str, float]:
    """Bits per symbol per model and total bits per pixel on crops ``idx`` (float models)."""
    levels = int(codes["levels"])
    bits = dict.fromkeys(NAMES, 0.0)
    count = dict.fromkeys(NAMES, 0.0)
    pixels = 0
    with torch.no_grad():
        for s in range(0, len(idx), batch):
            sel = idx[s : s + batch]
            qi, luma, chroma = (torch.from_numpy(codes[k][sel]).to(device)
                                for k in ("qi", "luma", "chroma"))
            knob = torch.from_numpy(codes["knob"][sel])
            pixels += qi.numel() * _pixels_per_position(codes)
            for name, (cls, act, side, kb) in batch_inputs(qi, luma, chroma, levels, cfgs,
                                                           knob).items():
                nets[name].eval()
                b, c = code_length_bits(nets[name], cls, act, side, kb)
                bits[name] += b.item()
                count[name] += c.item()
    out = {f"bits_{n}": bits[n] / max(count[n], 1) for n in NAMES}
    out["bpp"] = sum(bits.values()) / max(pixels, 1)
    return out


def train(args: argparse.Namespace) -> Path:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() and not args.cpu else "cpu")
    codes = load_codes(Path(args.codes))
    overrides = json.loads(args.configs) if args.configs else None
    cfgs = configs_for(codes, overrides)
    ckpt = out / "last.ckpt"
    saved = torch.load(ckpt, map_location=device, weights_only=False) if ckpt.exists() else None
    init = None
    if saved is not None:  # a resumed run keeps its architecture
        cfgs = {n: TcaeConfig.from_dict(saved["configs"][n]) for n in NAMES}
    elif args.init:  # a new run from another's models: their shape, plus new knob buckets
        init = torch.load(Path(args.init) / "last.ckpt", map_location=device, weights_only=False)
        cfgs = {n: replace(TcaeConfig.from_dict(init["configs"][n]),
                           knob_buckets=cfgs[n].knob_buckets,
                           luma_classes=cfgs[n].luma_classes) for n in NAMES}
    tr, va = split(codes)
    if len(va) > args.val_crops:  # spread over the images (and the files joined)
        va = va[np.linspace(0, len(va) - 1, args.val_crops).astype(np.int64)]
    levels = int(codes["levels"])
    (out / "config.json").write_text(json.dumps(
        {"codes": str(args.codes), "steps": args.steps, "batch": args.batch,
         "init": args.init, "lr": args.lr, "amp": args.amp,
         "configs": {k: c.to_dict() for k, c in cfgs.items()}}, indent=2))
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    random.seed(args.seed)
    nets = {n: TcaeNet(cfgs[n]).to(device) for n in NAMES}
    params = [p for n in NAMES for p in nets[n].parameters()]
    lrs = [args.lr / 3**i for i in range(LR_STEPS)]
    opt = torch.optim.Adam(params, lr=lrs[0])
    state = {"step": 0, "lr_index": 0, "best": math.inf, "bad": 0}
    if init is not None:
        for n in NAMES:
            weights = dict(init["nets"][n])
            w = weights.get("side.weight")
            if w is not None and w.shape[1] != cfgs[n].side_count:  # new luma classes: each
                weights["side.weight"] = w.repeat_interleave(cfgs[n].side_count // w.shape[1], 1)
            res = nets[n].load_state_dict(weights, strict=False)
            if res.unexpected_keys or set(res.missing_keys) - {"knob_bias"}:
                raise SystemExit(f"--init models do not fit: {res}")
        print(f"initialised from {args.init} (step {init['state']['step']})", file=sys.stderr)
    elif saved is None:  # start from each channel's order-0 statistics
        sel = np.random.default_rng(args.seed).choice(tr, size=min(256, len(tr)), replace=False)
        first = {n: [] for n in NAMES}
        for s in range(0, len(sel), 32):
            part = [torch.from_numpy(codes[k][sel[s : s + 32]]).to(device)
                    for k in ("qi", "luma", "chroma")]
            knob = torch.from_numpy(codes["knob"][sel[s : s + 32]])
            for name, inp in batch_inputs(*part, levels, cfgs, knob).items():
                first[name].append(inp)
        for n in NAMES:
            init_marginals(nets[n], first[n])
    else:
        for n in NAMES:
            nets[n].load_state_dict(saved["nets"][n])
        opt.load_state_dict(saved["opt"])
        state = saved["state"]
        set_rng_state(saved["rng"])
        print(f"resumed at step {state['step']}", file=sys.stderr)
    data = {k: torch.from_numpy(codes[k]) for k in ("qi", "luma", "chroma", "knob")}
    log_path = out / "log.csv"
    new_log = not log_path.exists()
    log = log_path.open("a", newline="")
    writer = csv.writer(log)
    if new_log:
        writer.writerow(["step", "split", "bpp", "bits_importance", "bits_luma", "bits_chroma",
                         "lr", "sec"])

    def save() -> None:
        tmp = ckpt.with_suffix(".tmp")
        torch.save({"nets": {n: nets[n].state_dict() for n in NAMES}, "opt": opt.state_dict(),
                    "state": state, "rng": rng_state(),
                    "configs": {k: c.to_dict() for k, c in cfgs.items()}}, tmp)
        tmp.replace(ckpt)

    t0 = time.time()
    print(f"train crops {len(tr)}, validation {len(va)}, device {device}", file=sys.stderr)
    while state["step"] < args.steps:
        step = state["step"]
        forced = sum(step >= f * args.steps for f in FORCED_DROPS)
        state["lr_index"] = min(LR_STEPS - 1, max(state["lr_index"], forced))
        lr = lrs[state["lr_index"]]
        for g in opt.param_groups:
            g["lr"] = lr
        sel = torch.from_numpy(np.random.choice(tr, size=min(args.batch, len(tr)),
                                                replace=False))
        qi, luma, chroma = (data[k][sel].to(device) for k in ("qi", "luma", "chroma"))
        knob = data["knob"][sel]
        ch, cw = qi.shape[1:]
        if args.crop and args.crop < max(ch, cw):  # one random sub-crop for the whole batch
            i = int(np.random.randint(max(1, ch - args.crop + 1)))
            j = int(np.random.randint(max(1, cw - args.crop + 1)))
            qi = qi[:, i : i + args.crop, j : j + args.crop]
            luma = luma[..., i : i + args.crop, j : j + args.crop]
            chroma = chroma[..., i : i + args.crop, j : j + args.crop]
        total = 0.0
        stats = {}
        for name, (cls, act, side, kb) in batch_inputs(qi, luma, chroma, levels, cfgs,
                                                       knob).items():
            nets[name].train()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.amp):
                b, c = code_length_bits(nets[name], cls, act, side, kb)
            total = total + b
            stats[name] = (b.item() / max(c.item(), 1))
        loss = total / (qi.numel() * _pixels_per_position(codes))  # bits per pixel
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        state["step"] = step = step + 1
        if step % args.log_every == 0:
            writer.writerow([step, "train", f"{loss.item():.5f}",
                             *(f"{stats[n]:.4f}" for n in NAMES), f"{lr:.2e}",
                             f"{time.time() - t0:.0f}"])
            log.flush()
        if len(va) and (step % args.val_every == 0 or step == args.steps):
            ev = _evaluate(nets, codes, va, cfgs, device, args.batch)
            writer.writerow([step, "val", f"{ev['bpp']:.5f}",
                             *(f"{ev['bits_' + n]:.4f}" for n in NAMES), f"{lr:.2e}",
                             f"{time.time() - t0:.0f}"])
            log.flush()
            print(f"step {step} val {ev['bpp']:.4f} bpp (" + ", ".join(
                f"{n} {ev['bits_' + n]:.3f}" for n in NAMES) + " bits/symbol)", file=sys.stderr)
            if ev["bpp"] < state["best"] - 1e-6:
                state["best"], state["bad"] = ev["bpp"], 0
            else:
                state["bad"] += 1
                if state["bad"] >= args.patience and state["lr_index"] < LR_STEPS - 1:
                    state["lr_index"] += 1
                    state["bad"] = 0
        if step % args.ckpt_every == 0 or step == args.steps:
            save()
        if args.max_minutes is not None and time.time() - t0 > 60 * args.max_minutes:
            save()
            print(f"stopping at step {step} (rerun to resume)", file=sys.stderr)
            break
    log.close()
    if state["step"] >= args.steps:
        path = freeze_run(out, codes, out / "tcae.safetensors", calib=args.calib)
        print(f"frozen integer models: {path}", file=sys.stderr)
    return ckpt


def load_run(run: Path, device: str = "cpu") -> dict[str, TcaeNet]:
    saved = torch.load(Path(run) / "last.ckpt", map_location=device, weights_only=False)
    nets = {}
    for n in NAMES:
        nets[n] = TcaeNet(TcaeConfig.from_dict(saved["configs"][n]))
        nets[n].load_state_dict(saved["nets"][n])
        nets[n].eval()
    return nets


def freeze_models(nets: dict[str, TcaeNet], codes: dict, idx: np.ndarray) -> TcaeModels:
    """Calibrate activation scales on crops ``idx`` and build the integer models."""
    levels = int(codes["levels"])
    cfgs = {n: nets[n].cfg for n in NAMES}
    batches: dict[str, list] = {n: [] for n in NAMES}
    for s in range(0, len(idx), 8):
        sel = idx[s : s + 8]
        qi, luma, chroma = (torch.from_numpy(codes[k][sel]) for k in ("qi", "luma", "chroma"))
        knob = torch.from_numpy(codes["knob"][sel])
        for name, inp in batch_inputs(qi, luma, chroma, levels, cfgs, knob).items():
            batches[name].append(inp)
    frozen = {n: freeze(nets[n].cpu().float(), batches[n]) for n in NAMES}
    return TcaeModels(frozen["importance"], frozen["luma"], frozen["chroma"])


def freeze_run(run: Path, codes: dict, out: Path, calib: int = 32, check: int = 32) -> Path:
    """Freeze a run's float models; compare float and integer code lengths on ``check``
    validation crops (written to ``<out>.json``)."""
    nets = load_run(run)
    tr, va = split(codes)
    rng = np.random.default_rng(0)
    idx = np.sort(rng.choice(tr, size=min(calib, len(tr)), replace=False))
    models = freeze_models(nets, codes, idx)
    eid = models.save(out)
    report = {"entropy_id": eid.hex(), "calibration_crops": len(idx)}
    if len(va) and check:
        cfgs = {n: nets[n].cfg for n in NAMES}
        report["float"] = _evaluate(nets, codes, va[:check], cfgs, torch.device("cpu"), 8)
        report["integer"] = evaluate_frozen(models, codes, va[:check])
    Path(str(out) + ".json").write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report), file=sys.stderr)
    return out


def ship_run(run: Path, codes_path: Path, model: str, out_dir: Path, calib: int = 32,
             note: str = "") -> Path:
    """Freeze a run for the shipped autoencoder ``model``: ``<out_dir>/<model>-tcae-<id>
    .safetensors`` (the id is the hash of its bytes, as `.lic` headers carry it) and a card
    beside it (the run's config, steps, the codes it was trained on, float vs integer bits)."""
    from lcodec import models

    info = models.find(model)
    model = info.name  # the prefix LoadedModel.tcae looks for, even when given "<name>-<id>"
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f"{model}-tcae.tmp.safetensors"
    freeze_run(run, load_codes(codes_path), tmp, calib)
    report = json.loads(Path(str(tmp) + ".json").read_text())
    Path(str(tmp) + ".json").unlink()
    final = out_dir / f"{model}-tcae-{report['entropy_id']}.safetensors"
    tmp.replace(final)
    saved = torch.load(Path(run) / "last.ckpt", map_location="cpu", weights_only=False)
    card = {
        "name": f"{model}-tcae", "entropy_id": report["entropy_id"],
        "method": "INCLINED_TCAE_V1", "for_model": f"{model} ({info.model_id.hex()})",
        "training": {"codes": str(codes_path), "steps": saved["state"]["step"],
                     "config": json.loads((Path(run) / "config.json").read_text()),
                     "note": note},
        "freeze": report,
    }
    final.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    return final


def evaluate_frozen(models: TcaeModels, codes: dict, idx: np.ndarray) -> dict[str, float]:
    """Integer-model bits per symbol and bits per pixel on crops ``idx``."""
    bits = dict.fromkeys(NAMES, 0.0)
    count = dict.fromkeys(NAMES, 0)
    pixels = 0
    for i in idx:
        qi, luma, chroma = (codes[k][i].astype(np.int64) for k in ("qi", "luma", "chroma"))
        r = models.code_length_bits(qi, luma, chroma, knob_thousandths(float(codes["knob"][i])))
        m_y, m_c = models.masks(qi)
        for n, c in (("importance", qi.size), ("luma", int(m_y.sum())),
                     ("chroma", int(m_c.sum()))):
            bits[n] += r[n]
            count[n] += c
        pixels += qi.size * _pixels_per_position(codes)
    out = {f"bits_{n}": bits[n] / max(count[n], 1) for n in NAMES}
    out["bpp"] = sum(bits.values()) / max(pixels, 1)
    return out


def evaluate_static(tables: dict[str, np.ndarray], codes: dict, idx: np.ndarray
                    ) -> dict[str, float]:
    """The same figures as :func:`evaluate_frozen` for a model's STATIC_CONTEXT_V1 tables
    (the method a TCAE has to beat), from the tables' own Σ −log2 p."""
    from lcodec.entropy import static_context as sc

    levels = int(codes["levels"])
    bits = dict.fromkeys(NAMES, 0.0)
    count = dict.fromkeys(NAMES, 0)
    pixels = 0
    for i in idx:
        qi, luma, chroma = (codes[k][i].astype(np.int64) for k in ("qi", "luma", "chroma"))
        bits["importance"] += sc.importance_code_length_bits(qi, tables["entropy.qi"])
        count["importance"] += qi.size
        for n, sym in (("luma", luma), ("chroma", chroma)):
            m = code_mask_np(qi, sym.shape[0], levels)
            bits[n] += sc.code_length_bits(sym, m, tables[f"entropy.{n}"])
            count[n] += int(m.sum())
        pixels += qi.size * _pixels_per_position(codes)
    out = {f"bits_{n}": bits[n] / max(count[n], 1) for n in NAMES}
    out["bpp"] = sum(bits.values()) / max(pixels, 1)
    return out


# ---------------------------------------------------------------- codes


def make_codes(args: argparse.Namespace) -> Path:
    from lcodec import codec, models
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
        an = codec.analyse(loaded, _source(rgb))
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
    """What ``codec.analyse`` takes: a SourceImage (newer codec) or the RGB array itself."""
    try:
        from lcodec.imageio import SourceImage
    except ImportError:
        return rgb
    return SourceImage(rgb=rgb)


def _smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing of the last two axes (periodic, via FFT)."""
    h, w = x.shape[-2:]
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.fftfreq(w)[None, :]
    g = np.exp(-2 * (math.pi * sigma) ** 2 * (fy**2 + fx**2))
    return np.real(np.fft.ifft2(np.fft.fft2(x) * g))


def synthetic_codes(count: int, size: int | tuple[int, int], seed: int = 0, n_luma: int = 32,
                    n_chroma: int = 8, levels: int = 16, classes: int = 8) -> dict:
    """Spatially and cross-channel correlated fake codes (development and tests only)."""
    rng = np.random.default_rng(seed)
    h, w = (size, size) if isinstance(size, int) else size

    def field(*shape: int, sigma: float) -> np.ndarray:
        f = _smooth(rng.standard_normal((*shape, h, w)), sigma)
        return f / (f.std(axis=(-2, -1), keepdims=True) + 1e-9)

    base = field(count, sigma=3.0)
    qi = np.clip(np.floor(levels / (1 + np.exp(-(1.2 * base + 0.3 * field(count, sigma=1.0)))))
                 , 0, levels - 1).astype(np.int64)

    def cuboid(n: int) -> np.ndarray:
        shared = field(count, 1, sigma=2.0)
        own = field(count, n, sigma=1.5)
        mix = 0.6 * shared + 0.5 * own + 0.3 * np.abs(base)[:, None]
        mix = mix + 0.35 * rng.standard_normal(mix.shape)
        lv = np.clip(np.floor((mix + 2.0) / 4.0 * classes), 0, classes - 1).astype(np.int64)
        k = np.arange(n).reshape(1, n, 1, 1)
        return np.where(k * levels < n * qi[:, None], lv, 0)

    return {"qi": qi.astype(np.uint8), "luma": cuboid(n_luma).astype(np.uint8),
            "chroma": cuboid(n_chroma).astype(np.uint8), "image": np.arange(count),
            "knob": np.zeros(count, np.float32), "levels": np.array(levels)}


# ---------------------------------------------------------------- speed


def random_models(codes: dict, seed: int = 0) -> TcaeModels:
    """Untrained default-size models frozen on ``codes`` (for timing: speed ignores weights)."""
    torch.manual_seed(seed)
    nets = {n: TcaeNet(c).eval() for n, c in configs_for(codes).items()}
    return freeze_models(nets, codes, np.arange(min(4, len(codes["qi"]))))


def mosaic(codes: dict, h: int, w: int, start: int = 0) -> tuple[np.ndarray, ...]:
    """An (h, w) code map tiled from consecutive crops (for realistic mask densities)."""
    cs_h, cs_w = codes["qi"].shape[1:]
    out = []
    for key in ("qi", "luma", "chroma"):
        a = codes[key]
        rows = []
        n = start
        for _ in range(-(-h // cs_h)):
            row = []
            for _ in range(-(-w // cs_w)):
                row.append(a[n % len(a)])
                n += 1
            rows.append(np.concatenate(row, -1))
        out.append(np.concatenate(rows, -2)[..., :h, :w].astype(np.int64))
    return tuple(out)


def bench(weights: str | None, codes_path: str | None, h: int, w: int, repeat: int,
          knob: float | None = 0.0) -> dict:
    """Encode / decode seconds (wall and CPU) of one h×w code map (best of ``repeat``),
    tiled from the crops of rate knob ``knob``."""
    codes = load_codes(Path(codes_path)) if codes_path else synthetic_codes(8, 32)
    models = TcaeModels.load(weights) if weights else random_models(codes)
    sel = np.arange(len(codes["qi"]))
    if knob is not None and "knob" in codes:
        sel = sel[np.isclose(codes["knob"], knob)]
    qi, luma, chroma = mosaic({k: codes[k][sel] for k in ("qi", "luma", "chroma")}, h, w)
    m_y, m_c = models.masks(qi)
    best: dict[str, float] = {}

    cpu: dict[str, float] = {}

    def timed(key: str, fn, *args):
        t, c = time.perf_counter(), time.process_time()
        out = fn(*args)
        best[key] = min(best.get(key, math.inf), time.perf_counter() - t)
        cpu[key] = min(cpu.get(key, math.inf), time.process_time() - c)
        return out

    pay: dict[str, bytes] = {}
    kt = knob_thousandths(knob or 0.0)
    b = models.buckets(kt)
    for _ in range(repeat):
        pay = timed("encode_all", models.encode, qi, luma, chroma, kt)
        timed("decode_importance", models.importance.decode,
              SymbolDecoder(pay["importance"]), np.ones((1, h, w), bool), b["importance"])
        timed("decode_luma", models.luma.decode, SymbolDecoder(pay["luma"]), m_y, b["luma"])
        timed("decode_chroma", models.chroma.decode, SymbolDecoder(pay["chroma"]), m_c,
              b["chroma"])
    for d in (best, cpu):
        d["decode_importance_plus_luma"] = d["decode_importance"] + d["decode_luma"]
    sizes = {k: len(v) for k, v in pay.items()}
    return {"h": h, "w": w, "luma_density": float(m_y.mean()), "luma_symbols": int(m_y.sum()),
            "bytes": sizes, "wall_seconds": {k: round(v, 3) for k, v in best.items()},
            "cpu_seconds": {k: round(v, 3) for k, v in cpu.items()}}


# ---------------------------------------------------------------- CLI


def _train_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m lcodec.train.tcae", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--codes", required=True, help="codes npz from make-codes")
    ap.add_argument("--out", required=True, help="run folder (checkpoint, log.csv, weights)")
    ap.add_argument("--steps", type=int, default=20000, help="total optimizer steps")
    ap.add_argument("--max-minutes", type=float, default=None,
                    help="stop (and checkpoint) after this many minutes; rerun to resume")
    ap.add_argument("--batch", type=int, default=8, help="code crops per step")
    ap.add_argument("--crop", type=int, default=0,
                    help="train on random sub-crops of this size (0: the stored crops)")
    ap.add_argument("--lr", type=float, default=1e-3,
                    help="first learning rate (then /3, /9, /27; the paper used 3e-4)")
    ap.add_argument("--val-every", type=int, default=250, help="steps between validations")
    ap.add_argument("--val-crops", type=int, default=256, help="validation crops used")
    ap.add_argument("--patience", type=int, default=5,
                    help="validations without improvement before the next learning rate")
    ap.add_argument("--log-every", type=int, default=20, help="steps between training rows")
    ap.add_argument("--ckpt-every", type=int, default=250, help="steps between checkpoints")
    ap.add_argument("--calib", type=int, default=32, help="crops used to calibrate freeze")
    ap.add_argument("--configs", default=None,
                    help='JSON overrides per model, e.g. \'{"luma": {"groups": 8}}\'')
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    ap.add_argument("--cpu", action="store_true", help="train on the CPU even with CUDA")
    ap.add_argument("--init", default=None,
                    help="start a new run from another run's models (new knob biases at 0, "
                         "new luma classes with the side weights of their side class)")
    ap.add_argument("--amp", action="store_true",
                    help="bf16 autocast for the convolutions (the softmax stays fp32)")
    ap.add_argument("--seed", type=int, default=0)
    return ap


def _validation(path: str, limit: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """A codes file and its first ``limit`` validation crops."""
    codes = load_codes(Path(path))
    return codes, split(codes)[1][:limit]


def _join_negative_values(argv: list[str], options: tuple[str, ...]) -> list[str]:
    """``--knobs -0.3,0,0.3`` -> ``--knobs=-0.3,0,0.3`` (argparse reads ``-0.3,…`` as a flag)."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        if argv[i] in options and i + 1 < len(argv):
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    cmd = argv[0] if argv and not argv[0].startswith("-") else "train"
    if cmd == "train":
        train(_train_parser().parse_args(argv))
        return 0
    rest = _join_negative_values(argv[1:], ("--knobs",))
    ap = argparse.ArgumentParser(prog=f"python -m lcodec.train.tcae {cmd}")
    if cmd == "make-codes":
        ap.add_argument("--model", required=True, help="shipped autoencoder name (models/)")
        ap.add_argument("--images", required=True, help="folder of training images")
        ap.add_argument("--out", required=True, help="output npz")
        ap.add_argument("--knobs", default="-0.3,0,0.3", help="comma-separated rate knobs")
        ap.add_argument("--limit", type=int, default=0, help="use at most N images")
        ap.add_argument("--crop", type=int, default=32, help="crop size in code positions")
        ap.add_argument("--crops-per-image", type=int, default=2, help="crops per image·knob")
        ap.add_argument("--threads", type=int, default=0)
        ap.add_argument("--seed", type=int, default=0)
        make_codes(ap.parse_args(rest))
    elif cmd == "freeze":
        ap.add_argument("--run", required=True, help="run folder with last.ckpt")
        ap.add_argument("--codes", required=True, help="codes npz (calibration crops)")
        where = ap.add_mutually_exclusive_group(required=True)
        where.add_argument("--out", help="output safetensors (plus a .json report)")
        where.add_argument("--model", help="ship it for this autoencoder: models/entropy/"
                                           "<model>-tcae-<id>.safetensors and its card")
        ap.add_argument("--calib", type=int, default=32)
        ap.add_argument("--note", default="", help="free text for the card")
        a = ap.parse_args(rest)
        if a.model:
            from lcodec.models import entropy_dir

            print(ship_run(Path(a.run), Path(a.codes), a.model, entropy_dir(), a.calib,
                           a.note))
        else:
            freeze_run(Path(a.run), load_codes(Path(a.codes)), Path(a.out), a.calib)
    elif cmd == "eval":
        ap.add_argument("--weights", required=True, help="frozen safetensors")
        ap.add_argument("--codes", required=True, help="codes npz")
        ap.add_argument("--limit", type=int, default=64, help="validation crops used")
        a = ap.parse_args(rest)
        codes, va = _validation(a.codes, a.limit)
        print(json.dumps(evaluate_frozen(TcaeModels.load(a.weights), codes, va), indent=2))
    elif cmd == "static":
        from lcodec import models

        ap.add_argument("--model", required=True, help="autoencoder whose tables to measure")
        ap.add_argument("--codes", required=True, help="codes npz made with that model")
        ap.add_argument("--limit", type=int, default=256, help="validation crops used")
        a = ap.parse_args(rest)
        codes, va = _validation(a.codes, a.limit)
        tables = models.load(models.find(a.model)).tables
        print(json.dumps(evaluate_static(tables, codes, va), indent=2))
    elif cmd == "bench":
        ap.add_argument("--weights", default=None, help="frozen safetensors (default: random)")
        ap.add_argument("--codes", default=None, help="codes npz to tile (default: synthetic)")
        ap.add_argument("--h", type=int, default=64)
        ap.add_argument("--w", type=int, default=96)
        ap.add_argument("--repeat", type=int, default=3)
        ap.add_argument("--knob", type=float, default=0.0, help="use crops of this rate knob")
        a = ap.parse_args(rest)
        print(json.dumps(bench(a.weights, a.codes, a.h, a.w, a.repeat, a.knob), indent=2))
    elif cmd == "synth":
        ap.add_argument("--out", required=True)
        ap.add_argument("--count", type=int, default=256)
        ap.add_argument("--size", type=int, default=32)
        ap.add_argument("--seed", type=int, default=0)
        a = ap.parse_args(rest)
        np.savez_compressed(a.out, **synthetic_codes(a.count, a.size, a.seed))
    else:
        raise SystemExit(f"unknown command {cmd!r} (make-codes, freeze, eval, bench, synth, or "
                         "train)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
