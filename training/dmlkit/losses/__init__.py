"""Metric-learning losses: the three papers' losses plus pytorch-metric-learning baselines."""

from .baselines import (BinaryTripletLoss, ContrastiveLoss, DenseTripletMarginLoss, LabelTripletLoss,
                        MultiSimilarityLoss, ProxyAnchorLoss, TripletMarginLoss)
from .intra_class import IntraClassRankingLoss
from .log_ratio import LogRatioLoss
from .ranked_list import MultiHeadRankedListLoss, RankedListLoss

__all__ = ["RankedListLoss", "MultiHeadRankedListLoss", "LogRatioLoss", "IntraClassRankingLoss",
           "ContrastiveLoss", "TripletMarginLoss", "MultiSimilarityLoss", "ProxyAnchorLoss", "BinaryTripletLoss",
           "DenseTripletMarginLoss", "LabelTripletLoss"]
