"""Training protocols of the people experiment: which batches, which loss, which optimiser.

The ``--loss`` rows of :mod:`dmlkit.experiments.people` are this project's own variants (batch 32,
every sample an anchor, Adam with cosine decay). The protocols here follow the official code of Kim
et al., "Deep Metric Learning Beyond Binary Supervision" (CVPR 2019), so that the paper's comparison
can be run as the paper ran it:

``paper_binary``
    The binary-supervision baseline: batch of 150 = one anchor, 5 positives drawn from its global
    top 30 in label space, 144 negatives from beyond rank 30; triplet loss on (anchor, each positive,
    each negative) = 720 triplets, margin 0.2 on squared Euclidean distances of L2-normalised
    embeddings, mean over all triplets (zeros included).
``paper_dense``
    Dense triplets on the paper's batches (anchor + its 5 label-space nearest + 144 random): every
    (anchor, i, j) with D(y_a, y_i) < D(y_a, y_j), margin 0.03 squared, mean over all triplets, the
    first sample the only anchor.
``log_ratio_first``
    Log-ratio loss on the same batches, the first sample the only anchor, plain Euclidean distances
    in both spaces, embeddings not L2-normalised.

All three use SGD (lr 0.01, momentum 0.9, weight decay 5e-4) with lr_t = 0.01 / (1 + 1e-4 t), t the
step: :func:`make_optimizer` ``("paper_sgd")``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from ..distances import Euclidean, SquaredEuclidean
from ..losses import BinaryTripletLoss, DenseTripletMarginLoss, LabelTripletLoss, LogRatioLoss
from ..reducers import MeanReducer

OPTIMIZERS = ("adam_cosine", "paper_sgd")


@dataclass(frozen=True)
class Protocol:
    """One way to train: ``loss()`` builds the loss; ``sampler`` is ``"dense"`` (anchor + k nearest +
    random, :class:`~dmlkit.samplers.DenseTripletBatchSampler`) or ``"paper_binary"``
    (:class:`~dmlkit.samplers.PaperBinaryBatchSampler`); ``normalize`` says whether the embedder
    L2-normalises its output."""

    name: str
    loss: Callable[[], nn.Module]
    sampler: str
    batch: int
    optimizer: str
    normalize: bool
    lr: float
    description: str


PROTOCOLS = {
    "paper_binary": Protocol(
        "paper_binary",
        lambda: LabelTripletLoss(0.2, "positional", positives=5, distance=SquaredEuclidean(normalize=True),
                                 reducer=MeanReducer()),
        "paper_binary", 150, "paper_sgd", True, 0.01,
        "paper's binary baseline: anchor + 5 positives from its global top 30 + 144 beyond rank 30; "
        "triplet margin 0.2 on squared distances, mean over all 720 triplets"),
    "paper_dense": Protocol(
        "paper_dense",
        lambda: LabelTripletLoss(0.03, "dense", anchors="first", distance=SquaredEuclidean(normalize=True),
                                 reducer=MeanReducer()),
        "dense", 150, "paper_sgd", True, 0.01,
        "paper's dense triplet: anchor + 5 label-space nearest + 144 random; margin 0.03 on squared "
        "distances, first sample the anchor, mean over all triplets"),
    "log_ratio_first": Protocol(
        "log_ratio_first",
        lambda: LogRatioLoss(distance=Euclidean(), anchors="first"),
        "dense", 150, "paper_sgd", False, 0.01,
        "paper's log-ratio: anchor + 5 label-space nearest + 144 random; plain Euclidean distances, "
        "unnormalised embeddings, first sample the anchor"),
}

# the project's own rows (``--loss``), batch 32 and Adam unless overridden
LOSSES = ("log_ratio", "log_ratio_first", "dense_triplet", "binary_triplet")


def make_loss(name: str, k: int) -> nn.Module:
    """The loss of a ``--loss`` row: log-ratio (squared distances in both spaces, every sample an
    anchor; or ``log_ratio_first``: only the batch's first sample), or the project's triplet variants
    on the same batches (dense triplets, margin 0.05; binary triplets with the k in-batch label-space
    nearest as positives, margin 0.2; both Euclidean on normalised embeddings, mean over violated
    triplets)."""
    if name == "log_ratio":
        return LogRatioLoss(distance="squared", anchors="all")
    if name == "log_ratio_first":
        return LogRatioLoss(distance="squared", anchors="first")
    if name == "dense_triplet":
        return DenseTripletMarginLoss(margin=0.05)
    if name == "binary_triplet":
        return BinaryTripletLoss(k=k, margin=0.2)
    raise ValueError(f"unknown loss {name!r}; choose from {', '.join(LOSSES)}")


def label_power(loss: nn.Module) -> int:
    """Power to raise label distances to before the loss sees them: the log-ratio loss compares them
    with its embedding distances (squared or plain); the triplet losses only use their order."""
    return getattr(loss, "label_power", 1)


def make_optimizer(name: str, parameters, steps: int, lr: float):
    """``(optimizer, per-step scheduler)``: ``adam_cosine`` (Adam, cosine decay over ``steps``) or
    ``paper_sgd`` (SGD momentum 0.9, weight decay 5e-4, lr / (1 + 1e-4 t))."""
    if name == "adam_cosine":
        opt = torch.optim.Adam(parameters, lr=lr)
        return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    if name == "paper_sgd":
        opt = torch.optim.SGD(parameters, lr=lr, momentum=0.9, weight_decay=5e-4)
        return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1.0 / (1.0 + 1e-4 * t))
    raise ValueError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")
