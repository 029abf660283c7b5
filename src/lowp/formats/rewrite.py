"""Graph rewriting shared by the format converters: one name allocator, constants by value,
new nodes and initializers, and a finished model with unused initializers dropped."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..errors import UnsupportedOpError
from ..ir.graph import Graph, _sorted_nodes, node_reads
from ..ir.names import NameAllocator

MS_DOMAIN = "com.microsoft"


def node_label(node: onnx.NodeProto) -> str:
    """How errors name a node: its name, or (ONNX Runtime's quantizer leaves QOperator
    nodes unnamed) its first output."""
    return node.name or (f"output {node.output[0]}" if node.output else node.op_type)


def is_default_domain(node: onnx.NodeProto) -> bool:
    return node.domain in ("", "ai.onnx")


class Rewrite:
    """A model being rebuilt node by node.

    Converters read the original model through `graph` (constants, producers, consumers)
    and append their replacement nodes with `emit`; every new tensor, node and initializer
    name comes from one NameAllocator, so nothing collides with the model's own names.
    """

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        self.graph = Graph(model)
        self.names = NameAllocator.for_model(model)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._constants: dict[tuple[str, bytes, tuple[int, ...]], str] = {}

    # -- reading ---------------------------------------------------------------------------

    def constant(self, name: str, node: onnx.NodeProto) -> np.ndarray:
        """The value of constant input `name` of `node`; UnsupportedOpError otherwise."""
        if not name or not self.graph.is_constant(name):
            raise UnsupportedOpError(node.op_type, node_label(node),
                                     f"'{name}' is not a constant (scales, zero points and "
                                     "weights of a quantized operator must be)")
        return self.graph.constant(name)

    def elem_type(self, name: str) -> int | None:
        """The ONNX element type of `name` when the model states it."""
        if self.graph.is_constant(name):
            return helper.np_dtype_to_tensor_dtype(self.graph.constant(name).dtype)
        return self.graph.value_elem_type(name)

    # -- writing ---------------------------------------------------------------------------

    def tensor(self, base: str) -> str:
        return self.names.fresh(base)

    def initializer(self, base: str, value: np.ndarray) -> str:
        """A new initializer holding `value`; equal values asked for twice share one."""
        value = np.asarray(value)
        key = (value.dtype.str, value.tobytes(), value.shape)
        if key not in self._constants:
            name = self.names.fresh(base)
            self.initializers.append(numpy_helper.from_array(value, name))
            self._constants[key] = name
        return self._constants[key]

    def constant_node_to_initializer(self, node: onnx.NodeProto) -> bool:
        """A Constant node becomes an initializer of the same name (False: kept, when its
        value is not known or it is a graph output)."""
        out = node.output[0]
        if (node.op_type != "Constant" or not self.graph.is_constant(out)
                or out in {o.name for o in self.model.graph.output}):
            return False
        self.initializers.append(numpy_helper.from_array(self.graph.constant(out), out))
        return True

    def emit(self, op_type: str, inputs: list[str], outputs: list[str], *, base: str,
             name: str = "", domain: str = "",
             attrs: Mapping[str, object] | None = None) -> onnx.NodeProto:
        """Append a node; `name` is the name of the node it replaces (kept as it is), else a
        fresh name from `base`."""
        node = helper.make_node(op_type, inputs, outputs, name=name or self.names.fresh(base),
                                domain=domain or None)
        node.attribute.extend(helper.make_attribute(k, v) for k, v in sorted((attrs or {}).items())
                              if v is not None)
        self.nodes.append(node)
        return node

    def keep(self, node: onnx.NodeProto) -> None:
        self.nodes.append(node)

    def finish(self) -> onnx.ModelProto:
        """The model with the emitted nodes (in an order where each comes after what it
        reads), its initializers that something still reads plus the new ones, and a
        com.microsoft opset import only where a node needs it."""
        out = onnx.ModelProto()
        out.CopyFrom(self.model)
        del out.graph.node[:]
        out.graph.node.extend(self.nodes)
        read: set[str] = {o.name for o in out.graph.output}
        for n in self.nodes:
            read |= node_reads(n)
        kept = [t for t in self.model.graph.initializer if t.name in read]
        kept += [t for t in self.initializers if t.name in read]
        del out.graph.initializer[:]
        out.graph.initializer.extend(kept)
        graph_inputs = [i for i in out.graph.input
                        if i.name in read or i.name not in self.graph.initializers]
        del out.graph.input[:]
        out.graph.input.extend(graph_inputs)
        uses_ms = any(n.domain == MS_DOMAIN for n in self.nodes)
        imports = [i for i in out.opset_import if i.domain != MS_DOMAIN]
        if uses_ms:
            imports.append(helper.make_opsetid(MS_DOMAIN, 1))
        del out.opset_import[:]
        out.opset_import.extend(imports)
        # a reused DequantizeLinear may come after a new node reading it: order by reads
        return _sorted_nodes(out)
