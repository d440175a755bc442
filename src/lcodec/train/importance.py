"""Two-stage relaxation for learning the importance map (seed 004 §3.3.2, eqs. 13-19).

Stage 1 picks, at every position, the importance level l* that minimises a first-order
(Taylor) proxy of distortion + γ·rate: coding channel k at (i, j) changes the distortion by at
best −ξ·|∂L_D/∂z_kij| (eq. 16; the codes may move by ξ) and costs γ per coded element, unless
the batch is already below the rate threshold r (eq. 15). Level l codes the first
ceil(n·l/L) luma channels and ceil(n_c·l/L) chroma channels (the eq. 4 masks), so the proxy
of every l is a prefix sum over channels and l* an argmin over the L levels (eq. 17).
Stage 2 pulls the (offset) importance map towards l*/L with the loss α·|l* − p·L| (eq. 18),
whose gradient is ±α (eq. 19). The map is centred per image (``nets.cwic``), so it learns
*where* bits pay off; the rate knob still decides how many.
"""

from __future__ import annotations

import torch

from lcodec.quant import code_mask


def channels_per_level(channels: int, levels: int, device: torch.device) -> torch.Tensor:
    """(L,) int64: how many of ``channels`` the eq. 4 mask codes at each level 0..L-1."""
    qi = torch.arange(levels, device=device).view(levels, 1, 1, 1)
    return code_mask(qi, channels, levels).sum(dim=(1, 2, 3))


def best_levels(grads: list[torch.Tensor], cost: float, levels: int, xi: float = 0.1
                ) -> torch.Tensor:
    """l* of eq. 17, (N, 1, h, w) int64, from the distortion gradients w.r.t. the masked
    codes of each branch ((N, n_b, h, w) each) and the rate cost γ of one coded element."""
    total = None
    for g in grads:
        n = g.shape[1]
        gain = cost - xi * g.abs()  # (N, n, h, w): eq. 16's term of one coded channel
        prefix = torch.cat([torch.zeros_like(gain[:, :1]), gain.cumsum(1)], 1)  # (N, n+1, …)
        count = channels_per_level(n, levels, g.device)  # (L,)
        part = prefix.index_select(1, count)  # (N, L, h, w): proxy of each level
        total = part if total is None else total + part
    return total.argmin(dim=1, keepdim=True)


def importance_loss(p_shifted: torch.Tensor, target: torch.Tensor, levels: int,
                    alpha: float) -> torch.Tensor:
    """Eq. 18 averaged over positions: α·mean|l* − p·L|."""
    return alpha * (target.to(p_shifted.dtype) - p_shifted * levels).abs().mean()
