"""Distances, reducers and the triplet loss built from them, against pytorch-metric-learning's
equivalents (an independent implementation of the same definitions)."""

import itertools
import math

import pytest
import torch
from pytorch_metric_learning import distances as pml_d
from pytorch_metric_learning import losses as pml_l
from pytorch_metric_learning import reducers as pml_r

from dmlkit.distances import Cosine, DotProduct, Euclidean, SquaredEuclidean, make_distance
from dmlkit.losses import BinaryTripletLoss, DenseTripletMarginLoss, LabelTripletLoss, LogRatioLoss
from dmlkit.miners import binary_triplets, dense_triplets, euclidean_label_distance
from dmlkit.reducers import MeanOverPositive, MeanReducer, Reducer, SumReducer, make_reducer

PAIRS = [  # ours, PML's
    (lambda: Euclidean(), lambda: pml_d.LpDistance(normalize_embeddings=False)),
    (lambda: Euclidean(normalize=True), lambda: pml_d.LpDistance()),
    (lambda: SquaredEuclidean(), lambda: pml_d.LpDistance(normalize_embeddings=False, power=2)),
    (lambda: SquaredEuclidean(normalize=True), lambda: pml_d.LpDistance(power=2)),
    (lambda: DotProduct(), lambda: pml_d.DotProductSimilarity(normalize_embeddings=False)),
    (lambda: Cosine(), lambda: pml_d.CosineSimilarity()),
]
REDUCERS = [(MeanReducer, pml_r.MeanReducer), (SumReducer, pml_r.SumReducer),
            (MeanOverPositive, pml_r.AvgNonZeroReducer)]


def data(seed, n=9, dim=4):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, dim, generator=g, dtype=torch.float64), torch.randn(n, 2, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("ours, theirs", PAIRS)
def test_distance_matrices_match_pml(ours, theirs):
    x, _ = data(0)
    y = x[:5] * 3.0
    torch.testing.assert_close(ours().matrix(x), theirs()(x), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(ours().matrix(x, y), theirs()(x, y), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("ours, theirs", REDUCERS)
def test_reducers_match_pml(ours, theirs):
    terms = torch.tensor([0.0, 0.5, 0.0, 2.0, 1.25], dtype=torch.float64)
    loss_dict = {"loss": {"losses": terms, "indices": torch.arange(5), "reduction_type": "element"}}
    want = theirs()(loss_dict, torch.zeros(5, 2), torch.arange(5))
    torch.testing.assert_close(ours()(terms), want.to(terms.dtype))


def test_reducers_by_hand_and_on_empty_input():
    t = torch.tensor([0.0, 1.0, 3.0])
    assert MeanReducer()(t).item() == pytest.approx(4 / 3)
    assert SumReducer()(t).item() == pytest.approx(4.0)
    assert MeanOverPositive()(t).item() == pytest.approx(2.0)
    assert MeanOverPositive()(torch.zeros(4)).item() == 0.0
    for r in (MeanReducer(), SumReducer(), MeanOverPositive()):
        assert r(torch.zeros(0)).item() == 0.0
    with pytest.raises(ValueError, match="1-D"):
        MeanReducer()(torch.zeros(2, 2))
    with pytest.raises(ValueError, match="unknown reducer"):
        make_reducer("median")
    with pytest.raises(ValueError, match="unknown distance"):
        make_distance("manhattan")
    assert isinstance(make_distance({"name": "squared_euclidean", "normalize": True}), SquaredEuclidean)


@pytest.mark.parametrize("miner", ["binary", "dense"])
@pytest.mark.parametrize("ours_d, theirs_d", PAIRS)
@pytest.mark.parametrize("ours_r, theirs_r", REDUCERS)
def test_label_triplet_loss_is_pml_triplet_margin_loss(miner, ours_d, theirs_d, ours_r, theirs_r):
    x, y = data(1)
    ld = euclidean_label_distance(y, y)
    idx = binary_triplets(ld, 3) if miner == "binary" else dense_triplets(ld)
    margin = 0.3
    got = LabelTripletLoss(margin, miner, k=3, distance=ours_d(), reducer=ours_r())(x, y)
    want = pml_l.TripletMarginLoss(margin=margin, distance=theirs_d(), reducer=theirs_r())(
        x, torch.arange(len(x)), indices_tuple=idx)
    torch.testing.assert_close(got, want, rtol=1e-7, atol=1e-9)


def test_defaults_reproduce_the_previous_pml_based_losses():
    """Before the distances/reducers existed, both baselines were PML's default TripletMarginLoss on
    the mined triplets: the defaults must give those numbers (float32, as in training)."""
    x, y = (t.float() for t in data(2, n=16, dim=8))
    ld = euclidean_label_distance(y, y)
    old_binary = pml_l.TripletMarginLoss(margin=0.2)(x, torch.arange(16), indices_tuple=binary_triplets(ld, 5))
    old_dense = pml_l.TripletMarginLoss(margin=0.05)(x, torch.arange(16), indices_tuple=dense_triplets(ld))
    torch.testing.assert_close(BinaryTripletLoss()(x, y), old_binary, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(DenseTripletMarginLoss()(x, y), old_dense, rtol=1e-6, atol=1e-7)


class TermsMean(Reducer):
    """A mean that needs the terms: forces the log-ratio loss's explicit evaluation."""

    def _reduce(self, terms):
        return terms.mean()


def naive_log_ratio_terms(f, y, anchors):
    out = []
    d = lambda u, v: float(((u - v) ** 2).sum())  # noqa: E731
    for a in anchors:
        for i, j in itertools.combinations([k for k in range(len(f)) if k != a], 2):
            lf = math.log(d(f[a], f[i]) + 1e-6) - math.log(d(f[a], f[j]) + 1e-6)
            ly = math.log(d(y[a], y[i]) + 1e-6) - math.log(d(y[a], y[j]) + 1e-6)
            out.append((lf - ly) ** 2)
    return out


@pytest.mark.parametrize("anchors", ["all", "first"])
def test_log_ratio_reducers_agree_with_the_explicit_terms(anchors):
    f, y = data(3, n=7)
    terms = naive_log_ratio_terms(f, y, range(7) if anchors == "all" else [0])
    default = LogRatioLoss(anchors=anchors)(f, y).item()
    assert default == pytest.approx(sum(terms) / len(terms), rel=1e-9)
    assert LogRatioLoss(anchors=anchors, reducer=TermsMean())(f, y).item() == pytest.approx(default, rel=1e-9)
    assert LogRatioLoss(anchors=anchors, reducer=SumReducer())(f, y).item() == pytest.approx(sum(terms), rel=1e-9)
    positive = [t for t in terms if t > 0]
    assert LogRatioLoss(anchors=anchors, reducer="mean_over_positive")(f, y).item() == pytest.approx(
        sum(positive) / len(positive), rel=1e-9)


def test_log_ratio_takes_distance_objects():
    f, y = data(4, n=6)
    assert LogRatioLoss(distance=Euclidean())(f, y).item() == LogRatioLoss(distance="euclidean")(f, y).item()
    assert LogRatioLoss(distance=SquaredEuclidean(normalize=True))(f, y).item() == \
        LogRatioLoss(normalize_embeddings=True)(f, y).item()
    assert LogRatioLoss(distance="euclidean").label_power == 1 and LogRatioLoss().label_power == 2
    with pytest.raises(ValueError, match="distance"):
        LogRatioLoss(distance=Cosine())


def test_similarity_reverses_the_hinge():
    # anchor 0; 1 is the label neighbour. Embedding 1 is parallel to 0, 2 orthogonal: no violation
    # with cosine (similar = closer), a full margin violation if the direction were not reversed.
    x = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]])
    y = torch.tensor([[0.0], [0.1], [5.0]])
    loss = LabelTripletLoss(0.1, "binary", k=1, anchors="first", distance=Cosine(), reducer=MeanReducer())
    assert loss(x, y).item() == 0.0
    x_bad = x[[0, 2, 1]]  # now the label neighbour is orthogonal: 1 - 0 + 0.1
    assert loss(x_bad, y).item() == pytest.approx(1.1)


def test_config_names_build_the_objects():
    """A YAML config names distances and reducers; the trainer's builder passes them to the loss."""
    from dmlkit.builders import Data, build_loss
    from dmlkit.config import load_config

    cfg = load_config(None, ["loss.name=label_triplet", "loss.params.margin=0.1", "loss.params.miner=dense",
                             "loss.params.distance={name: squared_euclidean, normalize: true}",
                             "loss.params.reducer=mean", "data.name=npy"])
    x, y = data(5)
    d = Data(x.float(), y.float(), x.float(), y.float(), continuous=True)
    step = build_loss(cfg, None, d)
    assert isinstance(step.module.distance, SquaredEuclidean) and step.module.distance.normalize
    assert isinstance(step.module.reducer, MeanReducer)
    want = LabelTripletLoss(0.1, "dense", distance=SquaredEuclidean(normalize=True), reducer=MeanReducer())(x, y)
    assert step.module(x, y).item() == pytest.approx(want.item(), rel=1e-12)
