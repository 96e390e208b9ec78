"""scikit-learn's 8x8 ``digits`` (ships with scikit-learn, no download) as a zero-shot split."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

# scikit-learn's digits hold pixel counts 0..16; the loader divides by 16 (exported models record this).
DIGITS_SCALE = 1.0 / 16.0


def load_digits_split(train_classes: Sequence[int] = (0, 1, 2, 3, 4), test_classes: Sequence[int] = (5, 6, 7, 8, 9)):
    """Return ``(x_train, y_train, x_test, y_test)`` tensors; pixels scaled to [0, 1].

    Train and test classes must not overlap: the test set measures retrieval of unseen classes.
    """
    from sklearn.datasets import load_digits

    train_classes, test_classes = [int(c) for c in train_classes], [int(c) for c in test_classes]
    if set(train_classes) & set(test_classes):
        raise ValueError(f"train and test classes overlap: {sorted(set(train_classes) & set(test_classes))}")
    digits = load_digits()
    x = digits.data.astype(np.float32) * np.float32(DIGITS_SCALE)
    y = digits.target.astype(np.int64)
    tr, te = np.isin(y, train_classes), np.isin(y, test_classes)
    if not tr.any() or not te.any():
        raise ValueError("train_classes and test_classes must each name digits 0-9")
    return torch.from_numpy(x[tr]), torch.from_numpy(y[tr]), torch.from_numpy(x[te]), torch.from_numpy(y[te])
