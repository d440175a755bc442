"""The settings of a v2 training run (a JSON file; a copy lives in the run folder)."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path


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
    log_every: int = 50  # a row of log.csv every this many steps
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
    rate: str = "code_length"  # code_length | mask_count (v1's, an ablation) | context
    context_init: str | None = None  # a TCAE run: rate "context" trains from its models;
    # any other rate only measures by them (val.csv's last column)
    context_lr_mult: float = 2.0  # rate "context": the context models' LR over the network's
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
        if raw.get("rate", "code_length") not in ("code_length", "mask_count", "context"):
            raise ValueError(f"{path}: rate must be code_length, mask_count or context")
        if raw.get("rate") == "context" and not raw.get("context_init"):
            raise ValueError(f"{path}: rate context needs context_init (a TCAE run folder)")
        if raw.get("train_part", "all") not in ("all", "decoder"):
            raise ValueError(f"{path}: train_part must be all or decoder")
        if raw.get("qat") and raw.get("train_part") != "decoder":
            raise ValueError(f"{path}: qat needs train_part decoder (the symbols must not move)")
        return cls(**raw)
