"""Rate control on synthetic encoders: the size you ask for is the size you get."""

from __future__ import annotations

import math

import pytest

from lcodec.errors import LcodecError
from lcodec.ratecontrol import (
    fit_budget,
    fit_budget_two_stage,
    fit_quality,
    quality_to_knob,
)


def fake(scale: float, calls: list | None = None):
    """A monotone 'encoder': size grows smoothly with the knob."""

    def encode(knob: float) -> bytes:
        if calls is not None:
            calls.append(knob)
        return bytes(int(scale * 1000 * math.exp(2 * knob)))

    return encode


@pytest.mark.parametrize("budget", [200, 700, 1000, 5000])
def test_fit_budget_is_the_largest_file_not_above_the_budget(budget) -> None:
    res = fit_budget(fake(1.0), budget)
    assert len(res.data) <= budget
    assert len(fake(1.0)(round(res.knob + 0.002, 3))) > budget or res.knob == 1.0


def test_fit_budget_names_the_smallest_size_when_out_of_range() -> None:
    with pytest.raises(LcodecError, match="smallest file"):
        fit_budget(fake(1.0), 10)


def test_budget_above_the_range_gives_the_largest_file() -> None:
    assert fit_budget(fake(1.0), 10**6).knob == 1.0


def dipping(scale: float):
    """Sizes grow with the knob up to 0.9, then shrink a little: a flat image near knob +1,
    where the higher knob gives the better picture in a smaller file."""

    def encode(knob: float) -> bytes:
        return bytes(int(scale * (1000 + 400 * min(knob, 0.9) - 300 * max(knob - 0.9, 0))))

    return encode


def test_where_the_size_dips_the_highest_fitting_knob_wins_over_the_largest_file() -> None:
    final = dipping(1.0)
    assert len(final(0.94)) > len(final(1.0))

    def fast(knob: float) -> bytes:  # the static tables: monotone, 4× the final size
        return bytes(int(4 * (1000 + 400 * knob)))

    # The fast coder first lands near 0.94 (its file at +1 is above the budget), then, its
    # budget retargeted by the final/fast ratio, at +1, whose final file is smaller.
    res = fit_budget_two_stage(fast, final, 5500)
    assert res.knob == 1.0 and res.data == final(1.0)


@pytest.mark.parametrize("budget", [300, 800, 2000, 5000])
def test_two_stage_uses_few_slow_encodes_and_lands_close_below(budget) -> None:
    calls: list = []
    res = fit_budget_two_stage(fake(1.0), fake(0.77, calls), budget)
    assert len(res.data) <= budget
    assert len(res.data) >= 0.97 * budget
    assert len(calls) <= 4


def test_two_stage_reports_an_unreachable_budget() -> None:
    with pytest.raises(LcodecError, match="smallest file"):
        fit_budget_two_stage(fake(1.0), fake(0.8), 5)


def test_fit_quality_gives_the_smallest_file_reaching_the_target() -> None:
    res = fit_quality(fake(1.0), lambda d: len(d) / 100, target=12.0)
    assert len(res.data) / 100 >= 12.0
    assert len(fake(1.0)(round(res.knob - 0.002, 3))) / 100 < 12.0
    with pytest.raises(LcodecError, match="reaches at most"):
        fit_quality(fake(1.0), lambda d: len(d) / 100, target=1e6)


def test_quality_maps_linearly_onto_the_knob() -> None:
    assert quality_to_knob(0) == -1.0 and quality_to_knob(50) == 0.0
    assert quality_to_knob(100) == 1.0
    with pytest.raises(LcodecError):
        quality_to_knob(-1)


@pytest.mark.parametrize("budget", [400, 900, 2500, 9000])
def test_two_stage_lands_close_even_when_the_size_ratio_drifts(budget) -> None:
    """The TCAE/static size ratio grows with the knob; the final bisection still gets close."""

    def slow(knob: float) -> bytes:
        return bytes(int(900 * math.exp(3.2 * knob)))

    res = fit_budget_two_stage(fake(1.0), slow, budget)
    assert 0.97 * budget <= len(res.data) <= budget


def test_a_budget_below_one_models_range_falls_to_the_next_and_below_all_names_the_least():
    from lcodec.ratecontrol import BelowRange, first_that_fits

    def below(smallest: int):
        def attempt():
            raise BelowRange(100, smallest)
        return attempt

    assert first_that_fits([("a", below(300)), ("b", lambda: "fits")], 100) == "fits"
    with pytest.raises(LcodecError, match=r"smallest file any shipped model makes \(120 bytes, "
                                          r"with b\)"):
        first_that_fits([("a", below(300)), ("b", below(120))], 100)
    with pytest.raises(BelowRange):  # one model: its own error
        first_that_fits([("a", below(300))], 100)
