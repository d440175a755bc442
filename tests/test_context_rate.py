"""The context models in the training loop (``rate: "context"``): the network pays the TCAE's
code length, the TCAE learns the hard symbols' code length, and a run resumes exactly."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from tiny_train import TINY

from lcodec.config import CONFIGS
from lcodec.entropy.tcae_net import DEFAULT_CONFIGS
from lcodec.nets.cwic2 import CWIC2


def _context_run(folder: Path) -> Path:
    """A TCAE run folder (``last.ckpt``) of small context models for the tiny network."""
    from lcodec.train.v2.context_rate import ContextRate

    small = {"kernel": 3, "blocks": 1, "knob_buckets": 3}
    cfgs = {
        "importance": replace(DEFAULT_CONFIGS["importance"], classes=TINY.imp_levels,
                              groups=4, **small),
        "luma": replace(DEFAULT_CONFIGS["luma"], channels=TINY.n_luma, classes=TINY.levels,
                        groups=2, embed=4, **small),
        "chroma": replace(DEFAULT_CONFIGS["chroma"], channels=TINY.n_chroma,
                          classes=TINY.levels, groups=2, luma_classes=4, **small),
    }
    torch.manual_seed(3)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(ContextRate(cfgs).tcae_checkpoint(0), folder / "last.ckpt")
    return folder


def test_interpolated_costs_are_exact_at_levels_and_linear_between() -> None:
    from lcodec.train.v2.context_rate import interp_map

    cost = torch.rand(2, 8, 3, 4, 5)
    levels = torch.randint(0, 8, (2, 3, 4, 5))
    at = interp_map(cost, levels.float())
    assert torch.equal(at, torch.gather(cost, 1, levels[:, None])[:, 0])
    lo = levels.clamp(max=6)
    mid = interp_map(cost, lo.float() + 0.25)
    want = 0.75 * torch.gather(cost, 1, lo[:, None])[:, 0] + \
        0.25 * torch.gather(cost, 1, lo[:, None] + 1)[:, 0]
    assert torch.allclose(mid, want)


def test_the_network_pays_the_context_cost_and_the_context_learns_the_hard_symbols(
        tmp_path) -> None:
    from lcodec.train.v2.context_rate import ContextRate

    torch.manual_seed(0)
    net = CWIC2(TINY).train()
    context = ContextRate.from_tcae_run(_context_run(tmp_path / "tcae"))
    out = net(torch.rand(2, 3, 32, 32), torch.tensor([-0.5, 0.5]), rate_model=context)
    rate = out["bits"].sum()
    enc = torch.autograd.grad(rate, net.log_gain_enc, retain_graph=True)[0]
    assert float(enc.abs().sum()) > 0  # the encoder sees the context models' costs
    ctx = [p for p in context.parameters()]
    assert all(g is None for g in torch.autograd.grad(rate, ctx, allow_unused=True))
    hard = torch.autograd.grad(out["context_bits"].sum(), ctx, allow_unused=True)
    assert any(g is not None and float(g.abs().sum()) > 0 for g in hard)
    assert net.prior_codes.grad is None and out["context_bits"].shape == (2,)


def _run(folder: Path, out: Path, tcae: Path, steps: int, monkeypatch,
         rate: str = "context") -> dict:
    from lcodec.train.v2.config import RDConfig
    from lcodec.train.v2.loop import train
    from lcodec.train.v2.run import Run

    monkeypatch.setitem(CONFIGS, "v2-tiny", TINY)
    cfg = RDConfig(data=str(folder), net="v2-tiny", batch=2, crop=32, val_fraction=0.3,
                   val_crop=32, ckpt_every=2, threads=1, rate=rate,
                   context_init=str(tcae))
    out.mkdir(exist_ok=True)
    train(Run(out, cfg), budget_min=60, decay_min=0, max_steps=steps)
    return torch.load(out / "last.ckpt", weights_only=False)


def test_a_context_rate_run_trains_both_and_resumes_exactly(
        tmp_path, image_folder, monkeypatch) -> None:
    from lcodec.train.v2.context_rate import ContextRate

    tcae = _context_run(tmp_path / "tcae")
    start = torch.load(tcae / "last.ckpt", weights_only=False)["nets"]
    straight = _run(image_folder, tmp_path / "a", tcae, 4, monkeypatch)
    _run(image_folder, tmp_path / "b", tcae, 2, monkeypatch)
    resumed = _run(image_folder, tmp_path / "b", tcae, 4, monkeypatch)
    for part in ("model", "context"):
        for key, value in straight[part].items():
            assert torch.equal(value, resumed[part][key]), key
    moved = straight["context"]["nets.luma.final.weight"]
    assert not torch.equal(moved, start["luma"]["final.weight"])
    prior = CWIC2(TINY).state_dict()["prior_codes"]  # frozen: the context prices the codes
    assert torch.equal(straight["model"]["prior_codes"], prior)
    exported = ContextRate.from_tcae_run(tmp_path / "a" / "context")
    assert torch.equal(exported.nets["luma"].final.weight, moved)
    rows = (tmp_path / "b" / "val.csv").read_text().splitlines()
    assert len(rows) >= 6 and all(len(r.split(",")) == 8 for r in rows)
    assert all(float(r.split(",")[-1]) > 0 for r in rows)  # the context models' bpp


def test_a_context_rate_config_names_its_context_models(tmp_path) -> None:
    from lcodec.train.v2.config import RDConfig

    cfg = tmp_path / "c.json"
    cfg.write_text('{"rate": "context"}')
    with pytest.raises(ValueError, match="context_init"):
        RDConfig.load(cfg)


def test_a_control_run_measures_by_the_context_models_without_training_them(
        tmp_path, image_folder, monkeypatch) -> None:
    tcae = _context_run(tmp_path / "tcae")
    start = torch.load(tcae / "last.ckpt", weights_only=False)["nets"]
    ckpt = _run(image_folder, tmp_path / "c", tcae, 2, monkeypatch, rate="code_length")
    assert torch.equal(ckpt["context"]["nets.luma.final.weight"], start["luma"]["final.weight"])
    assert not torch.equal(ckpt["model"]["prior_codes"], CWIC2(TINY).state_dict()["prior_codes"])
    rows = (tmp_path / "c" / "val.csv").read_text().splitlines()
    assert rows and all(len(r.split(",")) == 8 for r in rows)
