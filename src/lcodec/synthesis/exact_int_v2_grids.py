"""The encoder's side of synthesis EXACT_INT_V2: the grids of an image's codes, calibrated
on the float decoder's activations (torch). A decoder reads them from the file."""

from __future__ import annotations

import threading
from collections.abc import Iterable

import torch

from lcodec.synthesis.exact_int_v2_layers import FRAC_MAX, Grid
from lcodec.synthesis.exact_int_v2_spec import SHARED, WIDE, GridSpec, tensor_names

# How many grids finer than the one that holds 1.5× a tensor's largest value the encoder tries.
GRID_TRIALS = tuple(range(6))
# The windows whose rounding errors choose among those trials: at most this many, spread
# evenly over the image (every window up to 2048² pixels; the largest values, which bound
# the grids, are taken over every window).
ERROR_WINDOWS = 4


def spread(items: list, count: int) -> list:
    """At most ``count`` of ``items``, evenly spaced from the first to the last."""
    n = len(items)
    if n <= count:
        return items
    return [items[round(i * (n - 1) / (count - 1))] for i in range(count)]


def error_samples(t: torch.Tensor) -> torch.Tensor:
    """The positions a grid's error is measured on: every other row and column."""
    return t[..., ::2, ::2]


def rounding_errors(t: torch.Tensor, frac: torch.Tensor, bound: int) -> torch.Tensor:
    """Per image of ``t`` (N, ...: the positions :func:`error_samples` keeps), Σ (t − q(t))²
    for q the saturated rounding onto the grid ``frac + d`` (``frac`` (N,)), for each ``d`` of
    :data:`GRID_TRIALS`: (N, trials)."""
    out = []
    for d in GRID_TRIALS:
        scale = torch.exp2(frac + d).view(-1, *([1] * (t.dim() - 1)))
        q = torch.clamp(torch.round(t * scale), -bound, bound) / scale
        out.append(((q - t) ** 2).flatten(1).sum(1))
    return torch.stack(out, 1)


def least_error_fracs(start: dict[str, torch.Tensor], errors: dict[str, torch.Tensor]
                      ) -> dict[str, torch.Tensor]:
    """Per tensor and image, ``start`` (N,) plus the trial of least error (``errors`` (N,
    trials) from :func:`rounding_errors`); a fuse conv's two inputs, which start on one
    frac, take the trial of least summed error."""
    trials = torch.tensor(GRID_TRIALS, dtype=torch.float32)
    fracs = {n: start[n] + trials[e.argmin(1)] for n, e in errors.items()}
    for c, y in SHARED:
        fracs[c] = fracs[y] = start[c] + trials[(errors[c] + errors[y]).argmin(1)]
    return {n: f.clamp(max=FRAC_MAX) for n, f in fracs.items()}


_PROBE = threading.local()  # .visit: this thread's visitor while it runs _visit
_PROBE_LOCK = threading.Lock()


def _report(name: str, t: torch.Tensor) -> None:
    visit = getattr(_PROBE, "visit", None)
    if visit is not None:
        visit(name, t)


def _install_probes(net: torch.nn.Module) -> None:
    """Forward hooks on ``net``'s decoder, installed once per network, that hand every tensor
    of :func:`tensor_names` to the calling thread's visitor (none outside :func:`_visit`).

    Hooks live on the network, which a loaded model shares across threads: installed once and
    never removed, they report only to the thread whose decode produced the tensor, so
    concurrent encodes and decodes never see each other's values."""
    with _PROBE_LOCK:
        if getattr(net, "_grid_probes", False):
            return

        def on(module: torch.nn.Module, fn) -> None:
            module.register_forward_hook(fn)

        def gdn_hook(prefix: str, level: str, out_name: str):
            def fn(m: torch.nn.Module, inp, out) -> None:  # a GDN
                if getattr(_PROBE, "visit", None) is None:
                    return
                x = inp[0].float()
                ch = x.shape[1]
                norm = torch.nn.functional.conv2d(x.abs(), m.gamma.abs().view(ch, ch, 1, 1),
                                                  m.beta.abs())
                _report(f"{prefix}.in{level}", x)
                _report(f"{prefix}.norm{level}", norm)
                _report(out_name, out)
            return fn

        ld, cd = net.luma_dec, net.chroma_dec
        on(ld.s8[1], gdn_hook("y", "8", "y.f8"))
        on(ld.s4[1], gdn_hook("y", "4", "y.f4"))
        on(ld.s2[1], gdn_hook("y", "2", "y.f2"))
        for i, block in enumerate(ld.refine):
            on(block.a, lambda m, i_, o, i=i: _report(f"y.r{i}", o.clamp_min(0)))
            on(block, lambda m, i_, o: _report("y.f2", o))
        on(cd.s8[1], gdn_hook("c", "8", "c.x8"))
        on(cd.s4[1], gdn_hook("c", "4", "c.x4"))
        on(cd.s2[1], gdn_hook("c", "2", "c.x2"))
        for level in ("8", "4", "2"):
            on(getattr(cd, f"fuse{level}"), lambda m, i_, o, lv=level: _report(f"c.fuse{lv}", o))
        net._grid_probes = True


def _visit(net: torch.nn.Module, windows: list, visit) -> None:
    """Run the float decoder on ``windows``, calling ``visit(name, tensor)`` for every tensor
    of :func:`tensor_names` it computes (``y.f2`` once per refinement block and before)."""
    _install_probes(net)
    _PROBE.visit = visit
    try:
        for win in windows:
            net.decompress(win)
    finally:
        _PROBE.visit = None


@torch.no_grad()
def calibrate(net: torch.nn.Module, windows: Iterable, wide: frozenset[str] = WIDE,
              least_error: bool = True) -> GridSpec:
    """The grid spec for an image's codes, given as windows (``Encoded``), from two passes of
    the float decoder: the finest grids that hold 1.5× each tensor's largest magnitude (over
    every window), then, per tensor (``least_error``), the grid among those and the next
    :data:`GRID_TRIALS` finer ones on which rounding and saturating its values costs the least
    squared error (a few outliers would otherwise make the grid of a whole image coarse),
    measured on :data:`ERROR_WINDOWS` windows spread over the image (a single window's values
    are kept from the first pass); a fuse conv's two inputs get the grid of least joint
    error, no finer than the coarser one's start. ``wide``: the wide tensors."""
    windows = list(windows)
    names = tensor_names(net.cfg.refine)
    largest: dict[str, float] = {}
    kept: list[tuple[str, torch.Tensor]] = []  # one window: its samples, for the errors
    one = least_error and len(windows) == 1

    def seen(name: str, t: torch.Tensor) -> None:
        largest[name] = max(largest.get(name, 0.0), float(t.abs().max()))
        if one and ".norm" not in name:
            kept.append((name, error_samples(t).clone()))

    _visit(net, windows, seen)
    spec = GridSpec.from_largest(names, largest, wide)
    if not least_error:
        return spec
    start = {n: spec.grid(names, n) for n in names if ".norm" not in n}
    errors: dict[str, torch.Tensor] = {}

    def err(name: str, t: torch.Tensor) -> None:
        if name in start:
            g = start[name]
            e = rounding_errors(t if one else error_samples(t), torch.tensor([float(g.frac)]),
                                g.bound)
            errors[name] = e if name not in errors else errors[name] + e

    if one:
        for name, t in kept:
            err(name, t)
    else:
        _visit(net, spread(windows, ERROR_WINDOWS), err)
    fracs = least_error_fracs({n: torch.tensor([float(g.frac)]) for n, g in start.items()},
                              errors)
    codes = bytearray(spec.codes)
    for name, f in fracs.items():
        codes[names.index(name)] = Grid(int(f[0]), start[name].wide).code()
    return GridSpec(bytes(codes))
