"""Retrieval metrics, with the same definitions as the Swift side (DMLKit evaluation).

Every query is searched against a reference set by Euclidean distance (ascending, ties broken by
reference index). With ``reference=None`` the query set is its own reference and each query's own
row is left out (leave-one-out), which is pytorch-metric-learning's ``ref_includes_query=True``.

Class labels (``class_metrics``), over queries whose class has R >= 1 other member in the reference
set (queries without any are skipped, as PML does):

* ``recall@K``: fraction of queries with at least one same-class item among the top K
  (``recall@1`` equals PML's ``precision_at_1``).
* ``r_precision``: same-class items among the top R, divided by R.
* ``map@r``: (1/R) * sum over ranks i <= R of precision@i at the ranks i that hold a same-class item
  (PML's ``mean_average_precision_at_r``).

Continuous labels (``graded_metrics``), with d(q, x) the label distance of a retrieved item:

* ``ndcg@K``: DCG@K / IDCG@K with gain 1 / (1 + d) and discount 1 / log2(rank + 1); the ideal order
  sorts the reference set by label distance.
* ``label_distance@K``: mean label distance of the top K.
* ``spearman``: per query, Spearman rank correlation (average ranks for ties) between embedding
  distances and label distances to all reference items, averaged over queries with a defined
  correlation (both rankings non-constant).
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np
from scipy.stats import rankdata


def _as_2d(x, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise ValueError(f"{name} must be 1-D or 2-D, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return a


def _distances(query: np.ndarray, reference: np.ndarray) -> np.ndarray:
    sq = (query * query).sum(1)[:, None] + (reference * reference).sum(1)[None, :] - 2.0 * query @ reference.T
    return np.sqrt(np.maximum(sq, 0.0))


def _setup(query, reference, n_query_labels: int, n_ref_labels: int | None):
    q = _as_2d(query, "query embeddings")
    leave_one_out = reference is None
    r = q if leave_one_out else _as_2d(reference, "reference embeddings")
    if q.shape[1] != r.shape[1]:
        raise ValueError(f"query dim {q.shape[1]} != reference dim {r.shape[1]}")
    if n_query_labels != len(q):
        raise ValueError(f"{len(q)} query embeddings but {n_query_labels} query labels")
    if not leave_one_out and n_ref_labels != len(r):
        raise ValueError(f"{len(r)} reference embeddings but {n_ref_labels} reference labels")
    if leave_one_out and len(q) < 2:
        raise ValueError("leave-one-out evaluation needs at least 2 samples")
    return q, r, leave_one_out


def _ranked(q: np.ndarray, r: np.ndarray, leave_one_out: bool, start: int, stop: int):
    """Distances and stable ranking of references for query rows start:stop (self removed)."""
    d = _distances(q[start:stop], r)
    if leave_one_out:
        d[np.arange(stop - start), np.arange(start, stop)] = np.inf
    order = np.argsort(d, axis=1, kind="stable")
    if leave_one_out:
        order = order[:, :-1]  # self sits last (inf)
    return d, order


def class_metrics(query, query_labels, reference=None, reference_labels=None,
                  ks: Sequence[int] = (1, 2, 4, 8), chunk: int = 1024) -> dict:
    """Recall@K, R-precision and MAP@R for class labels (see the module docstring).

    Returns a dict with ``recall@K`` for every K, ``r_precision``, ``map@r`` and ``num_queries``
    (the queries that had at least one relevant item).
    """
    ql = np.asarray(query_labels).reshape(-1)
    rl = None if reference_labels is None else np.asarray(reference_labels).reshape(-1)
    q, r, loo = _setup(query, reference, len(ql), None if rl is None else len(rl))
    rl = ql if loo else rl
    for name, lab in (("query_labels", ql), ("reference_labels", rl)):
        if lab.dtype.kind == "f" and not np.isfinite(lab).all():
            raise ValueError(f"{name} contains NaN or infinite values")
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1:
        raise ValueError(f"ks must be positive integers, got {ks}")
    hits = {k: 0 for k in ks}
    rprec, mapr, counted = 0.0, 0.0, 0
    for start in range(0, len(q), chunk):
        stop = min(start + chunk, len(q))
        _, order = _ranked(q, r, loo, start, stop)
        for row, qi in enumerate(range(start, stop)):
            rel = rl[order[row]] == ql[qi]
            R = int(rel.sum())
            if R == 0:
                continue
            counted += 1
            for k in ks:
                hits[k] += bool(rel[:k].any())
            top = rel[:R]
            rprec += top.sum() / R
            precision_at_i = np.cumsum(top) / np.arange(1, R + 1)
            mapr += (precision_at_i * top).sum() / R
    if counted == 0:
        raise ValueError("no query has a same-class item in the reference set")
    out = {f"recall@{k}": hits[k] / counted for k in ks}
    out.update({"r_precision": rprec / counted, "map@r": mapr / counted, "num_queries": counted})
    return out


def graded_metrics(query, query_labels, reference=None, reference_labels=None,
                   ks: Iterable[int] = (1, 5, 10), chunk: int = 1024) -> dict:
    """nDCG@K (gain 1/(1+d)), mean label distance@K and Spearman for continuous labels.

    Labels are vectors (N,) or (N, L) compared by Euclidean distance.
    """
    qy = _as_2d(query_labels, "query_labels")
    q, r, loo = _setup(query, reference, len(qy), None if reference_labels is None else len(reference_labels))
    ry = qy if loo else _as_2d(reference_labels, "reference_labels")
    if qy.shape[1] != ry.shape[1]:
        raise ValueError("query and reference labels have different widths")
    n_ref = len(r) - (1 if loo else 0)
    ks = sorted({int(k) for k in ks})
    if not ks or ks[0] < 1 or ks[-1] > n_ref:
        raise ValueError(f"every K must be in [1, {n_ref}], got {ks}")
    discount = 1.0 / np.log2(np.arange(2, ks[-1] + 2))
    ndcg = {k: 0.0 for k in ks}
    mld = {k: 0.0 for k in ks}
    rho_sum, rho_count = 0.0, 0
    for start in range(0, len(q), chunk):
        stop = min(start + chunk, len(q))
        d_emb, order = _ranked(q, r, loo, start, stop)
        d_lab = _distances(qy[start:stop], ry)
        for row, qi in enumerate(range(start, stop)):
            keep = order[row]
            lab = d_lab[row, keep]  # label distances in retrieved order
            ideal = np.sort(lab)
            gains, ideal_gains = 1.0 / (1.0 + lab), 1.0 / (1.0 + ideal)
            for k in ks:
                ndcg[k] += (gains[:k] * discount[:k]).sum() / (ideal_gains[:k] * discount[:k]).sum()
                mld[k] += lab[:k].mean()
            e = d_emb[row, keep]
            if np.ptp(e) > 0 and np.ptp(lab) > 0:
                re, rlab = rankdata(e), rankdata(lab)
                rho_sum += np.corrcoef(re, rlab)[0, 1]
                rho_count += 1
    n = len(q)
    out = {f"ndcg@{k}": ndcg[k] / n for k in ks}
    out.update({f"label_distance@{k}": mld[k] / n for k in ks})
    out["spearman"] = rho_sum / rho_count if rho_count else float("nan")
    return out
