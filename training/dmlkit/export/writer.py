"""Weights + architecture -> one ``.safetensors`` file; inputs + PyTorch outputs -> a golden file."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import save_file

from .graph import ExportError, Graph, trace_graph
from .ops import node_problems

FORMAT_VERSION = 1
DTYPES = ("f32", "f16", "int8")
_RESERVED = ("dml.format_version", "dml.architecture", "dml.fingerprint")
# Per-sample rank -> the input layout the runtime checks .npy inputs against.
LAYOUTS = {1: "NC", 2: "NTD", 3: "NCHW"}
INPUT_SCALE_NODE = "input_scale"


def _quantise(tensors: dict[str, np.ndarray], dtype: str) -> dict[str, np.ndarray]:
    """f16: matrices/kernels stored as float16. int8: symmetric per-output-channel (dim 0) int8 with a
    float32 ``<name>.scale``. 1-D tensors (biases, norms) stay float32: they are tiny and sensitive."""
    if dtype == "f32":
        return dict(tensors)
    out: dict[str, np.ndarray] = {}
    for name, value in tensors.items():
        if value.ndim < 2:
            out[name] = value
        elif dtype == "f16":
            out[name] = value.astype(np.float16)
        else:
            rows = value.reshape(value.shape[0], -1)
            scale = np.abs(rows).max(axis=1) / 127.0
            scale[scale == 0] = 1.0
            q = np.clip(np.rint(rows / scale[:, None]), -127, 127).astype(np.int8)
            out[name] = q.reshape(value.shape)
            out[name + ".scale"] = scale.astype(np.float32)
    return out


def _fingerprint(architecture: str, tensors: dict[str, np.ndarray]) -> str:
    """SHA-256 over the architecture JSON and every tensor (name, dtype, shape, bytes), in name order."""
    h = hashlib.sha256(architecture.encode())
    for name in sorted(tensors):
        value = np.ascontiguousarray(tensors[name])
        h.update(f"\0{name}\0{value.dtype.str}\0{list(value.shape)}\0".encode())
        h.update(value.tobytes())
    return "sha256:" + h.hexdigest()


def _outputs(module: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    """The module's outputs as the runtime returns them: each output flattened per sample, side by side."""
    with torch.no_grad():
        result = module(x)
    items = result if isinstance(result, (tuple, list)) else [result]
    return torch.cat([t.reshape(t.shape[0], -1) for t in items], dim=1).to(torch.float32).numpy()


def _preprocessing_spec(preprocessing: dict | None, input_shape: list[int]) -> dict | None:
    if preprocessing is None:
        return None
    if len(input_shape) != 3:
        raise ExportError("preprocessing needs an image input [N, C, H, W]")
    order = preprocessing.get("channel_order", "rgb")
    channels = 1 if order == "gray" else 3
    if order not in ("rgb", "bgr", "gray") or channels != input_shape[0]:
        raise ExportError(f"channel_order {order!r} does not fit {input_shape[0]} input channels")
    spec = {"channel_order": order, "scale": float(preprocessing.get("scale", 1.0 / 255.0))}
    for key, default in (("mean", 0.0), ("std", 1.0)):
        value = preprocessing.get(key, default)
        spec[key] = [float(v) for v in value] if isinstance(value, (list, tuple)) else [float(value)] * channels
    return spec


def _prepend_input_scale(graph: Graph, scale: float) -> None:
    """The trainer's input scaling as the graph's first node: the file then takes the raw inputs."""
    if not np.isfinite(scale) or scale == 0:
        raise ExportError(f"input_scale must be a finite non-zero number, got {scale!r}")
    if any(node["name"] == INPUT_SCALE_NODE for node in graph.nodes):
        raise ExportError(f"a node is already named {INPUT_SCALE_NODE!r}")
    for node in graph.nodes:
        node["inputs"] = [INPUT_SCALE_NODE if i == "input" else i for i in node["inputs"]]
    graph.outputs = [INPUT_SCALE_NODE if o == "input" else o for o in graph.outputs]
    graph.nodes.insert(0, {"name": INPUT_SCALE_NODE, "op": "mul", "inputs": ["input"], "attrs": {"scalar": float(scale)}})


def _check_nodes(graph: Graph) -> None:
    """Every node must be an ops.json op with declared attributes and tensor roles (an exporter bug otherwise)."""
    problems = [p for node in graph.nodes for p in node_problems(node)]
    if problems:
        raise ExportError("exported graph does not follow ops.json: " + "; ".join(problems[:5]))


def export_model(module: torch.nn.Module, example_input: torch.Tensor, path, metadata: dict | None = None,
                 dtype: str = "f32", *, preprocessing: dict | None = None, input_scale: float | None = None,
                 normalize: bool = True, fold_batchnorm: bool = True, golden_path=None) -> dict:
    """Writes ``module`` as a DMLKit runtime model.

    Args:
        module: the network (switched to eval mode). Its forward takes one tensor ``[N, ...]`` and returns
            a tensor or a tuple/list of tensors (several heads; the runtime concatenates them per sample).
        example_input: a batch used to trace shapes (and, with ``golden_path``, to record outputs).
        path: the ``.safetensors`` file to write.
        metadata: extra ``str -> str`` entries for ``__metadata__`` (the ``dml.*`` keys are reserved).
        dtype: weight storage, ``"f32"``, ``"f16"`` or ``"int8"`` (per-output-channel scales); compute is f32.
        preprocessing: for image models, ``{"mean", "std", "channel_order", "scale"}`` applied by the runtime
            to 8-bit pixels.
        input_scale: the factor the training data loader applied to raw inputs (the digits loader's 1/16).
            Stored as a leading ``mul`` node named ``input_scale``: the file takes the raw inputs, and
            ``golden_path`` records them (``example_input / input_scale``).
        normalize: whether the runtime L2-normalises the embedding.
        fold_batchnorm: fold BatchNorm into a preceding Conv2d/Linear here (the runtime can also fold at load).
        golden_path: when given, also writes ``example_input`` and the PyTorch outputs there.

    Returns the architecture dict. Raises ``ExportError`` naming the op and node when something is unsupported.
    """
    if dtype not in DTYPES:
        raise ExportError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    graph = trace_graph(module, example_input, fold_batchnorm=fold_batchnorm)
    if len(graph.input_shape) not in LAYOUTS:
        raise ExportError(f"input of rank {len(graph.input_shape) + 1} (the runtime takes [N, C], [N, T, D] or [N, C, H, W])")
    if input_scale is not None:
        if preprocessing is not None:
            raise ExportError("give preprocessing (8-bit pixels) or input_scale, not both")
        _prepend_input_scale(graph, float(input_scale))
    _check_nodes(graph)
    expected = _outputs(module, example_input)
    architecture = {
        "input": {"shape": graph.input_shape, "layout": LAYOUTS[len(graph.input_shape)]},
        "preprocessing": _preprocessing_spec(preprocessing, graph.input_shape),
        "nodes": graph.nodes,
        "outputs": graph.outputs,
        "output_dim": int(expected.shape[1]),
        "normalize": bool(normalize),
    }
    arch_json = json.dumps(architecture, separators=(",", ":"))
    tensors = _quantise(graph.tensors, dtype)
    meta = {str(k): str(v) for k, v in (metadata or {}).items()}
    clash = [k for k in meta if k in _RESERVED]
    if clash:
        raise ExportError(f"metadata keys {clash} are reserved")
    meta.update({
        "dml.format_version": str(FORMAT_VERSION),
        "dml.architecture": arch_json,
        "dml.fingerprint": _fingerprint(arch_json, tensors),
        "dml.weight_dtype": dtype,
    })
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # safetensors creates the file owner-only; a model file is for everyone to read
    os.replace(tmp, path)
    if golden_path is not None:
        raw = example_input if input_scale is None else example_input / float(input_scale)
        write_golden(golden_path, raw, expected)
    return architecture


def write_golden(path, inputs: torch.Tensor, outputs: np.ndarray, extra: dict[str, np.ndarray] | None = None) -> None:
    """A golden file for parity tests: ``input`` [N, ...] and ``output`` [N, D] float32 (+ ``extra`` arrays)."""
    tensors = {
        "input": np.ascontiguousarray(inputs.detach().cpu().to(torch.float32).numpy()),
        "output": np.ascontiguousarray(outputs, dtype=np.float32),
    }
    tensors.update(extra or {})
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata={"dml.golden": "1"})
