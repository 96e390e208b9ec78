import math
import warnings

import pytest
import torch
from pytorch_metric_learning.losses import RankedListLoss as PMLRankedListLoss

from dmlkit.losses import MultiHeadRankedListLoss, RankedListLoss


def circle(degrees):
    """Unit vectors at the given angles: chord distance between them is 2 sin(delta / 2)."""
    t = torch.tensor([math.radians(d) for d in degrees], dtype=torch.float64)
    return torch.stack([torch.cos(t), torch.sin(t)], dim=1)


def chord(deg):
    return 2 * math.sin(math.radians(deg) / 2)


HYPERPARAMETERS = [
    dict(margin=0.4, Tn=10.0, Tp=0.0),  # the paper's defaults
    dict(margin=0.4, Tn=3.0, Tp=2.0, imbalance=0.3),
    dict(margin=0.8, Tn=1.0, Tp=1.0, alpha=1.1, imbalance=0.7),
    dict(margin=0.2, Tn=0.0, Tp=0.0),
]


@pytest.mark.parametrize("kwargs", HYPERPARAMETERS)
@pytest.mark.parametrize("batch,classes", [(6, 2), (24, 4), (48, 8)])
def test_matches_pytorch_metric_learning_values_and_gradients(kwargs, batch, classes):
    g = torch.Generator().manual_seed(batch * 31 + classes)
    x = torch.randn(batch, 16, generator=g, requires_grad=True)
    labels = torch.randint(0, classes, (batch,), generator=g)
    labels[:2] = torch.tensor([0, 1])  # at least two classes
    ours = RankedListLoss(eps=1e-5, **kwargs)(x, labels)
    (g_ours,) = torch.autograd.grad(ours, x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PML warns about Tn > 5
        ref = PMLRankedListLoss(**kwargs)(x, labels)
    (g_ref,) = torch.autograd.grad(ref, x)
    assert ours.item() > 0
    assert abs(ours.item() - ref.item()) < 1e-5
    assert torch.allclose(g_ours, g_ref, atol=1e-5, rtol=0)


def test_default_eps_is_the_exact_paper_normalisation_and_close_to_pml():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 8, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 4, (32,), generator=g)
    exact = RankedListLoss()(x, labels)
    smoothed = RankedListLoss(eps=1e-5)(x, labels)
    # PML's eps only enlarges denominators: the smoothed loss is a little smaller, never larger
    assert smoothed < exact
    assert exact - smoothed < 1e-3


def test_hand_computed_mining_of_positive_and_negative_sets():
    # anchor at 0 deg; positives at 30 deg (d=0.518, already inside alpha-m=0.8 -> not in P*)
    # and 90 deg (d=1.414 -> in P*); negatives at 60 deg (d=1.0 < 1.2 -> in N*) and 180 deg (d=2 -> not)
    x = circle([0, 30, 90, 60, 180])
    labels = torch.tensor([0, 0, 0, 1, 1])
    loss = RankedListLoss(margin=0.4, Tn=10.0)
    expected_p = math.sqrt(2) - 0.8
    expected_n = 1.2 - 1.0
    assert loss.per_anchor(x, labels)[0].item() == pytest.approx(0.5 * expected_p + 0.5 * expected_n, abs=1e-12)
    assert loss.alpha == pytest.approx(1.2)


def test_hand_computed_negative_weighting():
    # anchor 0 deg, positive at 20 deg (inside the boundary), negatives at 45 and 60 deg, both in N*
    x = circle([0, 20, 45, 60])
    labels = torch.tensor([0, 0, 1, 1])
    d1, d2 = chord(45), chord(60)
    for tn in (0.0, 10.0, 50.0):  # 50 would overflow without the max shift
        w1, w2 = math.exp(tn * (1.2 - d1) - tn), math.exp(tn * (1.2 - d2) - tn)
        expected_n = (w1 * (1.2 - d1) + w2 * (1.2 - d2)) / (w1 + w2)
        got = RankedListLoss(margin=0.4, Tn=tn, imbalance=1.0).per_anchor(x, labels)[0].item()
        assert got == pytest.approx(expected_n, abs=1e-12)
    # a harder negative gets more weight as Tn grows: the loss moves toward the harder term 1.2 - d1
    losses = [RankedListLoss(Tn=t, imbalance=1.0).per_anchor(x, labels)[0].item() for t in (0.0, 5.0, 20.0)]
    assert losses[0] < losses[1] < losses[2] < 1.2 - d1


def test_hand_computed_positive_weighting():
    # anchor 0 deg, positives at 100 and 150 deg (both in P*), no negatives within alpha
    x = circle([0, 100, 150, 180])
    labels = torch.tensor([0, 0, 0, 1])
    b = 0.8
    p1, p2 = chord(100) - b, chord(150) - b
    tp = 2.0
    expected = (math.exp(tp * p1) * p1 + math.exp(tp * p2) * p2) / (math.exp(tp * p1) + math.exp(tp * p2))
    got = RankedListLoss(Tp=tp, imbalance=0.0).per_anchor(x, labels)[0].item()
    assert got == pytest.approx(expected, abs=1e-12)
    uniform = RankedListLoss(Tp=0.0, imbalance=0.0).per_anchor(x, labels)[0].item()
    assert uniform == pytest.approx((p1 + p2) / 2, abs=1e-12)


def test_loss_is_zero_when_the_ranking_is_satisfied():
    # classes far apart (180 deg, d=2 > alpha) and tight (5 deg, d=0.087 < alpha - m)
    x = circle([0, 5, 180, 185])
    labels = torch.tensor([0, 0, 1, 1])
    assert RankedListLoss()(x, labels).item() == 0.0


def test_gradcheck_float64():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(6, 3, generator=g, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    for kw in (dict(), dict(Tp=1.0, Tn=3.0, imbalance=0.3)):
        loss = RankedListLoss(**kw)
        assert torch.autograd.gradcheck(lambda e: loss(e, labels), (x,))


def test_multi_head_is_the_mean_of_per_head_losses():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(16, 12, generator=g)
    labels = torch.randint(0, 3, (16,), generator=g)
    multi = MultiHeadRankedListLoss([4, 8], Tn=5.0)(x, labels)
    single = RankedListLoss(Tn=5.0)
    expected = (single(x[:, :4], labels) + single(x[:, 4:], labels)) / 2
    assert multi.item() == pytest.approx(expected.item(), abs=1e-6)
    with pytest.raises(ValueError, match="head_dims"):
        MultiHeadRankedListLoss([4, 4])(x, labels)


def test_collapsed_negative_is_pushed_unlike_pml():
    # documented difference: a negative at distance exactly 0 is in N* here (PML drops it)
    x = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]], requires_grad=True)
    labels = torch.tensor([0, 1, 0, 1])
    ours = RankedListLoss(imbalance=1.0).per_anchor(x, labels)
    assert ours[0].item() == pytest.approx(1.2 - 0.0, abs=1e-6)  # its only hard negative is at d = 0
