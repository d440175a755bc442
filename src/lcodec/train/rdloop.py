"""Training of network v2 (:mod:`lcodec.nets.cwic2`): rate-distortion with a code length.

``python -m lcodec.train.rdloop RUN_DIR --budget-minutes M [--decay-minutes D]`` trains (or
resumes) the run in ``RUN_DIR`` (default config: ``configs/v2-mse.json``) for ``M`` minutes of
wall time. Each image of a batch gets its own rate knob t ~ U(-1, 1) and its own
λ(t) = λ₋₁·(λ₊₁/λ₋₁)^((t+1)/2); its loss is ``bits/pixel + λ·255²·MSE(RGB)`` (or the
MS-SSIM distortion), weighted by √(λ_mid/λ) so that every rate moves the shared weights about
equally. The networks run under bf16 autocast on the CPU; GDN, quantization, the rate term
and the losses stay fp32.

Accumulation across sessions: ``RUN_DIR/last.ckpt`` holds weights, optimizer, step, sampler
and every RNG state plus the wall and CPU seconds spent so far, so a resumed run continues
exactly. The LR is constant until the last ``D`` minutes of a session, which decay it
geometrically to ``lr_final`` for the weights shipped from that session; ``stable.ckpt`` is
the state where the decay began, and the next session resumes from it (the decayed state is
for export only). Guards: gradients are clipped, non-finite steps are skipped, and a loss
spike (EMA over 3× its value at the last checkpoint) rolls back to that checkpoint with half
the LR. ``log.csv`` logs training (step, wall s, CPU s, LR, loss, bpp, distortion, coded
fraction, every 50 steps), ``val.csv`` the held-out validation (step, CPU-hours, knob,
estimated bpp, PSNR, coded fraction, MS-SSIM, and for ``qat`` runs the PSNR through the
quantization-aware decoder); neither has a header row.

Decoder-only runs (``train_part: decoder``, :mod:`lcodec.train.qat`): the encoder, importance
head, encoder gains and priors are frozen, so every image keeps the symbols (and the files,
entropy tables and TCAE) of the model the run starts from; the loss is the distortion term
alone (bpp and coded fraction log as 0). With ``qat`` the decoder trains through the rounding
of the candidate 8-bit exact synthesis.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch

from lcodec.color import rgb_to_ycbcr, ycbcr_to_rgb
from lcodec.config import CONFIGS
from lcodec.imageio import list_images
from lcodec.nets.cwic2 import CWIC2, interpolate
from lcodec.quant import code_mask
from lcodec.train.data import CropSampler, centre_crops, is_validation, load_rgb
from lcodec.train.qat import float_decode, is_decoder_param, psnr8, qat_decode, symbols
from lcodec.train.rng import rng_state, set_rng_state

VAL_KNOBS = (-1.0, -0.6, -0.2, 0.2, 0.6, 1.0)


@dataclass
class RDConfig:
    data: str = "../shared/data/train"
    hires: str | None = None  # a second folder (camera-resolution photos), sampled apart
    hires_share: float = 0.0  # share of the crops drawn from ``hires``
    hires_val_fraction: float = 0.1  # ``hires`` photos held out (never trained on) by name hash
    net: str = "v2"
    distortion: str = "mse"  # mse | msssim
    batch: int = 8
    crop: int = 96
    lr: float = 3e-4
    lr_final: float = 3e-5
    clip: float = 1.0
    val_fraction: float = 0.02
    val_crop: int = 256
    val_minutes: float = 10.0
    ckpt_every: int = 250
    seed: int = 0
    threads: int = 2
    amp: bool = True  # bf16 autocast for the convs, where the CPU has native bf16 (else fp32)
    init: str | None = None  # weights to start a new run from (a checkpoint or snapshot)
    use_mask: bool = True  # False: every code map everywhere (the importance-map ablation)
    knob_range: tuple[float, float] = (-1.0, 1.0)  # knobs drawn in training (ablations: one)
    decoder_noise: bool = False  # True: the decoder sees noisy codes until the decay (STE then)
    lam_range: tuple[float, float] | None = None  # λ at knob −1 and +1 (None: the net's own)
    flat_fraction: float = 0.0  # share of crops replaced by flat or smooth synthetic colours
    flat_weight: float = 1.0  # their distortion counts this many times (colour accuracy)
    mean_weight: float = 0.0  # adds this many times each crop's squared mean-colour error
    mse_mix: float = 0.0  # msssim runs: this much of the MSE distortion is added (colour hold)
    rate: str = "code_length"  # code_length | mask_count (the ablation: v1's rate term)
    warmup_steps: int = 0  # LR ramps up over this many steps after the optimizer starts afresh
    train_part: str = "all"  # all | decoder (encoder, importance, priors frozen: symbols fixed)
    qat: bool = False  # decoder runs: the exact synthesis's rounding in the loop (train/qat.py)
    qat_wide: tuple[str, ...] = ()  # the tensors the QAT grids hold in 15 bits (others 8)

    @classmethod
    def load(cls, path: Path) -> RDConfig:
        raw = json.loads(path.read_text())
        for key in ("knob_range", "lam_range", "qat_wide"):
            if raw.get(key) is not None:
                raw[key] = tuple(raw[key])
        unknown = sorted(set(raw) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"{path}: unknown config keys {', '.join(unknown)}")
        if raw.get("rate", "code_length") not in ("code_length", "mask_count"):
            raise ValueError(f"{path}: rate must be code_length or mask_count")
        if raw.get("train_part", "all") not in ("all", "decoder"):
            raise ValueError(f"{path}: train_part must be all or decoder")
        if raw.get("qat") and raw.get("train_part") != "decoder":
            raise ValueError(f"{path}: qat needs train_part decoder (the symbols must not move)")
        return cls(**raw)


def lam_of(knob: torch.Tensor, lam_range: tuple[float, float]) -> torch.Tensor:
    lo, hi = lam_range
    return lo * (hi / lo) ** ((knob + 1) / 2)


def smooth_crops(n: int, size: int) -> torch.Tensor:
    """``n`` synthetic RGB crops in [0, 1]: a random flat colour, half of them with a linear
    ramp, all with a little sensor-like noise. Photos rarely hold a flat saturated region the
    size of a crop; without these the net paints flat colours with texture and a hue shift."""
    colour = torch.rand(n, 3, 1, 1)
    yy, xx = torch.meshgrid(torch.linspace(-0.5, 0.5, size), torch.linspace(-0.5, 0.5, size),
                            indexing="ij")
    angle = 2 * math.pi * torch.rand(n, 1, 1, 1)
    ramp = torch.cos(angle) * xx + torch.sin(angle) * yy  # (n, 1, size, size)
    amp = 0.4 * (torch.rand(n, 3, 1, 1) - 0.5) * (torch.rand(n, 1, 1, 1) < 0.5)
    noise = torch.randn(n, 3, size, size) * (3.0 / 255) * torch.rand(n, 1, 1, 1)
    return torch.round((colour + amp * ramp + noise).clamp(0, 1) * 255) / 255


# 1 − MS-SSIM is scaled so that λ means about the same rate as for MSE: along the shipped MSE
# model's held-out curve, d(255²·MSE)/d(1 − MS-SSIM) is 1,800–3,100 between knobs −1 and 0.6.
MSSSIM_SCALE = 2000.0


def distortion(x: torch.Tensor, x_hat: torch.Tensor, kind: str,
               mse_mix: float = 0.0, mean_weight: float = 0.0) -> torch.Tensor:
    """Per-image distortion on the RGB scale 0..255: MSE, or ``MSSSIM_SCALE``·(1 − MS-SSIM)
    (msssim, window 7 so that 112² crops have five scales) plus ``mse_mix``·MSE; plus
    ``mean_weight`` times the squared error of the crop's mean colour (a colour cast, which
    MSE weighs no more than noise of the same energy).

    Always fp32: under bf16 autocast the colour conversion would round to 8 mantissa bits.
    """
    with torch.autocast(x.device.type, enabled=False):
        return _distortion(x.float(), x_hat.float(), kind, mse_mix, mean_weight)


def _distortion(x: torch.Tensor, x_hat: torch.Tensor, kind: str, mse_mix: float,
                mean_weight: float) -> torch.Tensor:
    rgb, rgb_hat = ycbcr_to_rgb(x), ycbcr_to_rgb(x_hat)
    mse = 255.0**2 * ((rgb - rgb_hat) ** 2).mean((1, 2, 3))
    if mean_weight:
        cast = 255.0**2 * ((rgb - rgb_hat).mean((2, 3)) ** 2).mean(1)
        mse = mse + mean_weight * cast
    if kind == "mse":
        return mse
    from pytorch_msssim import ms_ssim

    ms = ms_ssim(rgb_hat.clamp(0, 1), rgb, data_range=1.0, size_average=False, win_size=7)
    return MSSSIM_SCALE * (1 - ms) + mse_mix * mse


def rd_loss(net: CWIC2, x: torch.Tensor, knob: torch.Tensor, cfg: RDConfig,
            decoder_noise: bool = False, dist_weight: torch.Tensor | None = None
            ) -> tuple[torch.Tensor, dict[str, float]]:
    """The weighted RD loss of a batch; ``dist_weight`` (N,) scales each crop's distortion
    (the synthetic flat crops' ``flat_weight``)."""
    lam_range = cfg.lam_range or net.cfg.lam_range
    out = net(x, knob, use_mask=cfg.use_mask, decoder_noise=decoder_noise,
              mask_count_rate=cfg.rate == "mask_count")
    bpp = out["bits"] / (x.shape[2] * x.shape[3])
    dist = distortion(x, out["x_hat"], cfg.distortion, cfg.mse_mix, cfg.mean_weight)
    lam = lam_of(knob, lam_range)
    weight = torch.sqrt(math.sqrt(lam_range[0] * lam_range[1]) / lam)
    scaled = dist if dist_weight is None else dist * dist_weight
    loss = (weight * (bpp + lam * scaled)).mean() + out["range_loss"]
    with torch.no_grad():
        stats = {"loss": float(loss), "bpp": float(bpp.mean()), "dist": float(dist.mean()),
                 "coded": float(out["coded_fraction"])}
    return loss, stats


def decoder_loss(net: CWIC2, x: torch.Tensor, knob: torch.Tensor, cfg: RDConfig,
                 dist_weight: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, dict[str, float]]:
    """The weighted distortion term of :func:`rd_loss` for a decoder-only run (the rate is
    fixed by the frozen encoder): through the float decoder, or with ``cfg.qat`` the
    quantization-aware one. ``bpp`` is not computed (logged as 0)."""
    lam_range = cfg.lam_range or net.cfg.lam_range
    s_y, s_c = symbols(net, x, knob)
    if cfg.qat:
        x_hat = qat_decode(net, s_y, s_c, knob, frozenset(cfg.qat_wide))
    else:
        x_hat = float_decode(net, s_y, s_c, knob)
    dist = distortion(x, x_hat, cfg.distortion, cfg.mse_mix, cfg.mean_weight)
    lam = lam_of(knob, lam_range)
    weight = torch.sqrt(math.sqrt(lam_range[0] * lam_range[1]) / lam)
    scaled = dist if dist_weight is None else dist * dist_weight
    loss = (weight * lam * scaled).mean()
    stats = {"loss": float(loss.detach()), "bpp": 0.0, "dist": float(dist.detach().mean()),
             "coded": 0.0}
    return loss, stats


@torch.no_grad()
def validate(net: CWIC2, val: torch.Tensor, qat_wide: frozenset[str] | None = None
             ) -> list[dict[str, float]]:
    """Held-out PSNR and MS-SSIM (8-bit RGB) and estimated bpp (the training priors' code
    length of the actual symbols, mask and importance map included) at :data:`VAL_KNOBS`;
    with ``qat_wide`` also ``psnr_qat``, the PSNR through the quantization-aware decoder with
    those wide tensors."""
    from pytorch_msssim import ms_ssim

    net.eval()
    cfg = net.cfg
    rows = []
    ycc = rgb_to_ycbcr(val)
    e_y, e_c, logits = net.analyse(ycc)
    for knob in VAL_KNOBS:
        codes = net.quantize(e_y, e_c, logits, knob)
        rec = ycbcr_to_rgb(net.decompress(codes))
        rec8 = torch.floor(torch.clamp(rec, 0, 1) * 255 + 0.5)
        mse = ((rec8 - torch.round(val * 255)) ** 2).mean((1, 2, 3))
        psnr = float((10 * torch.log10(255.0**2 / mse.clamp_min(1e-10))).mean())
        msv = None  # five scales of a 7-tap window need more than 96 px
        if min(val.shape[2:]) > 96:
            msv = float(ms_ssim(rec8, torch.round(val * 255), data_range=255.0,
                                win_size=7).mean())
        k = torch.full((val.shape[0],), knob)
        cost = -torch.log_softmax(interpolate(net.prior_codes, k), -1)
        sym = torch.cat([codes.luma, codes.chroma], 1)
        mask = torch.cat([code_mask(codes.qi, cfg.n_luma, cfg.imp_levels),
                          code_mask(codes.qi, cfg.n_chroma, cfg.imp_levels)], 1)
        n, c, h, w = sym.shape
        bits = torch.gather(cost, 2, sym.view(n, c, -1)).view_as(sym) * mask
        qcost = -torch.log_softmax(interpolate(net.prior_qi, k), -1)
        qbits = torch.gather(qcost, 1, codes.qi.view(n, -1))
        total = (bits.sum((1, 2, 3)) + qbits.sum(1)) / math.log(2)
        bpp = float((total / (val.shape[2] * val.shape[3])).mean())
        row = {"knob": knob, "psnr": psnr, "bpp": bpp, "coded": float(mask.float().mean()),
               "msssim": msv, "psnr_qat": None}
        if qat_wide is not None:
            half = cfg.levels // 2
            s_y = (codes.luma - half) * mask[:, : cfg.n_luma]
            s_c = (codes.chroma - half) * mask[:, cfg.n_luma :]
            rec = ycbcr_to_rgb(qat_decode(net, s_y.float(), s_c.float(), k, qat_wide))
            row["psnr_qat"] = float(psnr8(val, rec).mean())
        rows.append(row)
    net.train()
    return rows


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


def native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX-512 BF16 / AMX). Without it, autocast
    emulates bf16 and a training step is slower, not faster (measured on an AVX2 AMD EPYC:
    16 s per step against 1.8 s in fp32)."""
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(check()) if check is not None else False


class Run:
    """One training run folder: config, checkpoints, logs."""

    def __init__(self, out: Path, cfg: RDConfig) -> None:
        self.out = out
        self.cfg = cfg
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed)
        net_cfg = CONFIGS[cfg.net]
        if cfg.lam_range is not None:  # recorded in the checkpoint's net_config and the card
            net_cfg = replace(net_cfg, lam_range=cfg.lam_range)
        self.net = CWIC2(net_cfg)
        trained = []
        for name, p in self.net.named_parameters():
            p.requires_grad_(cfg.train_part == "all" or is_decoder_param(name))
            if p.requires_grad:
                trained.append(p)
        self.opt = torch.optim.Adam(trained, lr=cfg.lr)
        paths = list_images(Path(cfg.data))
        train = [p for p in paths if not is_validation(p, cfg.val_fraction)]
        val = [p for p in paths if is_validation(p, cfg.val_fraction)]
        t0 = time.time()
        self.sampler = CropSampler(
            [a for a in (load_rgb(p, cfg.crop) for p in train) if a is not None], cfg.crop,
            cfg.seed)
        self.hires = None
        if cfg.hires and cfg.hires_share > 0:  # validation stays on the main folder's split
            big = [p for p in list_images(Path(cfg.hires))
                   if not is_validation(p, cfg.hires_val_fraction)]
            self.hires = CropSampler(
                [a for a in (load_rgb(p, cfg.crop) for p in big) if a is not None], cfg.crop,
                cfg.seed + 1)
        val_imgs = [a for a in (load_rgb(p, cfg.val_crop) for p in val) if a is not None]
        self.val = centre_crops(val_imgs, cfg.val_crop)
        print(f"{len(self.sampler.images)} training and {len(val_imgs)} validation images "
              f"loaded in {time.time() - t0:.0f} s", flush=True)
        self.step = 0
        self.wall_s = 0.0
        self.cpu_s = 0.0
        self.lr_scale = 1.0
        self.fresh_from = 0  # the step at which the optimizer started afresh (for the warmup)
        self.amp = cfg.amp and native_bf16()
        if cfg.amp and not self.amp:
            print("this CPU has no native bf16: training in fp32", flush=True)

    # -- checkpoints -------------------------------------------------------------------
    def state(self, phase: str) -> dict:
        return {"model": self.net.state_dict(), "opt": self.opt.state_dict(),
                "step": self.step, "wall_s": self.wall_s, "cpu_s": self.cpu_s,
                "sampler": self.sampler.state(),
                "hires_sampler": self.hires.state() if self.hires else None,
                "rng": rng_state(), "phase": phase,
                "lr_scale": self.lr_scale, "fresh_from": self.fresh_from,
                "config": asdict(self.cfg),
                "net_config": json.loads(self.net.cfg.to_json())}

    def save(self, name: str, phase: str) -> None:
        path = self.out / name
        tmp = path.with_suffix(".tmp")
        torch.save(self.state(phase), tmp)
        tmp.replace(path)

    def load(self, path: Path) -> None:
        st = torch.load(path, map_location="cpu", weights_only=False)
        self.net.load_state_dict(st["model"])
        self.opt.load_state_dict(st["opt"])
        self.step, self.wall_s, self.cpu_s = st["step"], st["wall_s"], st["cpu_s"]
        self.sampler.set_state(st["sampler"])
        if self.hires is not None and st.get("hires_sampler") is not None:
            self.hires.set_state(st["hires_sampler"])
        set_rng_state(st["rng"])
        self.lr_scale = st.get("lr_scale", 1.0)
        self.fresh_from = st.get("fresh_from", 0)

    def resume(self) -> None:
        last, stable = self.out / "last.ckpt", self.out / "stable.ckpt"
        if last.exists():
            phase = torch.load(last, map_location="cpu", weights_only=False)["phase"]
            src = stable if phase == "decay" and stable.exists() else last
            self.load(src)
            print(f"resumed {src.name} at step {self.step} "
                  f"({self.cpu_s / 3600:.2f} CPU-h so far)", flush=True)
        elif self.cfg.init:
            self.init_from(Path(self.cfg.init).expanduser())

    def init_from(self, path: Path) -> None:
        """Start from a checkpoint's weights, or from shipped fp16 weights (a new machine
        continues a run from the committed model: steps and CPU time continue from its card;
        the optimizer starts afresh)."""
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = {k: v.float() for k, v in load_file(str(path)).items()
                     if not k.startswith("entropy.")}
            self.net.load_state_dict(state)
            card = path.with_suffix(".json")
            training = json.loads(card.read_text()).get("training", {}) if card.exists() else {}
            self.step = int(training.get("steps_done", 0))
            self.cpu_s = 3600 * float(training.get("cpu_hours", 0.0))
            self.wall_s = 3600 * float(training.get("wall_hours", 0.0))
            self.fresh_from = self.step
        else:  # a checkpoint of another run: weights, optimizer, steps and time continue
            st = torch.load(path, map_location="cpu", weights_only=False)
            added = self._load_grown(st.get("model", st))
            if "opt" in st:
                self._load_opt(st["opt"], added, st.get("config", {}).get("train_part", "all"))
                self.step, self.wall_s, self.cpu_s = st["step"], st["wall_s"], st["cpu_s"]
        print(f"initialised from {path} (step {self.step})", flush=True)

    def _load_grown(self, state: dict) -> set[str]:
        """Load weights into this net, which may have more refinement blocks than the net
        they came from (those start as the identity); returns the parameters added."""
        res = self.net.load_state_dict(state, strict=False)
        if res.unexpected_keys or any(".refine." not in k for k in res.missing_keys):
            raise ValueError(f"init weights do not fit this net: missing {res.missing_keys}, "
                             f"unexpected {res.unexpected_keys}")
        if res.missing_keys:
            print(f"new parameters start fresh: {', '.join(res.missing_keys)}", flush=True)
        return set(res.missing_keys)

    def _load_opt(self, opt_state: dict, added: set[str], init_part: str) -> None:
        """The optimizer state of the init run, matched by parameter name when the net grew
        or trains other parameters than that run did (Adam's moments of the shared weights
        continue; new weights start at zero)."""
        if not added and init_part == self.cfg.train_part:
            self.opt.load_state_dict(opt_state)
            return
        old = [n for n, _ in self.net.named_parameters()
               if n not in added and (init_part == "all" or is_decoder_param(n))]
        params = dict(self.net.named_parameters())
        for i, st in opt_state["state"].items():  # keyed by the old net's parameter order
            if params[old[i]].requires_grad:
                self.opt.state[params[old[i]]] = {k: v.clone() for k, v in st.items()}

    def _validate(self, vlog) -> None:
        wide = frozenset(self.cfg.qat_wide) if self.cfg.qat else None
        for row in validate(self.net, self.val, wide):
            extra = [] if wide is None else [f"{row['psnr_qat']:.3f}"]
            vlog.writerow([self.step, f"{self.cpu_s / 3600:.4f}", row["knob"],
                           f"{row['bpp']:.4f}", f"{row['psnr']:.3f}", f"{row['coded']:.3f}",
                           _opt(row["msssim"]), *extra])

    def batch(self) -> torch.Tensor:
        """A batch of crops; ``hires_share`` of them (rounded stochastically by the sampler's
        RNG) from the camera-resolution folder."""
        n_big = 0
        if self.hires is not None:
            want = self.cfg.batch * self.cfg.hires_share
            n_big = int(want) + int(self.hires.rng.random() < want - int(want))
        parts = [self.sampler.batch(self.cfg.batch - n_big)]
        if n_big:
            parts.append(self.hires.batch(n_big))
        return torch.cat(parts)

    # -- the loop ----------------------------------------------------------------------
    def train(self, budget_min: float, decay_min: float, max_steps: int | None = None) -> None:
        """Train for ``budget_min`` minutes of wall time (the last ``decay_min`` decaying the
        LR), or until the run has made ``max_steps`` steps in all."""
        cfg = self.cfg
        torch.set_num_threads(cfg.threads)
        self.resume()
        start, cpu0 = time.time(), time.process_time()
        wall0, cpus0 = self.wall_s, self.cpu_s
        budget, decay = budget_min * 60, min(decay_min, budget_min) * 60
        last_val = -1e9
        ema, ema_ckpt, bad = None, None, 0
        logf = open(self.out / "log.csv", "a", newline="")  # noqa: SIM115
        log = csv.writer(logf)
        valf = open(self.out / "val.csv", "a", newline="")  # noqa: SIM115
        vlog = csv.writer(valf)
        phase = "constant"
        while True:
            el = time.time() - start
            self.wall_s = wall0 + el
            self.cpu_s = cpus0 + time.process_time() - cpu0
            if el >= budget or (max_steps is not None and self.step >= max_steps):
                break
            if el >= budget - decay and phase == "constant":
                self.save("stable.ckpt", "constant")
                phase = "decay"
            frac = 0.0 if phase == "constant" else (el - (budget - decay)) / max(decay, 1)
            lr = cfg.lr * self.lr_scale * (cfg.lr_final / cfg.lr) ** min(1.0, frac)
            lr *= warmup(self.step - self.fresh_from, cfg.warmup_steps)
            for g in self.opt.param_groups:
                g["lr"] = lr
            if el - last_val >= cfg.val_minutes * 60 or self.step == 0:
                self._validate(vlog)
                valf.flush()
                last_val = el
            if self.step % 50 == 0:
                set_threads(self.out, cfg.threads)
            rgb = self.batch()
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
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.amp):
                if cfg.train_part == "decoder":
                    loss, stats = decoder_loss(self.net, x, knob, cfg, dist_weight)
                else:
                    loss, stats = rd_loss(self.net, x, knob, cfg,
                                          decoder_noise=cfg.decoder_noise and phase == "constant",
                                          dist_weight=dist_weight)
            self.opt.zero_grad(set_to_none=True)
            if not math.isfinite(stats["loss"]):
                bad += 1
            else:
                loss.backward()
                gn = torch.nn.utils.clip_grad_norm_(self.net.parameters(), cfg.clip)
                if math.isfinite(float(gn)):
                    self.opt.step()
                    bad = 0
                else:
                    bad += 1
            self.step += 1
            if math.isfinite(stats["loss"]):
                ema = stats["loss"] if ema is None else 0.99 * ema + 0.01 * stats["loss"]
            spike = ema_ckpt is not None and ema is not None and ema > 3 * ema_ckpt
            if (bad > 20 or (spike and self.step % 50 == 0)) and (self.out / "last.ckpt").exists():
                print(f"step {self.step}: loss spike or NaN (ema {ema}), rolling back",
                      flush=True)
                self.load(self.out / "last.ckpt")
                self.lr_scale *= 0.5
                ema, bad = None, 0
                continue
            if self.step % 50 == 0:
                log.writerow([self.step, f"{self.wall_s:.1f}", f"{self.cpu_s:.1f}", f"{lr:.2e}",
                              *(f"{stats[k]:.5f}" for k in ("loss", "bpp", "dist", "coded"))])
                logf.flush()
            if self.step % cfg.ckpt_every == 0:
                self.save("last.ckpt", phase)
                ema_ckpt = ema
                print(f"step {self.step} {self.cpu_s / 3600:.3f} CPU-h lr {lr:.1e} "
                      f"loss {ema:.4f}", flush=True)
        self._validate(vlog)
        self.save("last.ckpt", phase)
        logf.close()
        valf.close()
        print(f"done: step {self.step}, {self.wall_s / 3600:.2f} h wall, "
              f"{self.cpu_s / 3600:.2f} CPU-h", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lcodec.train.rdloop", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="run folder (created; resumed if it has last.ckpt)")
    ap.add_argument("--config", type=Path, default=None,
                    help="config JSON (default: the run's own, else configs/v2-mse.json)")
    ap.add_argument("--budget-minutes", type=float, required=True)
    ap.add_argument("--decay-minutes", type=float, default=0.0)
    ap.add_argument("--max-steps", type=int, default=None, help="stop at this many steps")
    args = ap.parse_args(argv)
    args.run.mkdir(parents=True, exist_ok=True)
    own = args.run / "config.json"
    src = args.config or (own if own.exists() else Path("configs/v2-mse.json"))
    cfg = RDConfig.load(src)
    if not own.exists():
        own.write_text(json.dumps(asdict(cfg), indent=2) + "\n")
    Run(args.run, cfg).train(args.budget_minutes, args.decay_minutes, args.max_steps)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
