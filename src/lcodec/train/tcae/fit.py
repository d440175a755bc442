"""Training the three float TCAEs on a codes file (seed 004 §4.5), resumable.

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
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from lcodec.entropy.tcae_config import TcaeConfig
from lcodec.entropy.tcae_net import TcaeNet, code_length_bits, init_marginals
from lcodec.train.rng import rng_state, set_rng_state
from lcodec.train.tcae.codes import load_codes, pixels_per_position, split
from lcodec.train.tcae.evaluate import evaluate_float
from lcodec.train.tcae.freeze import freeze_run
from lcodec.train.tcae.inputs import NAMES, batch_inputs, configs_for

LR_STEPS = 4  # learning rates lr, lr/3, lr/9, lr/27 (paper §4.5: lr = 3e-4)
FORCED_DROPS = (0.6, 0.8, 0.9)


def fit(args: argparse.Namespace) -> Path:
    """Train (or resume) the run in ``args.out``; freeze it once ``args.steps`` are done.
    Returns the checkpoint's path."""
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
        loss = total / (qi.numel() * pixels_per_position(codes))  # bits per pixel
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
            ev = evaluate_float(nets, codes, va, cfgs, device, args.batch)
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
