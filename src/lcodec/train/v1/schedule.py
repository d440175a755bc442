"""The learning rate of a v1 run: ``decay`` (constant, then geometric) or ``plateau`` (÷10
when validation stops improving); the schedule's state is checkpointed."""

from __future__ import annotations

import math

from lcodec.train.v1.config import TrainConfig


def learning_rate(cfg: TrainConfig, progress: float) -> float:
    """Constant ``lr`` until ``decay_from`` of the run, then geometric decay to ``lr_final``."""
    if progress < cfg.decay_from:
        return cfg.lr
    frac = min(1.0, (progress - cfg.decay_from) / max(1e-9, 1.0 - cfg.decay_from))
    return cfg.lr * (cfg.lr_final / cfg.lr) ** frac


class Schedule:
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
