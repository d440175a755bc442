"""The correction layer (format 1.3): its coding, its integer decoder, and what the encoder
does with it (flat colours, targets above the networks' largest file)."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from lcodec import api, codec, container, correction, encoder
from lcodec.container import SectionType
from lcodec.correction import Correction
from lcodec.effort import MAX_EFFORT, effort
from lcodec.encoder import correction_choice
from lcodec.encoder.correction_choice import fit
from lcodec.encoder.draft import Draft
from lcodec.entropy.coder import PRECISION
from lcodec.errors import LicError


def with_fix(data: bytes, fix: Correction) -> bytes:
    """``data`` (a file) with ``fix`` as its CORRECTION section."""
    return container.pack(correction_choice.with_fix(Draft(container.unpack(data)), fix).lic)


def _pair(h: int = 37, w: int = 53, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    src = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    noise = rng.integers(-9, 10, src.shape) + np.array([3, -2, 5])  # a cast and noise
    return src, np.clip(src.astype(int) + noise, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("log2_block", [0, 1, 3, 8])
@pytest.mark.parametrize("gray", [False, True])
def test_a_field_round_trips_through_its_section(log2_block, gray) -> None:
    src, dec = _pair()
    fix = fit(src, dec, log2_block, 2, 4, gray)
    back = correction.unpack(correction.pack(fix), 53, 37, fix.planes)
    assert back == Correction(log2_block, 2, 4, back.values)
    assert np.array_equal(back.values, fix.values)


def test_a_pixel_field_of_one_level_steps_restores_the_source() -> None:
    src, dec = _pair()
    fixed = correction.apply(dec.copy(), fit(src, dec, 0, 4, 4))
    assert np.abs(fixed.astype(int) - src).max() <= 1  # YCoCg's half levels round
    assert np.abs(fixed.astype(int) - src).mean() < 0.5 < np.abs(dec.astype(int) - src).mean()


def test_a_coarse_field_removes_a_colour_cast() -> None:
    src, dec = _pair(64, 96)
    fixed = correction.apply(dec.copy(), fit(src, dec, 4, 2, 4))
    cast = lambda a: (src.astype(float) - a).reshape(-1, 3).mean(0)  # noqa: E731
    assert np.abs(cast(dec)).max() > 2 and np.abs(cast(fixed)).max() < 0.5


def test_a_constant_plane_costs_its_parameters_alone() -> None:
    fix = Correction(4, 4, 8, np.full((3, 4, 3), 7, np.int32))
    assert len(correction.pack(fix)) == 4 + 3 * 7
    assert np.array_equal(correction.unpack(correction.pack(fix), 64, 48, 3).values,
                          fix.values)


@pytest.mark.parametrize("shape", [0, 1, 17, 255])
def test_geometric_tables_are_integer_rows_that_sum_to_the_precision(shape) -> None:
    f = correction.geometric_frequencies(-40, 300, 3, shape)
    assert f.dtype == np.int64 and f.sum() == 1 << PRECISION and f.min() >= 1
    assert f.argmax() == 43


def test_the_decoder_is_integer_arithmetic_with_known_values() -> None:
    # one luma value of 8 quarter levels (2 levels) over a 2×2 block: +2 on every channel
    fix = Correction(1, 8, 8, np.array([[[1, 0, 0]]], np.int32))
    out = correction.apply(np.full((2, 2, 3), 100, np.uint8), fix)
    assert (out == 102).all()
    # Co = +1 step of 8 quarter levels (R − B = 2): R + 1, B − 1
    fix = Correction(0, 8, 8, np.array([[[0, 1, 0]]], np.int32))
    assert correction.apply(np.full((1, 1, 3), 100, np.uint8), fix)[0, 0].tolist() == \
        [101, 100, 99]
    # clamped at both ends
    fix = Correction(0, 255, 255, np.array([[[50, 0, 0]], [[-50, 0, 0]]], np.int32))
    out = correction.apply(np.full((2, 1, 3), 128, np.uint8), fix)
    assert (out[0] == 255).all() and (out[1] == 0).all()


def _payload() -> bytes:
    src, dec = _pair()
    return correction.pack(fit(src, dec, 2, 4, 8))


@pytest.mark.parametrize("case, message", [
    (lambda p: p[:3], "bytes"),
    (lambda p: bytes([9]) + p[1:], "block"),
    (lambda p: p[:1] + b"\x00" + p[2:], "step of zero"),
    (lambda p: p[:3] + b"\x01" + p[4:], "planes"),
    (lambda p: p[:10], "truncated plane"),
    (lambda p: p[:4] + struct.pack("<hhhB", 5, -5, 0, 1) + p[11:], "symbols"),
    (lambda p: p + b"\x00\x00\x00\x01", "beyond its coded symbols"),
    (lambda p: p[:-4], "corrupted entropy-coded"),
])
def test_malformed_correction_sections_are_refused_in_one_sentence(case, message) -> None:
    with pytest.raises(LicError, match=message):
        correction.unpack(case(_payload()), 53, 37, 3)


def _flat(colour: tuple[int, int, int], size: int = 64) -> np.ndarray:
    rgb = np.empty((size, size, 3), np.uint8)
    rgb[:] = colour
    return rgb


def test_a_correction_section_in_a_format_1_2_file_is_refused() -> None:
    plain = api.encode(_flat((250, 250, 250)), knob=0.0, correction=False)
    fix = Correction(4, 4, 8, np.full((4, 4, 3), 1, np.int32))
    data = bytearray(with_fix(plain, fix))
    assert codec.file_correction(container.unpack(bytes(data))) == fix
    data[5] = 2
    body = container._HEADER_BODY.size
    data[body:body + 4] = struct.pack("<I", __import__("zlib").crc32(bytes(data[:body])))
    with pytest.raises(LicError, match="needs format 1.3"):
        container.unpack(bytes(data))


def test_the_encoder_corrects_a_flat_colour_and_can_be_told_not_to() -> None:
    from lcodec.evaluate.quality import delta_e00

    rgb = _flat((10, 200, 30), 128)
    plain = api.encode(rgb, bpp=0.25, correction=False)
    fixed = api.encode(rgb, bpp=0.25)
    assert SectionType.CORRECTION not in container.unpack(plain).sections
    assert SectionType.CORRECTION in container.unpack(fixed).sections
    assert len(fixed) <= 0.25 * 128 * 128 / 8
    assert delta_e00(rgb, api.decode_array(fixed)) < delta_e00(rgb, api.decode_array(plain))


def test_a_target_above_the_largest_network_file_is_filled(crop_rgb) -> None:
    top = api.encode(crop_rgb, knob=1.0, correction=False)
    budget = int(len(top) * 1.25)
    res = api.encode_with_stats(crop_rgb, size=budget)
    # from the top knob, or a lower one whose correction fills more of the budget better
    lowest = 1.0 - effort(MAX_EFFORT).fill_tries * correction_choice.FILL_KNOB_STEP
    assert 0.97 * budget <= len(res.data) <= budget and res.knob >= lowest - 1e-9
    assert not res.notices
    lic = container.unpack(res.data)
    assert SectionType.CORRECTION in lic.sections
    err = lambda d: np.mean((api.decode_array(d).astype(float) - crop_rgb) ** 2)  # noqa: E731
    assert err(res.data) < err(top)
    # what the decoder adds is what the encoder measured: the same field, decoded again
    assert codec.file_correction(lic) is not None


@pytest.mark.parametrize("gray", [False, True])
def test_the_encoder_fits_the_field_to_the_pixels_the_decoder_computes(crop_rgb, gray) -> None:
    from PIL import Image

    from lcodec import models

    image = Image.fromarray(crop_rgb).convert("L") if gray else crop_rgb
    analysis = encoder.analyse(models.load(models.find(None), "cpu"), api.as_source(image),
                             "auto", "auto")
    assert analysis.source.gray == gray
    for knob in (-0.5, 0.4):
        decoded = codec.decode(analysis.model, container.unpack(analysis.encode(knob)))
        assert np.array_equal(analysis.decoded_pixels(knob), decoded.pixels)
