"""Parts of the training procedure: distortions, quantizer modes, the two-stage importance
relaxation, the LR schedules and the config checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_evaluate import SHARMA

from lcodec.colorimetry import TRAINING_EPS, ciede2000, srgb_to_lab
from lcodec.quant import ChannelQuantizer
from lcodec.train import losses
from lcodec.train.importance import best_levels, channels_per_level, importance_loss
from lcodec.train.v1.config import TrainConfig
from lcodec.train.v1.run import run
from lcodec.train.v1.schedule import Schedule


def _nchw(rows: np.ndarray) -> torch.Tensor:
    """(m, 3) -> (1, 3, m, 1) float64."""
    return torch.from_numpy(np.ascontiguousarray(rows.T)).double()[None, :, :, None]


def test_the_training_ciede2000_stays_within_1e_3_of_the_exact_one() -> None:
    """Training's ΔE00 (float32, eps under the square roots) against the evaluation's (the
    same function in float64 with eps 0), on Sharma's pairs and on random sRGB pairs."""
    lab1 = np.array([p[0] for p in SHARMA], dtype=np.float64)
    lab2 = np.array([p[1] for p in SHARMA], dtype=np.float64)
    want = np.array([p[2] for p in SHARMA])
    got = ciede2000(_nchw(lab1), _nchw(lab2), TRAINING_EPS)[0, :, 0].numpy()
    assert np.abs(got - want).max() < 2e-3
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (400, 3))
    near = np.clip(rgb + rng.integers(-20, 21, (400, 3)), 0, 255)
    a, b = _nchw(rgb / 255.0), _nchw(near / 255.0)
    exact = ciede2000(srgb_to_lab(a), srgb_to_lab(b))[0, :, 0].numpy()
    lab_a = srgb_to_lab(a.float())
    assert float((lab_a.double() - srgb_to_lab(a)).abs().max()) < 1e-3
    got = ciede2000(lab_a, srgb_to_lab(b.float()), TRAINING_EPS)[0, :, 0].double().numpy()
    assert np.abs(got - exact).max() < 1e-3


def test_delta_e_term_has_finite_gradients_even_for_gray_pixels() -> None:
    x = torch.full((1, 3, 4, 4), 0.5)
    x_hat = x.clone().requires_grad_(True)
    d = losses.distortion(x, x_hat, "mse", deltae_weight=1.0)
    d.backward()
    assert torch.isfinite(x_hat.grad).all()
    assert d.item() < 1e-3


def test_ycbcr_l1_weights_chroma_by_gamma() -> None:
    x = torch.full((1, 3, 8, 8), 0.5)
    from lcodec.color import rgb_to_ycbcr, ycbcr_to_rgb

    shifted = rgb_to_ycbcr(x)
    shifted[:, 1] += 0.1  # Cb only
    x_hat = ycbcr_to_rgb(shifted)
    full = losses.distortion(x, x_hat, "ycbcr_l1", chroma_weight=1.0)
    half = losses.distortion(x, x_hat, "ycbcr_l1", chroma_weight=0.5)
    assert float(full) == pytest.approx(10.0, rel=1e-4)
    assert float(half) == pytest.approx(5.0, rel=1e-4)
    with pytest.raises(ValueError):
        losses.distortion(x, x_hat, "l2")


def test_lloyd_mode_moves_centres_to_the_means_of_their_cells() -> None:
    q = ChannelQuantizer(1, 2, mode="lloyd", lloyd_rate=1.0)  # centres 0.25, 0.75
    e = torch.tensor([0.1, 0.2, 0.3, 0.6, 0.9]).view(1, 1, 5, 1).repeat(1, 1, 1, 1)
    q.train()
    q(e)
    assert q.centres()[0].tolist() == pytest.approx([0.2, 0.75])
    assert not q.steps.requires_grad


def test_uniform_mode_never_changes_its_centres() -> None:
    q = ChannelQuantizer(2, 8, mode="uniform")
    before = q.centres().clone()
    assert before[0].tolist() == pytest.approx([(2 * t + 1) / 16 for t in range(8)])
    q.train()
    _, _, loss = q(torch.rand(3, 2, 4, 4))
    assert not loss.requires_grad
    assert torch.equal(q.centres(), before)
    assert q.reinit_dead_levels() == 0
    with pytest.raises(ValueError):
        q.set_mode("kmeans")


def test_best_levels_code_channels_whose_gain_beats_the_rate_cost() -> None:
    # n = 4 luma channels, L = 4 levels: level l codes the first l channels.
    assert channels_per_level(4, 4, torch.device("cpu")).tolist() == [0, 1, 2, 3]
    assert channels_per_level(32, 16, torch.device("cpu")).tolist() == list(range(0, 32, 2))
    g = torch.zeros(1, 4, 1, 3)
    g[0, :, 0, 0] = torch.tensor([10.0, 10.0, 10.0, 10.0])  # every channel pays off
    g[0, :, 0, 1] = torch.tensor([10.0, 0.0, 0.0, 0.0])  # only the first one does
    g[0, :, 0, 2] = 0.0  # nothing does
    chroma = torch.tensor([10.0, 10.0, 0.0]).view(1, 1, 1, 3)  # coded from level 1 on
    levels = best_levels([g, chroma], cost=0.5, levels=4, xi=0.1)
    assert levels.flatten().tolist() == [3, 1, 0]
    p = torch.tensor([0.0, 0.25, 0.5]).view(1, 1, 1, 3).requires_grad_(True)
    importance_loss(p, levels, 4, alpha=1.0).backward()
    assert (torch.sign(p.grad.flatten()) == torch.tensor([-1.0, 0.0, 1.0])).all()


def test_plateau_schedule_divides_by_ten_at_most_twice() -> None:
    s = Schedule(TrainConfig(lr=1e-4, lr_schedule="plateau", plateau_patience=2))
    assert s.lr(0.0) == pytest.approx(1e-4)
    for loss in (5.0, 4.0, 4.0, 4.0):
        s.validated(loss)
    assert s.lr(0.5) == pytest.approx(1e-5)
    for _ in range(10):
        s.validated(9.0)
    assert s.lr(0.9) == pytest.approx(1e-6)
    restored = Schedule(s.cfg)
    restored.load(s.state())
    assert restored.lr(0.9) == s.lr(0.9)


def test_decay_schedule_is_constant_then_geometric() -> None:
    s = Schedule(TrainConfig(lr=1e-3, lr_final=1e-5, decay_from=0.5))
    assert s.lr(0.25) == pytest.approx(1e-3)
    assert s.lr(0.75) == pytest.approx(1e-4)
    assert s.lr(1.0) == pytest.approx(1e-5)


def test_configs_are_checked(tmp_path) -> None:
    with pytest.raises(ValueError, match="quantizer"):
        TrainConfig(quantizer="kmeans")
    bad = tmp_path / "c.json"
    bad.write_text('{"lr": 1e-4, "learning_rate": 1e-4}')
    with pytest.raises(ValueError, match="learning_rate"):
        TrainConfig.load(bad)


@pytest.mark.parametrize("options", [
    {"importance": "two_stage", "quantizer": "lloyd", "distortion": "ycbcr_l1",
     "chroma_weight": 0.5, "deltae_weight": 0.1, "rate_threshold": 0.2},
    {"quantizer": "uniform", "lr_schedule": "plateau", "val_every": 1, "plateau_patience": 1},
])
def test_training_runs_with_every_option(tmp_path, options) -> None:
    from PIL import Image

    rng = np.random.default_rng(1)
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(4):
        arr = np.clip(np.cumsum(rng.integers(-9, 10, (40, 40, 3)), axis=0) + 128, 0, 255)
        Image.fromarray(arr.astype(np.uint8)).save(folder / f"i{i}.png")
    cfg = TrainConfig(data=str(folder), steps=3, batch=2, crop=32, val_fraction=0.3,
                      ckpt_every=3, threads=1, pretrain_fraction=0.0, **options)
    state = torch.load(run(cfg, tmp_path / "run"), weights_only=False)
    assert state["step"] == 3
    assert all(torch.isfinite(v).all() for v in state["model"].values()
               if v.is_floating_point())
    log = (tmp_path / "run" / "log.csv").read_text()
    assert "val+0.0" in log


def test_a_budgeted_run_stops_when_its_budget_is_spent(tmp_path) -> None:
    from PIL import Image

    rng = np.random.default_rng(2)
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(4):
        arr = rng.integers(0, 256, (40, 40, 3)).astype(np.uint8)
        Image.fromarray(arr).save(folder / f"i{i}.png")
    cfg = TrainConfig(data=str(folder), steps=10**6, batch=2, crop=32, val_fraction=0.3,
                      threads=1, budget_minutes=0.05, calib_steps=25, ckpt_every=1000,
                      snapshot_every=1000)
    state = torch.load(run(cfg, tmp_path / "run"), weights_only=False)
    # it ends at the step count fitted to the budget, or earlier if the budget runs out
    assert 25 <= state["step"] == state["total_steps"] < 10**6
    assert 1.0 <= state["elapsed"] < 30.0
    assert (tmp_path / "run" / "snapshot.safetensors").exists()
    rows = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert any(r.startswith(f"{state['step']},val") for r in rows)
    # a run whose budget is spent stops after one more step, whatever its step count says
    ckpt = tmp_path / "run" / "last.ckpt"
    state.update(total_steps=10**6, elapsed=60.0)
    torch.save(state, ckpt)
    again = torch.load(run(cfg, tmp_path / "run"), weights_only=False)
    assert again["step"] == again["total_steps"] == state["step"] + 1
