import itertools
import math

import pytest
import torch

from dmlkit.losses import LogRatioLoss


def loop_log_ratio(f, y, eps=1e-6, squared=True, anchors=None):
    """Direct triple loop over (a, i<j): the reference the vectorised loss must equal."""
    n = len(f)
    power = 2 if squared else 1

    def D(u, v):
        return math.sqrt(sum((float(p) - float(q)) ** 2 for p, q in zip(u, v))) ** power

    total, count = 0.0, 0
    for a in anchors if anchors is not None else range(n):
        others = [i for i in range(n) if i != a]
        for i, j in itertools.combinations(others, 2):
            lf = math.log(D(f[a], f[i]) + eps) - math.log(D(f[a], f[j]) + eps)
            ly = math.log(D(y[a], y[i]) + eps) - math.log(D(y[a], y[j]) + eps)
            total += (lf - ly) ** 2
            count += 1
    return total / count


@pytest.mark.parametrize("seed,n,label_dim", [(0, 5, 1), (1, 9, 3), (2, 12, 34)])
def test_matches_direct_loop(seed, n, label_dim):
    g = torch.Generator().manual_seed(seed)
    f = torch.randn(n, 4, generator=g, dtype=torch.float64)
    y = torch.randn(n, label_dim, generator=g, dtype=torch.float64)
    labels = y[:, 0] if label_dim == 1 else y
    got = LogRatioLoss()(f, labels).item()
    assert got == pytest.approx(loop_log_ratio(f.tolist(), y.tolist()), rel=1e-9)
    got_plain = LogRatioLoss(distance="euclidean")(f, labels).item()
    assert got_plain == pytest.approx(loop_log_ratio(f.tolist(), y.tolist(), squared=False), rel=1e-9)
    first = LogRatioLoss(anchors="first")(f, labels).item()
    assert first == pytest.approx(loop_log_ratio(f.tolist(), y.tolist(), anchors=[0]), rel=1e-9)


def test_float32_matches_loop():
    g = torch.Generator().manual_seed(7)
    f = torch.randn(16, 8, generator=g)
    y = torch.rand(16, 2, generator=g)
    assert LogRatioLoss()(f, y).item() == pytest.approx(loop_log_ratio(f.tolist(), y.tolist()), rel=1e-4)


def test_plain_distance_gives_a_quarter_of_squared_away_from_eps():
    g = torch.Generator().manual_seed(4)
    f = torch.randn(8, 3, generator=g, dtype=torch.float64)
    y = torch.randn(8, 2, generator=g, dtype=torch.float64)
    sq = LogRatioLoss(eps=1e-12)(f, y).item()
    plain = LogRatioLoss(distance="euclidean", eps=1e-12)(f, y).item()
    assert plain == pytest.approx(sq / 4, rel=1e-6)


@pytest.mark.parametrize("scale", [0.25, 3.0, 100.0])
def test_invariant_to_label_scaling(scale):
    g = torch.Generator().manual_seed(11)
    f = torch.randn(10, 4, generator=g, dtype=torch.float64)
    y = torch.randn(10, 3, generator=g, dtype=torch.float64)
    loss = LogRatioLoss()
    assert loss(f, y * scale).item() == pytest.approx(loss(f, y).item(), rel=1e-4)
    # and to label translation
    assert loss(f, y + 5.0).item() == pytest.approx(loss(f, y).item(), rel=1e-9)


def test_zero_when_embedding_distances_are_proportional_to_label_distances():
    g = torch.Generator().manual_seed(12)
    y = torch.randn(10, 3, generator=g, dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=torch.float64))
    f = 2.5 * y @ q + 1.0  # rotation, scaling and shift keep distance ratios
    assert LogRatioLoss(eps=1e-12)(f, y).item() < 1e-12
    assert LogRatioLoss(eps=1e-12)(f + 0.3 * torch.randn(10, 3, generator=g, dtype=torch.float64), y).item() > 1e-3


def test_label_distance_matrix_input_equals_vector_labels():
    g = torch.Generator().manual_seed(13)
    f = torch.randn(7, 4, generator=g, dtype=torch.float64)
    y = torch.randn(7, 2, generator=g, dtype=torch.float64)
    dy = torch.cdist(y, y) ** 2
    loss = LogRatioLoss()
    assert loss(f, label_distances=dy).item() == pytest.approx(loss(f, y).item(), rel=1e-9)
    with pytest.raises(ValueError, match="exactly one"):
        loss(f, y, label_distances=dy)
    with pytest.raises(ValueError, match="label_distances"):
        loss(f, label_distances=dy[:3])


def test_gradcheck_float64():
    g = torch.Generator().manual_seed(14)
    f = torch.randn(6, 3, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randn(6, 2, generator=g, dtype=torch.float64)
    for kw in (dict(), dict(distance="euclidean", anchors="first"), dict(normalize_embeddings=True)):
        loss = LogRatioLoss(**kw)
        assert torch.autograd.gradcheck(lambda e: loss(e, y), (f,))
