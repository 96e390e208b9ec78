"""Export a trained PyTorch module to the DMLKit Swift runtime's single-file model format.

One ``.safetensors`` file holds the weights and, in ``__metadata__``, ``dml.format_version``,
``dml.architecture`` (the layer graph as JSON) and ``dml.fingerprint`` (SHA-256 of architecture + weights).
It stays readable by Python's ``safetensors`` as is.
"""

from .graph import ExportError, trace_graph
from .writer import FORMAT_VERSION, export_model, write_golden

__all__ = ["ExportError", "FORMAT_VERSION", "export_model", "trace_graph", "write_golden"]
