"""Training configuration: defaults, YAML files and ``key.sub=value`` overrides, merged in that order."""

from __future__ import annotations

import copy
from typing import Any, Iterable

import yaml

DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "device": "cpu",  # "cpu", "cuda" or "auto"
    "epochs": 30,
    "batch_size": 40,
    "out_dir": "out/train/digits-rll",
    "data": {"name": "digits", "train_classes": [0, 1, 2, 3, 4], "test_classes": [5, 6, 7, 8, 9]},
    "model": {"name": "mlp", "hidden": [128], "dim": 32},
    "loss": {"name": "rll", "params": {}},
    "intra_class": None,  # e.g. {"weight": 1.0, "levels": 3, "step": 0.1, "margin": 0.02}
    "sampler": {"name": "m_per_class", "m": 8},  # m_per_class | random | dense_triplet (k)
    "optimizer": {"name": "adam", "lr": 1e-3, "weight_decay": 0.0},
    "schedule": {"name": "none"},  # none | cosine | step (step_size, gamma)
    "eval": {"every": 1, "ks": [1, 2, 4, 8]},
    "checkpoint_every": 1,
    "plots": True,
    "export": True,
    "progress": True,
}


def merge(base: dict, override: dict) -> dict:
    """Recursive dict merge; values of ``override`` win, nested dicts merge key by key."""
    out = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_override(item: str) -> dict:
    """``"loss.params.margin=0.3"`` -> ``{"loss": {"params": {"margin": 0.3}}}`` (value read as YAML)."""
    if "=" not in item:
        raise ValueError(f"override must look like key.sub=value, got {item!r}")
    key, raw = item.split("=", 1)
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ValueError(f"override has an empty key: {item!r}")
    value: Any = yaml.safe_load(raw)
    for part in reversed(parts):
        value = {part: value}
    return value


def load_config(path: str | None = None, overrides: Iterable[str] = ()) -> dict:
    """Defaults, then the YAML file at ``path`` (if any), then each override in order."""
    cfg = copy.deepcopy(DEFAULTS)
    if path:
        with open(path) as fh:
            loaded = yaml.safe_load(fh) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: the top level of a config must be a mapping")
        unknown = set(loaded) - set(DEFAULTS)
        if unknown:
            raise ValueError(f"{path}: unknown config keys {sorted(unknown)}")
        cfg = merge(cfg, loaded)
    for item in overrides:
        cfg = merge(cfg, parse_override(item))
    return cfg
