"""Network v2: a base layer everywhere, a rate term that is a code length, variable rate by
interpolated gains, and a trainer that resumes exactly and exports a loadable model."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from lcodec.config import CONFIGS
from lcodec.nets.cwic2 import CWIC2, interp_cost, interpolate
from lcodec.quant import code_mask

TINY = dataclasses.replace(CONFIGS["v2"], widths=(8, 12, 12), chroma_widths=(4, 8, 8),
                           n_luma=16, n_chroma=4)


@pytest.fixture()
def net() -> CWIC2:
    torch.manual_seed(0)
    return CWIC2(TINY).eval()


def test_interpolated_tables_equal_their_rows_at_the_anchor_knobs() -> None:
    table = torch.arange(12.0).view(6, 2)
    knobs = torch.linspace(-1, 1, 6)
    assert torch.allclose(interpolate(table, knobs), table, atol=1e-5)
    mid = interpolate(table, torch.tensor([(knobs[2] + knobs[3]) / 2]))
    assert torch.allclose(mid, (table[2] + table[3]) / 2)


def test_the_rate_term_is_the_code_length_at_integer_symbols() -> None:
    logits = torch.randn(1, 3, 16)
    cost = -torch.log_softmax(logits, -1) / math.log(2)
    sym = torch.randint(0, 16, (1, 3, 4, 5))
    want = torch.gather(cost, 2, sym.view(1, 3, -1)).view(1, 3, 4, 5)
    assert torch.allclose(interp_cost(cost, sym.float()), want)


def test_every_position_keeps_the_base_layer_at_the_lowest_knob(net) -> None:
    ycc = torch.rand(1, 3, 64, 48)
    e_y, e_c, p = net.analyse(ycc)
    codes = net.quantize(e_y, e_c, -1e3 * torch.ones_like(p), -1.0)  # importance as low as it goes
    assert int(codes.qi.min()) == TINY.base_level
    mask_c = code_mask(codes.qi, TINY.n_chroma, TINY.imp_levels)
    assert bool(mask_c[:, 0].all()), "chroma keeps at least one map everywhere"
    assert bool(code_mask(codes.qi, TINY.n_luma, TINY.imp_levels)[:, :2].all())


def test_decoding_uses_the_knob_the_codes_were_made_at(net) -> None:
    ycc = torch.rand(1, 3, 32, 32)
    e_y, e_c, p = net.analyse(ycc)
    codes = net.quantize(e_y, e_c, p, 0.5)
    assert codes.knob == 0.5
    same = net.decompress(codes)
    other = net.decompress(dataclasses.replace(codes, knob=-0.5))
    assert not torch.allclose(same, other)


def test_training_pass_gives_finite_bits_and_gradients_reach_the_importance_map(net) -> None:
    net.train()
    out = net(torch.rand(2, 3, 32, 32), torch.tensor([-0.7, 0.7]))
    assert out["bits"].shape == (2,) and bool(torch.isfinite(out["bits"]).all())
    out["bits"].sum().backward()
    grad = net.importance[-1].weight.grad
    assert grad is not None and float(grad.abs().sum()) > 0


@pytest.mark.parametrize("mask_count", [False, True])
def test_the_mask_count_ablation_prices_coded_symbols_not_their_values(net, mask_count
                                                                      ) -> None:
    """With ``mask_count_rate`` the encoder's rate no longer depends on the code values
    (the gains get no rate gradient) while the priors still learn the code length."""
    net.train()
    torch.manual_seed(3)
    out = net(torch.rand(2, 3, 32, 32), torch.tensor([-0.5, 0.5]), mask_count_rate=mask_count)
    out["bits"].sum().backward()
    grad = net.log_gain_enc.grad
    gain = 0.0 if grad is None else float(grad.abs().sum())
    assert (gain == 0) == mask_count
    assert float(net.prior_codes.grad.abs().sum()) > 0
    assert float(net.importance[-1].weight.grad.abs().sum()) > 0


def _run(folder, out, steps: int, monkeypatch):
    from lcodec.train.v2.config import RDConfig
    from lcodec.train.v2.loop import train
    from lcodec.train.v2.run import Run

    monkeypatch.setitem(CONFIGS, "v2-tiny", TINY)
    cfg = RDConfig(data=str(folder), net="v2-tiny", batch=2, crop=32, val_fraction=0.3,
                   val_crop=32, ckpt_every=2, threads=1)
    out.mkdir(exist_ok=True)
    train(Run(out, cfg), budget_min=60, decay_min=0, max_steps=steps)
    return torch.load(out / "last.ckpt", weights_only=False)


def test_a_resumed_v2_run_ends_exactly_where_an_uninterrupted_one_does(
        tmp_path, image_folder, monkeypatch) -> None:
    straight = _run(image_folder, tmp_path / "a", 4, monkeypatch)
    _run(image_folder, tmp_path / "b", 2, monkeypatch)
    resumed = _run(image_folder, tmp_path / "b", 4, monkeypatch)
    assert straight["step"] == resumed["step"] == 4
    for key, value in straight["model"].items():
        assert torch.equal(value, resumed["model"][key]), key
    val = (tmp_path / "b" / "val.csv").read_text().splitlines()
    assert len(val) >= 6 and all(len(row.split(",")) == 7 for row in val)


def test_v2_export_writes_a_model_the_codec_loads_with_its_curve(
        tmp_path, image_folder, monkeypatch) -> None:
    from lcodec import api, container
    from lcodec.train.export import export

    _run(image_folder, tmp_path / "run", 2, monkeypatch)
    out = export(tmp_path / "run", "tiny2", 4, tmp_path / "models")
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["architecture"] == "cwic2" and card["training"]["steps_done"] == 2
    assert card["learning_curve"] and card["compute"]["kmac_per_pixel"]["decoder"] > 0
    assert card["entropy"]["knobs"][0] == -1.0 and card["entropy"]["knobs"][-1] == 1.0
    monkeypatch.setenv("LCODEC_MODELS", str(tmp_path / "models"))
    rgb = np.asarray(Image.open(next(image_folder.iterdir())).convert("RGB"))
    small, large = (api.encode(rgb, model="tiny2", knob=k) for k in (-1.0, 1.0))
    assert container.unpack(large).header.rate_knob == 1.0
    assert api.decode_array(small).shape == rgb.shape == api.decode_array(large).shape


def test_clipped_codes_give_the_encoder_no_gradient_toward_larger_codes(net) -> None:
    net.train()
    with torch.no_grad():
        net.log_gain_enc.fill_(30.0)  # every code far outside the 16 levels
    out = net(torch.rand(1, 3, 32, 32), torch.tensor([0.0]))
    y_grad = torch.autograd.grad(((out["x_hat"] - 0.5) ** 2).sum(), net.log_gain_enc)[0]
    assert float(y_grad.abs().max()) == 0.0


def test_smooth_training_crops_are_flat_or_ramps_on_the_8_bit_grid() -> None:
    from lcodec.train.v2.objective import smooth_crops

    torch.manual_seed(0)
    crops = smooth_crops(16, 24)
    assert crops.shape == (16, 3, 24, 24) and 0 <= float(crops.min()) <= float(crops.max()) <= 1
    assert torch.equal(crops, torch.round(crops * 255) / 255)
    centred = crops - crops.mean((2, 3), keepdim=True)
    assert float(centred.abs().amax((1, 2, 3)).median()) < 0.25


def test_a_run_trains_at_its_own_lambda_range_and_records_it(
        tmp_path, image_folder, monkeypatch) -> None:
    from lcodec.train.v2.config import RDConfig
    from lcodec.train.v2.loop import train
    from lcodec.train.v2.run import Run

    monkeypatch.setitem(CONFIGS, "v2-tiny", TINY)
    cfg = RDConfig(data=str(image_folder), net="v2-tiny", batch=2, crop=32,
                   val_fraction=0.3, val_crop=32, ckpt_every=2, threads=1,
                   lam_range=(1e-4, 0.05), flat_fraction=0.5)
    (tmp_path / "a").mkdir()
    train(Run(tmp_path / "a", cfg), budget_min=60, decay_min=0, max_steps=2)
    ckpt = torch.load(tmp_path / "a" / "last.ckpt", weights_only=False)
    assert ckpt["net_config"]["lam_range"] == [1e-4, 0.05]


def test_a_run_started_from_another_runs_checkpoint_continues_its_step_count(
        tmp_path, image_folder, monkeypatch) -> None:
    from lcodec.train.v2.config import RDConfig
    from lcodec.train.v2.loop import train
    from lcodec.train.v2.run import Run

    _run(image_folder, tmp_path / "a", 2, monkeypatch)
    cfg = RDConfig(data=str(image_folder), net="v2-tiny", batch=2, crop=32,
                   val_fraction=0.3, val_crop=32, ckpt_every=2, threads=1,
                   init=str(tmp_path / "a" / "last.ckpt"))
    (tmp_path / "b").mkdir()
    train(Run(tmp_path / "b", cfg), budget_min=60, decay_min=0, max_steps=4)
    assert torch.load(tmp_path / "b" / "last.ckpt", weights_only=False)["step"] == 4


def test_the_flat_weight_scales_only_the_weighted_crops_distortion(net) -> None:
    from lcodec.train.v2.config import RDConfig
    from lcodec.train.v2.objective import rd_loss

    torch.manual_seed(1)
    x = torch.rand(2, 3, 32, 32)
    knob = torch.zeros(2)
    cfg = RDConfig(net="v2-tiny", lam_range=(1e-4, 0.05))

    def loss(weight) -> float:
        torch.manual_seed(2)  # the same noise for every call
        with torch.no_grad():
            return float(rd_loss(net, x, knob, cfg, dist_weight=weight)[0])

    plain, ones = loss(None), loss(torch.ones(2))
    assert plain == pytest.approx(ones, rel=1e-6)
    assert loss(torch.tensor([1.0, 8.0])) > plain


def test_autocast_is_used_only_where_the_cpu_has_native_bf16(tmp_path, image_folder,
                                                             monkeypatch) -> None:
    from lcodec.train.v2 import run
    from lcodec.train.v2.config import RDConfig

    monkeypatch.setitem(CONFIGS, "v2-tiny", TINY)
    cfg = RDConfig(data=str(image_folder), net="v2-tiny", batch=2, crop=32,
                   val_fraction=0.3, val_crop=32, threads=1, amp=True)
    for native in (False, True):
        monkeypatch.setattr(run, "native_bf16", lambda native=native: native)
        assert run.Run(tmp_path, cfg).amp is native
    assert run.Run(tmp_path, dataclasses.replace(cfg, amp=False)).amp is False


def test_the_warmup_ramps_the_lr_only_after_a_fresh_optimizer() -> None:
    from lcodec.train.v2.loop import warmup

    assert [warmup(s, 4) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert warmup(0, 0) == 1.0
