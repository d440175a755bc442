"""The encoder builds each file once: candidates are drafts sized from their parts, the
chosen one is packed once and never parsed back."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image

from lcodec import api, container, encoder, models
from lcodec.encoder.analysis import ImageAnalysis


@dataclasses.dataclass
class Packs:
    real: object  # container.pack itself
    calls: list  # every LicFile handed to it


@pytest.fixture()
def packs(monkeypatch) -> Packs:
    """Counts ``container.pack`` calls and refuses ``container.unpack`` while encoding."""
    got = Packs(container.pack, [])

    def counting(lic):
        got.calls.append(lic)
        return got.real(lic)

    def refused(*args, **kwargs):
        raise AssertionError("the encoder parsed a file back")

    monkeypatch.setattr(container, "pack", counting)
    monkeypatch.setattr(container, "unpack", refused)
    return got


@pytest.mark.parametrize("options", [
    {"knob": 0.0}, {"bpp": 0.3}, {"size": 600}, {"psnr": 27.0}, {"bpp": 1.5},
    {"bpp": 0.4, "entropy": "static"}, {"quality": 80, "correction": False},
], ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_an_encode_packs_its_file_exactly_once(packs, crop_rgb, options) -> None:
    data = api.encode(crop_rgb, measure_psnr=True, **options)
    assert len(packs.calls) == 1
    assert packs.real(packs.calls[0]) == data
    assert len(data) == container.packed_size(packs.calls[0])


def test_a_draft_is_the_size_of_its_packed_file(crop_rgb) -> None:
    rgba = Image.fromarray(crop_rgb).convert("RGBA")
    for image, synthesis in ((crop_rgb, "auto"), (crop_rgb, "float"), (rgba, "exact")):
        analysis = encoder.analyse(models.load(models.find("v2-mse")),
                                   api.as_source(image), "auto", synthesis)
        for knob in (-1.0, 0.0, 0.7):
            draft = analysis.draft(knob)
            final = analysis.final(draft)
            assert len(draft) == len(final) == len(container.pack(final.lic))
            assert container.unpack(container.pack(final.lic)).header.synthesis_grids == \
                analysis.grids(knob)


def test_the_analysis_holds_no_switch_set_from_outside() -> None:
    names = {f.name for f in dataclasses.fields(ImageAnalysis)}
    assert names == {"model", "source", "e_y", "e_c", "p", "coder", "synthesis", "_grids",
                     "_drafts"}


def test_a_swept_knob_file_is_the_file_the_encoder_writes(crop_rgb) -> None:
    analysis = encoder.analyse(models.load(models.find("v2-mse")), api.as_source(crop_rgb))
    for knob in (-0.5, 0.4):
        swept = container.pack(encoder.file_at_knob(analysis, knob).lic)
        assert swept == api.encode(crop_rgb, knob=knob)
        assert np.array_equal(api.decode_array(swept), api.decode_array(api.encode(
            crop_rgb, knob=knob)))
