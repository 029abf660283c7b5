"""Numpy reference int8 operators: the executable specification (docs/operators.md)."""

from __future__ import annotations

from .concat import concat, rescale
from .conv import conv, conv_output_shape
from .elementwise import add, mul
from .layout import Layout, channel_axis, from_channels_first, to_channels_first
from .linear import exact_matmul, gemm, matmul, wrap_int32
from .lut import ACTIVATIONS, activation, apply_lut, build_lut
from .movement import (
    CoordinateTransform,
    NearestMode,
    PadMode,
    depth_to_space,
    pad,
    resize_nearest,
    space_to_depth,
)
from .pool import average_pool, global_average_pool, max_pool, pool_output_shape
from .registry import QOPS, register
from .softmax import softmax

__all__ = [
    "ACTIVATIONS", "QOPS", "CoordinateTransform", "Layout", "NearestMode", "PadMode",
    "activation", "add", "apply_lut", "average_pool", "build_lut", "channel_axis", "concat",
    "conv", "conv_output_shape", "depth_to_space", "exact_matmul", "from_channels_first",
    "gemm", "global_average_pool", "matmul", "max_pool", "mul", "pad", "pool_output_shape",
    "register", "rescale", "resize_nearest", "softmax", "space_to_depth", "to_channels_first",
    "wrap_int32",
]
