"""Decoder-only fine-tuning (the encoder frozen, so the symbols stay the model's) and its
quantization-aware decoder, which must round as synthesis EXACT_INT_V2 does."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lcodec.color import rgb_to_ycbcr, ycbcr_to_rgb
from lcodec.config import CONFIGS
from lcodec.train import qat


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(float) - b.astype(float)) ** 2)
    return float(10 * np.log10(255**2 / max(mse, 1e-10)))


def test_the_fake_weights_are_7_bit_rows_with_a_power_of_two_scale() -> None:
    torch.manual_seed(0)
    w = torch.randn(5, 4, 3, 3) * torch.tensor([1e-3, 0.1, 1.0, 7.0, 300.0]).view(5, 1, 1, 1)
    q = qat.fake_rows(w)
    for row, ref in zip(q, w, strict=True):
        _, k = torch.frexp(ref.abs().max())
        scale = 2.0 ** (6 - int(k))
        ints = row * scale
        if torch.round(ref.abs().max() * scale) > 63:
            ints = ints / 2
        assert torch.equal(ints, torch.round(ints))
        assert 32 <= float(ints.abs().max()) <= 63
    w.requires_grad_(True)
    qat.fake_rows(w).sum().backward()
    assert torch.equal(w.grad, torch.ones_like(w))  # straight through


def test_the_fake_quantized_decoder_rounds_as_exact_int_v2_does(crop_rgb) -> None:
    """On the default model's codes of a test crop: the fake-quantized decoder's pixels are
    far closer to EXACT_INT_V2's (all-narrow grids) than the float decoder's are, at a low
    and a high knob."""
    from lcodec import models
    from lcodec.synthesis.exact_int_v2 import ExactIntV2
    from lcodec.synthesis.exact_int_v2_grids import calibrate

    torch.set_grad_enabled(False)
    try:
        net = models.load(models.find("v2-mse")).net
        rgb = crop_rgb[:64, :64]
        x = torch.from_numpy(rgb.copy()).permute(2, 0, 1)[None].float() / 255
        ycc = rgb_to_ycbcr(x)
        y_y, y_c, logits = net.analyse(ycc)
        e8 = ExactIntV2.from_net(net)

        def to8(t: torch.Tensor) -> np.ndarray:
            rgb = torch.floor(torch.clamp(ycbcr_to_rgb(t), 0, 1) * 255 + 0.5)
            return rgb[0].permute(1, 2, 0).numpy()

        for knob in (-0.6, 0.8):
            enc = net.quantize(y_y, y_c, logits, knob)
            exact = e8.pixels(enc.qi, enc.luma, enc.chroma, knob,
                              calibrate(net, [enc], wide=frozenset()))
            k = torch.tensor([knob])
            s_y, s_c = qat.symbols(net, ycc, k)
            fake = to8(qat.qat_decode(net, s_y, s_c, k, frozenset()))
            flt = to8(qat.float_decode(net, s_y, s_c, k))
            assert _psnr(fake, exact) >= 45
            assert _psnr(fake, exact) >= _psnr(flt, exact) + 4
    finally:
        torch.set_grad_enabled(True)


def test_a_decoder_run_moves_the_decoder_and_nothing_else(
        tmp_path, image_folder, monkeypatch) -> None:
    from test_cwic2 import TINY

    from lcodec.train.v2.config import RDConfig
    from lcodec.train.v2.loop import train
    from lcodec.train.v2.run import Run

    monkeypatch.setitem(CONFIGS, "v2-tiny", TINY)
    base = RDConfig(data=str(image_folder), net="v2-tiny", batch=2, crop=32,
                    val_fraction=0.3, val_crop=32, ckpt_every=2, threads=1)
    (tmp_path / "a").mkdir()
    train(Run(tmp_path / "a", base), budget_min=60, decay_min=0, max_steps=1)
    start = torch.load(tmp_path / "a" / "last.ckpt", weights_only=False)["model"]
    cfg = RDConfig(**{**base.__dict__, "init": str(tmp_path / "a" / "last.ckpt"),
                      "train_part": "decoder", "qat": True, "lr": 1e-2})
    (tmp_path / "b").mkdir()
    train(Run(tmp_path / "b", cfg), budget_min=60, decay_min=0, max_steps=3)
    end = torch.load(tmp_path / "b" / "last.ckpt", weights_only=False)["model"]
    moved = {k for k in start if not torch.equal(start[k], end[k])}
    assert moved and all(qat.is_decoder_param(k) for k in moved)
    assert any(k.startswith("luma_dec.") for k in moved)
    assert any(k.startswith("chroma_dec.") for k in moved)
    rows = (tmp_path / "b" / "val.csv").read_text().splitlines()
    assert rows and all(len(r.split(",")) == 8 for r in rows)  # + the fake-quantized PSNR


def test_qat_is_refused_unless_only_the_decoder_trains(tmp_path) -> None:
    from lcodec.train.v2.config import RDConfig

    path = tmp_path / "c.json"
    path.write_text('{"qat": true}')
    with pytest.raises(ValueError, match="train_part decoder"):
        RDConfig.load(path)
    path.write_text('{"train_part": "encoder"}')
    with pytest.raises(ValueError, match="train_part must be"):
        RDConfig.load(path)
    path.write_text('{"train_part": "decoder", "qat": true, "qat_wide": ["y.f2"]}')
    assert RDConfig.load(path).qat_wide == ("y.f2",)


def test_the_grids_of_least_error_are_picked_per_image_and_jointly_for_fuse_pairs() -> None:
    from lcodec.synthesis.exact_int_v2_grids import GRID_TRIALS, least_error_fracs
    from lcodec.synthesis.exact_int_v2_spec import SHARED

    t = len(GRID_TRIALS)
    start = {n: torch.tensor([4.0, 4.0]) for pair in SHARED for n in pair}  # pairs: one start
    start["y.in8"] = torch.tensor([0.0, 3.0])
    c, y = SHARED[0]
    err = {n: torch.full((2, t), 10.0) for n in start}
    err["y.in8"][0, 2] = err["y.in8"][1, 0] = 1.0
    err[c][0, 3] = 1.0  # image 0: c is best at 4 + 3 = 7,
    err[y][0, 0] = 0.0  # y at 4 + 0 (joint: 10 + 0 at 4, 1 + 0.5 at 7)
    err[y][0, 3] = 0.5
    err[y][1, 1] = 0.0  # image 1: only y has a best trial, at 4 + 1
    fr = least_error_fracs(start, err)
    assert fr["y.in8"].tolist() == [2.0, 3.0]
    assert fr[c].tolist() == fr[y].tolist() == [7.0, 5.0]


def test_saturated_rounding_error_counts_the_clipped_part() -> None:
    from lcodec.synthesis.exact_int_v2_grids import error_samples, rounding_errors

    x = torch.tensor([0.3, 5.0, 10.0]).view(1, 1, 1, 3)  # (every other column is measured)
    err = rounding_errors(error_samples(x), torch.tensor([0.0]), bound=2)[0, 0]
    assert float(err) == pytest.approx(0.3**2 + 8.0**2)
