"""The resumable training loop (seed 004 §3.2-3.4).

One config (JSON) describes a run. Checkpoints hold the model, optimizer, step, schedule and
every RNG state, so a resumed run continues exactly where it stopped. Progress goes to
``log.csv`` (and a progress line on a terminal).

Loss = distortion (:mod:`lcodec.train.losses`: MSE, MS-SSIM or YCbCr-L1 with chroma weight γ,
optionally + ΔE00; with ``log_scale`` its per-image log) + λ·max(0, rate − r) + quantization
loss (eq. 9, reaching only the LCMQ centres). The rate is the bpp the importance mask would
cost before entropy coding (eq. 8 in bits, with threshold r = ``rate_threshold``); the rate
knob (an offset added to the importance map) is drawn at random per image, so that one model
covers a range of rates. The first ``pretrain_fraction`` of the steps trains without the
importance mask (§3.4).

Options from the paper and its seeds: ``quantizer`` lcmq | lloyd | uniform
(:class:`lcodec.quant.ChannelQuantizer`); ``importance`` ste (straight-through mask) |
two_stage (eqs. 13-19, :mod:`lcodec.train.importance`); ``lr_schedule`` decay (constant, then
geometric decay to ``lr_final`` from ``decay_from``) | plateau (÷10 when the validation loss has
not improved for ``plateau_patience`` validations, at most twice: 1e-4 → 1e-5 → 1e-6).

On CUDA the networks run under bf16 autocast in channels-last layout (codes, quantizer,
mask and losses stay fp32). A run with ``budget_minutes`` times its first steps and then
fixes its step count to fill the budget; its LR decay follows the larger of step and wall
time progress, so such a run always ends decayed but is not bit-reproducible. Every
``snapshot_every`` steps and at the end it writes ``snapshot.safetensors``: fp16 weights
with the config and step in the metadata, small enough to carry between machines, which
``init`` (weights to start from) and ``export`` accept.
"""

from __future__ import annotations

import csv
import json
import math
import random
import sys
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from lcodec.color import rgb_to_ycbcr, ycbcr_to_rgb
from lcodec.config import CONFIGS
from lcodec.imageio import list_images
from lcodec.nets import CWIC
from lcodec.quant import QUANTIZERS
from lcodec.train.data import CropSampler, centre_crops, is_validation, load_rgb
from lcodec.train.importance import best_levels, importance_loss
from lcodec.train.losses import KINDS, distortion, log_distortion, per_image, psnr
from lcodec.train.rng import rng_state, set_rng_state


@dataclass
class TrainConfig:
    data: str = "../shared/data/train"
    net: str = "lite"
    distortion: str = "mse"  # mse | msssim | ycbcr_l1
    steps: int = 5000
    batch: int = 8
    crop: int = 128
    lr: float = 2e-4
    lr_final: float = 2e-5
    decay_from: float = 0.7  # fraction of steps after which the LR decays geometrically
    lam: float = 1.0  # weight of the rate term (bpp before entropy coding)
    mse_weight: float = 0.0  # with msssim: plus this × 1000·MSE (keeps colours from drifting)
    chroma_weight: float = 1.0  # γ of the ycbcr_l1 distortion
    deltae_weight: float = 0.0  # plus this × mean ΔE00
    rate_threshold: float = 0.0  # r (bpp): the rate term penalises only the rate above it
    log_scale: float = 0.0  # > 0: distortion term = log_scale·mean(ln d) per image (losses)
    quantizer: str = "lcmq"  # lcmq | lloyd | uniform
    importance: str = "ste"  # ste | two_stage
    imp_alpha: float = 0.05  # α of eq. 18 (mean over positions)
    imp_xi: float = 0.1  # ξ of eq. 13
    lr_schedule: str = "decay"  # decay | plateau
    plateau_patience: int = 5
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
    reset_quantizer: bool = False  # with init: start from the uniform centres (ablations)
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, value, allowed in (("distortion", self.distortion, KINDS),
                                     ("quantizer", self.quantizer, QUANTIZERS),
                                     ("importance", self.importance, ("ste", "two_stage")),
                                     ("lr_schedule", self.lr_schedule, ("decay", "plateau")),
                                     ("net", self.net, tuple(CONFIGS))):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")

    @classmethod
    def load(cls, path: Path) -> TrainConfig:
        raw = json.loads(path.read_text())
        if "offset_range" in raw:
            raw["offset_range"] = tuple(raw["offset_range"])
        unknown = sorted(set(raw) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"{path}: unknown config keys {', '.join(unknown)}")
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


def rate_bpp(model: CWIC, out: dict[str, torch.Tensor]) -> torch.Tensor:
    """Raw code bits per pixel implied by the mask (before entropy coding)."""
    cfg = model.cfg
    per_pos = out["rate_luma"] * cfg.n_luma + out["rate_chroma"] * cfg.n_chroma
    return per_pos * element_bits(model)


def element_bits(model: CWIC) -> float:
    """Bits per pixel of one coded code element per position (log2 T / stride²)."""
    return math.log2(model.cfg.levels) / model.cfg.stride**2


def training_loss(model: CWIC, cfg: TrainConfig, x: torch.Tensor, out: dict[str, torch.Tensor],
                  masked: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, distortion, rate bpp) of one batch; ``out`` is the model's training pass
    (``masked``: with the importance mask, i.e. not pre-training)."""
    x_hat = ycbcr_to_rgb(out["x_hat"])
    each = per_image(x, x_hat, cfg.distortion, cfg.mse_weight, cfg.chroma_weight,
                     cfg.deltae_weight)
    d = each.mean()
    d_loss = log_distortion(each, cfg.log_scale) if cfg.log_scale else d
    r = rate_bpp(model, out)
    over = torch.clamp(r - cfg.rate_threshold, min=0.0)
    loss = d_loss + cfg.lam * over + out["quant_loss"]
    if cfg.importance == "two_stage" and masked:
        g = torch.autograd.grad(d_loss, [out["z_y"], out["z_c"]], retain_graph=True)
        # γ of one coded element: d(λ·rate)/d(mask entry), or 0 below the threshold (eq. 15)
        gamma = 0.0 if float(over) == 0.0 else (
            cfg.lam * element_bits(model) / out["z_y"][:, :1].numel())
        target = best_levels(list(g), gamma, model.cfg.imp_levels, cfg.imp_xi)
        loss = loss + importance_loss(out["p_shifted"], target, model.cfg.imp_levels,
                                      cfg.imp_alpha)
    return loss, d, r


class _Schedule:
    """Learning rate of the ``decay`` or ``plateau`` schedule; its state is checkpointed."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.drops = 0  # plateau: how many times the LR was divided by 10
        self.best = math.inf
        self.bad = 0

    def lr(self, progress: float) -> float:
        if self.cfg.lr_schedule == "plateau":
            return self.cfg.lr / 10**self.drops
        return learning_rate(self.cfg, progress)

    def validated(self, loss: float) -> None:
        """Plateau: count validations without improvement; drop the LR after ``patience``."""
        if loss < self.best - 1e-6:
            self.best, self.bad = loss, 0
            return
        self.bad += 1
        if self.bad >= self.cfg.plateau_patience and self.drops < 2:
            self.drops, self.bad = self.drops + 1, 0

    def state(self) -> dict:
        return {"drops": self.drops, "best": self.best, "bad": self.bad}

    def load(self, state: dict) -> None:
        self.drops, self.best, self.bad = state["drops"], state["best"], state["bad"]


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
    for q in (model.luma_q, model.chroma_q):
        q.set_mode(cfg.quantizer)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=cfg.lr)
    schedule = _Schedule(cfg)
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
        if "schedule" in state:
            schedule.load(state["schedule"])
        sampler.set_state(state["sampler"])
        set_rng_state(state["rng"])
        print(f"resumed at step {step} of {total_steps}", flush=True)
    elif cfg.init:
        weights, _, init_step = load_weights(Path(cfg.init))
        model.load_state_dict(weights, strict=False)
        if cfg.reset_quantizer:
            model.luma_q.reset_uniform()
            model.chroma_q.reset_uniform()
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
                    "schedule": schedule.state(), "sampler": sampler.state(),
                    "rng": rng_state(), "config": asdict(cfg)}, tmp)
        tmp.replace(ckpt)

    def progress() -> float:
        by_steps = step / max(1, total_steps)
        if cfg.budget_minutes is None:
            return by_steps
        return max(by_steps, wall() / (60 * cfg.budget_minutes))

    bar = _ProgressLine()
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
        lr = schedule.lr(progress())
        for g in opt.param_groups:
            g["lr"] = lr
        model.train()
        x = sampler.batch(cfg.batch).to(device, non_blocking=True)
        x = x.contiguous(memory_format=layout)
        offset = torch.rand(cfg.batch, 1, 1, 1, device=device) * (hi - lo) + lo
        pretraining = not calibrated or step < int(cfg.pretrain_fraction * total_steps)
        ycc = rgb_to_ycbcr(x)
        with amp:
            out = model(ycc, offset, use_mask=not pretraining,
                        hard_mask=cfg.importance == "two_stage")
        loss, d, r = training_loss(model, cfg, x, out, masked=not pretraining)
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
        if cfg.budget_minutes is not None and calibrated and wall() >= 60 * cfg.budget_minutes:
            total_steps = step  # the budget is spent: this step is the last (validated, saved)
        if step % 20 == 0:
            train_psnr = psnr(x, ycbcr_to_rgb(out["x_hat"].detach()))
            writer.writerow([step, "train", f"{loss.item():.4f}", f"{d.item():.4f}",
                             f"{r.item():.4f}", f"{train_psnr:.3f}", f"{lr:.2e}",
                             f"{wall():.0f}"])
            log.flush()
            bar.show(step, total_steps, f"loss {loss.item():.3f}, {train_psnr:.2f} dB, "
                     f"{r.item():.3f} bpp raw, lr {lr:.1e}")
        if step % cfg.val_every == 0 or step == total_steps:
            bar.clear()
            schedule.validated(_validate(model, val, cfg, step, writer, lr, wall(), device,
                                         layout))
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
            bar.clear()
            print(f"stopping at step {step} (run again to resume)", flush=True)
            break
    bar.clear()
    log.close()
    return ckpt


class _ProgressLine:
    """A one-line progress bar on a terminal (nothing when stdout is a file or a pipe)."""

    def __init__(self) -> None:
        self.active = sys.stdout.isatty()

    def show(self, step: int, total: int, text: str) -> None:
        if self.active:
            done = int(30 * step / max(1, total))
            sys.stdout.write(f"\r[{'#' * done}{'.' * (30 - done)}] {step}/{total} {text}\033[K")
            sys.stdout.flush()

    def clear(self) -> None:
        if self.active:
            sys.stdout.write("\r\033[K")
            sys.stdout.flush()


@torch.no_grad()
def _validate(model: CWIC, val: torch.Tensor, cfg: TrainConfig, step: int, writer, lr: float,
              sec: float, device: torch.device,
              layout: torch.memory_format = torch.contiguous_format) -> float:
    """Log distortion, raw rate and PSNR at three knobs; returns the mean loss (for plateaus)."""
    model.eval()
    losses = []
    for offset in (-0.2, 0.0, 0.2):
        ds, rs, ps = [], [], []
        for i in range(0, len(val), 8):
            x = val[i : i + 8].to(device).contiguous(memory_format=layout)
            ycc = rgb_to_ycbcr(x)
            with torch.autocast(device.type, dtype=torch.bfloat16,
                                enabled=device.type == "cuda" and cfg.amp):
                out = model(ycc, offset)
            x_hat = ycbcr_to_rgb(out["x_hat"]).clamp(0, 1)
            ds.append(distortion(x, x_hat, cfg.distortion, cfg.mse_weight, cfg.chroma_weight,
                                 cfg.deltae_weight).item())
            rs.append(rate_bpp(model, out).item())
            ps.append(psnr(x, x_hat))
        losses.append(np.mean(ds) + cfg.lam * max(0.0, np.mean(rs) - cfg.rate_threshold))
        writer.writerow([step, f"val{offset:+.1f}", "", f"{np.mean(ds):.4f}",
                         f"{np.mean(rs):.4f}", f"{np.mean(ps):.3f}", f"{lr:.2e}", f"{sec:.0f}"])
        print(f"step {step} val offset {offset:+.1f}: psnr {np.mean(ps):.2f} dB, "
              f"raw rate {np.mean(rs):.3f} bpp", flush=True)
    return float(np.mean(losses))
