"""Claims about the synthesis registry (src/lcodec/synthesis/): every id a file can name has
its synthesiser, new files name the one the model card and the request choose, and a model
builds each integer decoder once."""

from __future__ import annotations

import threading

import pytest

from lcodec import models, synthesis
from lcodec.container import Synthesis
from lcodec.errors import LcodecError, LicError


@pytest.fixture(scope="module")
def v2() -> models.LoadedModel:
    return models.load(models.find("v2-mse"))


@pytest.fixture(scope="module")
def v1() -> models.LoadedModel:
    return models.load(models.find("lite-mse-fcf1326f70791116"))  # retired: named by its file stem


def test_every_synthesis_a_file_can_name_is_registered() -> None:
    for sid in Synthesis:
        assert synthesis.synthesis_for(sid) is synthesis.synthesis_for(sid)
    with pytest.raises(LicError, match="synthesis 7 is not supported"):
        synthesis.synthesis_for(7)  # type: ignore[arg-type]


def test_new_files_name_the_synthesis_the_card_and_the_request_choose(v2, v1) -> None:
    assert v2.info.card["synthesis"]["exact"] == "exact_int_v2"
    assert synthesis.for_encoding(v2, "auto") == Synthesis.EXACT_INT_V2
    assert synthesis.for_encoding(v2, "exact") == Synthesis.EXACT_INT_V2
    assert synthesis.for_encoding(v2, "float") == Synthesis.FLOAT
    assert synthesis.for_encoding(v1, "auto") == Synthesis.FLOAT
    with pytest.raises(LcodecError, match="no exact synthesis"):
        synthesis.for_encoding(v1, "exact")
    with pytest.raises(LcodecError, match="use auto, exact or float"):
        synthesis.for_encoding(v2, "fast")


def test_grids_travel_only_with_the_synthesis_that_has_them(v2) -> None:
    sizes = {sid: synthesis.synthesis_for(sid).grids_size(v2) for sid in Synthesis}
    assert sizes == {Synthesis.FLOAT: 0, Synthesis.EXACT_INT_V1: 0,
                     Synthesis.EXACT_INT_V2: 12 + 9 + v2.config.refine}


def test_a_model_without_the_exact_syntheses_refuses_their_files(v1) -> None:
    for sid in (Synthesis.EXACT_INT_V1, Synthesis.EXACT_INT_V2):
        with pytest.raises(LicError, match="exact synthesis, which model lite-mse"):
            synthesis.synthesis_for(sid).check(v1, b"")
    assert synthesis.synthesis_for(Synthesis.FLOAT).check(v1, b"") is None


def test_exact_windows_keep_a_halo_of_at_least_the_reach(v2) -> None:
    s = v2.config.stride
    for sid in (Synthesis.EXACT_INT_V1, Synthesis.EXACT_INT_V2):
        tile, halo = synthesis.synthesis_for(sid).window(s)
        assert tile * s == 512 and halo * s == 48


def test_a_model_builds_a_derived_value_once_however_many_threads_ask(v1) -> None:
    built = []
    barrier = threading.Barrier(4)

    def build() -> object:
        built.append(1)
        return object()

    def ask(out: list) -> None:
        barrier.wait()
        out.append(v1.cached("test-derived", build))

    got: list = []
    threads = [threading.Thread(target=ask, args=(got,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1 and len({id(g) for g in got}) == 1
