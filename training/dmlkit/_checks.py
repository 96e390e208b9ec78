"""Input validation shared by losses, miners and evaluation.

Every public entry point checks its tensors here so a bad call fails with one clear ``ValueError``
instead of a shape error deep inside torch or a silent NaN loss.
"""

from __future__ import annotations

import torch


def check_embeddings(embeddings: torch.Tensor, name: str = "embeddings", min_rows: int = 2) -> None:
    """Raise ``ValueError`` unless ``embeddings`` is a finite floating 2-D tensor with ``min_rows`` rows."""
    if not isinstance(embeddings, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(embeddings).__name__}")
    if embeddings.dim() != 2:
        raise ValueError(f"{name} must be 2-D (batch, dim), got shape {tuple(embeddings.shape)}")
    if not embeddings.is_floating_point():
        raise ValueError(f"{name} must be a floating tensor, got dtype {embeddings.dtype}")
    if embeddings.shape[0] < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} rows, got {embeddings.shape[0]}")
    if embeddings.shape[1] < 1:
        raise ValueError(f"{name} has zero columns")
    if not torch.isfinite(embeddings).all():
        raise ValueError(f"{name} contains NaN or infinite values")


def check_class_labels(labels: torch.Tensor, batch: int, name: str = "labels") -> None:
    """Raise ``ValueError`` unless ``labels`` is a finite 1-D tensor of length ``batch``."""
    if not isinstance(labels, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(labels).__name__}")
    if labels.dim() != 1:
        raise ValueError(f"{name} must be 1-D (batch,), got shape {tuple(labels.shape)}")
    if labels.shape[0] != batch:
        raise ValueError(f"{name} has {labels.shape[0]} entries but there are {batch} embeddings")
    if labels.is_floating_point() and not torch.isfinite(labels).all():
        raise ValueError(f"{name} contains NaN or infinite values")


def as_label_matrix(labels: torch.Tensor, batch: int, name: str = "labels") -> torch.Tensor:
    """Check continuous labels and return them as a float 2-D tensor (batch, label_dim).

    A 1-D tensor is read as one scalar label per sample.
    """
    if not isinstance(labels, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(labels).__name__}")
    if labels.dim() == 1:
        labels = labels.unsqueeze(1)
    if labels.dim() != 2:
        raise ValueError(f"{name} must be 1-D or 2-D (batch, label_dim), got shape {tuple(labels.shape)}")
    if labels.shape[0] != batch:
        raise ValueError(f"{name} has {labels.shape[0]} rows but there are {batch} embeddings")
    labels = labels if labels.is_floating_point() else labels.double()
    if not torch.isfinite(labels).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return labels


def check_distance_matrix(dist: torch.Tensor, batch: int, name: str = "label_distances") -> None:
    """Raise ``ValueError`` unless ``dist`` is a finite, non-negative (batch, batch) matrix."""
    if not isinstance(dist, torch.Tensor) or dist.shape != (batch, batch):
        shape = tuple(dist.shape) if isinstance(dist, torch.Tensor) else type(dist).__name__
        raise ValueError(f"{name} must be a ({batch}, {batch}) tensor, got {shape}")
    if not torch.isfinite(dist).all() or (dist < 0).any():
        raise ValueError(f"{name} must be finite and non-negative")
