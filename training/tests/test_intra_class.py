import pytest
import torch

from dmlkit.losses import IntraClassRankingLoss


def test_synthesized_samples_lie_on_one_ray_at_increasing_intensity():
    g = torch.Generator().manual_seed(0)
    r = torch.randn(5, 7, generator=g, dtype=torch.float64)
    loss = IntraClassRankingLoss(levels=4, step=0.1)
    s = loss.synthesize(r, torch.Generator().manual_seed(1))
    assert s.shape == (4, 5, 7)
    offsets = s - r.unsqueeze(0)
    norms = offsets.norm(dim=-1)
    expected = torch.arange(1, 5, dtype=torch.float64).view(-1, 1) * 0.1 * r.norm(dim=1)
    assert torch.allclose(norms, expected, atol=1e-12)
    # same direction at every intensity
    unit = offsets / norms.unsqueeze(-1)
    assert torch.allclose(unit, unit[:1].expand_as(unit), atol=1e-12)
    absolute = IntraClassRankingLoss(levels=2, step=0.5, relative_step=False).synthesize(r)
    assert torch.allclose((absolute - r).norm(dim=-1), torch.tensor([[0.5], [1.0]], dtype=torch.float64).expand(2, 5))


def test_ranking_loss_hand_computed():
    # one sample; embeddings at chord distances 0.3, 0.2, 0.5 from the original (order violated once)
    import math

    def at(deg):
        t = math.radians(deg)
        return torch.tensor([[math.cos(t), math.sin(t)]], dtype=torch.float64)

    chord = lambda deg: 2 * math.sin(math.radians(deg) / 2)  # noqa: E731
    degs = [30.0, 20.0, 60.0]
    original = at(0.0)
    synth = torch.stack([at(d) for d in degs])
    m = 0.05
    d = [0.0] + [chord(x) for x in degs]
    expected = sum(max(0.0, d[j] - d[j + 1] + m) for j in range(3)) / 3
    got = IntraClassRankingLoss(levels=3, margin=m).ranking_loss(original, synth).item()
    assert got == pytest.approx(expected, abs=1e-12)
    assert got > 0


def test_identity_head_keeps_the_order_so_loss_is_zero_without_margin():
    g = torch.Generator().manual_seed(2)
    r = torch.randn(8, 5, generator=g, dtype=torch.float64)
    loss = IntraClassRankingLoss(levels=3, step=0.1, margin=0.0)
    assert loss(lambda z: z, r, generator=torch.Generator().manual_seed(3)).item() == 0.0


def test_collapsing_head_is_penalised():
    r = torch.randn(8, 5, dtype=torch.float64)
    loss = IntraClassRankingLoss(levels=3, margin=0.02)
    # a head that ignores its input: every synthesized sample lands on the original
    constant = loss(lambda z: torch.ones(len(z), 4, dtype=z.dtype) + 0 * z.sum(1, keepdim=True), r)
    assert constant.item() == pytest.approx(0.02, abs=1e-12)


def test_gradcheck_through_a_linear_head():
    g = torch.Generator().manual_seed(4)
    w = torch.randn(5, 3, generator=g, dtype=torch.float64, requires_grad=True)
    r = torch.randn(6, 5, generator=g, dtype=torch.float64, requires_grad=True)
    absolute = IntraClassRankingLoss(levels=3, step=0.3, margin=0.5, relative_step=False)
    relative = IntraClassRankingLoss(levels=3, step=0.3, margin=0.5)

    def f(loss, weight, feats):
        return loss(lambda z: z @ weight, feats, generator=torch.Generator().manual_seed(9))

    assert f(absolute, w, r).item() > 0
    assert torch.autograd.gradcheck(lambda a, b: f(absolute, a, b), (w, r))
    # the relative step size ||r|| is a detached constant, so check the head's weights only there
    assert torch.autograd.gradcheck(lambda a: f(relative, a, r.detach()), (w,))


def test_bad_arguments():
    with pytest.raises(ValueError, match="levels"):
        IntraClassRankingLoss(levels=0)
    with pytest.raises(ValueError, match="step"):
        IntraClassRankingLoss(step=0)
    with pytest.raises(ValueError, match="features"):
        IntraClassRankingLoss()(lambda z: z, torch.randn(4))
