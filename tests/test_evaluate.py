"""lcodec.evaluate: BD-rate, ΔE00, the traditional codecs, `lcodec eval` and the bench."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lcodec.colorimetry import ciede2000
from lcodec.errors import LcodecError
from lcodec.evaluate import baselines
from lcodec.evaluate.bdrate import bd_rate, pchip, pchip_integral, quality_at, rd_hull
from lcodec.evaluate.quality import Scorer, delta_e00, lab_of, psnr_y

DEV_MODELS = Path("/tmp/devmodels")  # untrained stand-in, used only if models/ has none yet

# A typical log-shaped RD curve (bpp, PSNR), slightly irregular like a real sweep.
RATE = np.array([0.08, 0.12, 0.2, 0.3, 0.45, 0.7, 1.0, 1.4])
QUAL = 30 + 4.5 * np.log(RATE) + np.array([0.0, 0.1, -0.05, 0.03, 0.0, 0.04, -0.02, 0.0])

# Sharma, Wu & Dalal (2005), Table 1: (L1, a1, b1), (L2, a2, b2), ΔE00.
SHARMA = [
    ((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
    ((50.0, -1.3802, -84.2814), (50.0, 0.0, -82.7485), 1.0000),
    ((50.0, 0.0, 0.0), (50.0, -1.0, 2.0), 2.3669),
    ((50.0, 2.49, -0.001), (50.0, -2.49, 0.0009), 7.1792),
    ((50.0, 2.49, -0.001), (50.0, -2.49, 0.0011), 7.2195),
    ((50.0, -0.001, 2.49), (50.0, 0.0011, -2.49), 4.7461),
    ((50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
    ((50.0, 2.5, 0.0), (56.0, -27.0, -3.0), 31.9030),
    ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
    ((22.7233, 20.0904, -46.6940), (23.0331, 14.9730, -42.5619), 2.0373),
    ((90.9257, -0.5406, -0.9208), (88.6381, -0.8985, -0.7239), 1.5381),
    ((2.0776, 0.0795, -1.1350), (0.9033, -0.0636, -0.5514), 0.9082),
]


# --- BD-rate -----------------------------------------------------------------------------

@pytest.mark.parametrize("fit", ["pchip", "cubic"])
@pytest.mark.parametrize("rate_range", [None, (0.1, 1.0)])
def test_bd_rate_of_a_curve_against_itself_is_zero(fit, rate_range):
    assert bd_rate(RATE, QUAL, RATE, QUAL, method=fit, rate_range=rate_range) == pytest.approx(
        0.0, abs=1e-9)


@pytest.mark.parametrize("fit", ["pchip", "cubic"])
@pytest.mark.parametrize("rate_range", [None, (0.1, 1.0)])
def test_half_the_rate_at_every_quality_is_minus_50_percent(fit, rate_range):
    got = bd_rate(RATE, QUAL, RATE / 2, QUAL, method=fit, rate_range=rate_range)
    assert got == pytest.approx(-50.0, abs=0.5)


def test_bd_rate_sign_more_bits_for_the_same_quality_is_positive():
    assert bd_rate(RATE, QUAL, RATE * 1.25, QUAL) == pytest.approx(25.0, abs=0.01)
    assert bd_rate(RATE, QUAL, RATE, QUAL + 1.0) < 0  # better quality at each rate


def test_bd_rate_for_lower_is_better_metrics_flips_the_quality_axis():
    de = 12.0 - 3 * np.log(RATE)  # ΔE falls as the rate rises
    assert bd_rate(RATE, de, RATE / 2, de, higher_is_better=False) == pytest.approx(-50, abs=0.01)
    assert bd_rate(RATE, de, RATE, de - 0.5, higher_is_better=False) < 0


def test_bd_rate_is_nan_when_the_curves_do_not_overlap_in_quality():
    assert math.isnan(bd_rate(RATE, QUAL, RATE, QUAL + 100))


def test_rd_hull_drops_points_that_do_not_improve_quality():
    r, q = rd_hull([0.3, 0.1, 0.2, 0.4], [30.0, 28.0, 27.0, 31.0])
    assert list(r) == [0.1, 0.3, 0.4] and list(q) == [28.0, 30.0, 31.0]


def test_pchip_passes_through_the_points_and_integrates_exactly():
    x = np.linspace(0.0, 3.0, 7)
    y = np.sin(x)
    assert np.allclose(pchip(x, y, x), y)
    xx = np.linspace(0.3, 2.7, 200_001)
    assert pchip_integral(x, y, 0.3, 2.7) == pytest.approx(np.trapezoid(pchip(x, y, xx), xx),
                                                           abs=1e-8)


def test_quality_at_interpolates_in_log_bpp_and_never_extrapolates():
    got = quality_at([0.1, 0.4], [20.0, 30.0], [0.05, 0.1, 0.2, 0.4, 0.5])
    assert math.isnan(got[0]) and math.isnan(got[4])
    assert got[1:4] == pytest.approx([20.0, 25.0, 30.0])


# --- quality metrics -----------------------------------------------------------------------

def test_ciede2000_matches_sharma_reference_pairs():
    import torch

    lab1 = torch.tensor([p[0] for p in SHARMA], dtype=torch.float64)  # (pairs, 3)
    lab2 = torch.tensor([p[1] for p in SHARMA], dtype=torch.float64)
    want = np.array([p[2] for p in SHARMA])
    assert np.abs(ciede2000(lab1, lab2).numpy() - want).max() < 1e-4
    assert np.abs(ciede2000(lab2, lab1).numpy() - want).max() < 1e-4  # symmetric


def test_srgb_to_lab_gives_the_reference_white_and_red():
    rgb = np.array([[[255, 255, 255], [255, 0, 0], [0, 0, 0]]], dtype=np.uint8)
    lab = lab_of(rgb)[0, :, 0].T.numpy()  # (1, 3, 1, 3) -> (3 pixels, 3)
    assert lab[0] == pytest.approx([100.0, 0.0, 0.0], abs=1e-3)
    assert lab[1] == pytest.approx([53.2408, 80.0925, 67.2032], abs=1e-3)
    assert lab[2] == pytest.approx([0.0, 0.0, 0.0], abs=1e-9)


def test_scores_of_an_identical_image_are_perfect(crop_rgb):
    assert delta_e00(crop_rgb, crop_rgb) == 0.0
    assert psnr_y(crop_rgb, crop_rgb) == math.inf
    s = Scorer(crop_rgb)(crop_rgb)
    assert s["psnr"] == math.inf and s["delta_e00"] == 0.0
    assert math.isnan(s["ms_ssim"])  # 96 pixels high: too small for 5 MS-SSIM scales


# --- traditional codecs --------------------------------------------------------------------

MAGIC = {"jpeg": [b"\xff\xd8\xff"], "webp": [b"RIFF"], "jpeg2000": [b"\x00\x00\x00\x0cjP  "],
         "avif": [b"ftypavif"], "heic": [b"ftypheic", b"ftypmif1"],
         "jxl": [b"\xff\x0a", b"\x00\x00\x00\x0cJXL "]}


@pytest.mark.parametrize("name", list(baselines.BASELINES))
def test_baselines_write_real_decodable_files_across_their_sweep(name, crop_rgb):
    b = baselines.BASELINES[name]
    if b.available():
        pytest.skip(b.available())
    px = crop_rgb.shape[0] * crop_rgb.shape[1]
    order = sorted(b.settings, key=lambda s: -s if b.setting_name == "distance" else s)
    rates = []
    for setting in (order[0], order[len(order) // 2], order[-1]):
        data = b.encode(crop_rgb, setting)
        head = data[:12]
        assert any(m in head for m in MAGIC[name]), (name, head)
        dec = b.decode(data)
        assert dec.shape == crop_rgb.shape and dec.dtype == np.uint8
        assert Scorer(crop_rgb)(dec)["psnr"] > 15
        rates.append(len(data) * 8 / px)
    assert rates[0] < rates[1] < rates[2]
    assert rates[0] > 0.01 and rates[2] < 12


def test_unknown_codec_is_one_clear_error():
    with pytest.raises(LcodecError, match="unknown codec 'bpg'"):
        baselines.get("bpg")


# --- lcodec eval, end to end ---------------------------------------------------------------

@pytest.fixture
def lcodec_model(monkeypatch):
    from lcodec import models

    try:
        models.find(None)
    except LcodecError:
        if not DEV_MODELS.is_dir():
            pytest.skip("no lcodec model installed")
        monkeypatch.setenv("LCODEC_MODELS", str(DEV_MODELS))
        models.find(None)


@pytest.fixture
def two_images(tmp_path, crop_path, odd_path) -> list[Path]:
    """Two small images large enough for MS-SSIM (161 px) from the shipped test crops."""
    out = []
    for i, (src, size) in enumerate(((crop_path, (176, 168)), (odd_path, (168, 176)))):
        p = tmp_path / f"img{i}.png"
        Image.open(src).convert("RGB").resize(size, Image.Resampling.LANCZOS).save(p)
        out.append(p)
    return out


def _eval(args: list[str]) -> None:
    from lcodec.evaluate.commands import eval_command

    eval_command.main(args, prog_name="lcodec eval", standalone_mode=False)


def test_eval_end_to_end_writes_csv_curves_bdrates_plots_and_markdown(
        tmp_path, two_images, lcodec_model):
    pytest.importorskip("matplotlib")
    out = tmp_path / "ev"
    _eval([*map(str, two_images), "--codecs", "jpeg,webp,lcodec", "--out", str(out),
           "--crops", "--threads", "1", "-q"])
    rows = list(csv.DictReader((out / "per_image.csv").open()))
    from lcodec import models
    from lcodec.encoder.analysis import coder_for_encoding

    own = coder_for_encoding(models.load(models.find()), "auto").method.name
    # a TCAE-coded lcodec also gets its static-table companion rows
    want = {"jpeg", "webp", "lcodec"} | ({"lcodec-static"} if own != "STATIC_CONTEXT_V1"
                                          else set())
    assert {r["codec"] for r in rows} == want
    assert {r["image"] for r in rows} == {"img0.png", "img1.png"}
    for r in rows:
        assert int(r["bytes"]) > 0
        w, h = int(r["width"]), int(r["height"])
        assert float(r["bpp"]) == pytest.approx(int(r["bytes"]) * 8 / (w * h), rel=1e-5)
        assert float(r["ms_ssim"]) > 0  # both images are large enough for MS-SSIM
    bd = {(r["codec"], r["metric"], r["aggregate"]): float(r["bd_rate_pct"] or "nan")
          for r in csv.DictReader((out / "bdrate.csv").open())}
    for agg in ("mean_curve", "per_image"):
        assert bd[("jpeg", "psnr", agg)] == pytest.approx(0.0, abs=1e-9)
        assert bd[("webp", "psnr", agg)] < 0  # WebP beats JPEG
    for name in ("rd_psnr.png", "rd_ms_ssim_db.png", "crops/img0_0.25bpp.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "results.md").read_text()
    assert md.splitlines()[0].startswith("# `lcodec eval ")
    assert "--codecs jpeg,webp,lcodec" in md.splitlines()[0]
    assert "| WebP |" in md and "| lcodec |" in md
    assert {r["codec"] for r in csv.DictReader((out / "curves_at_bpp.csv").open())} == want
    with pytest.raises(LcodecError, match="--force"):
        _eval([str(two_images[0]), "--codecs", "jpeg", "--out", str(out), "-q"])


@pytest.mark.parametrize("args, message", [
    (["--codecs", "jpeg,bpg"], "unknown codec 'bpg'"),
    (["--codecs", "webp"], "anchor jpeg is not among --codecs"),
    (["--codecs", "jpeg", "--range", "1,0.1"], "--range needs"),
])
def test_eval_refuses_bad_options_with_one_sentence(tmp_path, two_images, args, message):
    with pytest.raises(LcodecError, match=message):
        _eval([str(two_images[0]), "--out", str(tmp_path / "o"), "-q", *args])


def test_eval_refuses_a_missing_image(tmp_path):
    with pytest.raises(LcodecError, match="not found"):
        _eval([str(tmp_path / "nope.png"), "--codecs", "jpeg", "--out", str(tmp_path / "o")])


def test_a_tcae_sweep_also_measures_the_static_tables_on_the_same_symbols(crop_path,
                                                                         monkeypatch):
    """With a TCAE as the method, each knob also gets a real static-table file: the same
    pixels (hence the same scores), its own bytes."""
    from lcodec import models
    from lcodec.container import EntropyMethod
    from lcodec.encoder import analysis
    from lcodec.entropy import methods
    from lcodec.evaluate import runner

    monkeypatch.setattr(analysis, "coder_for_encoding", lambda m, e="auto": methods.coder_for(
        EntropyMethod.INCLINED_TCAE_V1, m))
    v1 = "lite-mse-fcf1326f70791116"  # retired: named by its file stem
    assert models.load(models.find(v1)).tcae is not None
    rows, _ = runner.sweep_lcodec(crop_path, v1, knobs=(-0.3, 0.3))
    own = [r for r in rows if r["codec"] == "lcodec"]
    static = [r for r in rows if r["codec"] == "lcodec-static"]
    assert [r["setting"] for r in static] == [r["setting"] for r in own] == [-0.3, 0.3]
    for a, b in zip(own, static, strict=True):
        assert a["psnr"] == b["psnr"] and a["bytes"] != b["bytes"]


def test_the_sweep_writes_the_files_of_the_effort_asked(crop_path, crop_rgb) -> None:
    from lcodec import api
    from lcodec.evaluate import runner

    for effort, correction in ((1, False), (7, True)):
        rows, _ = runner.sweep_lcodec(crop_path, knobs=(0.2,), effort=effort)
        own = next(r for r in rows if r["codec"] == "lcodec")
        assert own["bytes"] == len(api.encode(crop_rgb, knob=0.2, effort=effort))
        plain = len(api.encode(crop_rgb, knob=0.2, correction=False))
        assert (own["bytes"] != plain) == correction  # this crop takes a correction layer


# --- bench ---------------------------------------------------------------------------------

def test_bench_stages_reproduce_the_codec_bytes_and_pixels(crop_path, lcodec_model):
    import torch

    from lcodec import api, models
    from lcodec.evaluate.bench.stages import ENCODE_STAGES, time_lcodec

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        loaded = models.load(models.find(None), "cpu")
        t = time_lcodec(crop_path, loaded, 0.0, "cpu", repeat=1)  # raises if out of sync
    finally:
        torch.set_num_threads(before)
    assert set(t.encode) == set(ENCODE_STAGES)
    assert {"container", "probs", "coding", "network"} == set(t.decode)
    data = api.encode(crop_path, knob=0.0)
    assert t.bytes == len(data)
    assert np.array_equal(t.pixels, api.decode_array(data))
    assert t.rss_encode > 0


@pytest.fixture
def tiny_tcae_models(tmp_path, monkeypatch, lcodec_model):
    """A models folder with the default autoencoder and tiny random, frozen TCAE models
    (``entropy/<name>-tcae-<id>.safetensors``, id = sha256(file)[:8]); LCODEC_MODELS points
    at it."""
    import shutil

    import torch
    from safetensors import safe_open

    from lcodec import models
    from lcodec.config import NetConfig
    from lcodec.entropy.tcae_config import TcaeConfig
    from lcodec.entropy.tcae_net import TcaeNet
    from lcodec.train.tcae.codes import synthetic_codes
    from lcodec.train.tcae.freeze import freeze_models

    info = models.find(None)
    folder = tmp_path / "models"
    (folder / "entropy").mkdir(parents=True)
    shutil.copy(info.path, folder / info.path.name)
    card = dict(info.card)  # without a recorded auto method: "auto" means the static tables
    card["entropy"] = {k: v for k, v in card.get("entropy", {}).items() if k != "auto"}
    (folder / info.path.with_suffix(".json").name).write_text(json.dumps(card))
    with safe_open(str(info.path), framework="np") as f:
        cfg = NetConfig.from_json(f.metadata()["config"])
    small = dict(groups=2, k_before=1, k_after=1, kernel=3, blocks=1)
    cfgs = {"importance": TcaeConfig(1, cfg.imp_levels, 0, **small),
            "luma": TcaeConfig(cfg.n_luma, cfg.levels, 1, side_classes=3, **small),
            "chroma": TcaeConfig(cfg.n_chroma, cfg.levels, 1, side_classes=3, **small)}
    codes = synthetic_codes(4, 8, seed=3, n_luma=cfg.n_luma, n_chroma=cfg.n_chroma,
                            levels=cfg.imp_levels, classes=cfg.levels)
    torch.manual_seed(0)
    nets = {n: TcaeNet(c).eval() for n, c in cfgs.items()}
    tmp = folder / "tcae.tmp"
    entropy_id = freeze_models(nets, codes, np.arange(4)).save(tmp)
    tmp.rename(folder / "entropy" / f"{info.name}-tcae-{entropy_id.hex()}.safetensors")
    monkeypatch.setenv("LCODEC_MODELS", str(folder))
    return entropy_id


@pytest.mark.parametrize("entropy, method", [("tcae", "INCLINED_TCAE_V1"),
                                             ("static", "STATIC_CONTEXT_V1"),
                                             ("auto", "STATIC_CONTEXT_V1")])
def test_bench_times_the_method_the_codec_writes(crop_path, tiny_tcae_models, capsys, entropy,
                                                 method):
    import torch

    from lcodec.evaluate.bench.command import main
    from lcodec.evaluate.bench.stages import ENCODE_STAGES

    before = torch.get_num_threads()
    try:  # raises (exit 1) if the bench's bytes or symbols differ from the codec's
        rc = main([str(crop_path), "--device", "cpu", "--baselines", "", "--threads", "1",
                         "--entropy", entropy, "--cli", "0"])
    finally:
        torch.set_num_threads(before)
    out = capsys.readouterr().out
    assert rc == 0
    assert f"entropy {method}" in out and f"## lcodec on cpu ({method})" in out
    assert (tiny_tcae_models.hex() in out.splitlines()[0]) == (method == "INCLINED_TCAE_V1")
    row = next(line for line in out.splitlines() if line.startswith(f"| {crop_path.name} |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    times = [float(c) for c in cells[2:2 + 2 * len(ENCODE_STAGES) + 2]]
    assert all(math.isfinite(x) and x >= 0 for x in times)
    assert sum(times) > 0
    assert f"Entropy method {method}:" in out


def test_bench_times_the_real_commands_beside_the_in_process_path(crop_path, capsys) -> None:
    import torch

    from lcodec.evaluate.bench.command import main

    before = torch.get_num_threads()
    try:
        rc = main([str(crop_path), "--device", "cpu", "--baselines", "", "--threads", "1",
                         "--cli", "1", "--bpp", "0.6", "--efforts", "1,2"])
    finally:
        torch.set_num_threads(before)
    out = capsys.readouterr().out
    assert rc == 0 and "## The command line" in out
    section = out[out.index("## The command line"):]
    row = next(line for line in section.splitlines() if line.startswith(f"| {crop_path.name} |"))
    cells = [float(c) for c in row.strip("|").split("|")[1:]]
    assert len(cells) == 5 and all(math.isfinite(x) and x > 0 for x in cells)
    section = out[out.index("## Effort levels: wall seconds of `lcodec encode --bpp 0.6 -e N`"):]
    rows = [line for line in section.splitlines() if line.startswith(("| 1 |", "| 2 |"))]
    assert len(rows) == 2
    for line in rows:
        seconds, _, bpp = (float(c.strip().rstrip("×")) for c in line.strip("|").split("|")[1:])
        assert seconds > 0 and 0.5 < bpp <= 0.6
