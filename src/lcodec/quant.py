"""Learned channel-wise multi-valued quantization and the importance mask (seed 004 §3.1.3).

Shapes: codes ``e`` are (N, n, h, w) in (0, 1); the importance map ``p`` is (N, 1, h, w).
"""

from __future__ import annotations

import torch
from torch import nn

QUANTIZERS = ("lcmq", "lloyd", "uniform")


class ChannelQuantizer(nn.Module):
    """T centres per channel, ``q_{k,t} = Σ_{t'≤t} |s_{k,t'}|`` (eq. 1), trained one of three ways.

    The forward pass returns the straight-through value (quantized forward, identity backward,
    eqs. 11-12), the indices and the quantization loss of eq. 9. ``mode`` (training only; the
    weights file stores the centres whatever the mode):

    * ``lcmq`` (default, seed 004 §3.1.3): the loss of eq. 9 reaches only the steps ``s`` (the
      codes are detached) and updates them by gradient; dead top levels are re-initialised.
    * ``lloyd`` (seed 003): the centres follow the Lloyd-Max optimality condition instead: each
      batch moves every used centre towards the mean of the codes assigned to it (an
      exponential average with weight ``lloyd_rate``); no gradient reaches ``s``.
    * ``uniform``: the fixed uniform centres (2t + 1) / 2T of the initialisation (the paper's
      FMQ); nothing is learned.
    """

    def __init__(self, channels: int, levels: int, patience: int = 50,
                 mode: str = "lcmq", lloyd_rate: float = 0.1) -> None:
        super().__init__()
        self.steps = nn.Parameter(torch.empty(channels, levels))
        self.reset_uniform()
        self.patience = patience
        self.lloyd_rate = lloyd_rate
        self.register_buffer("idle", torch.zeros(channels, levels, dtype=torch.long))
        self.set_mode(mode)

    @torch.no_grad()
    def reset_uniform(self) -> None:
        """Centres (2t + 1) / 2T: the paper's initialisation, and the ``uniform`` quantizer."""
        levels = self.steps.shape[1]
        self.steps.fill_(1.0 / levels)
        self.steps[:, 0] = 0.5 / levels

    def set_mode(self, mode: str) -> None:
        if mode not in QUANTIZERS:
            raise ValueError(f"unknown quantizer {mode!r}; use one of {', '.join(QUANTIZERS)}")
        self.mode = mode
        self.steps.requires_grad_(mode == "lcmq")

    @torch.no_grad()
    def lloyd_update(self, e: torch.Tensor, idx: torch.Tensor) -> None:
        """One Lloyd-Max step: used centres move towards the mean of their codes (ordered)."""
        n, t = self.steps.shape
        flat_e = e.detach().float().transpose(0, 1).reshape(n, -1)
        flat_i = idx.transpose(0, 1).reshape(n, -1)
        sums = torch.zeros(n, t, device=e.device).scatter_add_(1, flat_i, flat_e)
        counts = torch.zeros(n, t, device=e.device).scatter_add_(1, flat_i,
                                                                  torch.ones_like(flat_e))
        q = self.centres()
        target = torch.where(counts > 0, sums / counts.clamp_min(1), q)
        q = q + self.lloyd_rate * (target - q)
        q = torch.cummax(q, dim=1).values  # keep the centres ordered
        self.steps.copy_(torch.diff(q, dim=1, prepend=torch.zeros(n, 1, device=q.device)))

    @property
    def levels(self) -> int:
        return self.steps.shape[1]

    def centres(self) -> torch.Tensor:
        """(n, T) non-decreasing centres."""
        return torch.cumsum(self.steps.abs(), dim=1)

    def indices(self, e: torch.Tensor) -> torch.Tensor:
        """Nearest-centre index (eq. 2) as int64, via the midpoints (ties go down)."""
        q = self.centres().detach().to(e.dtype)
        mid = (q[:, 1:] + q[:, :-1]) / 2  # (n, T-1)
        return (e.unsqueeze(2) > mid.view(1, *mid.shape, 1, 1)).sum(2)

    def dequantize(self, idx: torch.Tensor) -> torch.Tensor:
        """Centre values of ``idx`` (N, n, h, w)."""
        q = self.centres()
        n = q.shape[0]
        flat = idx.permute(1, 0, 2, 3).reshape(n, -1)
        vals = torch.gather(q, 1, flat)
        return vals.view(n, idx.shape[0], *idx.shape[2:]).permute(1, 0, 2, 3)

    def forward(self, e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        idx = self.indices(e.detach())
        qv = self.dequantize(idx)
        quant_loss = torch.mean((qv - e.detach()) ** 2)
        z = e + (qv - e).detach()
        if self.training:
            if self.mode == "lloyd":
                self.lloyd_update(e, idx)
            elif self.mode == "lcmq":
                self._track_usage(idx)
        return z, idx, quant_loss

    @torch.no_grad()
    def _track_usage(self, idx: torch.Tensor) -> None:
        """Count, per level, the batches in a row in which it was not used."""
        n, t = self.steps.shape
        flat = idx.transpose(0, 1).reshape(n, -1)
        counts = torch.zeros(n, t, dtype=torch.long, device=idx.device)
        counts.scatter_add_(1, flat, torch.ones_like(flat))
        self.idle.add_(1).mul_((counts == 0).long())

    @torch.no_grad()
    def reinit_dead_levels(self) -> int:
        """Re-initialise dead top levels (paper §3.3.1); call after the optimizer step.

        When levels t0..T-1 of channel k have all been idle for ``patience`` batches, the steps
        s_{k,t0-1..T-1} share the width s_{k,t0-1}. Returns the number of channels reset.
        """
        if self.mode != "lcmq":
            return 0
        t = self.steps.shape[1]
        # Level t is dead "from t on" when it and every level above it are idle long enough.
        tail_idle = torch.flip(torch.cummin(torch.flip(self.idle, [1]), 1).values, [1])
        dead = tail_idle >= self.patience
        reset = 0
        for k in torch.nonzero(dead.any(1)).flatten().tolist():
            t0 = int(torch.nonzero(dead[k]).min())
            if t0 == 0:
                continue
            self.steps[k, t0 - 1 :] = self.steps[k, t0 - 1].abs() / (t - t0 + 1)
            self.idle[k] = 0
            reset += 1
        return reset


def importance_levels(p: torch.Tensor, levels: int) -> torch.Tensor:
    """QI(p) = floor(L·p) clamped to 0..L-1 (eq. 3), int64."""
    return torch.clamp(torch.floor(p * levels), 0, levels - 1).long()


def code_mask(qi: torch.Tensor, channels: int, levels: int) -> torch.Tensor:
    """Binary mask m_k = [k < n·QI/L] (eq. 4), computed in integers: k·L < n·QI.

    ``qi`` is (N, 1, h, w) int; the result is (N, n, h, w) bool. Works for any n, so the
    chroma codes can share the luma importance map with fewer channels.
    """
    k = torch.arange(channels, device=qi.device).view(1, channels, 1, 1)
    return k * levels < channels * qi


def soft_mask(p: torch.Tensor, channels: int, levels: int) -> torch.Tensor:
    """Straight-through mask: the hard mask of eq. 4 forward, a ramp in ``n·p`` backward."""
    k = torch.arange(channels, device=p.device, dtype=p.dtype).view(1, channels, 1, 1)
    ramp = torch.clamp(channels * p - k, 0.0, 1.0)
    hard = code_mask(importance_levels(p, levels), channels, levels).to(p.dtype)
    return ramp + (hard - ramp).detach()
