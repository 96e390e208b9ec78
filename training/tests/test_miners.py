import itertools

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from dmlkit.losses import BinaryTripletLoss, DenseTripletMarginLoss
from dmlkit.miners import DenseTripletBatchSampler, binary_triplets, dense_triplets, label_neighbours


def brute_neighbours(y, k):
    out = []
    for a in range(len(y)):
        d = [(float(torch.dist(y[a], y[i])), i) for i in range(len(y)) if i != a]
        out.append([i for _, i in sorted(d)[:k]])
    return out


def test_label_neighbours_match_brute_force_in_chunks():
    g = torch.Generator().manual_seed(0)
    y = torch.randn(50, 3, generator=g)
    got = label_neighbours(y, 5, chunk=7)
    assert got.tolist() == brute_neighbours(y, 5)


def test_label_neighbours_break_ties_by_index():
    y = torch.tensor([[0.0], [1.0], [1.0], [-1.0], [5.0]])
    assert label_neighbours(y, 3)[0].tolist() == [1, 2, 3]


def test_sampler_batches_are_anchor_neighbours_then_random_others():
    g = torch.Generator().manual_seed(1)
    y = torch.randn(60, 2, generator=g)
    sampler = DenseTripletBatchSampler(y, batch_size=12, k=5, seed=3)
    neighbours = brute_neighbours(y, 5)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 5
    anchors = [b[0] for b in batches]
    assert len(set(anchors)) == len(anchors)  # no anchor twice in one epoch
    for b in batches:
        assert len(b) == 12 and len(set(b)) == 12
        assert b[1:6] == neighbours[b[0]]
    assert list(sampler) == batches  # same epoch, same batches
    sampler.set_epoch(1)
    assert list(sampler) != batches


def test_sampler_with_groups_holds_each_anchor_with_its_neighbours():
    g = torch.Generator().manual_seed(4)
    y = torch.randn(400, 16, generator=g)
    neighbours = label_neighbours(y, 5).tolist()
    assert neighbours[:50] == brute_neighbours(y, 5)[:50]
    sampler = DenseTripletBatchSampler(y, batch_size=32, k=5, seed=1, num_batches=10, groups=4)
    covered_all = []
    for b in sampler:
        assert len(b) == 32 and len(set(b)) == 32
        assert set(neighbours[b[0]]) <= set(b)  # the first anchor leads, as with one group
        # every group's anchor has all its neighbours in the batch (others may by chance)
        covered = [i for i in b if set(neighbours[i]) <= set(b)]
        assert len(covered) >= 4
        covered_all += covered
    assert len(set(covered_all)) >= 40  # anchors are not repeated within the epoch
    one = DenseTripletBatchSampler(y, batch_size=32, k=5, seed=1, num_batches=10)
    assert sum(sum(set(neighbours[i]) <= set(b) for i in b) for b in one) < sum(map(len, [covered_all])) / 2
    with pytest.raises(ValueError, match="groups"):
        DenseTripletBatchSampler(y, batch_size=24, k=5, groups=4)


def test_one_group_is_the_default_sampler():
    y = torch.randn(50, 2)
    assert list(DenseTripletBatchSampler(y, batch_size=12, k=5, seed=2, groups=1)) == \
        list(DenseTripletBatchSampler(y, batch_size=12, k=5, seed=2))


def test_sampler_works_with_a_standard_dataloader():
    y = torch.randn(40, 2)
    data = TensorDataset(torch.randn(40, 4), y)
    loader = DataLoader(data, batch_sampler=DenseTripletBatchSampler(y, batch_size=8, k=5, num_batches=7))
    shapes = [(x.shape, lab.shape) for x, lab in loader]
    assert shapes == [((8, 4), (8, 2))] * 7


def test_sampler_rejects_bad_sizes():
    y = torch.randn(10, 2)
    with pytest.raises(ValueError, match="batch_size"):
        DenseTripletBatchSampler(y, batch_size=6, k=5)
    with pytest.raises(ValueError, match="exceeds"):
        DenseTripletBatchSampler(y, batch_size=11, k=5)
    with pytest.raises(ValueError, match="NaN"):
        DenseTripletBatchSampler(torch.tensor([[0.0], [float("nan")]] * 5), batch_size=7, k=5)


def test_dense_and_binary_triplets_match_loops():
    g = torch.Generator().manual_seed(2)
    y = torch.randn(7, 2, generator=g)
    d = torch.cdist(y, y)
    got = set(zip(*[t.tolist() for t in dense_triplets(d)]))
    want = {(a, i, j) for a, i, j in itertools.permutations(range(7), 3) if d[a, i] < d[a, j]}
    assert got == want
    got_first = set(zip(*[t.tolist() for t in dense_triplets(d, anchors="first")]))
    assert got_first == {t for t in want if t[0] == 0}
    nn = brute_neighbours(y, 2)
    got_b = set(zip(*[t.tolist() for t in binary_triplets(d, k=2)]))
    want_b = {(a, p, q) for a in range(7) for p in nn[a] for q in range(7) if q != a and q not in nn[a]}
    assert got_b == want_b


def loop_triplet_loss(x, triplets, margin):
    """Mean over non-zero hinge terms (PML's AvgNonZeroReducer) on L2-normalised embeddings."""
    x = torch.nn.functional.normalize(x, dim=1)
    terms = [max(0.0, float(torch.dist(x[a], x[p]) - torch.dist(x[a], x[q])) + margin) for a, p, q in triplets]
    nonzero = [t for t in terms if t > 0]
    return sum(nonzero) / len(nonzero) if nonzero else 0.0


def test_triplet_baselines_are_pml_triplet_margin_loss_on_mined_triplets():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(8, 4, generator=g)
    y = torch.randn(8, 2, generator=g)
    d = torch.cdist(y, y)
    dense = [(a, i, j) for a, i, j in itertools.permutations(range(8), 3) if d[a, i] < d[a, j]]
    assert DenseTripletMarginLoss(margin=0.1)(x, y).item() == pytest.approx(loop_triplet_loss(x, dense, 0.1), rel=1e-5)
    nn = brute_neighbours(y, 3)
    binary = [(a, p, q) for a in range(8) for p in nn[a] for q in range(8) if q != a and q not in nn[a]]
    assert BinaryTripletLoss(k=3, margin=0.2)(x, y).item() == pytest.approx(loop_triplet_loss(x, binary, 0.2), rel=1e-5)
