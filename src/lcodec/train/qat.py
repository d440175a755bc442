"""Decoder fine-tuning with the encoder frozen, optionally quantization-aware (issue 15).

With the encoder, the importance head, the encoder gains and the priors frozen, the symbols
of every image stay exactly those of the model the run starts from, so its entropy tables and
TCAE stay valid and only the distortion term moves. ``qat_decode`` is network v2's decoder
pass with the rounding of synthesis EXACT_INT_V2 (:mod:`lcodec.synthesis.exact_int_v2`) in
the loop: weights rounded per output channel to 7 bits with a power-of-two exponent (the
first convs after the knob's gains are folded in), every activation tensor rounded onto the
power-of-two grid the encoder would pick for the image (the least-error grid of ``calibrate``,
from two no-grad float passes: :func:`grids`, then ``least_error_fracs``) and saturated at its
bound, gradients straight through. Not modelled (each
below 2**-15 of a value): the IGDN normaliser's 16-bit grid, biases on the accumulator grid,
the last layers' 2**-16 grid.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lcodec.nets.cwic2 import CWIC2, GDN
from lcodec.quant import code_mask, importance_levels
from lcodec.synthesis.exact_int_v2_grids import (
    error_samples,
    least_error_fracs,
    rounding_errors,
)
from lcodec.synthesis.exact_int_v2_layers import (
    DIGIT_MAX,
    FRAC_MAX,
    FRAC_MIN,
    NARROW_MAX,
    WIDE_MAX,
)
from lcodec.synthesis.exact_int_v2_spec import SHARED, tensor_names

HEADROOM = 1.5  # as calibrate: the grid holds 1.5× the float decoder's largest value

DECODER_PREFIXES = ("luma_dec.", "chroma_dec.", "log_gain_dec")


def is_decoder_param(name: str) -> bool:
    return name.startswith(DECODER_PREFIXES)


@torch.no_grad()
def symbols(net: CWIC2, ycc: torch.Tensor, knob: torch.Tensor
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """The coded symbols ``(index − T/2)·mask`` (float) of luma and chroma at per-image knobs
    (N,): what ``quantize`` codes, batched over knobs."""
    cfg = net.cfg
    y_y, y_c, logits = net.analyse_logits(ycc)
    g_y, g_c = net._gains(knob, net.log_gain_enc)
    qi = importance_levels(net._levels(logits, knob), cfg.imp_levels)
    half = cfg.levels // 2
    out = []
    for y, g, n in ((y_y, g_y, cfg.n_luma), (y_c, g_c, cfg.n_chroma)):
        idx = torch.clamp(torch.round(y.float() * g) + half, 0, cfg.levels - 1)
        out.append((idx - half) * code_mask(qi, n, cfg.imp_levels))
    return out[0], out[1]


def round_ste(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.round(x) - x).detach()


def fake_rows(w: torch.Tensor) -> torch.Tensor:
    """Weights (O, ...) rounded per row to 7 bits (|w_q| ≤ 63) with the largest power-of-two
    exponent that fits, as ``exact_int_v2_layers.fit_rows`` does; straight-through gradient."""
    flat = w.reshape(w.shape[0], -1)
    top = flat.detach().abs().amax(1).clamp_min(2.0**-60)
    _, k = torch.frexp(top)
    e = (DIGIT_MAX.bit_length() - k).float()
    e = torch.where(torch.round(torch.ldexp(top, e)) > DIGIT_MAX, e - 1, e)
    scale = torch.exp2(e).view(-1, *([1] * (w.dim() - 1)))
    return round_ste(w * scale) / scale


class Tap:
    """Where the decoder's activation tensors pass, in one of three modes: recording each
    tensor's per-image largest magnitude (``fracs`` None); with ``fracs`` and ``trial``,
    recording the squared error of rounding it onto the grids ``fracs + d`` for each ``d`` of
    :data:`~lcodec.synthesis.exact_int_v2_grids.GRID_TRIALS` (``least_error_fracs`` then
    picks); with ``fracs`` alone, rounding it onto its per-image grid and saturating it
    (straight-through inside the bound)."""

    def __init__(self, fracs: dict[str, torch.Tensor] | None = None,
                 wide: frozenset[str] = frozenset(), trial: bool = False) -> None:
        self.fracs = fracs
        self.wide = wide
        self.trial = trial
        self.largest: dict[str, torch.Tensor] = {}
        self.errors: dict[str, torch.Tensor] = {}  # (N, trials)

    def __call__(self, name: str, x: torch.Tensor, relu: bool = False) -> torch.Tensor:
        if relu:
            x = F.relu(x)
        bound = WIDE_MAX if name in self.wide else NARROW_MAX
        if self.fracs is None:
            top = x.detach().abs().amax((1, 2, 3))
            seen = self.largest.get(name)
            self.largest[name] = top if seen is None else torch.maximum(seen, top)
            return x
        if self.trial:
            if name in self.fracs:
                err = rounding_errors(error_samples(x.detach()), self.fracs[name], bound)
                seen = self.errors.get(name)
                self.errors[name] = err if seen is None else seen + err
            return x
        scale = torch.exp2(self.fracs[name]).view(-1, 1, 1, 1)
        v = torch.clamp(x * scale, 0 if relu else -bound, bound)
        return round_ste(v) / scale


def grids(largest: dict[str, torch.Tensor], wide: frozenset[str]) -> dict[str, torch.Tensor]:
    """Per-image grid exponents (N,) as ``GridSpec.from_largest`` picks them: the finest that
    hold 1.5× the largest values, a fuse conv's two inputs on the coarser of theirs."""
    fracs = {}
    for name, top in largest.items():
        bound = WIDE_MAX if name in wide else NARROW_MAX
        f = torch.floor(torch.log2(bound / (top * HEADROOM).clamp_min(2.0**-60)))
        fracs[name] = f.clamp(FRAC_MIN, FRAC_MAX)
    for c, y in SHARED:
        fracs[c] = fracs[y] = torch.minimum(fracs[c], fracs[y])
    return fracs


def _conv(m: torch.nn.Conv2d, x: torch.Tensor, quant: bool) -> torch.Tensor:
    return F.conv2d(x, fake_rows(m.weight) if quant else m.weight, m.bias, padding=1)


def _igdn(m: GDN, x: torch.Tensor, quant: bool) -> torch.Tensor:
    ch = x.shape[1]
    gamma = m.gamma.abs()
    if quant:
        gamma = fake_rows(gamma)
    return x * F.conv2d(x.abs(), gamma.view(ch, ch, 1, 1), m.beta.abs())


def _first(m: torch.nn.Conv2d, s: torch.Tensor, gains: torch.Tensor, quant: bool
           ) -> torch.Tensor:
    """The first conv on symbols (N, C, h, w) with each image's gains (N, C) folded into its
    weights (one group per image)."""
    n, c = gains.shape
    w = (m.weight.unsqueeze(0) * gains.view(n, 1, c, 1, 1)).flatten(0, 1)  # (N·O, C, 3, 3)
    if quant:
        w = fake_rows(w)
    out = F.conv2d(s.reshape(1, n * c, *s.shape[2:]), w, m.bias.repeat(n), padding=1,
                   groups=n)
    return out.view(n, -1, *out.shape[2:])


def synthesise(net: CWIC2, s_y: torch.Tensor, s_c: torch.Tensor, knob: torch.Tensor,
               tap: Tap) -> torch.Tensor:
    """YCbCr from symbols at per-image knobs through the decoders, every named tensor passing
    ``tap`` (in the exact synthesis's layer order; fp32)."""
    quant = tap.fracs is not None
    ld, cd = net.luma_dec, net.chroma_dec
    g = torch.cat(net._gains(knob, net.log_gain_dec), 1)[:, :, 0, 0]
    n = net.cfg.n_luma

    def stage(up, gdn, x, prefix: str, level: str, out: str, first: torch.Tensor | None = None):
        x = _first(up.conv, x, first, quant) if first is not None else _conv(up.conv, x, quant)
        x = tap(f"{prefix}.in{level}", F.pixel_shuffle(x, 2))
        return tap(out, _igdn(gdn, x, quant))

    with torch.autocast(s_y.device.type, enabled=False):
        f8 = stage(*ld.s8, s_y, "y", "8", "y.f8", g[:, :n])
        f4 = stage(*ld.s4, f8, "y", "4", "y.f4")
        f2 = stage(*ld.s2, f4, "y", "2", "y.f2")
        for i, block in enumerate(ld.refine):
            r = tap(f"y.r{i}", _conv(block.a, f2, quant), relu=True)
            f2 = tap("y.f2", f2 + _conv(block.b, r, quant))
        y = F.pixel_shuffle(_conv(ld.s1.conv, f2, quant), 2)
        x = stage(*cd.s8, s_c, "c", "8", "c.x8", g[:, n:])
        x = tap("c.fuse8", _conv(cd.fuse8, torch.cat([x, f8], 1), quant))
        x = stage(*cd.s4, x, "c", "4", "c.x4")
        x = tap("c.fuse4", _conv(cd.fuse4, torch.cat([x, f4], 1), quant))
        x = stage(*cd.s2, x, "c", "2", "c.x2")
        x = tap("c.fuse2", _conv(cd.fuse2, torch.cat([x, f2], 1), quant))
        c = F.pixel_shuffle(_conv(cd.s1.conv, x, quant), 2)
    return torch.cat([y, c], 1) + 0.5


def qat_decode(net: CWIC2, s_y: torch.Tensor, s_c: torch.Tensor, knob: torch.Tensor,
               wide: frozenset[str]) -> torch.Tensor:
    """The decoder with EXACT_INT_V2's rounding (grids calibrated on a no-grad float pass, as
    the encoder does)."""
    calib = Tap()
    names = set(tensor_names(net.cfg.refine))
    with torch.no_grad():
        synthesise(net, s_y, s_c, knob, calib)
        start = grids({k: v for k, v in calib.largest.items() if k in names}, wide)
        trial = Tap(start, wide, trial=True)
        synthesise(net, s_y, s_c, knob, trial)
    return synthesise(net, s_y, s_c, knob, Tap(least_error_fracs(start, trial.errors), wide))


def float_decode(net: CWIC2, s_y: torch.Tensor, s_c: torch.Tensor, knob: torch.Tensor
                 ) -> torch.Tensor:
    """The float decoder from symbols at per-image knobs (as ``decompress``)."""
    g_y, g_c = net._gains(knob, net.log_gain_dec)
    return net._synthesise(s_y * g_y, s_c * g_c)


def psnr8(ref: torch.Tensor, rec: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR (N,) of RGB in [0, 1] after rounding both to 8 bits."""
    a = torch.round(ref * 255)
    b = torch.floor(torch.clamp(rec, 0, 1) * 255 + 0.5)
    mse = ((a - b) ** 2).mean((1, 2, 3)).clamp_min(1e-10)
    return 10 * torch.log10(255.0**2 / mse)
