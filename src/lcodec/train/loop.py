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
    return V1Run(cfg, out_dir).train(max_minutes, stop_at)


class V1Run:
    """One v1 training run folder: set up (seeds, data, model), resume or initialise, then
    :meth:`train` step by step with logging, validation, checkpoints and snapshots."""

    def __init__(self, cfg: TrainConfig, out_dir: Path) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.json").write_text(json.dumps(asdict(cfg), indent=2))
        self.cfg, self.out_dir = cfg, out_dir
        self.ckpt = out_dir / "last.ckpt"
        self._seed()
        self._load_data()
        self._build_model()
        self.step, self.total_steps, self.elapsed = 0, cfg.steps, 0.0
        self._resume_or_init()
        self.calibrated = cfg.budget_minutes is None or self.step >= cfg.calib_steps
        self.t0 = time.time()

    # -- set-up ------------------------------------------------------------------------
    def _seed(self) -> None:
        cfg = self.cfg
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        np.random.seed(cfg.seed)
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.cuda = self.device.type == "cuda"
        if self.cuda:
            torch.backends.cudnn.benchmark = True
        self.layout = torch.channels_last if self.cuda else torch.contiguous_format
        self.amp = torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.cuda and cfg.amp)

    def _load_data(self) -> None:
        cfg = self.cfg
        train_imgs, val_imgs = [], []
        for p in list_images(Path(cfg.data)):
            arr = load_rgb(p, cfg.crop)
            if arr is not None:
                (val_imgs if is_validation(p, cfg.val_fraction) else train_imgs).append(arr)
        self.sampler = CropSampler(train_imgs, cfg.crop, cfg.seed)
        self.val = centre_crops(val_imgs, min(256, min(min(a.shape[:2]) for a in val_imgs)))
        print(f"train images {len(train_imgs)}, validation {len(val_imgs)}, "
              f"device {self.device}", flush=True)

    def _build_model(self) -> None:
        cfg = self.cfg
        self.model = CWIC(CONFIGS[cfg.net]).to(self.device, memory_format=self.layout)
        for q in (self.model.luma_q, self.model.chroma_q):
            q.set_mode(cfg.quantizer)
        self.opt = torch.optim.Adam([p for p in self.model.parameters() if p.requires_grad],
                                    lr=cfg.lr)
        self.schedule = _Schedule(cfg)

    def _resume_or_init(self) -> None:
        cfg = self.cfg
        if self.ckpt.exists():
            state = torch.load(self.ckpt, map_location=self.device, weights_only=False)
            self.model.load_state_dict(state["model"])
            self.opt.load_state_dict(state["opt"])
            self.step = state["step"]
            self.total_steps = state.get("total_steps", cfg.steps)
            self.elapsed = state.get("elapsed", 0.0)
            if "schedule" in state:
                self.schedule.load(state["schedule"])
            self.sampler.set_state(state["sampler"])
            set_rng_state(state["rng"])
            print(f"resumed at step {self.step} of {self.total_steps}", flush=True)
        elif cfg.init:
            weights, _, init_step = load_weights(Path(cfg.init))
            self.model.load_state_dict(weights, strict=False)
            if cfg.reset_quantizer:
                self.model.luma_q.reset_uniform()
                self.model.chroma_q.reset_uniform()
            print(f"initialised from {cfg.init} (its step {init_step})", flush=True)

    # -- bookkeeping -------------------------------------------------------------------
    def wall(self) -> float:
        """Wall seconds of this run, earlier sessions included."""
        return self.elapsed + time.time() - self.t0

    def progress(self) -> float:
        by_steps = self.step / max(1, self.total_steps)
        if self.cfg.budget_minutes is None:
            return by_steps
        return max(by_steps, self.wall() / (60 * self.cfg.budget_minutes))

    def save(self) -> None:
        tmp = self.ckpt.with_suffix(".tmp")
        torch.save({"model": self.model.state_dict(), "opt": self.opt.state_dict(),
                    "step": self.step, "total_steps": self.total_steps,
                    "elapsed": self.wall(), "schedule": self.schedule.state(),
                    "sampler": self.sampler.state(), "rng": rng_state(),
                    "config": asdict(self.cfg)}, tmp)
        tmp.replace(self.ckpt)

    def snapshot(self) -> None:
        save_snapshot(self.model, self.cfg, self.step, self.out_dir / "snapshot.safetensors")

    def _sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def _calibrate(self) -> None:
        """With a time budget: time steps 20 … calib_steps, then fix the step count."""
        cfg = self.cfg
        if self.calibrated:
            return
        if self.step == 20:
            self._sync()
            self._t_calib = time.time()
        if self.step == cfg.calib_steps and getattr(self, "_t_calib", None) is not None:
            self._sync()
            per_step = (time.time() - self._t_calib) / (cfg.calib_steps - 20)
            self.total_steps = self.step + int((60 * cfg.budget_minutes - self.wall())
                                               / per_step)
            self.calibrated = True
            print(f"{per_step * 1000:.1f} ms/step: the budget fits {self.total_steps} steps",
                  flush=True)

    # -- one step ----------------------------------------------------------------------
    def _train_step(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor,
                                   dict, float]:
        """One optimizer step; (x, loss, distortion, rate, outputs, lr)."""
        cfg, model = self.cfg, self.model
        lr = self.schedule.lr(self.progress())
        for g in self.opt.param_groups:
            g["lr"] = lr
        model.train()
        x = self.sampler.batch(cfg.batch).to(self.device, non_blocking=True)
        x = x.contiguous(memory_format=self.layout)
        lo, hi = cfg.offset_range
        offset = torch.rand(cfg.batch, 1, 1, 1, device=self.device) * (hi - lo) + lo
        pretraining = not self.calibrated or self.step < int(cfg.pretrain_fraction
                                                             * self.total_steps)
        ycc = rgb_to_ycbcr(x)  # outside autocast: the colour transform stays fp32
        with self.amp:
            out = model(ycc, offset, use_mask=not pretraining,
                        hard_mask=cfg.importance == "two_stage")
        loss, d, r = training_loss(model, cfg, x, out, masked=not pretraining)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.cuda and not bool(torch.isfinite(loss)):  # a bf16 overflow: skip this batch
            self.skipped += 1
            self.opt.zero_grad(set_to_none=True)
        else:
            self.opt.step()
        if not self.cuda or self.step % 10 == 0:  # the look-up syncs the GPU; rare anyway
            model.luma_q.reinit_dead_levels()
            model.chroma_q.reinit_dead_levels()
        self.step += 1
        return x, loss, d, r, out, lr

    # -- the loop ----------------------------------------------------------------------
    def train(self, max_minutes: float | None = None, stop_at: int | None = None) -> Path:
        cfg = self.cfg
        log_path = self.out_dir / "log.csv"
        new_log = not log_path.exists()
        log = log_path.open("a", newline="")
        writer = csv.writer(log)
        if new_log:
            writer.writerow(["step", "split", "loss", "distortion", "rate_bpp", "psnr", "lr",
                             "sec"])
        bar = _ProgressLine()
        self.t0 = time.time()
        self.skipped = 0
        while self.step < self.total_steps:
            self._calibrate()
            x, loss, d, r, out, lr = self._train_step()
            step = self.step
            if cfg.budget_minutes is not None and self.calibrated \
                    and self.wall() >= 60 * cfg.budget_minutes:
                self.total_steps = step  # the budget is spent: this step is the last
            if step % 20 == 0:
                train_psnr = psnr(x, ycbcr_to_rgb(out["x_hat"].detach()))
                writer.writerow([step, "train", f"{loss.item():.4f}", f"{d.item():.4f}",
                                 f"{r.item():.4f}", f"{train_psnr:.3f}", f"{lr:.2e}",
                                 f"{self.wall():.0f}"])
                log.flush()
                bar.show(step, self.total_steps, f"loss {loss.item():.3f}, "
                         f"{train_psnr:.2f} dB, {r.item():.3f} bpp raw, lr {lr:.1e}")
            if step % cfg.val_every == 0 or step == self.total_steps:
                bar.clear()
                self.schedule.validated(_validate(self.model, self.val, cfg, step, writer,
                                                  lr, self.wall(), self.device, self.layout))
                log.flush()
                if self.skipped:
                    print(f"skipped {self.skipped} non-finite batches so far", flush=True)
            if step % cfg.ckpt_every == 0 or step == self.total_steps:
                self.save()
            if step % cfg.snapshot_every == 0 or step == self.total_steps:
                self.snapshot()
            over_time = max_minutes is not None and time.time() - self.t0 > 60 * max_minutes
            if (over_time or step == stop_at) and step < self.total_steps:
                self.save()
                self.snapshot()
                bar.clear()
                print(f"stopping at step {step} (run again to resume)", flush=True)
                break
        bar.clear()
        log.close()
        return self.ckpt


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
