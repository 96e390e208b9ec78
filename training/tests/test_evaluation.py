import math

import numpy as np
import pytest
import torch
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
from pytorch_metric_learning.utils.inference import CustomKNN
from pytorch_metric_learning.distances import LpDistance

from dmlkit.evaluation import class_metrics, graded_metrics


def pml(query, labels, reference=None, reference_labels=None):
    calc = AccuracyCalculator(include=("precision_at_1", "mean_average_precision_at_r", "r_precision"),
                              device=torch.device("cpu"),
                              knn_func=CustomKNN(LpDistance(normalize_embeddings=False)))
    return calc.get_accuracy(torch.as_tensor(query), torch.as_tensor(labels),
                             None if reference is None else torch.as_tensor(reference),
                             None if reference_labels is None else torch.as_tensor(reference_labels))


@pytest.mark.parametrize("seed,n,classes,dim", [(0, 60, 5, 4), (1, 200, 17, 8), (2, 40, 2, 2)])
def test_matches_pytorch_metric_learning_accuracy_calculator(seed, n, classes, dim):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    x = (rng.normal(size=(n, dim)) + labels[:, None] * 0.5).astype(np.float32)
    ours = class_metrics(x, labels)
    ref = pml(x, labels)
    assert ours["recall@1"] == pytest.approx(ref["precision_at_1"], abs=1e-9)
    assert ours["map@r"] == pytest.approx(ref["mean_average_precision_at_r"], abs=1e-9)
    assert ours["r_precision"] == pytest.approx(ref["r_precision"], abs=1e-9)
    assert 0 < ours["map@r"] < 1


def test_separate_query_and_reference_sets_match_pml():
    rng = np.random.default_rng(5)
    q = rng.normal(size=(30, 3)).astype(np.float32)
    ql = rng.integers(0, 4, 30)
    r = rng.normal(size=(50, 3)).astype(np.float32)
    rl = rng.integers(0, 4, 50)
    ours = class_metrics(q, ql, r, rl)
    ref = pml(q, ql, r, rl)
    assert ours["recall@1"] == pytest.approx(ref["precision_at_1"], abs=1e-9)
    assert ours["map@r"] == pytest.approx(ref["mean_average_precision_at_r"], abs=1e-9)


def test_hand_computed_class_metrics():
    # 1-D points: query 0 at 0.0 (class a); ranking from it: 1 (b), 2 (a), 3 (a), 4 (b)
    x = np.array([[0.0], [1.0], [2.0], [3.0], [4.0]])
    labels = np.array([0, 1, 0, 0, 1])
    m = class_metrics(x[:1], labels[:1], x[1:], labels[1:], ks=(1, 2))
    # R = 2 relevant items; top-2 = [b, a]: r_precision = 1/2; MAP@R = (0 + 1/2) / 2
    assert m["recall@1"] == 0.0 and m["recall@2"] == 1.0
    assert m["r_precision"] == pytest.approx(0.5)
    assert m["map@r"] == pytest.approx(0.25)


def test_lone_queries_are_skipped_and_bad_input_rejected():
    x = np.array([[0.0], [0.1], [5.0]])
    m = class_metrics(x, [0, 0, 1])
    assert m["num_queries"] == 2 and m["recall@1"] == 1.0
    with pytest.raises(ValueError, match="labels"):
        class_metrics(x, [0, 0])
    with pytest.raises(ValueError, match="NaN"):
        class_metrics(x, [0.0, float("nan"), 1.0])
    with pytest.raises(ValueError, match="no query"):
        class_metrics(x, [0, 1, 2])


def test_graded_metrics_hand_computed():
    # query label 0; retrieval order by embedding: items with label distances 2, 0.5, 1
    q = np.array([[0.0]])
    ref = np.array([[1.0], [2.0], [3.0]])
    q_lab = np.array([[0.0]])
    ref_lab = np.array([[2.0], [0.5], [1.0]])
    m = graded_metrics(q, q_lab, ref, ref_lab, ks=(1, 2))
    g = lambda d: 1 / (1 + d)  # noqa: E731
    dcg2 = g(2) + g(0.5) / math.log2(3)
    idcg2 = g(0.5) + g(1) / math.log2(3)
    assert m["ndcg@1"] == pytest.approx(g(2) / g(0.5))
    assert m["ndcg@2"] == pytest.approx(dcg2 / idcg2)
    assert m["label_distance@2"] == pytest.approx(1.25)
    # embedding distance order 1,2,3 vs label distance ranks 3,1,2
    assert m["spearman"] == pytest.approx(-0.5)


def test_graded_metrics_are_perfect_when_embeddings_are_the_labels():
    rng = np.random.default_rng(3)
    y = rng.normal(size=(25, 2))
    m = graded_metrics(y * 3.0, y, ks=(1, 5))
    assert m["ndcg@1"] == pytest.approx(1.0) and m["ndcg@5"] == pytest.approx(1.0)
    assert m["spearman"] == pytest.approx(1.0)
    worse = graded_metrics(rng.normal(size=(25, 2)), y, ks=(1, 5))
    assert worse["ndcg@5"] < 1.0 and worse["label_distance@5"] > m["label_distance@5"]
