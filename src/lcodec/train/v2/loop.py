"""The v2 training loop: constant LR then a geometric decay over the last minutes, periodic
validation and checkpoints, and the guards (clipping, skipped non-finite steps, roll-back on
a loss spike)."""

from __future__ import annotations

import csv
import math
import os
import time
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel

from lcodec.color import rgb_to_ycbcr
from lcodec.train.v2.distributed import Shard
from lcodec.train.v2.objective import Objective, smooth_crops
from lcodec.train.v2.run import Run
from lcodec.train.v2.validation import validate


def _opt(value: float | None) -> str:
    return "" if value is None else f"{value:.5f}"


def warmup(steps: int, over: int) -> float:
    """The LR factor ``steps`` steps after the optimizer started afresh: linear from
    1/``over`` to 1 (Adam's first steps are full-size whatever the gradient's scale, which
    shook a converged model started from shipped weights with LR 1e-4: docs/training.md)."""
    return 1.0 if over <= 0 else min(1.0, (steps + 1) / over)


def set_threads(run: Path, default: int) -> None:
    """Use the thread count in ``RUN/threads`` when there is one (so a long run can yield a
    core to other work without stopping), else ``default``."""
    f = run / "threads"
    try:
        n = int(f.read_text()) if f.exists() else default
    except ValueError:
        n = default
    if n >= 1 and n != torch.get_num_threads():
        torch.set_num_threads(n)
        print(f"threads: {n}", flush=True)


def log_validation(run: Run, vlog) -> None:
    """Validate and write one row per knob to ``val.csv`` (through ``vlog``)."""
    wide = frozenset(run.cfg.qat_wide) if run.cfg.qat else None
    for row in validate(run.net, run.val, wide, run.context):
        extra = [] if wide is None else [f"{row['psnr_qat']:.3f}"]
        if row["bpp_context"] is not None:
            extra.append(f"{row['bpp_context']:.4f}")
        vlog.writerow([run.step, f"{run.cpu_s / 3600:.4f}", row["knob"],
                       f"{row['bpp']:.4f}", f"{row['psnr']:.3f}", f"{row['coded']:.3f}",
                       _opt(row["msssim"]), *extra])


STAT_KEYS = ("loss", "bpp", "dist", "coded")


def _log_file(path: Path, main: bool):
    """``path`` opened for appending on rank 0; the other ranks write nowhere."""
    return open(path if main else os.devnull, "a", newline="")  # noqa: SIM115


def _validate(run: Run, vlog, valf, shard: Shard) -> None:
    """Validation on rank 0, which borrows the other ranks' threads while they wait at a
    barrier."""
    if not shard.active:
        log_validation(run, vlog)
        valf.flush()
        return
    if shard.main:
        threads = torch.get_num_threads()
        torch.set_num_threads(threads * shard.world)
        log_validation(run, vlog)
        valf.flush()
        torch.set_num_threads(threads)
    shard.barrier()


def train(run: Run, budget_min: float, decay_min: float, max_steps: int | None = None,
          shard: Shard | None = None) -> None:
    """Train (or resume) ``run`` for ``budget_min`` minutes of wall time (the last
    ``decay_min`` decaying the LR), or until the run has made ``max_steps`` steps in all.

    With a ``shard`` of several ranks (:mod:`.distributed`) each rank trains on its slice of
    the global batch under DistributedDataParallel; rank 0's clock sets the LR, validation and
    the stop for all, losses are averaged over the ranks for the guards and the log, and only
    rank 0 validates, logs and writes checkpoints."""
    shard = shard or Shard()
    cfg = run.cfg
    torch.set_num_threads(cfg.threads)
    run.resume()
    objective = Objective(run.net, cfg, run.context if cfg.rate == "context" else None)
    if shard.active:
        objective = DistributedDataParallel(objective,
                                            find_unused_parameters=not cfg.use_mask)
    have_ckpt = (run.out / "last.ckpt").exists()  # before any rank can write one
    start, cpu0 = time.time(), time.process_time()
    wall0, cpus0 = run.wall_s, run.cpu_s
    budget, decay = budget_min * 60, min(decay_min, budget_min) * 60
    last_val = -1e9
    ema, ema_ckpt, bad = None, None, 0
    logf = _log_file(run.out / "log.csv", shard.main)
    log = csv.writer(logf)
    valf = _log_file(run.out / "val.csv", shard.main)
    vlog = csv.writer(valf)
    phase = "constant"

    def save(name: str) -> None:
        if shard.main:
            run.save(name, phase)

    while True:
        el, cpu = time.time() - start, time.process_time() - cpu0
        val_due = el - last_val >= cfg.val_minutes * 60 or run.step == 0
        if shard.active:  # rank 0's clock and decision; the CPU seconds of every rank
            el, cpu, due = shard.sum([el if shard.main else 0.0, cpu,
                                      float(val_due and shard.main)])
            val_due = due > 0
        run.wall_s = wall0 + el
        run.cpu_s = cpus0 + cpu
        if el >= budget or (max_steps is not None and run.step >= max_steps):
            break
        if el >= budget - decay and phase == "constant":
            save("stable.ckpt")
            phase = "decay"
        frac = 0.0 if phase == "constant" else (el - (budget - decay)) / max(decay, 1)
        lr = cfg.lr * run.lr_scale * (cfg.lr_final / cfg.lr) ** min(1.0, frac)
        lr *= warmup(run.step - run.fresh_from, cfg.warmup_steps)
        for g in run.opt.param_groups:
            g["lr"] = lr * g.get("lr_mult", 1.0)
        if val_due:
            _validate(run, vlog, valf, shard)
            last_val = time.time() - start  # from its end: a slow one is not repeated at once
        if run.step % 50 == 0:
            set_threads(run.out, cfg.threads)
        rgb = run.batch()  # the global batch: every rank draws it and keeps its slice
        dist_weight = None
        if cfg.flat_fraction > 0:
            pick = torch.rand(cfg.batch) < cfg.flat_fraction
            if pick.any():
                rgb[pick] = smooth_crops(int(pick.sum()), cfg.crop)
                if cfg.flat_weight != 1.0:
                    dist_weight = 1.0 + (cfg.flat_weight - 1.0) * pick.float()
        x = rgb_to_ycbcr(rgb)
        lo, hi = cfg.knob_range
        knob = lo + (hi - lo) * torch.rand(cfg.batch)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=run.amp), shard.draws():
            loss, stats = objective(shard.local(x), shard.local(knob),
                                    decoder_noise=cfg.decoder_noise and phase == "constant",
                                    dist_weight=shard.local(dist_weight))
        run.opt.zero_grad(set_to_none=True)
        finite = math.isfinite(stats["loss"])
        if shard.active:  # the mean over the global batch; non-finite on one rank: on all
            summed = shard.sum([float(not finite), *(stats[k] for k in STAT_KEYS)])
            finite = summed[0] == 0
            stats = {k: v / shard.world for k, v in zip(STAT_KEYS, summed[1:], strict=True)}
        if not finite:
            bad += 1
            if shard.active:  # DDP's gradient reduction must still run on every rank
                loss.backward()
        else:
            loss.backward()
            gn = sum(float(torch.nn.utils.clip_grad_norm_(g["params"], cfg.clip))  # each group
                     for g in run.opt.param_groups)
            if math.isfinite(float(gn)):  # the same averaged gradients on every rank
                run.opt.step()
                bad = 0
            else:
                bad += 1
        run.step += 1
        if math.isfinite(stats["loss"]):
            ema = stats["loss"] if ema is None else 0.99 * ema + 0.01 * stats["loss"]
        spike = ema_ckpt is not None and ema is not None and ema > 3 * ema_ckpt
        if (bad > 20 or (spike and run.step % 50 == 0)) and have_ckpt:
            print(f"step {run.step}: loss spike or NaN (ema {ema}), rolling back", flush=True)
            run.load(run.out / "last.ckpt")
            run.lr_scale *= 0.5
            ema, bad = None, 0
            continue
        if run.step % cfg.log_every == 0:
            log.writerow([run.step, f"{run.wall_s:.1f}", f"{run.cpu_s:.1f}", f"{lr:.2e}",
                          *(f"{stats[k]:.5f}" for k in STAT_KEYS)])
            logf.flush()
        if run.step % cfg.ckpt_every == 0:
            save("last.ckpt")
            have_ckpt = True
            ema_ckpt = ema
            print(f"step {run.step} {run.cpu_s / 3600:.3f} CPU-h lr {lr:.1e} "
                  f"loss {ema:.4f}", flush=True)
    _validate(run, vlog, valf, shard)
    save("last.ckpt")
    logf.close()
    valf.close()
    print(f"done: step {run.step}, {run.wall_s / 3600:.2f} h wall, "
          f"{run.cpu_s / 3600:.2f} CPU-h", flush=True)
