"""Claims about colour conversion and padding (src/lcodec/color.py)."""

from __future__ import annotations

import pytest
import torch

from lcodec.color import pad_to_multiple, rgb_to_ycbcr, ycbcr_to_rgb


def _pixel(r: float, g: float, b: float) -> torch.Tensor:
    return torch.tensor([r, g, b], dtype=torch.float32).view(1, 3, 1, 1)


def test_ycbcr_round_trip_is_exact_to_float_precision() -> None:
    gen = torch.Generator().manual_seed(0)
    rgb = torch.rand(2, 3, 17, 23, generator=gen)
    back = ycbcr_to_rgb(rgb_to_ycbcr(rgb))
    assert back.shape == rgb.shape
    assert (back - rgb).abs().max().item() < 1e-5


def test_rgb_round_trip_through_ycbcr_inverse_is_exact_to_float_precision() -> None:
    gen = torch.Generator().manual_seed(1)
    # YCbCr values reachable from RGB in [0, 1].
    ycc = rgb_to_ycbcr(torch.rand(1, 3, 9, 5, generator=gen))
    assert (rgb_to_ycbcr(ycbcr_to_rgb(ycc)) - ycc).abs().max().item() < 1e-5


def test_ycbcr_is_not_the_identity() -> None:
    rgb = _pixel(1.0, 0.0, 0.0)
    assert (rgb_to_ycbcr(rgb) - rgb).abs().max().item() > 0.1


@pytest.mark.parametrize(
    ("rgb", "ycc"),
    [
        ((1.0, 1.0, 1.0), (1.0, 0.5, 0.5)),
        ((0.0, 0.0, 0.0), (0.0, 0.5, 0.5)),
        ((1.0, 0.0, 0.0), (0.299, 0.5 - 0.168735892, 1.0)),
        ((0.0, 1.0, 0.0), (0.587, 0.5 - 0.331264108, 0.5 - 0.418687589)),
        ((0.0, 0.0, 1.0), (0.114, 1.0, 0.5 - 0.081312411)),
    ],
    ids=["white", "black", "red", "green", "blue"],
)
def test_ycbcr_matches_bt601_full_range_reference_values(
    rgb: tuple[float, float, float], ycc: tuple[float, float, float]
) -> None:
    out = rgb_to_ycbcr(_pixel(*rgb)).flatten()
    expected = torch.tensor(ycc, dtype=torch.float32)
    assert torch.allclose(out, expected, atol=1e-6, rtol=0), (out, expected)


def test_ycbcr_keeps_dtype_and_acts_per_pixel() -> None:
    gen = torch.Generator().manual_seed(2)
    rgb = torch.rand(3, 3, 4, 6, generator=gen, dtype=torch.float64)
    ycc = rgb_to_ycbcr(rgb)
    assert ycc.dtype == torch.float64
    single = rgb_to_ycbcr(rgb[1:2, :, 2:3, 5:6])
    assert torch.allclose(ycc[1:2, :, 2:3, 5:6], single, atol=1e-12, rtol=0)


@pytest.mark.parametrize(("h", "w"), [(1, 1), (7, 9), (8, 13), (15, 8), (17, 31)])
def test_pad_to_multiple_gives_multiples_of_8(h: int, w: int) -> None:
    x = torch.rand(1, 3, h, w)
    out = pad_to_multiple(x, 8)
    oh, ow = out.shape[-2:]
    assert oh % 8 == 0 and ow % 8 == 0
    assert h <= oh < h + 8 and w <= ow < w + 8
    assert out.shape[:2] == x.shape[:2]


def test_pad_to_multiple_keeps_input_and_replicates_last_row_and_column_exactly() -> None:
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(2, 3, 13, 10, generator=gen)
    out = pad_to_multiple(x, 8)
    assert out.shape == (2, 3, 16, 16)
    assert torch.equal(out[..., :13, :10], x)
    # Padded rows repeat the last row (including its padded columns).
    for r in range(13, 16):
        assert torch.equal(out[..., r, :], out[..., 12, :])
    # Padded columns repeat the last column.
    for c in range(10, 16):
        assert torch.equal(out[..., :13, c], x[..., :, 9])
    # The bottom-right corner is the last pixel.
    assert torch.equal(out[..., 13:, 10:], x[..., 12:13, 9:10].expand(2, 3, 3, 6))


def test_pad_to_multiple_is_a_no_op_on_aligned_input() -> None:
    gen = torch.Generator().manual_seed(4)
    x = torch.rand(1, 3, 16, 24, generator=gen)
    out = pad_to_multiple(x, 8)
    assert out.shape == x.shape
    assert torch.equal(out, x)
