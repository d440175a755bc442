"""The rate that files pay, in the training loop (``rate: "context"``): the code length of a
batch's symbols under the inclined TCAE context models, trained jointly with the network.

The TCAE reads the batch's hard symbols (importance levels, masked codes) as its context, as
the file coder does. Two terms come out of one pass:

* the network's rate: each position's cost curve (bits for each level, from the TCAE's
  logits, detached) interpolated at the noisy continuous symbol, exactly as
  :func:`lcodec.nets.cwic2.interp_cost` does with the per-anchor priors, so the encoder learns
  latents the context model predicts;
* the context models' loss: the code length of the hard symbols (what a file costs), which
  trains the TCAE and is logged as the batch's bpp.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from lcodec.entropy.tcae_config import TcaeConfig
from lcodec.entropy.tcae_net import TcaeNet
from lcodec.quant import importance_levels
from lcodec.train.tcae.inputs import NAMES, batch_inputs

LN2 = math.log(2.0)


def interp_map(cost: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Code length of continuous symbols ``u`` (N, C, h, w) in 0..T-1 under per-position
    costs ``cost`` (N, T, C, h, w): exact at integers, linear in between."""
    t = cost.shape[1]
    u = torch.clamp(u, 0.0, t - 1.0)
    lo = torch.clamp(torch.floor(u.detach()), 0, t - 2).long()
    w = u - lo
    c_lo = torch.gather(cost, 1, lo[:, None])[:, 0]
    c_hi = torch.gather(cost, 1, lo[:, None] + 1)[:, 0]
    return (1 - w) * c_lo + w * c_hi


class ContextRate(nn.Module):
    """The three context models (importance map, luma codes, chroma codes) as one module.

    Called by :meth:`lcodec.nets.cwic2.CWIC2.forward` with the batch's noisy and hard symbols;
    returns the network's rate per code position and per image, and the hard code length."""

    def __init__(self, cfgs: dict[str, TcaeConfig]) -> None:
        super().__init__()
        self.cfgs = dict(cfgs)
        self.nets = nn.ModuleDict({n: TcaeNet(cfgs[n]) for n in NAMES})

    @classmethod
    def from_tcae_run(cls, folder: Path) -> ContextRate:
        """The float models of a ``python -m lcodec.train.tcae`` run folder (``last.ckpt``)."""
        st = torch.load(Path(folder) / "last.ckpt", map_location="cpu", weights_only=False)
        model = cls({n: TcaeConfig.from_dict(st["configs"][n]) for n in NAMES})
        for n in NAMES:
            model.nets[n].load_state_dict(st["nets"][n])
        return model

    def tcae_checkpoint(self, step: int) -> dict:
        """A ``last.ckpt`` in the TCAE trainer's layout (so ``tcae freeze`` and ``--init``
        read these models); it carries no optimizer state."""
        return {"nets": {n: self.nets[n].state_dict() for n in NAMES},
                "configs": {n: c.to_dict() for n, c in self.cfgs.items()},
                "state": {"step": step, "lr_index": 0, "best": math.inf, "bad": 0}}

    def forward(self, noisy: torch.Tensor, hard: torch.Tensor, p: torch.Tensor,
                knob: torch.Tensor, n_luma: int, imp_levels: int
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``noisy`` (N, C, h, w) continuous symbols, ``hard`` (N, C, h, w) their levels,
        ``p`` (N, 1, h, w) the importance, ``knob`` (N,). Returns (code bits per position
        (N, C, h, w) and importance bits per image (N,), both for the network, with the
        context models' costs detached; the hard code length per image (N,), for them)."""
        qi = importance_levels(p.detach(), imp_levels)[:, 0]
        inputs = batch_inputs(qi, hard[:, :n_luma], hard[:, n_luma:], imp_levels, self.cfgs,
                              knob.detach().float())
        code_bits, hard_bits = [], torch.zeros(len(qi), device=qi.device)
        qi_bits = None
        for name in NAMES:
            cost, nll = self._costs(name, inputs[name])
            hard_bits = hard_bits + nll
            if name == "importance":
                u = p * imp_levels - 0.5 + torch.empty_like(p).uniform_(-0.5, 0.5)
                qi_bits = interp_map(cost.detach(), u).sum((1, 2, 3))
            else:
                part = noisy[:, :n_luma] if name == "luma" else noisy[:, n_luma:]
                code_bits.append(interp_map(cost.detach(), part))
        return torch.cat(code_bits, 1), qi_bits, hard_bits

    @torch.no_grad()
    def code_length(self, qi: torch.Tensor, luma: torch.Tensor, chroma: torch.Tensor,
                    knob: torch.Tensor, imp_levels: int) -> torch.Tensor:
        """Bits (N,) of discrete codes (``qi`` (N, 1, h, w), level indices) under the float
        context models: what the integer ones that files use cost, to within a few tenths of
        a percent."""
        inputs = batch_inputs(qi[:, 0], luma, chroma, imp_levels, self.cfgs, knob.float())
        return sum(self._costs(name, inputs[name])[1] for name in NAMES)

    def _costs(self, name: str, inputs: tuple) -> tuple[torch.Tensor, torch.Tensor]:
        """One context model's cost of every level at every position (N, T, C, h, w) in bits,
        and the hard symbols' code length per image (N,)."""
        cls, active, side, kb = inputs
        logits = self.nets[name](cls, active, side, knob=kb)
        cost = -F.log_softmax(logits.float(), dim=1) / LN2
        target = (cls - self.cfgs[name].offset).clamp(min=0)
        nll = torch.gather(cost, 1, target[:, None])[:, 0] * active
        return cost, nll.sum((1, 2, 3))
