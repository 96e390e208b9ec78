"""Degenerate batches never give NaN; bad input gives a ValueError that names the problem."""

import pytest
import torch

from dmlkit.losses import (BinaryTripletLoss, DenseTripletMarginLoss, IntraClassRankingLoss, LogRatioLoss,
                           MultiHeadRankedListLoss, RankedListLoss)


def finite_loss_and_grad(fn, x):
    x = x.clone().requires_grad_(True)
    value = fn(x)
    value.backward()
    assert torch.isfinite(value), value
    assert torch.isfinite(x.grad).all()
    return value.item()


def test_rll_single_class_has_only_the_positive_part():
    x = torch.randn(6, 4)
    labels = torch.zeros(6, dtype=torch.long)
    v = finite_loss_and_grad(lambda e: RankedListLoss(imbalance=1.0)(e, labels), x)
    assert v == 0.0  # no negatives at all
    finite_loss_and_grad(lambda e: RankedListLoss()(e, labels), x)


def test_rll_all_equal_embeddings():
    x = torch.ones(6, 4)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    v = finite_loss_and_grad(lambda e: RankedListLoss()(e, labels), x)
    # every negative sits at d = 0 < alpha: L_N = alpha, positives are inside the boundary: L_P = 0
    assert v == pytest.approx(0.5 * 1.2)


def test_rll_batch_of_two():
    x = torch.randn(2, 3)
    assert finite_loss_and_grad(lambda e: RankedListLoss()(e, torch.tensor([0, 1])), x) >= 0
    assert finite_loss_and_grad(lambda e: RankedListLoss()(e, torch.tensor([4, 4])), x) >= 0
    finite_loss_and_grad(lambda e: MultiHeadRankedListLoss([1, 2])(e, torch.tensor([0, 1])), x)


def test_log_ratio_duplicate_labels_and_equal_embeddings_stay_finite():
    y = torch.tensor([[0.0], [0.0], [1.0], [2.0]])  # samples 0 and 1 share a label: D_y = 0
    finite_loss_and_grad(lambda e: LogRatioLoss()(e, y), torch.randn(4, 3))
    finite_loss_and_grad(lambda e: LogRatioLoss()(e, y), torch.ones(4, 3))
    finite_loss_and_grad(lambda e: LogRatioLoss(distance="euclidean")(e, y), torch.ones(4, 3))
    same = torch.zeros(4, 2)
    assert finite_loss_and_grad(lambda e: LogRatioLoss()(e, same), torch.ones(4, 3)) == 0.0


def test_dense_and_binary_triplet_baselines_on_degenerate_batches():
    y = torch.zeros(5, 2)  # all labels equal: no strict dense triplet exists
    v = finite_loss_and_grad(lambda e: DenseTripletMarginLoss()(e, y), torch.randn(5, 3))
    assert v == 0.0
    finite_loss_and_grad(lambda e: BinaryTripletLoss(k=1)(e, torch.randn(5, 2)), torch.ones(5, 3))


def test_intra_class_all_equal_features():
    finite_loss_and_grad(lambda r: IntraClassRankingLoss()(lambda z: z, r), torch.ones(3, 4))


@pytest.mark.parametrize("loss", [RankedListLoss(), LogRatioLoss()])
def test_wrong_embedding_shapes(loss):
    labels = torch.tensor([0, 1, 0])
    with pytest.raises(ValueError, match="2-D"):
        loss(torch.randn(3), labels)
    with pytest.raises(ValueError, match="at least"):
        loss(torch.randn(1, 3), labels[:1])
    with pytest.raises(ValueError, match="NaN"):
        loss(torch.tensor([[0.0, float("nan")], [1.0, 0.0], [0.0, 1.0]]), labels)
    with pytest.raises(ValueError, match="floating"):
        loss(torch.ones(3, 2, dtype=torch.long), labels)


def test_wrong_or_nan_labels():
    x = torch.randn(4, 3)
    with pytest.raises(ValueError, match="NaN"):
        RankedListLoss()(x, torch.tensor([0.0, float("nan"), 1.0, 1.0]))
    with pytest.raises(ValueError, match="4 embeddings"):
        RankedListLoss()(x, torch.tensor([0, 1, 1]))
    with pytest.raises(ValueError, match="1-D"):
        RankedListLoss()(x, torch.zeros(4, 2))
    with pytest.raises(ValueError, match="NaN"):
        LogRatioLoss()(x, torch.tensor([[0.0], [float("nan")], [1.0], [2.0]]))
    with pytest.raises(ValueError, match="rows"):
        LogRatioLoss()(x, torch.zeros(3, 2))


def test_bad_hyperparameters():
    with pytest.raises(ValueError, match="imbalance"):
        RankedListLoss(imbalance=1.5)
    with pytest.raises(ValueError, match="distance"):
        LogRatioLoss(distance="cosine")
    with pytest.raises(ValueError, match="anchors"):
        LogRatioLoss(anchors="some")
