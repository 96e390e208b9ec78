"""The runtime's op set, read from ``ops.json`` (package data), and a checker for exported nodes.

``ops.json`` is the one declaration both sides follow: the exporter validates every node it writes against
it, and DMLRuntime's GraphBuilder is tested against the same file.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources


@lru_cache(maxsize=1)
def load_ops() -> dict:
    """The parsed ``ops.json``: ``{"version": int, "ops": {name: {"inputs", "attrs", "tensors", "doc"}}}``."""
    return json.loads(resources.files(__package__).joinpath("ops.json").read_text(encoding="utf-8"))


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_float(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


_ATTR_CHECKS = {
    "int": _is_int,
    "float": _is_float,
    "bool": lambda v: isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "pair": lambda v: isinstance(v, list) and len(v) == 2 and all(_is_int(x) for x in v),
    "ints": lambda v: isinstance(v, list) and all(_is_int(x) for x in v),
}
# Attributes whose value may be null (clamp: an unbounded side; slice: to the end).
_NULLABLE = {("clamp", "min"), ("clamp", "max"), ("slice", "end")}


def _arity_ok(spec, count: int) -> bool:
    if isinstance(spec, int):
        return count == spec
    if spec.endswith("+"):
        return count >= int(spec[:-1])
    low, high = (int(v) for v in spec.split("-"))
    return low <= count <= high


def node_problems(node: dict) -> list[str]:
    """What is wrong with one exported node against ``ops.json`` (empty when it conforms)."""
    ops = load_ops()["ops"]
    name, op = node.get("name"), node.get("op")
    if op not in ops:
        return [f"node '{name}': op {op!r} is not in ops.json"]
    spec, problems = ops[op], []
    inputs = node.get("inputs", [])
    if not _arity_ok(spec["inputs"], len(inputs)):
        problems.append(f"node '{name}': {op} takes {spec['inputs']} input(s), has {len(inputs)}")
    for attr, value in node.get("attrs", {}).items():
        kind = spec["attrs"].get(attr)
        if kind is None:
            problems.append(f"node '{name}': {op} has no attribute {attr!r}")
        elif not (_ATTR_CHECKS[kind](value) or (value is None and (op, attr) in _NULLABLE)):
            problems.append(f"node '{name}': {op}.{attr} must be {kind}, got {value!r}")
    roles = node.get("tensors", {})
    for role in roles:
        if role not in spec["tensors"]:
            problems.append(f"node '{name}': {op} has no tensor role {role!r}")
    for role, need in spec["tensors"].items():
        if need == "required" and role not in roles:
            problems.append(f"node '{name}': {op} needs tensor {role!r}")
    return problems
