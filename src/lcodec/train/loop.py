"""The resumable training loop (seed 004 §3.2-3.4, simplified for a first model).

One config (JSON) describes a run. Checkpoints hold the model, optimizer, step and every RNG
state, so a resumed run continues exactly where it stopped. Progress goes to ``log.csv``.

On CUDA the networks run under bf16 autocast in channels-last layout (codes, quantizer,
mask and losses stay fp32). A run with ``budget_minutes`` times its first steps and then
fixes its step count to fill the budget; its LR decay follows the larger of step and wall
time progress, so such a run always ends decayed but is not bit-reproducible. Every
``snapshot_every`` steps and at the end it writes ``snapshot.safetensors``: fp16 weights
with the config and step in the metadata, small enough to carry between machines, which
``init`` (weights to start from) and ``export`` accept.

Loss = distortion + λ·rate + quantization loss, where the rate is the bpp the mask would cost
before entropy coding (eq. 8 in bits) and the rate knob (an offset added to the importance
map) is drawn at random per image, so that one model covers a range of rates.
"""

from __future__ import annotations

import csv
import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from lcodec.color import rgb_to_ycbcr, ycbcr_to_rgb
from lcodec.config import CONFIGS
from lcodec.nets import CWIC
from lcodec.train.data import CropSampler, centre_crops, is_validation, list_images, load_rgb
from lcodec.train.rng import rng_state, set_rng_state


@dataclass
class TrainConfig:
    data: str = "../shared/data/train"
    net: str = "lite"
    distortion: str = "mse"  # mse | msssim
    steps: int = 5000
    batch: int = 8
    crop: int = 128
    lr: float = 2e-4
    lr_final: float = 2e-5
    decay_from: float = 0.7  # fraction of steps after which the LR decays geometrically
    lam: float = 1.0  # weight of the rate term (bpp before entropy coding)
    mse_weight: float = 0.0  # with msssim: plus this × 1000·MSE (keeps colours from drifting)
    offset_range: tuple[float, float] = (-0.5, 0.5)
    pretrain_fraction: float = 0.05  # steps without the importance mask (paper §3.4)
    val_fraction: float = 0.02
    val_every: int = 250
    ckpt_every: int = 100
    seed: int = 0
    threads: int = 0  # 0: torch default
    amp: bool = True  # bf16 autocast on CUDA (ignored on CPU)
    budget_minutes: float | None = None  # fit the step count to this much wall time
    calib_steps: int = 100  # steps timed before the step count is fixed
    snapshot_every: int = 500
    init: str | None = None  # weights (snapshot or checkpoint) to start a new run from
    extra: dict = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> TrainConfig:
        raw = json.loads(path.read_text())
        if "offset_range" in raw:
            raw["offset_range"] = tuple(raw["offset_range"])
        return cls(**raw)


def learning_rate(cfg: TrainConfig, progress: float) -> float:
    """Constant ``lr`` until ``decay_from`` of the run, then geometric decay to ``lr_final``."""
    if progress < cfg.decay_from:
        return cfg.lr
    frac = min(1.0, (progress - cfg.decay_from) / max(1e-9, 1.0 - cfg.decay_from))
    return cfg.lr * (cfg.lr_final / cfg.lr) ** frac


def save_snapshot(model: CWIC, cfg: TrainConfig, step: int, path: Path) -> None:
    """fp16 weights (without usage counters) plus config and step, written atomically."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().half().cpu().contiguous() for k, v in model.state_dict().items()
               if v.is_floating_point()}
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata={"train_config": json.dumps(asdict(cfg)),
                                           "step": str(step)})
    tmp.replace(path)


def load_weights(path: Path) -> tuple[dict[str, torch.Tensor], dict, int]:
    """(float32 state dict, training config dict, step) of a snapshot, a checkpoint or a
    shipped model (whose card, beside it, gives the config and step)."""
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        with safe_open(str(path), "pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k).float() for k in f.keys()  # noqa: SIM118
                     if not k.startswith("entropy.")}
        if "train_config" in meta:
            return state, json.loads(meta["train_config"]), int(meta["step"])
        card = path.with_suffix(".json")
        training = json.loads(card.read_text()).get("training", {}) if card.exists() else {}
        return state, training, int(training.get("steps_done", 0))
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    return ckpt["model"], ckpt["config"], ckpt["step"]


def distortion(x: torch.Tensor, x_hat_rgb: torch.Tensor, kind: str,
               mse_weight: float = 0.0) -> torch.Tensor:
    """Distortion on RGB in [0, 1]: 1000·MSE, or 100·(1 − MS-SSIM) (eq. 6) plus
    ``mse_weight``·1000·MSE."""
    mse = 1000.0 * torch.mean((x - x_hat_rgb) ** 2)
    if kind == "mse":
        return mse
    if kind == "msssim":
        from pytorch_msssim import ms_ssim

        score = ms_ssim(x_hat_rgb.clamp(0, 1), x, data_range=1.0, win_size=7,
                        size_average=True)
        return 100.0 * (1.0 - score) + mse_weight * mse
    raise ValueError(f"unknown distortion {kind!r}")


def rate_bpp(model: CWIC, out: dict[str, torch.Tensor]) -> torch.Tensor:
    """Raw code bits per pixel implied by the mask (before entropy coding)."""
    cfg = model.cfg
    bits = math.log2(cfg.levels)
    per_pos = out["rate_luma"] * cfg.n_luma + out["rate_chroma"] * cfg.n_chroma
    return per_pos * bits / cfg.stride**2


def run(cfg: TrainConfig, out_dir: Path, max_minutes: float | None = None,
        stop_at: int | None = None) -> Path:
    """Train (or resume) into ``out_dir``; returns the checkpoint path.

    ``max_minutes`` / ``stop_at`` end the run early (checkpointed) after that much wall time
    or at that step; running again with the same config continues exactly.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
    layout = torch.channels_last if cuda else torch.contiguous_format
    amp = torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda and cfg.amp)

    paths = list_images(Path(cfg.data))
    train_imgs, val_imgs = [], []
    for p in paths:
        arr = load_rgb(p, cfg.crop)
        if arr is not None:
            (val_imgs if is_validation(p, cfg.val_fraction) else train_imgs).append(arr)
    sampler = CropSampler(train_imgs, cfg.crop, cfg.seed)
    val = centre_crops(val_imgs, min(256, min(min(a.shape[:2]) for a in val_imgs)))
    print(f"train images {len(train_imgs)}, validation {len(val_imgs)}, device {device}",
          flush=True)

    model = CWIC(CONFIGS[cfg.net]).to(device, memory_format=layout)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    ckpt = out_dir / "last.ckpt"
    step = 0
    total_steps = cfg.steps
    elapsed = 0.0  # wall seconds of earlier sessions of this run
    if ckpt.exists():
        state = torch.load(ckpt, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step = state["step"]
        total_steps = state.get("total_steps", cfg.steps)
        elapsed = state.get("elapsed", 0.0)
        sampler.set_state(state["sampler"])
        set_rng_state(state["rng"])
        print(f"resumed at step {step} of {total_steps}", flush=True)
    elif cfg.init:
        weights, _, init_step = load_weights(Path(cfg.init))
        model.load_state_dict(weights, strict=False)
        print(f"initialised from {cfg.init} (its step {init_step})", flush=True)
    calibrated = cfg.budget_minutes is None or step >= cfg.calib_steps

    log_path = out_dir / "log.csv"
    new_log = not log_path.exists()
    log = log_path.open("a", newline="")
    writer = csv.writer(log)
    if new_log:
        writer.writerow(["step", "split", "loss", "distortion", "rate_bpp", "psnr", "lr", "sec"])

    def wall() -> float:
        return elapsed + time.time() - t0

    def save() -> None:
        tmp = ckpt.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                    "total_steps": total_steps, "elapsed": wall(),
                    "sampler": sampler.state(), "rng": rng_state(),
                    "config": asdict(cfg)}, tmp)
        tmp.replace(ckpt)

    def progress() -> float:
        by_steps = step / max(1, total_steps)
        if cfg.budget_minutes is None:
            return by_steps
        return max(by_steps, wall() / (60 * cfg.budget_minutes))

    t0 = time.time()
    t_calib = None
    lo, hi = cfg.offset_range
    skipped = 0
    while step < total_steps:
        if not calibrated and step == 20:
            if cuda:
                torch.cuda.synchronize()
            t_calib = time.time()
        if not calibrated and step == cfg.calib_steps and t_calib is not None:
            if cuda:
                torch.cuda.synchronize()
            per_step = (time.time() - t_calib) / (cfg.calib_steps - 20)
            total_steps = step + int((60 * cfg.budget_minutes - wall()) / per_step)
            calibrated = True
            print(f"{per_step * 1000:.1f} ms/step: the budget fits {total_steps} steps",
                  flush=True)
        lr = learning_rate(cfg, progress())
        for g in opt.param_groups:
            g["lr"] = lr
        model.train()
        x = sampler.batch(cfg.batch).to(device, non_blocking=True)
        x = x.contiguous(memory_format=layout)
        offset = torch.rand(cfg.batch, 1, 1, 1, device=device) * (hi - lo) + lo
        pretraining = not calibrated or step < int(cfg.pretrain_fraction * total_steps)
        ycc = rgb_to_ycbcr(x)
        with amp:
            out = model(ycc, offset, use_mask=not pretraining)
        x_hat = ycbcr_to_rgb(out["x_hat"])
        d = distortion(x, x_hat, cfg.distortion, cfg.mse_weight)
        r = rate_bpp(model, out)
        loss = d + cfg.lam * r + out["quant_loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cuda and not bool(torch.isfinite(loss)):  # a bf16 overflow: skip this batch
            skipped += 1
            opt.zero_grad(set_to_none=True)
        else:
            opt.step()
        if not cuda or step % 10 == 0:  # the look-up syncs the GPU; dead levels are rare
            model.luma_q.reinit_dead_levels()
            model.chroma_q.reinit_dead_levels()
        step += 1
        if step % 20 == 0:
            mse = torch.mean((x - x_hat.detach().clamp(0, 1)) ** 2).item()
            writer.writerow([step, "train", f"{loss.item():.4f}", f"{d.item():.4f}",
                             f"{r.item():.4f}", f"{-10 * math.log10(mse + 1e-12):.3f}",
                             f"{lr:.2e}", f"{wall():.0f}"])
            log.flush()
        if step % cfg.val_every == 0 or step == total_steps:
            _validate(model, val, cfg, step, writer, lr, wall(), device, layout)
            log.flush()
            if skipped:
                print(f"skipped {skipped} non-finite batches so far", flush=True)
        if step % cfg.ckpt_every == 0 or step == total_steps:
            save()
        if step % cfg.snapshot_every == 0 or step == total_steps:
            save_snapshot(model, cfg, step, out_dir / "snapshot.safetensors")
        over_time = max_minutes is not None and time.time() - t0 > 60 * max_minutes
        if (over_time or step == stop_at) and step < total_steps:
            save()
            save_snapshot(model, cfg, step, out_dir / "snapshot.safetensors")
            print(f"stopping at step {step} (run again to resume)", flush=True)
            break
    log.close()
    return ckpt


@torch.no_grad()
def _validate(model: CWIC, val: torch.Tensor, cfg: TrainConfig, step: int, writer, lr: float,
              sec: float, device: torch.device,
              layout: torch.memory_format = torch.contiguous_format) -> None:
    model.eval()
    for offset in (-0.2, 0.0, 0.2):
        ds, rs, ps = [], [], []
        for i in range(0, len(val), 8):
            x = val[i : i + 8].to(device).contiguous(memory_format=layout)
            ycc = rgb_to_ycbcr(x)
            with torch.autocast(device.type, dtype=torch.bfloat16,
                                enabled=device.type == "cuda" and cfg.amp):
                out = model(ycc, offset)
            x_hat = ycbcr_to_rgb(out["x_hat"]).clamp(0, 1)
            ds.append(distortion(x, x_hat, cfg.distortion).item())
            rs.append(rate_bpp(model, out).item())
            ps.append(-10 * math.log10(torch.mean((x - x_hat) ** 2).item() + 1e-12))
        writer.writerow([step, f"val{offset:+.1f}", "", f"{np.mean(ds):.4f}",
                         f"{np.mean(rs):.4f}", f"{np.mean(ps):.3f}", f"{lr:.2e}", f"{sec:.0f}"])
        print(f"step {step} val offset {offset:+.1f}: psnr {np.mean(ps):.2f} dB, "
              f"raw rate {np.mean(rs):.3f} bpp", flush=True)
