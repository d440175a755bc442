"""Encoder effort levels 1…9: every level writes a file the same decoder reads, within the
byte budget; effort 1 codes the networks alone; bad levels are one clear error."""

from __future__ import annotations

import math

import pytest
from click.testing import CliRunner

from lcodec import api, container, encoder, models
from lcodec.cli import cli
from lcodec.container import SectionType
from lcodec.effort import DEFAULT_EFFORT, EFFORTS, MAX_EFFORT, MIN_EFFORT, effort, lambda_slope
from lcodec.errors import LcodecError
from lcodec.settings import EncodeSettings


def test_every_level_has_a_plan_and_the_default_is_one_of_them() -> None:
    assert sorted(EFFORTS) == list(range(MIN_EFFORT, MAX_EFFORT + 1))
    assert all(effort(level).level == level for level in EFFORTS)
    assert EncodeSettings().effort == DEFAULT_EFFORT
    assert not effort(1).correction and all(effort(n).correction for n in range(2, 10))


@pytest.mark.parametrize("bad", [0, 10, -1, 2.5, True, "4"])
def test_a_bad_effort_is_refused(bad) -> None:
    with pytest.raises(LcodecError, match="effort must be an integer from 1 to 9"):
        EncodeSettings.of(effort=bad)


def test_the_cli_refuses_an_effort_out_of_range(tmp_path, crop_path) -> None:
    res = CliRunner().invoke(cli, ["encode", str(crop_path), str(tmp_path / "x.lic"),
                                   "--effort", "10"])
    assert res.exit_code == 2 and "1<=x<=9" in res.output
    assert not (tmp_path / "x.lic").exists()


@pytest.mark.parametrize("level", range(MIN_EFFORT, MAX_EFFORT + 1))
def test_every_effort_fits_its_budget_and_decodes(crop_rgb, level) -> None:
    pixels = crop_rgb.shape[0] * crop_rgb.shape[1]
    res = api.encode_with_stats(crop_rgb, bpp=0.5, effort=level, measure_psnr=True)
    assert res.bpp <= 0.5 and len(res.data) >= 0.9 * 0.5 * pixels / 8
    if level == 1:
        assert SectionType.CORRECTION not in container.unpack(res.data).sections
    decoded = api.decode_array(res.data)
    assert decoded.shape == crop_rgb.shape
    assert math.isfinite(res.psnr) and res.psnr > 20


def test_a_fixed_knob_gives_the_networks_file_at_effort_one(crop_rgb) -> None:
    plain = api.encode(crop_rgb, knob=0.2, correction=False)
    assert api.encode(crop_rgb, knob=0.2, effort=1) == plain
    assert api.encode(crop_rgb, knob=0.2, effort=1, correction=True) == plain


def test_the_lambda_slope_falls_as_the_knob_rises() -> None:
    lam_range = models.load(models.find("v2-mse")).config.lam_range
    slopes = [lambda_slope(lam_range, k) for k in (-1.0, -0.5, 0.0, 0.5, 1.0)]
    assert all(s > 0 for s in slopes)
    assert slopes == sorted(slopes, reverse=True)
    # at knob -1 the model trained on λ = lam_range[0]: 24/λ squared levels per byte, scaled
    assert slopes[0] == pytest.approx(1.6 * math.exp(-0.55) * 24 / lam_range[0])


def test_an_analysis_codes_each_knob_once(crop_rgb) -> None:
    analysis = encoder.analyse(models.load(models.find("v2-mse")), api.as_source(crop_rgb))
    first = analysis.draft(0.1234)
    assert analysis.draft(0.123) is first  # the stored thousandths are the key
    assert analysis.draft_static(0.123) is not first
    assert len(analysis.draft_static(0.123)) != 0
