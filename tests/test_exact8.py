"""Claims about synthesis EXACT_INT_V2: its 8-bit-operand layers
(src/lcodec/synthesis/exact_int_v2_layers.py) and the decoder built from them
(synthesis/exact_int_v2.py): exact integers, at any thread count."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lcodec.errors import LicError
from lcodec.synthesis.exact_int_v2_layers import (
    ACC_MAX,
    NARROW_MAX,
    WIDE_MAX,
    Conv8,
    Grid,
    WeightBlock,
    digits,
    fit_rows,
    gemm_backend,
    limbs,
)
from lcodec.synthesis.exact_int_v2_spec import SHARED, WIDE, GridSpec, tensor_names
from lcodec.threads import compute_threads

BACKENDS = ["float32", "int8"]


@pytest.fixture
def backend(request, monkeypatch):
    """Runs a test on one GEMM backend (LCODEC_EXACT_GEMM), the choice cache reset around."""
    monkeypatch.setenv("LCODEC_EXACT_GEMM", request.param)
    gemm_backend.cache_clear()
    yield request.param
    gemm_backend.cache_clear()


def _reference(x: np.ndarray, w_q: np.ndarray) -> np.ndarray:
    """Zero-padded 3×3 correlation in int64: x (H, W, C), w_q (O, 9·C) ordered (tap, c)."""
    h, w, c = x.shape
    xp = np.pad(x.astype(np.int64), ((1, 1), (1, 1), (0, 0)))
    taps = w_q.reshape(w_q.shape[0], 9, c).astype(np.int64)
    out = np.zeros((h, w, w_q.shape[0]), np.int64)
    for t in range(9):
        di, dj = divmod(t, 3)
        out += xp[di : di + h, dj : dj + w] @ taps[:, t].T
    return out


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
@pytest.mark.parametrize("two_digits", [False, True])
def test_the_tap_convolution_is_exact_at_the_extremes_of_every_operand(two_digits,
                                                                       backend) -> None:
    rng = np.random.default_rng(1)
    c, o = 192, 8  # 9·192 = 1728 products per sum, as the widest fuse conv
    top = 4063 if two_digits else 63
    w_q = rng.choice([-top, top], (o, 9 * c)).astype(np.float64)  # the largest weights
    for wide in (False, True):
        bound = WIDE_MAX if wide else NARROW_MAX
        x = rng.choice([-bound, bound], (5, 7, c))
        block = WeightBlock.of(w_q, two_digits)
        assert block.backend == backend
        acc = None
        for limb, bits in limbs(x.astype(np.int16), wide, backend):
            part = block.conv(limb).astype(np.int64) << bits
            acc = part if acc is None else acc + part
        assert np.array_equal(acc, _reference(x, w_q))


def test_two_digits_and_two_limbs_recompose_the_integers() -> None:
    w = np.arange(-4063, 4064, dtype=np.float64)
    lo, hi = digits(w)
    assert np.array_equal(64 * hi + lo, w) and np.abs(hi).max() <= 63
    assert lo.min() >= -32 and lo.max() <= 31
    x = np.arange(-WIDE_MAX, WIDE_MAX + 1, dtype=np.int16)
    (lo_x, _), (hi_x, bits) = limbs(x, True, "int8")
    lo_x, hi_x = lo_x.astype(np.int64), hi_x.astype(np.int64)
    assert np.array_equal((hi_x << bits) + lo_x, x)
    assert lo_x.min() >= 0 and lo_x.max() <= 127 and hi_x.min() >= -128 and hi_x.max() <= 127


def test_every_row_keeps_its_int32_bound() -> None:
    rng = np.random.default_rng(2)
    w = rng.standard_normal((16, 9 * 64)) * 3
    b = rng.standard_normal(16) * 50
    bounds = np.full(9 * 64, float(WIDE_MAX))
    for out_frac in (-4, 4, 12):
        w_q, rq = fit_rows(w, b, 10, bounds, out_frac, True)
        lo, hi = digits(w_q)
        total = (np.abs(lo) + 64 * np.abs(hi)) @ bounds + np.abs(rq.bias)
        left = 0 if rq.left is None else rq.left
        assert np.all(total * 2.0**left + rq.half <= ACC_MAX)


def _conv_outputs(threads: int, outputs: int = 24) -> np.ndarray:
    rng = np.random.default_rng(3)
    w = rng.standard_normal((outputs, 40, 3, 3)) * 0.2
    conv = Conv8(w, rng.standard_normal(outputs), [(16, Grid(9, True)), (24, Grid(9, False))],
                 Grid(7, False), False, False)
    xs = [rng.integers(-WIDE_MAX, WIDE_MAX + 1, (33, 29, 16)).astype(np.int16),
          rng.integers(-127, 128, (33, 29, 24)).astype(np.int16)]
    with compute_threads(threads):
        return conv(xs)


@pytest.mark.parametrize("backend", BACKENDS, indirect=True)
@pytest.mark.parametrize("outputs", [4, 24, 80])  # each GEMM layout of conv3x3
def test_a_conv_layer_gives_the_same_integers_at_one_and_two_threads(backend, outputs) -> None:
    one, two = _conv_outputs(1, outputs), _conv_outputs(2, outputs)
    assert np.array_equal(one, two) and np.abs(one).max() <= NARROW_MAX


@pytest.mark.parametrize("outputs", [4, 24, 80])
def test_both_gemm_backends_give_the_same_integers(monkeypatch, outputs) -> None:
    outs = []
    for name in BACKENDS:
        monkeypatch.setenv("LCODEC_EXACT_GEMM", name)
        gemm_backend.cache_clear()
        outs.append(_conv_outputs(1, outputs))
    gemm_backend.cache_clear()
    assert np.array_equal(outs[0], outs[1])


def test_the_backend_is_chosen_by_the_cpu_unless_forced(monkeypatch) -> None:
    monkeypatch.delenv("LCODEC_EXACT_GEMM", raising=False)
    gemm_backend.cache_clear()
    try:
        avx512 = torch.backends.cpu.get_cpu_capability().startswith("AVX512")
        assert gemm_backend() in (("int8", "float32") if avx512 else ("float32",))
        monkeypatch.setenv("LCODEC_EXACT_GEMM", "float32")
        gemm_backend.cache_clear()
        assert gemm_backend() == "float32"
    finally:
        gemm_backend.cache_clear()


def _spec(refine: int = 2) -> bytearray:
    names = tensor_names(refine)
    return bytearray(Grid(8, n in WIDE).code() for n in names)


def test_grid_specs_are_validated_against_the_model() -> None:
    names = tensor_names(2)
    assert GridSpec.parse(bytes(_spec()), 2).grid(names, "y.f2") == Grid(8, True)
    with pytest.raises(LicError, match="bytes, expected"):
        GridSpec.parse(bytes(_spec())[:-1], 2)
    narrow = _spec()
    narrow[names.index("y.f2")] &= 0x7F  # which tensors are wide is the file's choice
    assert GridSpec.parse(bytes(narrow), 2).grid(names, "y.f2") == Grid(8, False)
    wide_norm = _spec()
    wide_norm[names.index("y.norm4")] |= 0x80
    with pytest.raises(LicError, match="normaliser y.norm4 has the wide bit"):
        GridSpec.parse(bytes(wide_norm), 2)
    apart = _spec()
    c, y = SHARED[0]
    apart[names.index(c)] = Grid(3, c in WIDE).code()
    with pytest.raises(LicError, match="share a grid"):
        GridSpec.parse(bytes(apart), 2)


def test_exact_int_v2_is_close_to_exact_int_v1_and_thread_independent(
        crop_rgb) -> None:
    from lcodec import models
    from lcodec.color import rgb_to_ycbcr
    from lcodec.synthesis.exact_int_v1 import ExactIntV1
    from lcodec.synthesis.exact_int_v2 import ExactIntV2
    from lcodec.synthesis.exact_int_v2_grids import calibrate

    lm = models.load(models.find("v2-mse"))
    x = torch.from_numpy(crop_rgb.copy()).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        enc = lm.net.quantize(*lm.net.analyse(rgb_to_ycbcr(x)), 0.3)
    spec = calibrate(lm.net, [enc])
    e8 = ExactIntV2.from_net(lm.net)
    with compute_threads(1):
        one = e8.pixels(enc.qi, enc.luma, enc.chroma, 0.3, spec)
    with compute_threads(2):
        two = e8.pixels(enc.qi, enc.luma, enc.chroma, 0.3, spec)
    assert np.array_equal(one, two)
    v1 = ExactIntV1(lm.net).pixels(enc.qi, enc.luma, enc.chroma, 0.3).astype(float)

    def psnr(a: np.ndarray) -> float:
        return float(10 * np.log10(255**2 / np.mean((a - crop_rgb.astype(float)) ** 2)))

    assert abs(psnr(one.astype(float)) - psnr(v1)) < 0.5


def test_least_error_grids_decode_at_least_as_well_as_the_largest_value_grids(crop_rgb) -> None:
    from lcodec import models
    from lcodec.color import rgb_to_ycbcr
    from lcodec.synthesis.exact_int_v2 import ExactIntV2
    from lcodec.synthesis.exact_int_v2_grids import calibrate

    lm = models.load(models.find("v2-mse"))
    x = torch.from_numpy(crop_rgb.copy()).permute(2, 0, 1)[None].float() / 255
    e8 = ExactIntV2.from_net(lm.net)
    names = tensor_names(lm.net.cfg.refine)
    for knob in (0.0, 0.7):  # (at −0.5 on this small crop it is 0.1 dB worse, 26.18 / 26.29)
        with torch.no_grad():
            enc = lm.net.quantize(*lm.net.analyse(rgb_to_ycbcr(x)), knob)
        by_max = calibrate(lm.net, [enc], frozenset(), least_error=False)
        best = calibrate(lm.net, [enc], frozenset())
        fracs = [(by_max.grid(names, n).frac, best.grid(names, n).frac) for n in names]
        assert all(b >= a for a, b in fracs) and any(b > a for a, b in fracs)

        def err(spec, enc=enc, knob=knob) -> float:
            out = e8.pixels(enc.qi, enc.luma, enc.chroma, knob, spec)
            return float(np.mean((out.astype(float) - crop_rgb) ** 2))

        assert err(best) < err(by_max)


def test_the_error_pass_visits_at_most_four_windows_spread_over_the_image() -> None:
    from lcodec.synthesis.exact_int_v2_grids import ERROR_WINDOWS, spread

    assert spread(list(range(3)), ERROR_WINDOWS) == [0, 1, 2]
    assert spread(list(range(48)), ERROR_WINDOWS) == [0, 16, 31, 47]
    assert spread(list(range(5)), ERROR_WINDOWS) == [0, 1, 3, 4]
