"""The torch.fx tracer the exporter uses: library layers that are one runtime op stay whole (leaf modules).

Tracing into timm's ``BatchNormAct2d`` or a ``LayerNorm2d`` would give functional calls, permutes and shape
asserts; kept whole they map to ``batch_norm`` + activation and ``channel_layer_norm``. timm and torchvision
are optional: their layers are looked up by import and skipped when the library is absent.
"""

from __future__ import annotations

import importlib
import inspect
from functools import lru_cache

from torch import fx, nn


def _lookup(path: str):
    module, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


# Library layer -> the role the converter gives it (see graph._Converter.call_module).
_LIBRARY_LAYERS = {
    "timm.layers.BatchNormAct2d": "batch_norm_act",
    "timm.layers.LayerNorm2d": "channel_layer_norm",
    "torchvision.models.convnext.LayerNorm2d": "channel_layer_norm",
    "timm.layers.LayerNorm": "layer_norm",
    "timm.layers.Linear": "linear",
    "timm.layers.Attention": "timm_attention",
    "timm.layers.DropPath": "identity",
    "torchvision.ops.StochasticDepth": "identity",
}


@lru_cache(maxsize=1)
def library_layers() -> dict[type, str]:
    """``{layer class: role}`` for the library layers importable here."""
    found = {}
    for path, role in _LIBRARY_LAYERS.items():
        cls = _lookup(path)
        if isinstance(cls, type):
            found[cls] = role
    return found


def library_role(module: nn.Module) -> str | None:
    """The role of ``module`` if its exact class is a known library layer (subclasses may change forward)."""
    return library_layers().get(type(module))


class ExportTracer(fx.Tracer):
    """``torch.nn`` layers and the library layers above are leaves; everything else is traced through."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return library_role(m) is not None or super().is_leaf_module(m, module_qualified_name)


def trace(module: nn.Module) -> fx.GraphModule:
    """Traces ``module``; forward arguments after the first are fixed to their defaults (masks, flags)."""
    signature = inspect.signature(module.forward)
    params = list(signature.parameters.values())
    concrete = {}
    for p in params[1:]:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if p.default is p.empty:
            raise ValueError(f"forward argument {p.name!r} has no default: the model must take one tensor")
        concrete[p.name] = p.default
    tracer = ExportTracer()
    graph = tracer.trace(module, concrete_args=concrete or None)
    return fx.GraphModule(tracer.root, graph, type(module).__name__)
