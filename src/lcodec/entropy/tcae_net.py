"""Float inclined TCAE for training (seed 004 §4.3-4.5) and :func:`freeze` to integers.

The float network computes exactly the function that :class:`lcodec.entropy.tcae_int.IntTcae`
evaluates in integers (same taps, same zero features at inactive positions, same residual
wiring), with 3-D convolutions whose kernels are multiplied by the trimmed masks of eqs. 26/27.
Shapes: input classes (N, n, h, w) int64, active mask (N, n, h, w) bool, side classes
(N, n, h, w) int64 or None; logits (N, classes, n, h, w).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lcodec.entropy.tcae_config import LUMA_THRESHOLDS, TcaeConfig, combined_side
from lcodec.entropy.tcae_int import (
    ACT_MAX,
    EXACT_LIMIT,
    LOGIT_FRAC_BITS,
    WEIGHT_MAX,
    IntLayer,
    IntTcae,
    exp_table,
    requant_constants,
)
from lcodec.entropy.tcae_layout import side_taps, trimmed_taps

LN2 = math.log(2.0)
# Paper group counts for luma (8) and QI (32); a smaller chroma model (4). The channel reach
# (k - 2 .. k + 2) and the shared-in-k kernels keep luma + QI decoding of a 768×512 image near
# half a CPU second.
DEFAULT_CONFIGS = {
    "importance": TcaeConfig(channels=1, classes=16, offset=0, groups=32, k_before=0,
                             k_after=0),
    "luma": TcaeConfig(channels=32, classes=8, offset=1, groups=8, k_before=2, k_after=2,
                       side_classes=8),
    "chroma": TcaeConfig(channels=8, classes=8, offset=1, groups=4, k_before=2, k_after=2,
                         side_classes=8),
}


def _tap_mask(cfg: TcaeConfig, taps: np.ndarray, depth: int, kernel: int, k_before: int
              ) -> torch.Tensor:
    r = kernel // 2
    mask = torch.zeros(depth, kernel, kernel)
    for dk, di, dj in taps.tolist():
        mask[dk + k_before, di + r, dj + r] = 1.0
    return mask


class TrimmedConv(nn.Module):
    """Multi-group trimmed convolution (eqs. 24, 26, 27), Toeplitz in k, bias per (group, k)."""

    def __init__(self, cfg: TcaeConfig, cin: int, cout: int, first: bool) -> None:
        super().__init__()
        self.cfg = cfg
        self.taps = trimmed_taps(cfg, first)
        depth = cfg.k_before + cfg.k_after + 1
        self.register_buffer("mask", _tap_mask(cfg, self.taps, depth, cfg.kernel,
                                               cfg.k_before))
        std = math.sqrt(2.0 / max(1, cin * len(self.taps)))
        self.weight = nn.Parameter(torch.randn(cout, cin, depth, cfg.kernel, cfg.kernel) * std)
        self.bias = nn.Parameter(torch.zeros(cout, cfg.channels))

    def masked_weight(self) -> torch.Tensor:
        return self.weight * self.mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.cfg.kernel // 2
        x = F.pad(x, (r, r, r, r, self.cfg.k_before, self.cfg.k_after))
        return F.conv3d(x, self.masked_weight()) + self.bias[None, :, :, None, None]

    def tap_matrix(self) -> torch.Tensor:
        """(taps·cin, cout): row tap·cin + c holds w[:, c, tap] (the integer GEMM layout)."""
        r = self.cfg.kernel // 2
        t = torch.as_tensor(self.taps)
        w = self.weight[:, :, t[:, 0] + self.cfg.k_before, t[:, 1] + r, t[:, 2] + r]
        return w.permute(2, 1, 0).reshape(-1, w.shape[0])  # (taps, cin, cout) -> rows

    def dense_2d_weight(self) -> torch.Tensor:
        """The equivalent eq. 24 kernel over n·g maps: (n·cout, n·cin, K, K), map = k·g + group."""
        n = self.cfg.channels
        w = self.masked_weight()
        cout, cin, _, kk, _ = w.shape
        out = torch.zeros(n, cout, n, cin, kk, kk, dtype=w.dtype)
        for k in range(n):
            for kp in range(n):
                dk = kp - k
                if -self.cfg.k_before <= dk <= self.cfg.k_after:
                    out[k, :, kp] = w[:, :, dk + self.cfg.k_before]
        return out.reshape(n * cout, n * cin, kk, kk)


class SideConv(nn.Module):
    """Untrimmed side input of the first layer: one-hot side classes over a spatial window."""

    def __init__(self, cfg: TcaeConfig, cout: int) -> None:
        super().__init__()
        self.cfg = cfg
        ks = cfg.side_kernel
        std = math.sqrt(1.0 / (ks * ks))
        self.weight = nn.Parameter(torch.randn(cout, cfg.side_count, 1, ks, ks) * std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.cfg.side_kernel // 2
        return F.conv3d(F.pad(x, (r, r, r, r, 0, 0)), self.weight)


class TcaeNet(nn.Module):
    """Inclined TCAE (§4.5): 2 trimmed convs, residual blocks of 2, a final trimmed conv."""

    def __init__(self, cfg: TcaeConfig) -> None:
        super().__init__()
        self.cfg = cfg
        g = cfg.groups
        self.embed = None
        if cfg.embed:  # per input channel embedding of the classes (outside: zero vector)
            e = torch.randn(cfg.channels, cfg.in_classes, cfg.embed) * 0.1
            d = min(cfg.embed, cfg.in_classes)
            e[:, :d, :d] += torch.eye(d)  # start as the one-hot model (exactly, if d = C)
            self.embed = nn.Parameter(e)
        self.first = TrimmedConv(cfg, cfg.embed or cfg.in_classes, g, first=True)
        self.side = SideConv(cfg, g) if cfg.side_classes else None
        self.knob_bias = None  # first-layer bias per (knob bucket, group, channel k)
        if cfg.knob_buckets:
            self.knob_bias = nn.Parameter(torch.zeros(cfg.knob_buckets, g, cfg.channels))
        self.second = TrimmedConv(cfg, g, g, first=False)
        self.blocks = nn.ModuleList(
            nn.ModuleList([TrimmedConv(cfg, g, g, False), TrimmedConv(cfg, g, g, False)])
            for _ in range(cfg.blocks)
        )
        self.final = TrimmedConv(cfg, g, cfg.classes, first=False)
        with torch.no_grad():  # start the residual branches and the output small
            for _, b in self.blocks:
                b.weight.mul_(0.1)
            self.final.weight.mul_(0.1)

    def forward(self, cls: torch.Tensor, active: torch.Tensor | None = None,
                side: torch.Tensor | None = None, record: list | None = None,
                knob: torch.Tensor | None = None) -> torch.Tensor:
        """``knob``: (N,) knob buckets (:func:`lcodec.entropy.tcae_config.knob_bucket`), required
        when the config has knob buckets."""
        cfg = self.cfg
        if self.embed is not None:
            chan = torch.arange(cfg.channels, device=cls.device).view(1, -1, 1, 1)
            x = self.embed[chan, cls].permute(0, 4, 1, 2, 3)
        else:
            x = F.one_hot(cls, cfg.in_classes).permute(0, 4, 1, 2, 3)
        x = x.to(self.first.weight.dtype)
        m = None if active is None else active[:, None].to(x.dtype)

        def keep(t: torch.Tensor) -> torch.Tensor:
            t = F.relu(t)
            return t if m is None else t * m

        h = self.first(x)
        if self.side is not None:
            if side is None:
                raise ValueError("this TCAE needs side classes")
            h = h + self.side(F.one_hot(side, cfg.side_count).permute(0, 4, 1, 2, 3)
                              .to(x.dtype))
        if self.knob_bias is not None:
            if knob is None:
                raise ValueError("this TCAE needs the knob buckets")
            h = h + self.knob_bias[knob][..., None, None].to(h.dtype)
        h = keep(h)
        x = keep(self.second(h))
        if record is not None:
            record += [("first", h), ("stream", x)]
        for i, (a, b) in enumerate(self.blocks):
            mid = keep(a(x))
            x = keep(x + b(mid))
            if record is not None:
                record += [(f"mid{i}", mid), ("stream", x)]
        return self.final(x)


@torch.no_grad()
def init_marginals(net: TcaeNet, batches) -> None:
    """Set the final bias to each channel's log marginal symbol frequencies (+1 smoothing).

    Training then starts from the per-channel order-0 code length instead of log2(classes).
    """
    cfg = net.cfg
    counts = torch.ones(cfg.channels, cfg.classes, dtype=torch.float64)
    for cls, active, *_ in batches:
        sym = (cls - cfg.offset).clamp(min=0)
        for k in range(cfg.channels):
            a = active[:, k]
            counts[k] += torch.bincount(sym[:, k][a].flatten(), minlength=cfg.classes
                                        )[: cfg.classes].double().cpu()
    logp = torch.log(counts / counts.sum(1, keepdim=True))
    net.final.bias.copy_(logp.T.to(net.final.bias.dtype))


def code_length_bits(net: TcaeNet, cls: torch.Tensor, active: torch.Tensor,
                     side: torch.Tensor | None = None, knob: torch.Tensor | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 25: Σ over active positions of -log2 p(symbol); returns (bits, symbol count)."""
    logits = net(cls, active, side, knob=knob)
    logp = F.log_softmax(logits.float(), dim=1)
    target = (cls - net.cfg.offset).clamp(min=0)
    nll = -torch.gather(logp, 1, target[:, None])[:, 0]
    a = active.to(nll.dtype)
    return (nll * a).sum() / LN2, a.sum()


def side_classes_torch(active: torch.Tensor, classes: int) -> torch.Tensor:
    """(N, n, h, w) side classes clip(K - k, 0, S - 1) from an active mask (N, n, h, w)."""
    n = active.shape[1]
    count = active.sum(1, keepdim=True)
    k = torch.arange(n, device=active.device).view(1, n, 1, 1)
    return (count - k).clamp(0, classes - 1)


def luma_activity_torch(luma: torch.Tensor, active: torch.Tensor, levels: int, classes: int
                        ) -> torch.Tensor:
    """:func:`lcodec.entropy.tcae_config.luma_activity` of a batch: (N, n_y, h, w) -> (N, h, w)."""
    act = ((luma.long() - levels // 2).abs() * active).sum(1)
    t = torch.tensor(LUMA_THRESHOLDS[: classes - 1], device=luma.device)
    return (act[..., None] >= t).sum(-1)


def _group_quantile(values: list[np.ndarray], q: float) -> np.ndarray:
    """Per-group quantile of (g, count) arrays."""
    v = np.concatenate(values, axis=1)
    if v.shape[1] > 1_000_000:
        v = v[:, np.random.default_rng(0).choice(v.shape[1], 1_000_000, replace=False)]
    if v.shape[1] == 0:
        return np.zeros(v.shape[0])
    return np.quantile(v, q, axis=1)


def _quantise_columns(w: np.ndarray, act_max: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-column int8 weights and scales, with Σ|w|·act_max < 2**24 for every column."""
    scale = np.maximum(np.abs(w).max(0), 1e-12) / WEIGHT_MAX
    while True:
        q = np.clip(np.floor(w / scale + 0.5), -WEIGHT_MAX, WEIGHT_MAX)
        over = np.abs(q).sum(0) * act_max >= EXACT_LIMIT
        if not over.any():
            return q, scale
        scale = np.where(over, scale * 1.01, scale)


@torch.no_grad()
def calibrate(net: TcaeNet, batches, q: float = 0.99999) -> dict[str, np.ndarray]:
    """Per-group activation scales (value of one integer step) from (cls, active, side) batches.

    Every residual-stream tensor shares one scale per group (the residual add needs it).
    """
    acts: dict[str, list[np.ndarray]] = {}
    net.eval()
    for cls, active, side, *knob in batches:
        rec: list = []
        net(cls, active, side, record=rec, knob=knob[0] if knob else None)
        for name, t in rec:
            v = t.permute(1, 0, 2, 3, 4)[:, active].double().cpu().numpy()  # (g, count)
            acts.setdefault(name, []).append(v)
    out = {}
    for name, v in acts.items():
        top = np.maximum(_group_quantile(v, q), 1e-4)
        # a dead group (always ~0) gets a scale near its layer's, which keeps every
        # requantisation ratio in range; its values stay ~0 anyway
        out[name] = np.maximum(top, top.max() / 256) / ACT_MAX
    return out


@torch.no_grad()
def freeze(net: TcaeNet, batches, scales: dict[str, np.ndarray] | None = None) -> IntTcae:
    """Post-training quantisation to the exact integer model (format: docs/format.md).

    Activation scales are per layer and group (from :func:`calibrate` unless given); input
    scales are folded into the weights, which are quantised per output group.
    """
    cfg = net.cfg
    sc = scales if scales is not None else calibrate(net, batches)
    a_first, a_res = sc["first"], sc["stream"]

    def bias_int(b: torch.Tensor, unit: np.ndarray) -> np.ndarray:
        return np.floor(b.double().cpu().numpy().T / unit[None] + 0.5).astype(np.int64)

    # first layer: tables indexed by (tap, class), per-group scale shared with the side table
    w0 = net.first.tap_matrix().double().cpu().numpy()  # (taps0·cin, g)
    if net.embed is None:
        t0 = w0.reshape(1, len(net.first.taps), cfg.in_classes, cfg.groups)
    else:  # fold the embedding: T[k', tap, class] = W[tap] · E[k', class]
        w0 = w0.reshape(len(net.first.taps), cfg.embed, cfg.groups)
        emb = net.embed.double().cpu().numpy()  # (n, C, d)
        t0 = np.einsum("tdo,kcd->ktco", w0, emb)
    ts = None
    wmax = np.abs(t0).max((0, 1, 2))
    if net.side is not None:
        rs = cfg.side_kernel // 2
        st = side_taps(cfg)
        ws = net.side.weight.double().cpu().numpy()  # (g, S, 1, ks, ks)
        ts = np.stack([ws[:, :, 0, di + rs, dj + rs].T for _, di, dj in st.tolist()])
        wmax = np.maximum(wmax, np.abs(ts).max((0, 1)))
    s0 = np.maximum(wmax, 1e-12) / WEIGHT_MAX
    t0q = np.clip(np.floor(t0 / s0 + 0.5), -WEIGHT_MAX, WEIGHT_MAX).astype(np.int64)
    tsq = None if ts is None else np.clip(np.floor(ts / s0 + 0.5), -WEIGHT_MAX,
                                          WEIGHT_MAX).astype(np.int64)
    m0, sh0 = requant_constants(s0 / a_first)
    first_layer = IntLayer(np.zeros((0, 0), np.float32), bias_int(net.first.bias, s0), m0, sh0)
    knob_q = None
    if net.knob_bias is not None:  # (buckets, g, n) -> (buckets, n, g) on the bias grid
        knob_q = np.stack([bias_int(b, s0) for b in net.knob_bias])

    def conv(layer: TrimmedConv, a_in: np.ndarray, a_out: np.ndarray) -> IntLayer:
        w = layer.tap_matrix().double().cpu().numpy()
        w = w * np.tile(a_in, len(layer.taps))[:, None]  # integer inputs: fold their scales
        q, s = _quantise_columns(w, ACT_MAX)
        mult, shift = requant_constants(s / a_out)
        return IntLayer(q.astype(np.float32), bias_int(layer.bias, s), mult, shift)

    layers = [conv(net.second, a_first, a_res)]
    for i, (a, b) in enumerate(net.blocks):
        a_mid = sc[f"mid{i}"]
        layers += [conv(a, a_res, a_mid), conv(b, a_mid, a_res)]
    logit_unit = np.full(cfg.classes, 2.0 ** -LOGIT_FRAC_BITS)
    layers.append(conv(net.final, a_res, logit_unit))
    return IntTcae(cfg, t0q, tsq, first_layer, layers, exp_table(), knob_q)


def int_log2_probs(model: IntTcae, symbols: np.ndarray, active: np.ndarray, bucket: int = 0,
                   luma_class: np.ndarray | None = None) -> np.ndarray:
    """Per coded symbol log2 p under the integer model, in the integer model's coding order."""
    syms, freqs = model.frequency_rows(symbols, active, bucket, luma_class)
    f = freqs[np.arange(len(syms)), syms]
    return np.log2(f) - 16.0


@torch.no_grad()
def float_log2_probs(net: TcaeNet, symbols: np.ndarray, active: np.ndarray, bucket: int = 0,
                     luma_class: np.ndarray | None = None) -> np.ndarray:
    """Same as :func:`int_log2_probs` under the float model (same order)."""
    cfg = net.cfg
    cls = np.where(active, symbols + cfg.offset, 0)
    ct = torch.from_numpy(cls)[None]
    at = torch.from_numpy(active)[None]
    side = None
    if cfg.side_classes:
        side = torch.from_numpy(combined_side(active, cfg, luma_class))[None]
    knob = torch.tensor([bucket]) if cfg.knob_buckets else None
    net.eval()
    logp = F.log_softmax(net(ct, at, side, knob=knob).double(), dim=1)[0].numpy() / LN2
    k, i, j = np.nonzero(active)
    order = np.argsort(k + i + j, kind="stable")
    k, i, j = k[order], i[order], j[order]
    return logp[symbols[k, i, j], k, i, j]
