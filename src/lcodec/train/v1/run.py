"""A v1 run folder and its loop: set-up (seeds, data, model), resume or initialise, then step
by step with logging, validation, checkpoints and snapshots."""

from __future__ import annotations

import csv
import json
import random
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from lcodec.color import rgb_to_ycbcr, ycbcr_to_rgb
from lcodec.config import CONFIGS
from lcodec.imageio import list_images
from lcodec.nets import CWIC
from lcodec.train.data import CropSampler, centre_crops, is_validation, load_rgb
from lcodec.train.losses import psnr
from lcodec.train.rng import rng_state, set_rng_state
from lcodec.train.v1.config import TrainConfig
from lcodec.train.v1.objective import training_loss
from lcodec.train.v1.schedule import Schedule
from lcodec.train.v1.validation import validate
from lcodec.train.v1.weights import load_weights, save_snapshot


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
        self.schedule = Schedule(cfg)

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
        """Wall seconds of this run, earlier calls included."""
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
                self.schedule.validated(validate(self.model, self.val, cfg, step, writer,
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
