"""Thin graph layer over onnx.ModelProto: loading, indexing, naming."""

from __future__ import annotations

from .graph import Graph, load_model, save_model
from .names import NameAllocator

__all__ = ["Graph", "NameAllocator", "load_model", "save_model"]
