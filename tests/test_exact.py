"""Claims about synthesis EXACT_INT_V1 (src/lcodec/synthesis/exact_int_v1_layers.py,
synthesis/exact_int_v1.py, exact_colour.ycbcr_offsets_to_rgb8; spec in docs/format.md, "Exact
synthesis") and about choosing and decoding the exact syntheses."""

from __future__ import annotations

import math
from dataclasses import replace
from fractions import Fraction

import numpy as np
import pytest
import torch

from lcodec.synthesis.exact_int_v1_layers import (
    ACT_FRAC,
    ACT_MAX,
    EXACT,
    W_MAX,
    IntConv,
    Requant,
    fit_rows,
)

CPU = torch.device("cpu")


def _reference_conv(x: np.ndarray, w_q: np.ndarray, b_q: np.ndarray, shift: np.ndarray
                    ) -> np.ndarray:
    """The integer formula with Python-exact int64 arithmetic: zero-padded 3×3 correlation,
    bias, ``(v + 2**(s-1)) >> s`` (or ``v << -s``), saturation."""
    c, h, w = x.shape
    xp = np.pad(x.astype(np.int64), ((0, 0), (1, 1), (1, 1)))
    acc = np.zeros((w_q.shape[0], h, w), dtype=np.int64)
    for di in range(3):
        for dj in range(3):
            acc += np.einsum("oc,chw->ohw", w_q[:, :, di, dj].astype(np.int64),
                             xp[:, di : di + h, dj : dj + w])
    acc += b_q.astype(np.int64)[:, None, None]
    out = np.empty_like(acc)
    for o, s in enumerate(shift):
        out[o] = (acc[o] + (1 << (s - 1))) >> s if s > 0 else acc[o] << -s
    return np.clip(out, -ACT_MAX, ACT_MAX)


def test_exact_conv_equals_the_integer_formula() -> None:
    rng = np.random.default_rng(0)
    w = rng.standard_normal((6, 5, 3, 3)) * 0.3
    b = rng.standard_normal(6)
    x = rng.integers(-ACT_MAX, ACT_MAX, (5, 7, 9))
    conv = IntConv.from_float(w, b, ACT_FRAC, ACT_MAX, CPU)
    got = conv(torch.from_numpy(x).double()).numpy()
    w_q, b_q, e = fit_rows(w.reshape(6, -1), b, ACT_FRAC, ACT_MAX)
    want = _reference_conv(x, w_q.reshape(w.shape), b_q, e)
    assert np.array_equal(got.astype(np.int64), want)


def test_requantization_rounds_half_up_as_an_integer_shift_does() -> None:
    v = np.array([-5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 2**51 - 1, -(2**51) + 1])
    for s in (1, 2, 3, 20):
        got = Requant.of(np.array([s]), 2**60, CPU)(torch.from_numpy(v).double()[None])[0]
        assert got.numpy().astype(np.int64).tolist() == [(int(a) + (1 << (s - 1))) >> s
                                                          for a in v]
    left = Requant.of(np.array([-3]), 2**60, CPU)(torch.tensor([[-5.0, 7.0]]))
    assert left.tolist() == [[-40.0, 56.0]]


def test_weight_rows_use_sixteen_bits_within_the_exactness_bound() -> None:
    rng = np.random.default_rng(1)
    w = rng.standard_normal((8, 1728)) * np.logspace(-4, 2, 8)[:, None]
    w_q, b_q, e = fit_rows(w, np.zeros(8), ACT_FRAC, ACT_MAX)
    assert np.all(np.abs(w_q).max(axis=1) <= W_MAX)
    assert np.all(np.abs(w_q).max(axis=1) > W_MAX // 2)  # the full 16 bits are used
    assert np.array_equal(w_q, np.rint(np.ldexp(w, e[:, None])))  # power-of-two scales
    # A row whose bound would not hold gets fewer bits, and then holds it.
    big = np.full((1, 8192), 1.0)
    w_q, _, e = fit_rows(big, np.zeros(1), ACT_FRAC, ACT_MAX)
    assert int(np.abs(w_q).sum()) * ACT_MAX < EXACT and np.abs(w_q).max() < W_MAX // 2


def test_exact_gains_are_the_float_gains_to_28_bits() -> None:
    from lcodec.synthesis.exact_common import GAIN_BITS, exact_exp, exact_gains

    assert exact_exp(Fraction(0)) == 1.0
    assert exact_exp(Fraction(1)) == round(math.e * 2**26) / 2**26
    table = np.array([[-0.5, 1.25], [0.75, -2.0], [2.5, 0.125]])
    for k in (-1000, -1, 0, 333, 1000):
        exact = exact_gains(table, k)
        s = (k / 1000 + 1) * 0.5 * 2  # the float decoder's anchor position (3 anchors)
        lo = min(int(s), 1)
        want = np.exp((1 - (s - lo)) * table[lo] + (s - lo) * table[lo + 1])
        assert np.allclose(exact, want, rtol=2.0**-GAIN_BITS * 4, atol=0)
        mant, _ = np.frexp(exact)
        assert np.all(np.ldexp(mant, GAIN_BITS) == np.rint(np.ldexp(mant, GAIN_BITS)))


def test_exact_colour_conversion_matches_the_float_conversion_within_rounding() -> None:
    from lcodec.color import ycbcr_to_rgb
    from lcodec.exact_colour import ycbcr_offsets_to_rgb8
    from lcodec.synthesis.float_synthesis import to_uint8

    rng = np.random.default_rng(2)
    q = torch.from_numpy(rng.integers(-(2**16), 2**16, (3, 40, 50)))
    exact = ycbcr_offsets_to_rgb8(*(t.numpy() for t in q[:3]), ACT_FRAC).astype(int)
    ycc = q.double()[None] / 2**ACT_FRAC + 0.5
    floats = to_uint8(ycbcr_to_rgb(ycc)).astype(int)
    assert np.abs(exact - floats).max() <= 1 and np.mean(exact != floats) < 0.01
    gray = ycbcr_offsets_to_rgb8(q[0].numpy(), None, None, ACT_FRAC)
    assert np.array_equal(gray[..., 0], gray[..., 2])
    assert np.array_equal(gray[..., 0], to_uint8(ycc[:, :1])[..., 0])


@pytest.fixture(scope="module")
def v2_files(crop_rgb) -> dict[str, bytes]:
    """Files of one crop's symbols, by synthesis: "exact" is what the model writes (its card
    opts it into EXACT_INT_V2), "v1" the same file naming EXACT_INT_V1 (as older files do)."""
    from lcodec import api, container

    files = {s: api.encode(crop_rgb, knob=0.3, model="v2-mse", synthesis=s, verify=False,
                           correction=False)  # the networks' pixels alone
             for s in ("exact", "float")}
    lic = container.unpack(files["float"])
    files["v1"] = container.pack(replace(lic, header=replace(
        lic.header, synthesis=container.Synthesis.EXACT_INT_V1)))
    return files


def test_new_v2_files_name_the_exact_synthesis_and_v1_files_the_float_one(crop_rgb) -> None:
    from lcodec import api, container
    from lcodec.container import Synthesis

    v2 = container.unpack(api.encode(crop_rgb, knob=0.0, model="v2-mse")).header
    assert v2.synthesis == Synthesis.EXACT_INT_V2 and len(v2.synthesis_grids) == 23
    v1 = api.encode(crop_rgb, knob=0.0, model="lite-mse-fcf1326f70791116")
    assert container.unpack(v1).header.synthesis == Synthesis.FLOAT
    with pytest.raises(Exception, match="no exact synthesis"):
        api.encode(crop_rgb, knob=0.0, model="lite-mse-fcf1326f70791116", synthesis="exact")


def test_both_exact_syntheses_decode_near_the_float_decoder(v2_files, crop_rgb) -> None:
    """EXACT_INT_V1 within 0.2 dB of the float decoder; EXACT_INT_V2 (8-bit operands) within
    0.5 dB on this crop (its Kodak losses are measured in docs/format.md)."""
    from lcodec import api, container
    from lcodec.metrics import psnr

    sections = [container.unpack(v2_files[s]).sections for s in ("exact", "float", "v1")]
    assert sections[0] == sections[1] == sections[2]
    ref = psnr(crop_rgb, api.decode_array(v2_files["float"]))
    assert abs(ref - psnr(crop_rgb, api.decode_array(v2_files["v1"]))) < 0.2
    assert abs(ref - psnr(crop_rgb, api.decode_array(v2_files["exact"]))) < 0.5


def test_exact_v2_files_carry_the_grids_of_their_own_codes(v2_files, crop_rgb) -> None:
    from lcodec import api, container, encoder, models
    from lcodec.encoder.draft import Draft

    lic = container.unpack(v2_files["exact"])
    loaded = models.load(models.find("v2-mse"))
    analysis = encoder.analyse(loaded, api.as_source(crop_rgb))
    assert lic.header.synthesis_grids == analysis.grids(0.3)
    assert analysis.grids(0.3) != analysis.grids(-0.5)  # the codes choose them
    tampered = bytearray(lic.header.synthesis_grids)
    tampered[0] ^= 0x80  # the wide bit of y.in8
    wrong = replace(lic, header=replace(lic.header, synthesis_grids=bytes(tampered)))
    with pytest.raises(Exception, match="synthesis grids"):
        encoder.verify(analysis, Draft(wrong, final=True))


def test_a_size_target_is_met_with_the_real_grids(crop_rgb) -> None:
    """Rate control sizes files with placeholder grids (the same length) and gives the file
    it picks the grids of its knob."""
    from lcodec import api, container, encoder, models

    res = api.encode_with_stats(crop_rgb, size=900, model="v2-mse")
    assert len(res.data) <= 900
    hdr = container.unpack(res.data).header
    analysis = encoder.analyse(models.load(models.find("v2-mse")), api.as_source(crop_rgb))
    assert hdr.synthesis_grids == analysis.grids(hdr.rate_knob)


def test_exact_decode_refuses_a_halo_below_its_reach(v2_files, monkeypatch) -> None:
    from lcodec import api
    from lcodec.errors import LcodecError
    from lcodec.synthesis import exact_common

    monkeypatch.setattr(exact_common, "EXACT_TILE_PIXELS", 32)
    monkeypatch.setattr(exact_common, "EXACT_HALO_PIXELS", 32)
    with pytest.raises(LcodecError, match="halo"):
        api.decode_array(v2_files["exact"])


def test_a_file_asking_for_exact_synthesis_from_a_v1_model_is_refused(crop_rgb) -> None:
    from lcodec import api, container
    from lcodec.container import Synthesis
    from lcodec.errors import LicError

    lic = container.unpack(api.encode(crop_rgb, knob=0.0, model="lite-mse-fcf1326f70791116",
                                      verify=False))
    data = container.pack(replace(lic, header=replace(lic.header,
                                                      synthesis=Synthesis.EXACT_INT_V1)))
    with pytest.raises(LicError, match="exact synthesis"):
        api.decode_array(data)


def test_refinement_blocks_decode_like_the_float_decoder_and_keep_the_reach() -> None:
    """A ``cwic2`` net with refinement blocks: the exact decoder follows the float one, and a
    window's pixels more than ``reach_codes`` positions inside its edge equal the whole
    image's (what tiled decoding relies on)."""
    from lcodec.color import ycbcr_to_rgb
    from lcodec.config import NetConfig
    from lcodec.nets.codes import Encoded
    from lcodec.nets.cwic2 import CWIC2
    from lcodec.quant import code_mask
    from lcodec.synthesis.exact_int_v1 import ExactIntV1
    from lcodec.synthesis.float_synthesis import to_uint8

    torch.manual_seed(0)
    cfg = NetConfig(widths=(16, 16, 16), chroma_widths=(8, 8, 8), n_luma=8, n_chroma=4,
                    levels=16, imp_levels=16, dense_growth=0, stride=16, base_level=2,
                    rate_anchors=6, lam_range=(0.00015, 0.07), refine=2)
    net = CWIC2(cfg).eval()
    with torch.no_grad():
        for block in net.luma_dec.refine:
            block.b.weight.normal_(0.0, 0.1)
            block.b.bias.normal_(0.0, 0.1)
    exact = ExactIntV1(net)
    h, w = 9, 10
    qi = torch.randint(2, 16, (1, 1, h, w))
    luma = torch.randint(0, 16, (1, 8, h, w)) * code_mask(qi, 8, 16)
    chroma = torch.randint(0, 16, (1, 4, h, w)) * code_mask(qi, 4, 16)
    whole = exact.pixels(qi, luma, chroma, 0.25).astype(int)
    floats = to_uint8(ycbcr_to_rgb(net.decompress(Encoded(qi, luma, chroma, 0.25)))).astype(int)
    assert np.abs(whole - floats).max() <= 2 and np.mean(whole != floats) < 0.05
    r = exact.reach_codes
    part = exact.pixels(qi[..., :7], luma[..., :7], chroma[..., :7], 0.25)
    assert np.array_equal(part[:, : 16 * (7 - r)], whole[:, : 16 * (7 - r)])
    blocks = replace(cfg, refine=5)
    with pytest.raises(ValueError, match="reach"):
        ExactIntV1(CWIC2(blocks))
