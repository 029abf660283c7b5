"""Error types of lowp: one clear message naming the file, node or tensor at fault."""

from __future__ import annotations


class LowpError(Exception):
    """Base class of every error lowp raises on purpose."""


class ModelError(LowpError):
    """The model file is missing, unreadable, not ONNX, or fails the checker."""


class UnsupportedOpError(LowpError):
    """An operator (or an attribute of one) that lowp cannot quantize or run."""

    def __init__(self, op_type: str, node_name: str, detail: str = "") -> None:
        msg = f"unsupported operator {op_type} (node '{node_name}')"
        if detail:
            msg += f": {detail}"
        super().__init__(msg)
        self.op_type = op_type
        self.node_name = node_name


class NodeError(ModelError, ValueError):
    """A node whose attributes, weights and input shapes do not fit together: the model's
    fault, not lowp's. Operators raise it with the detail only; the engine adds the node.
    It is a ValueError too, which is what the numpy operators raised for it before."""

    def __init__(self, detail: str, op_type: str = "", node_name: str = "") -> None:
        super().__init__(f"node '{node_name}' ({op_type}): {detail}" if node_name else detail)
        self.detail = detail
        self.op_type = op_type
        self.node_name = node_name


class DataError(LowpError):
    """Calibration or input data that does not fit the model (names, shapes, dtypes, NaN/Inf)."""


class QuantizationError(LowpError):
    """Quantization parameters cannot be chosen or violate a target's constraints."""


class InternalError(LowpError):
    """lowp's own code failed while running a node: a bug to report, not a user error."""

    def __init__(self, op_type: str, node_name: str, cause: BaseException) -> None:
        first = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
        super().__init__(f"internal error in node '{node_name}' ({op_type}): "
                         f"{type(cause).__name__}: {first}; please report it with --debug")
        self.op_type = op_type
        self.node_name = node_name
        self.cause = cause


def named(error: Exception, op_type: str, node_name: str) -> Exception:
    """How a failure inside node `node_name` is reported: a NodeError (the model's fault)
    gets the node's name, another LowpError or a MemoryError stays as it is, anything else
    is lowp's own failure, an InternalError."""
    if isinstance(error, NodeError):
        return error if error.node_name else NodeError(error.detail, op_type, node_name)
    if isinstance(error, (LowpError, MemoryError)):
        return error
    return InternalError(op_type, node_name, error)
