"""Large images run the networks in windows with a halo: same codes, no seams."""

from __future__ import annotations

import numpy as np
import pytest

from lcodec import codec, container, encoder, models
from lcodec.imageio import SourceImage


@pytest.fixture(scope="module")
def model() -> models.LoadedModel:
    return models.load(models.find(), "cpu")


def test_windows_cover_the_axis_exactly_once() -> None:
    for n, tile, halo in ((1, 4, 2), (10, 4, 2), (16, 4, 16), (129, 128, 16)):
        cores = [(a, b) for a, b, _, _ in codec.windows(n, tile, halo)]
        assert cores[0][0] == 0 and cores[-1][1] == n
        assert all(b == c for (_, b), (c, _) in zip(cores, cores[1:], strict=False))
        for a, b, wa, wb in codec.windows(n, tile, halo):
            assert 0 <= wa <= a < b <= wb <= n


def test_tiled_coding_matches_whole_image_coding(model, crop_rgb, monkeypatch) -> None:
    src = SourceImage(crop_rgb)  # 128×96 pixels = 16×12 codes
    whole = encoder.analyse(model, src)
    data_whole = whole.encode(0.1)
    monkeypatch.setattr(codec, "TILE_PIXELS", 5 * model.config.stride)
    monkeypatch.setattr(codec, "HALO_PIXELS", 128)
    tiled = encoder.analyse(model, src)
    assert float((tiled.e_y - whole.e_y).abs().max()) < 1e-4
    assert float((tiled.p - whole.p).abs().max()) < 1e-4
    lic = container.unpack(data_whole)
    px_tiled = codec.decode(model, lic).pixels
    monkeypatch.setattr(codec, "TILE_PIXELS", 1024)
    px_whole = codec.decode(model, lic).pixels
    assert np.abs(px_tiled.astype(int) - px_whole.astype(int)).max() <= 1
