"""The settings of a v1 training run (a JSON file; a copy lives in the run folder)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path

from lcodec.config import CONFIGS
from lcodec.quant import QUANTIZERS
from lcodec.train.losses import KINDS


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
