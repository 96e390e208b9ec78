"""Turn a config dict into the objects a training run needs: data, model, loss, sampler, optimizer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from . import losses as L
from .miners import DenseTripletBatchSampler
from .models import MLPEmbedder, MultiHeadEmbedder

CLASS_LOSSES = {
    "rll": L.RankedListLoss,
    "multihead_rll": L.MultiHeadRankedListLoss,
    "triplet": L.TripletMarginLoss,
    "contrastive": L.ContrastiveLoss,
    "multi_similarity": L.MultiSimilarityLoss,
    "proxy_anchor": L.ProxyAnchorLoss,
}
CONTINUOUS_LOSSES = {
    "log_ratio": L.LogRatioLoss,
    "dense_triplet": L.DenseTripletMarginLoss,
    "binary_triplet": L.BinaryTripletLoss,
}


@dataclass
class Data:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    continuous: bool  # labels are vectors compared by distance, not class ids
    # The factor the loader applied to the raw inputs (digits: pixel counts 0..16 divided by 16); the exporter
    # stores it in the model file so the runtime takes raw inputs. None when inputs are used as stored.
    input_scale: float | None = None


def build_data(cfg: dict) -> Data:
    """Load the dataset named by ``cfg["data"]["name"]``: ``digits`` or ``npy`` (four .npy paths)."""
    d = cfg["data"]
    if d["name"] == "digits":
        from .data.digits import load_digits_split

        from .data.digits import DIGITS_SCALE

        return Data(*load_digits_split(d["train_classes"], d["test_classes"]), continuous=False, input_scale=DIGITS_SCALE)
    if d["name"] == "npy":
        arrays = [torch.from_numpy(np.load(d[k])) for k in ("train_x", "train_y", "test_x", "test_y")]
        continuous = bool(d.get("continuous", False))
        xs = [a.float() for a in arrays[0::2]]
        ys = [a.float() if continuous else a.long() for a in arrays[1::2]]
        return Data(xs[0], ys[0], xs[1], ys[1], continuous)
    raise ValueError(f"unknown data name {d['name']!r} (known: digits, npy)")


def build_model(cfg: dict, in_dim: int) -> torch.nn.Module:
    """``mlp`` (hidden, dim) or ``multihead_mlp`` (hidden, head_dims)."""
    m = cfg["model"]
    if m["name"] == "mlp":
        return MLPEmbedder(in_dim, m.get("hidden", [128]), m.get("dim", 32))
    if m["name"] == "multihead_mlp":
        return MultiHeadEmbedder(in_dim, m.get("hidden", [128]), m.get("head_dims", [16, 16]))
    raise ValueError(f"unknown model name {m['name']!r} (known: mlp, multihead_mlp)")


def build_loss(cfg: dict, model: torch.nn.Module, data: Data) -> Callable:
    """Return ``step_loss(model, x, y) -> scalar``: main loss plus the optional intra-class term.

    ``step_loss.module`` is the main loss module: move it to the device and give its parameters
    (Proxy Anchor's proxies) to the optimizer.
    """
    continuous = data.continuous
    spec = cfg["loss"]
    name, params = spec["name"], dict(spec.get("params") or {})
    table = CONTINUOUS_LOSSES if continuous else CLASS_LOSSES
    if name not in table:
        kind = "continuous" if continuous else "class"
        raise ValueError(f"loss {name!r} does not take {kind} labels (choose from {sorted(table)})")
    if name == "multihead_rll":
        params.setdefault("head_dims", getattr(model, "head_dims", None) or [cfg["model"].get("dim", 32)])
    if name == "proxy_anchor":
        params.setdefault("num_classes", int(data.y_train.max()) + 1)
        params.setdefault("embedding_size", int(model.dim))
    main = table[name](**params)
    icr_cfg = cfg.get("intra_class")
    icr = None
    if icr_cfg:
        icr_cfg = dict(icr_cfg)
        weight = float(icr_cfg.pop("weight", 1.0))
        icr = L.IntraClassRankingLoss(**icr_cfg)

    def step_loss(model, x, y):
        feats = model.features(x)
        emb = model.embed(feats)
        value = main(emb, y)
        if icr is not None:
            value = value + weight * icr(model.embed, feats)
        return value

    step_loss.module = main
    return step_loss


def build_loader(cfg: dict, data: Data, seed: int) -> DataLoader:
    """DataLoader over the training split with the configured batch sampler."""
    s = cfg["sampler"]
    bs = int(cfg["batch_size"])
    dataset = TensorDataset(data.x_train, data.y_train)
    g = torch.Generator().manual_seed(seed)
    if s["name"] == "random":
        return DataLoader(dataset, batch_size=bs, shuffle=True, drop_last=True, generator=g)
    if s["name"] == "m_per_class":
        if data.continuous:
            raise ValueError("m_per_class needs class labels; use dense_triplet for continuous labels")
        from pytorch_metric_learning.samplers import MPerClassSampler

        m = int(s.get("m", 8))
        sampler = MPerClassSampler(data.y_train, m=m, batch_size=bs, length_before_new_iter=len(data.y_train))
        return DataLoader(dataset, batch_size=bs, sampler=sampler, drop_last=True)
    if s["name"] == "dense_triplet":
        if not data.continuous:
            raise ValueError("dense_triplet mining needs continuous labels")
        sampler = DenseTripletBatchSampler(data.y_train, bs, k=int(s.get("k", 5)), seed=seed)
        return DataLoader(dataset, batch_sampler=sampler)
    raise ValueError(f"unknown sampler {s['name']!r} (known: random, m_per_class, dense_triplet)")


def build_optimizer(cfg: dict, model: torch.nn.Module, extra_parameters=()):
    """Adam, AdamW or SGD (momentum 0.9) plus an optional cosine or step schedule (per epoch).

    ``extra_parameters`` (loss proxies) train with ``optimizer.loss_lr_multiplier`` x lr (default 100,
    the usual setting for Proxy Anchor).
    """
    o = cfg["optimizer"]
    lr, wd = float(o.get("lr", 1e-3)), float(o.get("weight_decay", 0.0))
    groups = [{"params": list(model.parameters())}]
    extra_parameters = list(extra_parameters)  # may be a one-shot generator
    if extra_parameters:
        groups.append({"params": extra_parameters, "lr": lr * float(o.get("loss_lr_multiplier", 100.0))})
    if o["name"] == "adam":
        opt = torch.optim.Adam(groups, lr=lr, weight_decay=wd)
    elif o["name"] == "adamw":
        opt = torch.optim.AdamW(groups, lr=lr, weight_decay=wd)
    elif o["name"] == "sgd":
        opt = torch.optim.SGD(groups, lr=lr, momentum=float(o.get("momentum", 0.9)), weight_decay=wd)
    else:
        raise ValueError(f"unknown optimizer {o['name']!r} (known: adam, adamw, sgd)")
    s = cfg["schedule"]
    if s["name"] == "none":
        sched = None
    elif s["name"] == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=int(cfg["epochs"]))
    elif s["name"] == "step":
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=int(s.get("step_size", 10)), gamma=float(s.get("gamma", 0.1)))
    else:
        raise ValueError(f"unknown schedule {s['name']!r} (known: none, cosine, step)")
    return opt, sched
