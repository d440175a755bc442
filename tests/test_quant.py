"""Claims about the channel quantizer and the importance mask (src/lcodec/quant.py)."""

from __future__ import annotations

import math

import pytest
import torch

from lcodec.quant import ChannelQuantizer, code_mask, importance_levels, soft_mask

# --- ChannelQuantizer ------------------------------------------------------------------------


def _random_quantizer(channels: int = 4, levels: int = 8, seed: int = 0) -> ChannelQuantizer:
    q = ChannelQuantizer(channels, levels)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        q.steps.copy_(torch.randn(channels, levels, generator=gen) * 0.15)
    return q


def test_centres_are_non_decreasing_even_with_negative_raw_steps() -> None:
    q = _random_quantizer(channels=6, levels=8, seed=1)
    assert (q.steps < 0).any(), "the test needs some negative raw steps"
    c = q.centres()
    assert c.shape == (6, 8)
    assert (c[:, 1:] >= c[:, :-1]).all()
    # The centres are the cumulative sums of |s| (eq. 1), not of s.
    assert torch.allclose(c, torch.cumsum(q.steps.detach().abs(), 1))


def test_initial_centres_are_odd_sixteenths_for_eight_levels() -> None:
    q = ChannelQuantizer(channels=3, levels=8)
    expected = torch.tensor([(2 * t + 1) / 16 for t in range(8)])
    assert torch.allclose(q.centres().detach(), expected.expand(3, 8), atol=1e-7, rtol=0)
    assert q.levels == 8


def test_indices_are_the_argmin_of_the_distance_to_the_centres() -> None:
    q = _random_quantizer(channels=5, levels=8, seed=2)
    gen = torch.Generator().manual_seed(3)
    c = q.centres().detach()
    e = torch.rand(3, 5, 9, 7, generator=gen) * (c.max() + 0.2) - 0.1
    idx = q.indices(e)
    assert idx.dtype == torch.int64
    dist = (e.unsqueeze(2) - c.view(1, 5, 8, 1, 1)).abs()  # (N, n, T, h, w)
    brute = dist.argmin(2)
    assert torch.equal(idx, brute)


def test_dequantized_indices_are_the_nearest_centre() -> None:
    q = _random_quantizer(channels=4, levels=8, seed=4)
    gen = torch.Generator().manual_seed(5)
    e = torch.rand(2, 4, 6, 5, generator=gen)
    c = q.centres().detach()
    deq = q.dequantize(q.indices(e)).detach()
    assert deq.shape == e.shape
    nearest = (e.unsqueeze(2) - c.view(1, 4, 8, 1, 1)).abs().min(2).values
    assert torch.allclose((deq - e).abs(), nearest, atol=1e-7, rtol=0)
    # Every dequantized value is one of its own channel's centres.
    for k in range(4):
        assert torch.isin(deq[:, k], c[k]).all()


def test_forward_is_quantized_but_its_gradient_is_the_identity() -> None:
    q = _random_quantizer(channels=3, levels=8, seed=6)
    gen = torch.Generator().manual_seed(7)
    e = torch.rand(2, 3, 4, 5, generator=gen).requires_grad_(True)
    z, idx, _ = q(e)
    assert torch.allclose(z.detach(), q.dequantize(idx).detach(), atol=1e-6, rtol=0)
    assert not torch.allclose(z.detach(), e.detach())
    upstream = torch.randn(z.shape, generator=gen)
    z.backward(upstream)
    assert e.grad is not None
    assert torch.equal(e.grad, upstream)


def test_quantization_loss_reaches_the_steps_but_not_the_input() -> None:
    q = _random_quantizer(channels=3, levels=8, seed=8)
    gen = torch.Generator().manual_seed(9)
    e = torch.rand(2, 3, 4, 5, generator=gen).requires_grad_(True)
    _, idx, loss = q(e)
    expected = torch.mean((q.dequantize(idx).detach() - e.detach()) ** 2)
    assert torch.allclose(loss.detach(), expected)
    g_steps, g_e = torch.autograd.grad(loss, [q.steps, e], allow_unused=True)
    assert g_e is None or not g_e.any()
    assert g_steps is not None and g_steps.abs().sum() > 0


def test_reinit_dead_levels_resets_a_channel_whose_top_levels_went_unused() -> None:
    q = ChannelQuantizer(channels=2, levels=8, patience=3)
    q.train()
    gen = torch.Generator().manual_seed(10)
    before = q.centres().detach().clone()
    resets = []
    for _ in range(3):
        e = torch.rand(1, 2, 32, 32, generator=gen)
        e[:, 0] *= 0.3  # channel 0 only ever uses levels 0..2
        q(e)
        resets.append(q.reinit_dead_levels())
    assert resets == [0, 0, 1]
    after = q.centres().detach()
    assert q.steps.shape == (2, 8) and after.shape == (2, 8)
    assert (after[:, 1:] >= after[:, :-1]).all()
    # Channel 0 changed and its dead levels moved into the used range; channel 1 untouched.
    assert not torch.allclose(after[0], before[0])
    assert torch.equal(after[1], before[1])
    assert after[0, -1] < before[0, -1]
    assert torch.allclose(after[0, :2], before[0, :2])
    assert torch.allclose(after[0, -1], before[0, 2], atol=1e-6, rtol=0)
    # All eight levels are distinct again (none collapsed onto another).
    assert (after[0, 1:] > after[0, :-1]).all()


def test_reinit_dead_levels_does_nothing_while_all_levels_are_in_use() -> None:
    q = ChannelQuantizer(channels=3, levels=8, patience=3)
    q.train()
    gen = torch.Generator().manual_seed(11)
    before = q.steps.detach().clone()
    for _ in range(6):
        q(torch.rand(1, 3, 32, 32, generator=gen))
        assert q.reinit_dead_levels() == 0
    assert torch.equal(q.steps.detach(), before)


# --- importance levels and masks -------------------------------------------------------------


def test_importance_levels_are_floor_of_l_times_p_within_range() -> None:
    gen = torch.Generator().manual_seed(12)
    p = torch.rand(2, 1, 9, 13, generator=gen)
    qi = importance_levels(p, 16)
    assert qi.dtype == torch.int64
    assert qi.min() >= 0 and qi.max() <= 15
    assert torch.equal(qi, torch.floor(p * 16).long())


def test_importance_levels_at_the_edges() -> None:
    p = torch.tensor([0.0, 1 / 16, 0.5, 15 / 16, 0.999999, 1.0]).view(1, 1, 1, 6)
    assert importance_levels(p, 16).flatten().tolist() == [0, 1, 8, 15, 15, 15]


def _all_qi(levels: int = 16) -> torch.Tensor:
    return torch.arange(levels).view(1, 1, 1, levels)


def test_code_mask_is_a_prefix_along_channels() -> None:
    gen = torch.Generator().manual_seed(13)
    qi = torch.randint(0, 16, (2, 1, 7, 11), generator=gen)
    for n in (32, 8):
        m = code_mask(qi, n, 16)
        assert m.dtype == torch.bool and m.shape == (2, n, 7, 11)
        assert (m[:, :-1] >= m[:, 1:]).all()


def test_code_mask_keeps_two_luma_channels_per_importance_level() -> None:
    qi = _all_qi()
    m = code_mask(qi, 32, 16)
    kept = m.sum(1).flatten()
    assert kept.tolist() == [2 * v for v in range(16)]
    assert kept[0] == 0
    assert kept[15] == 30


def test_code_mask_for_chroma_keeps_ceil_of_n_qi_over_l() -> None:
    qi = _all_qi()
    kept = code_mask(qi, 8, 16).sum(1).flatten().tolist()
    assert kept == [math.ceil(8 * v / 16) for v in range(16)]


def test_chroma_mask_is_never_set_where_luma_channel_0_is_unset() -> None:
    gen = torch.Generator().manual_seed(14)
    qi = torch.randint(0, 16, (1, 1, 12, 12), generator=gen)
    luma0 = code_mask(qi, 32, 16)[:, 0]
    chroma = code_mask(qi, 8, 16)
    assert not (chroma & ~luma0.unsqueeze(1)).any()


@pytest.mark.parametrize("channels", [32, 8])
def test_soft_mask_forward_equals_hard_mask_exactly(channels: int) -> None:
    gen = torch.Generator().manual_seed(15)
    edges = torch.arange(17, dtype=torch.float32) / 16
    p = torch.cat([torch.rand(100, generator=gen), edges, edges - 1e-7]).clamp(0, 1)
    p = p.view(1, 1, 1, -1)
    soft = soft_mask(p, channels, 16)
    hard = code_mask(importance_levels(p, 16), channels, 16)
    assert torch.equal(soft, hard.to(soft.dtype))


def test_soft_mask_has_a_nonzero_gradient_with_respect_to_p() -> None:
    gen = torch.Generator().manual_seed(16)
    p = (torch.rand(1, 1, 5, 6, generator=gen) * 0.98 + 0.01).requires_grad_(True)
    soft_mask(p, 32, 16).sum().backward()
    assert p.grad is not None
    assert (p.grad > 0).all()
