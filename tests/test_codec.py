"""End-to-end coding with the shipped default model on CPU: real files, real entropy coding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lcodec import api, codec, container, encoder, models
from lcodec.effort import MAX_EFFORT, effort
from lcodec.encoder.correction_choice import FILL_KNOB_STEP
from lcodec.errors import LcodecError
from lcodec.imageio import SourceImage
from lcodec.metrics import psnr

# The v1 models are retired (they decode their files, never chosen to encode); the tests that
# need a second, small network name them by file stem, as find() allows.
V1 = {"lite-mse": "lite-mse-fcf1326f70791116", "mse": "mse-2bd822d6caf9533f"}
LITE = V1["lite-mse"]


@pytest.fixture(scope="module")
def model() -> models.LoadedModel:
    return models.load(models.find(), "cpu")


def test_round_trip_of_a_kodak_crop_has_the_right_size_and_a_sane_psnr(crop_rgb) -> None:
    data = api.encode(crop_rgb, knob=0.2)
    back = api.decode_array(data)
    assert back.shape == crop_rgb.shape and back.dtype == np.uint8
    assert psnr(crop_rgb, back) > 22.0
    bpp = len(data) * 8 / (crop_rgb.shape[0] * crop_rgb.shape[1])
    assert 0.05 < bpp < 3.0


def test_odd_sizes_are_padded_and_cropped_exactly(odd_path) -> None:
    data = api.encode(odd_path, knob=0.3)
    img = api.decode(data)
    assert img.size == (77, 45) and img.mode == "RGB"
    hdr = container.unpack(data).header
    assert (hdr.width, hdr.height) == (77, 45)


def test_tiny_images_down_to_one_pixel_round_trip() -> None:
    for shape in ((1, 1, 3), (1, 9, 3), (13, 2, 3)):
        rgb = np.full(shape, 128, dtype=np.uint8)
        back = api.decode_array(api.encode(rgb))
        assert back.shape == shape


def test_decoding_gives_exactly_the_symbols_the_encoder_chose(model, crop_rgb) -> None:
    analysis = encoder.analyse(model, SourceImage(crop_rgb))
    for knob in (-0.3, 0.0, 0.3):
        data = analysis.encode(knob)
        sent = analysis.codes(round(knob, 3))
        got = codec.decode_codes(model, container.unpack(data))
        for a, b in ((sent.qi, got.qi), (sent.luma, got.luma), (sent.chroma, got.chroma)):
            assert np.array_equal(a.cpu().numpy(), b.cpu().numpy())


def test_encoding_and_decoding_are_deterministic(crop_rgb) -> None:
    a, b = api.encode(crop_rgb, knob=0.1), api.encode(crop_rgb, knob=0.1)
    assert a == b
    assert np.array_equal(api.decode_array(a), api.decode_array(a))


def test_file_size_grows_with_the_rate_knob(model, crop_rgb) -> None:
    analysis = encoder.analyse(model, SourceImage(crop_rgb))
    sizes = [len(analysis.encode(k)) for k in (-0.5, -0.2, 0.1, 0.4, 0.8)]
    assert sizes == sorted(sizes) and sizes[0] < sizes[-1]


@pytest.mark.parametrize("target", [0.3, 0.6, 1.0])
def test_bpp_target_gives_the_largest_file_not_above_it(model, crop_rgb, target) -> None:
    pixels = crop_rgb.shape[0] * crop_rgb.shape[1]
    ceiling = len(encoder.analyse(model, SourceImage(crop_rgb)).encode(codec.KNOB_MAX)) * 8 / pixels
    res = api.encode_with_stats(crop_rgb, bpp=target)
    assert res.bpp <= target
    if ceiling <= target:  # above the networks' range: a file at or near their top knob
        # (the correction layer fills the rest, from there or a few steps lower)
        assert res.knob >= codec.KNOB_MAX - effort(MAX_EFFORT).fill_tries * FILL_KNOB_STEP - 1e-9
    else:
        assert res.bpp >= 0.9 * target, f"{res.bpp} far below {target} (knob {res.knob})"


def test_an_unreachable_target_names_the_smallest_size(crop_rgb) -> None:
    with pytest.raises(LcodecError, match="smallest file"):
        api.encode(crop_rgb, size=20)


def test_a_file_from_a_missing_model_names_the_model(crop_rgb) -> None:
    lic = container.unpack(api.encode(crop_rgb))
    hdr = lic.header
    other = container.Header(hdr.width, hdr.height, hdr.colour_mode, hdr.bit_depth,
                             b"\x01" * 8, hdr.rate_knob, hdr.entropy_method)
    with pytest.raises(LcodecError, match="0101010101010101"):
        api.decode(container.pack(container.LicFile(other, lic.sections)))


def test_a_file_naming_a_missing_entropy_model_names_it(crop_rgb) -> None:
    lic = container.unpack(api.encode(crop_rgb))
    hdr = lic.header
    tcae = container.Header(hdr.width, hdr.height, hdr.colour_mode, hdr.bit_depth,
                            hdr.model_id, hdr.rate_knob, container.EntropyMethod.INCLINED_TCAE_V1,
                            b"\x02" * 8)
    with pytest.raises(LcodecError, match="entropy model 0202020202020202"):
        api.decode(container.pack(container.LicFile(tcae, lic.sections)))


def test_both_entropy_methods_round_trip_the_same_symbols(crop_rgb) -> None:
    model = models.load(models.find(LITE))  # a model with an installed TCAE
    analysis = encoder.analyse(model, SourceImage(crop_rgb), "tcae")
    files = {"tcae": analysis.encode(0.1), "static": analysis.encode_static(0.1)}
    methods = {k: container.unpack(v).header.entropy_method.name for k, v in files.items()}
    assert methods == {"tcae": "INCLINED_TCAE_V1", "static": "STATIC_CONTEXT_V1"}
    a, b = (codec.decode_codes(model, container.unpack(f)) for f in files.values())
    for x, y in ((a.qi, b.qi), (a.luma, b.luma), (a.chroma, b.chroma)):
        assert np.array_equal(x.cpu().numpy(), y.cpu().numpy())


def test_bad_api_arguments_raise_lcodec_errors(crop_rgb) -> None:
    with pytest.raises(LcodecError):
        api.encode(crop_rgb, bpp=0.2, knob=0.1)
    with pytest.raises(LcodecError):
        api.encode(crop_rgb, knob=3.0)
    with pytest.raises(LcodecError):
        api.encode(crop_rgb, bpp=-1.0)
    with pytest.raises(LcodecError):
        api.encode(crop_rgb[..., :2].copy())
    with pytest.raises(LcodecError, match="unknown model"):
        api.encode(crop_rgb, model="no-such-model")


def test_psnr_target_gives_a_file_reaching_it_and_no_bigger_than_needed(crop_rgb) -> None:
    ref = api.decode_array(api.encode(crop_rgb, knob=0.0))
    target = psnr(crop_rgb, ref) - 0.2
    res = api.encode_with_stats(crop_rgb, psnr=target)
    assert psnr(crop_rgb, api.decode_array(res.data)) >= target
    assert len(res.data) <= len(api.encode(crop_rgb, knob=0.0))


def test_an_unreachable_psnr_names_the_best_quality(crop_rgb) -> None:
    with pytest.raises(LcodecError, match="reaches at most"):
        api.encode(crop_rgb, psnr=99.0)


def test_quality_maps_onto_the_knob(crop_rgb) -> None:
    assert api.encode(crop_rgb, quality=75) == api.encode(crop_rgb, knob=0.5)
    with pytest.raises(LcodecError, match="quality"):
        api.encode(crop_rgb, quality=101)


@pytest.mark.parametrize("recorded", [None, "static", "tcae"])
def test_auto_entropy_follows_the_method_recorded_in_the_model_card(
        tmp_path, monkeypatch, crop_rgb, recorded) -> None:
    import json
    import shutil

    src = models.find(LITE)
    tcae = models.find_entropy(prefix="lite-mse-tcae")
    (tmp_path / "entropy").mkdir()
    shutil.copy(src.path, tmp_path / src.path.name)
    shutil.copy(tcae, tmp_path / "entropy" / tcae.name)
    card = json.loads(src.path.with_suffix(".json").read_text())
    card["entropy"].pop("auto", None)
    if recorded:
        card["entropy"]["auto"] = recorded
    (tmp_path / src.path.with_suffix(".json").name).write_text(json.dumps(card))
    monkeypatch.setenv("LCODEC_MODELS", str(tmp_path))
    data = api.encode(crop_rgb, model=LITE)
    want = (container.EntropyMethod.INCLINED_TCAE_V1 if recorded == "tcae"
            else container.EntropyMethod.STATIC_CONTEXT_V1)
    assert container.unpack(data).header.entropy_method == want


def _models_with_curves(folder, monkeypatch, curves: dict[str, list[tuple[float, float]]]):
    """Copy the shipped models into ``folder`` with Kodak curves (bpp, PSNR) in their cards,
    as models that encode (the retired v1 models stand in for two current ones); the first
    one is the default."""
    import json
    import shutil

    monkeypatch.setattr(models, "DEFAULT_MODEL", next(iter(curves)))

    for name, points in curves.items():
        src = models.find(V1.get(name, name))
        shutil.copy(src.path, folder / src.path.name)
        card = json.loads(src.path.with_suffix(".json").read_text())
        card["kodak"] = {"points": [{"bpp": b, "psnr": q} for b, q in points]}
        card["entropy"].pop("auto", None)
        card.pop("retired", None)
        (folder / src.path.with_suffix(".json").name).write_text(json.dumps(card))
    monkeypatch.setenv("LCODEC_MODELS", str(folder))


def test_a_bpp_target_goes_to_the_model_measured_best_there(tmp_path, monkeypatch) -> None:
    _models_with_curves(tmp_path, monkeypatch, {
        "lite-mse": [(0.2, 20.0), (0.6, 24.0), (1.0, 24.2)],
        "mse": [(0.15, 14.0), (0.5, 21.0), (1.2, 26.5)],
    })
    assert models.for_bpp(0.3).name == "lite-mse"
    assert models.for_bpp(0.95).name == "mse"
    assert models.for_bpp(1.1).name == "mse"  # only mse is measured there
    assert models.for_bpp(5.0).name == "mse"  # the best quality at the top of its range
    assert models.for_bpp(0.01).name == "lite-mse"  # the best quality at the bottom


def test_a_bpp_target_never_goes_to_a_model_of_another_distortion(tmp_path, monkeypatch
                                                                   ) -> None:
    import json

    _models_with_curves(tmp_path, monkeypatch, {
        "lite-mse": [(0.2, 20.0), (0.6, 24.0), (1.0, 24.2)],
        "mse": [(0.15, 14.0), (0.5, 21.0), (1.2, 26.5)],
    })
    card_path = models.find("mse").path.with_suffix(".json")
    card = json.loads(card_path.read_text())
    card["training"]["distortion"] = "msssim"
    card_path.write_text(json.dumps(card))
    assert models.find("mse").distortion == "msssim"
    assert models.for_bpp(0.95).name == "lite-mse"  # the better PSNR, but trained for MS-SSIM


def test_without_measured_curves_a_target_goes_to_the_default_model(
        tmp_path, monkeypatch) -> None:
    _models_with_curves(tmp_path, monkeypatch, {"lite-mse": [], "mse": []})
    assert models.for_bpp(0.5).name == models.DEFAULT_MODEL


def test_encode_to_a_bpp_writes_the_chosen_model_and_an_explicit_one_wins(
        tmp_path, monkeypatch, crop_rgb) -> None:
    _models_with_curves(tmp_path, monkeypatch, {
        "lite-mse": [(0.1, 20.0), (3.0, 21.0)],
        "mse": [(0.1, 25.0), (3.0, 26.0)],
    })
    res = api.encode_with_stats(crop_rgb, bpp=0.8)
    assert res.model == "mse"
    assert container.unpack(res.data).header.model_id == models.find("mse").model_id
    assert api.encode_with_stats(crop_rgb, bpp=0.8, model="lite-mse").model == "lite-mse"
    assert api.encode_with_stats(crop_rgb, knob=0.0).model == models.DEFAULT_MODEL


def test_a_size_below_the_chosen_models_range_falls_back_to_another_model(
        tmp_path, monkeypatch, crop_rgb) -> None:
    smallest = {}
    for name, stem in V1.items():
        loaded = models.load(models.find(stem))
        smallest[name] = len(encoder.analyse(loaded, SourceImage(crop_rgb)).encode(codec.KNOB_MIN))
    big, small = sorted(smallest, key=smallest.get, reverse=True)
    assert smallest[big] > smallest[small]
    # Cards that make the model with the larger smallest file the first choice everywhere.
    _models_with_curves(tmp_path, monkeypatch, {big: [(0.01, 30.0), (9.0, 40.0)],
                                                small: [(0.01, 10.0), (9.0, 20.0)]})
    res = api.encode_with_stats(crop_rgb, size=smallest[big] - 1)
    assert res.model == small and len(res.data) <= smallest[big] - 1
    with pytest.raises(LcodecError, match=f"any shipped model makes .{smallest[small]} bytes"):
        api.encode_with_stats(crop_rgb, size=smallest[small] - 1)
    with pytest.raises(LcodecError, match="smallest file this model makes"):
        api.encode_with_stats(crop_rgb, size=smallest[big] - 1, model=big)


def test_a_target_above_the_models_range_gives_its_largest_file_and_says_so(crop_rgb) -> None:
    res = api.encode_with_stats(crop_rgb, bpp=20.0, model=LITE, correction=False)
    largest = api.encode(crop_rgb, knob=codec.KNOB_MAX, model=LITE, correction=False)
    assert res.data == largest
    assert any("above the largest file lite-mse makes" in n for n in res.notices)
    # with the correction layer the largest file is bigger (a pixel residual in quarter
    # levels: 19.5 bpp), and 20 bpp is met; 30 is not
    res = api.encode_with_stats(crop_rgb, bpp=20.0, model=LITE)
    assert 0.97 * 20.0 <= res.bpp <= 20.0 and not res.notices
    res = api.encode_with_stats(crop_rgb, bpp=30.0, model=LITE)
    assert len(largest) < len(res.data)
    assert any("above the largest file lite-mse makes" in n for n in res.notices)
    assert not api.encode_with_stats(crop_rgb, bpp=0.5, model=LITE).notices


GOLDEN_FILE = Path(__file__).parent / "golden" / "v1.0-static-rgb-odd.lic"


@pytest.mark.parametrize("kind", ["str", "path", "file", "bytearray", "memoryview"])
def test_decode_accepts_a_path_bytes_or_a_binary_file(kind) -> None:
    import lcodec

    data = GOLDEN_FILE.read_bytes()
    arg = {"str": lambda: str(GOLDEN_FILE), "path": lambda: GOLDEN_FILE,
           "file": lambda: GOLDEN_FILE.open("rb"), "bytearray": lambda: bytearray(data),
           "memoryview": lambda: memoryview(data)}[kind]()
    assert lcodec.decode(arg).tobytes() == lcodec.decode(data).tobytes()


def test_decode_refuses_other_objects_with_an_lcodec_error(tmp_path) -> None:
    import lcodec

    for bad in (12, None, GOLDEN_FILE.open("r", encoding="latin-1"), str(tmp_path / "no.lic"),
                tmp_path):
        with pytest.raises(LcodecError):
            lcodec.decode(bad)


def test_a_retired_model_decodes_its_files_but_is_never_chosen_to_encode(
        tmp_path, monkeypatch, crop_rgb) -> None:
    import json

    _models_with_curves(tmp_path, monkeypatch, {
        "lite-mse": [(0.1, 20.0), (3.0, 21.0)],
        "mse": [(0.1, 25.0), (3.0, 26.0)],
    })
    old = api.encode(crop_rgb, model="mse", knob=0.0)
    info = models.find("mse")
    card = json.loads(info.path.with_suffix(".json").read_text())
    card["retired"] = "superseded in a test"
    info.path.with_suffix(".json").write_text(json.dumps(card))
    assert models.for_bpp(0.8).name == "lite-mse"
    assert api.encode_with_stats(crop_rgb, bpp=0.8).model == "lite-mse"
    with pytest.raises(LcodecError, match="model 'mse' is retired: .* models that encode: "
                                          "lite-mse"):
        models.find("mse")
    assert models.find(info.path.stem) == info  # by its file stem, as old-format tests do
    assert models.find(model_id=info.model_id) == info
    assert api.decode_array(old).shape == crop_rgb.shape


def test_a_card_takes_its_kodak_points_from_an_eval_of_the_model(tmp_path, monkeypatch) -> None:
    import json
    import shutil

    from lcodec.evaluate import rd

    src = models.find()
    shutil.copy(src.path, tmp_path / src.path.name)
    shutil.copy(src.path.with_suffix(".json"), tmp_path / src.path.with_suffix(".json").name)
    monkeypatch.setenv("LCODEC_MODELS", str(tmp_path))
    ev = tmp_path / "ev"
    ev.mkdir()
    (ev / "curves_by_setting.csv").write_text(
        "codec,setting,images,bpp,psnr,psnr_y,ms_ssim,ms_ssim_db,delta_e00,encode_s,decode_s\n"
        "lcodec,0.5,24,0.5,30.0,31.0,0.96,14.0,3.0,0.2,1.0\n"
        "jpeg,50,24,0.9,31.0,32.0,0.97,15.0,2.0,0.01,0.01\n"
        "lcodec,-0.5,24,0.1,24.0,25.0,0.85,8.2,6.0,0.2,1.0\n")
    assert rd.main(["kodak", "--model", src.path.stem, "--from-eval", str(ev)]) == 0
    card = json.loads((tmp_path / src.path.with_suffix(".json").name).read_text())
    assert [(p["knob"], p["bpp"], p["psnr"]) for p in card["kodak"]["points"]] == [
        (-0.5, 0.1, 24.0), (0.5, 0.5, 30.0)]
    assert models.kodak_curve(models.find(src.path.stem)) == [(0.1, 24.0), (0.5, 30.0)]
