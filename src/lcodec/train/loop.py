"""The resumable training loop (seed 004 §3.2-3.4, simplified for a first model).

One config (JSON) describes a run. Checkpoints hold the model, optimizer, step and every RNG
state, so a resumed run continues exactly where it stopped. Progress goes to ``log.csv``.

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
    offset_range: tuple[float, float] = (-0.5, 0.5)
    pretrain_fraction: float = 0.05  # steps without the importance mask (paper §3.4)
    val_fraction: float = 0.02
    val_every: int = 250
    ckpt_every: int = 100
    seed: int = 0
    threads: int = 0  # 0: torch default
    extra: dict = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> TrainConfig:
        raw = json.loads(path.read_text())
        if "offset_range" in raw:
            raw["offset_range"] = tuple(raw["offset_range"])
        return cls(**raw)


def learning_rate(cfg: TrainConfig, step: int) -> float:
    start = int(cfg.decay_from * cfg.steps)
    if step < start:
        return cfg.lr
    frac = (step - start) / max(1, cfg.steps - start)
    return cfg.lr * (cfg.lr_final / cfg.lr) ** frac


def distortion(x: torch.Tensor, x_hat_rgb: torch.Tensor, kind: str) -> torch.Tensor:
    """Distortion on RGB in [0, 1]: 1000·MSE, or 100·(1 − MS-SSIM) (eq. 6)."""
    if kind == "mse":
        return 1000.0 * torch.mean((x - x_hat_rgb) ** 2)
    if kind == "msssim":
        from pytorch_msssim import ms_ssim

        return 100.0 * (1.0 - ms_ssim(x_hat_rgb.clamp(0, 1), x, data_range=1.0,
                                      win_size=7, size_average=True))
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

    paths = list_images(Path(cfg.data))
    train_imgs, val_imgs = [], []
    for p in paths:
        arr = load_rgb(p, cfg.crop)
        if arr is not None:
            (val_imgs if is_validation(p, cfg.val_fraction) else train_imgs).append(arr)
    sampler = CropSampler(train_imgs, cfg.crop, cfg.seed)
    val = centre_crops(val_imgs, min(256, min(min(a.shape[:2]) for a in val_imgs)))
    print(f"train images {len(train_imgs)}, validation {len(val_imgs)}, device {device}")

    model = CWIC(CONFIGS[cfg.net]).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    ckpt = out_dir / "last.ckpt"
    step = 0
    if ckpt.exists():
        state = torch.load(ckpt, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step = state["step"]
        sampler.set_state(state["sampler"])
        set_rng_state(state["rng"])
        print(f"resumed at step {step}")

    log_path = out_dir / "log.csv"
    new_log = not log_path.exists()
    log = log_path.open("a", newline="")
    writer = csv.writer(log)
    if new_log:
        writer.writerow(["step", "split", "loss", "distortion", "rate_bpp", "psnr", "lr", "sec"])

    def save() -> None:
        tmp = ckpt.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                    "sampler": sampler.state(), "rng": rng_state(),
                    "config": asdict(cfg)}, tmp)
        tmp.replace(ckpt)

    t0 = time.time()
    lo, hi = cfg.offset_range
    pretrain_steps = int(cfg.pretrain_fraction * cfg.steps)
    while step < cfg.steps:
        lr = learning_rate(cfg, step)
        for g in opt.param_groups:
            g["lr"] = lr
        model.train()
        x = sampler.batch(cfg.batch).to(device)
        offset = torch.rand(cfg.batch, 1, 1, 1, device=device) * (hi - lo) + lo
        out = model(rgb_to_ycbcr(x), offset, use_mask=step >= pretrain_steps)
        d = distortion(x, ycbcr_to_rgb(out["x_hat"]), cfg.distortion)
        r = rate_bpp(model, out)
        loss = d + cfg.lam * r + out["quant_loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        model.luma_q.reinit_dead_levels()
        model.chroma_q.reinit_dead_levels()
        step += 1
        if step % 20 == 0:
            mse = torch.mean((x - ycbcr_to_rgb(out["x_hat"]).clamp(0, 1)) ** 2).item()
            writer.writerow([step, "train", f"{loss.item():.4f}", f"{d.item():.4f}",
                             f"{r.item():.4f}", f"{-10 * math.log10(mse + 1e-12):.3f}",
                             f"{lr:.2e}", f"{time.time() - t0:.0f}"])
            log.flush()
        if step % cfg.val_every == 0 or step == cfg.steps:
            _validate(model, val, cfg, step, writer, lr, time.time() - t0, device)
            log.flush()
        if step % cfg.ckpt_every == 0 or step == cfg.steps:
            save()
        if (max_minutes is not None and time.time() - t0 > 60 * max_minutes) or step == stop_at:
            save()
            print(f"stopping at step {step} (run again to resume)")
            break
    log.close()
    return ckpt


@torch.no_grad()
def _validate(model: CWIC, val: torch.Tensor, cfg: TrainConfig, step: int, writer, lr: float,
              sec: float, device: torch.device) -> None:
    model.eval()
    for offset in (-0.2, 0.0, 0.2):
        ds, rs, ps = [], [], []
        for i in range(0, len(val), 8):
            x = val[i : i + 8].to(device)
            out = model(rgb_to_ycbcr(x), offset)
            x_hat = ycbcr_to_rgb(out["x_hat"]).clamp(0, 1)
            ds.append(distortion(x, x_hat, cfg.distortion).item())
            rs.append(rate_bpp(model, out).item())
            ps.append(-10 * math.log10(torch.mean((x - x_hat) ** 2).item() + 1e-12))
        writer.writerow([step, f"val{offset:+.1f}", "", f"{np.mean(ds):.4f}",
                         f"{np.mean(rs):.4f}", f"{np.mean(ps):.3f}", f"{lr:.2e}", f"{sec:.0f}"])
        print(f"step {step} val offset {offset:+.1f}: psnr {np.mean(ps):.2f} dB, "
              f"raw rate {np.mean(rs):.3f} bpp", flush=True)
