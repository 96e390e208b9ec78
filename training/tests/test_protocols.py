"""The paper's protocol (Kim et al. CVPR 2019, official code) as configs: batches, loss values on
hand-checkable cases, the optimiser schedule, and a few training steps of each."""

import math

import numpy as np
import pytest
import torch

from dmlkit.experiments import people
from dmlkit.experiments.people_labels import CaptionLabels
from dmlkit.experiments.protocols import PROTOCOLS, label_power, make_optimizer
from dmlkit.miners import PaperBinaryBatchSampler as OldPath, positional_triplets
from dmlkit.samplers import PaperBinaryBatchSampler


def test_positional_triplets_pair_every_positive_with_every_negative():
    a, p, q = positional_triplets(5, 2)
    assert list(zip(a.tolist(), p.tolist(), q.tolist())) == [(0, 1, 3), (0, 1, 4), (0, 2, 3), (0, 2, 4)]
    assert len(positional_triplets(150, 5)[0]) == 5 * 144  # the paper's 720 triplets
    with pytest.raises(ValueError, match="positives"):
        positional_triplets(4, 3)


def test_paper_binary_batches_take_positives_from_the_global_top_and_negatives_beyond():
    g = torch.Generator().manual_seed(0)
    y = torch.randn(80, 2, generator=g, dtype=torch.float64)
    sampler = PaperBinaryBatchSampler(y, batch_size=20, positives=3, top=10, num_batches=12, seed=1)
    assert OldPath is PaperBinaryBatchSampler
    d = torch.cdist(y, y)
    batches = list(sampler)
    assert len(batches) == 12 and len({b[0] for b in batches}) == 12
    for b in batches:
        assert len(b) == 20 and len(set(b)) == 20
        anchor = b[0]
        rank = {int(j): r for r, j in enumerate(torch.argsort(d[anchor], stable=True).tolist())}  # rank 0 = self
        assert all(1 <= rank[i] <= 10 for i in b[1:4])
        assert all(rank[i] > 10 for i in b[4:])
    assert batches == list(sampler)  # same epoch, same batches
    sampler.set_epoch(1)
    assert batches != list(sampler)
    with pytest.raises(ValueError, match="negatives"):
        PaperBinaryBatchSampler(y[:25], batch_size=20, positives=3, top=10)
    with pytest.raises(ValueError, match="positives"):
        PaperBinaryBatchSampler(y, batch_size=20, positives=11, top=10)


def test_paper_binary_loss_is_the_mean_over_all_triplets_of_a_squared_hinge():
    loss = PROTOCOLS["paper_binary"].loss()
    # anchor, 1 positive, 2 negatives (unit vectors after normalisation): d^2(a, p) = 2; d^2(a, n1) = 4
    # gives [2 - 4 + 0.2]_+ = 0; d^2(a, n2) = 0 gives 2 - 0 + 0.2 = 2.2. Mean over both triplets: 1.1
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [3.0, 0.0]], dtype=torch.float64)
    one_positive = type(loss)(0.2, "positional", positives=1, distance=loss.distance, reducer=loss.reducer)
    assert one_positive(x, label_distances=torch.zeros(4, 4, dtype=torch.float64)).item() == pytest.approx(1.1)
    # the project's variant (mean over violated triplets only) would give 2.2
    assert loss.margin == 0.2 and loss.positives == 5


def test_paper_dense_loss_by_hand():
    loss = PROTOCOLS["paper_dense"].loss()
    y = torch.tensor([[0.0], [1.0], [2.0], [3.0]], dtype=torch.float64)  # label order from anchor 0: 1 < 2 < 3
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [-1.0, 0.0]], dtype=torch.float64)  # d^2 2, 0, 4
    # triplets (1,2): 2 - 0 + 0.03; (1,3): [2 - 4 + 0.03]_+ = 0; (2,3): [0 - 4 + 0.03]_+ = 0
    assert loss(x, y).item() == pytest.approx(2.03 / 3)


def test_log_ratio_first_uses_plain_distances_of_unnormalised_embeddings():
    loss = PROTOCOLS["log_ratio_first"].loss()
    assert label_power(loss) == 1 and not PROTOCOLS["log_ratio_first"].normalize
    f = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 3.0]], dtype=torch.float64)
    dy = torch.tensor([[0.0, 1.0, 2.0], [1.0, 0.0, 1.0], [2.0, 1.0, 0.0]], dtype=torch.float64)
    # one triplet (0; 1, 2): (log 2/3 - log 1/2)^2; rows 1 and 2 as anchors are not used
    want = (math.log(2 / 3) - math.log(1 / 2)) ** 2
    assert loss(f, label_distances=dy).item() == pytest.approx(want, rel=1e-5)
    normalised = torch.nn.functional.normalize(f[1:], dim=1)
    assert loss(torch.cat([f[:1], normalised]), label_distances=dy).item() != pytest.approx(want, rel=1e-3)


def test_paper_sgd_decays_as_one_over_one_plus_1e4_t():
    w = torch.nn.Parameter(torch.ones(2))
    opt, sched = make_optimizer("paper_sgd", [w], steps=10, lr=0.01)
    assert opt.param_groups[0]["momentum"] == 0.9 and opt.param_groups[0]["weight_decay"] == 5e-4
    for t in range(1, 2001):
        opt.step()
        sched.step()
        if t in (1, 1000, 2000):
            assert opt.param_groups[0]["lr"] == pytest.approx(0.01 / (1 + 1e-4 * t), rel=1e-12)
    with pytest.raises(ValueError, match="optimizer"):
        make_optimizer("rmsprop", [w], 10, 0.01)


@pytest.mark.parametrize("name", sorted(PROTOCOLS))
def test_each_protocol_trains_a_few_steps(name):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(200, 16, 16, 3), dtype=np.uint8)
    v = rng.normal(size=(200, 6))
    labels = CaptionLabels(v / np.linalg.norm(v, axis=1, keepdims=True))
    model, info = people.train(images, labels, dim=4, steps=3, seed=0, width=4, protocol=name, log=lambda m: None)
    assert math.isfinite(info["final_loss"]) and info["final_loss"] > 0
    e = people.embed(model, images[:5])
    norms = np.linalg.norm(e, axis=1)
    if PROTOCOLS[name].normalize:
        assert np.allclose(norms, 1.0)
    else:
        assert not np.allclose(norms, 1.0)
    with pytest.raises(ValueError, match="protocol"):
        people.train(images, labels, dim=4, steps=1, seed=0, protocol="paper_magic")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without CUDA")
def test_cuda_without_cuda_is_a_clear_error():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(20, 16, 16, 3), dtype=np.uint8)
    labels = CaptionLabels(np.eye(20))
    with pytest.raises(ValueError, match="CUDA"):
        people.train(images, labels, dim=4, steps=1, seed=0, batch=8, k=2, width=4, device="cuda")


def test_a_protocol_optimizer_keeps_the_batches_and_loss_and_swaps_only_the_optimizer(monkeypatch):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(200, 16, 16, 3), dtype=np.uint8)
    v = rng.normal(size=(200, 6))
    labels = CaptionLabels(v / np.linalg.norm(v, axis=1, keepdims=True))
    made, batches = [], []
    real_optimizer, real_loss = people.make_optimizer, PROTOCOLS["paper_binary"].loss

    def record_optimizer(name, parameters, steps, lr):
        made.append((name, lr))
        return real_optimizer(name, parameters, steps, lr)

    monkeypatch.setattr(people, "make_optimizer", record_optimizer)
    for chosen in (None, "paper_sgd", "adam_cosine"):
        torch.manual_seed(0)
        model, _ = people.train(images, labels, dim=4, steps=2, seed=0, width=4, protocol="paper_binary",
                                protocol_optimizer=chosen, log=lambda m: None)
        batches.append(people.embed(model, images[:3]))
    assert made == [("paper_sgd", 0.01), ("paper_sgd", 0.01), ("adam_cosine", 1e-3)]
    assert np.array_equal(batches[0], batches[1]) and not np.allclose(batches[0], batches[2])
    assert real_loss is PROTOCOLS["paper_binary"].loss  # the protocol itself is unchanged
