"""Backends: who computes the heavy integer operators (numpy reference or native kernels).

A backend turns prepacked weights into a callable once, at load time; the lowering calls
`conv` / `matmul` and the session calls what they return on every run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from ..errors import LowpError
from ..fixedpoint import Requant
from ..ops.conv import conv as qconv
from ..ops.layout import Layout
from ..ops.linear import matmul as qmatmul
from .fastops import Arena

ConvFn = Callable[[np.ndarray, Layout], np.ndarray]
MatMulFn = Callable[[np.ndarray], np.ndarray]


class ReferenceBackend:
    """The numpy reference operators: the specification, slow and simple."""

    name = "reference"
    conv_layouts: tuple[Layout, ...] = (Layout.CHANNELS_FIRST, Layout.CHANNELS_LAST)

    def __init__(self, threads: int = 0) -> None:
        self.threads = threads
        # Layers of the top-level graph write into one buffer each, reused run after run
        # (an arena); subgraphs (Loop bodies may feed a layer its own previous output)
        # allocate per call. Read when a layer's kernel is built; the session copies
        # anything it hands back to the caller.
        self.reuse_outputs = True

    def conv(self, w: np.ndarray, bias: np.ndarray | None, *, x_zero_point: int,
             x_dtype: np.dtype, w_zero_point: int | np.ndarray, requant: Requant,
             strides: Sequence[int], pads: Sequence[int], dilations: Sequence[int],
             group: int) -> ConvFn:
        def run(x: np.ndarray, layout: Layout) -> np.ndarray:
            return qconv(x, w, bias, x_zero_point=x_zero_point,
                                 w_zero_point=w_zero_point, requant=requant, strides=strides,
                                 pads=pads, dilations=dilations, group=group, layout=layout)
        return run

    def matmul(self, b: np.ndarray, bias: np.ndarray | None, *, a_zero_point: int,
               a_dtype: np.dtype, b_zero_point: int | np.ndarray, requant: Requant
               ) -> MatMulFn:
        def run(a: np.ndarray) -> np.ndarray:
            return qmatmul(a, b, a_zero_point=a_zero_point,
                                     b_zero_point=b_zero_point, bias=bias, requant=requant)
        return run


class NativeBackend(ReferenceBackend):
    """lowp's C++ kernels (per-ISA microkernels, prepacked weights); channels-last."""

    name = "native"
    conv_layouts = (Layout.CHANNELS_LAST,)

    def __init__(self, threads: int = 0) -> None:
        super().__init__(threads)
        from . import native_backend
        self._nb = native_backend

    def conv(self, w: np.ndarray, bias: np.ndarray | None, *, x_zero_point: int,
             x_dtype: np.dtype, w_zero_point: int | np.ndarray, requant: Requant,
             strides: Sequence[int], pads: Sequence[int], dilations: Sequence[int],
             group: int) -> ConvFn:
        reference = super().conv(w, bias, x_zero_point=x_zero_point, x_dtype=x_dtype,
                                 w_zero_point=w_zero_point, requant=requant, strides=strides,
                                 pads=pads, dilations=dilations, group=group)
        if not _native_types(x_dtype, w.dtype, requant):
            return reference
        try:
            kernel = self._nb.NativeConv(w, bias, x_zero_point=x_zero_point, x_dtype=x_dtype,
                                         w_zero_point=w_zero_point, requant=requant,
                                         strides=strides, pads=pads, dilations=dilations,
                                         group=group, threads=self.threads)
        except ValueError:          # a geometry or type the kernels do not cover
            return reference

        arena: dict[tuple[int, ...], np.ndarray] = {}
        reuse = self.reuse_outputs

        def run(x: np.ndarray, layout: Layout) -> np.ndarray:
            if layout is not Layout.CHANNELS_LAST:
                x = np.ascontiguousarray(np.moveaxis(x, 1, -1))
                return np.moveaxis(kernel(x), -1, 1)
            if not reuse:
                return kernel(x)
            shape = tuple(kernel.output_shape(x.shape))
            if shape not in arena:
                arena.clear()                    # one live buffer per layer
                arena[shape] = np.empty(shape, kernel.out_dtype)
            return kernel(x, out=arena[shape])
        return run

    def matmul(self, b: np.ndarray, bias: np.ndarray | None, *, a_zero_point: int,
               a_dtype: np.dtype, b_zero_point: int | np.ndarray, requant: Requant
               ) -> MatMulFn:
        reference = super().matmul(b, bias, a_zero_point=a_zero_point, a_dtype=a_dtype,
                                   b_zero_point=b_zero_point, requant=requant)
        if not _native_types(a_dtype, b.dtype, requant):
            return reference
        try:
            kernel = self._nb.NativeMatMul(b, bias, a_zero_point=a_zero_point, a_dtype=a_dtype,
                                           b_zero_point=b_zero_point, requant=requant,
                                           threads=self.threads)
        except ValueError:
            return reference
        arena = Arena(self.reuse_outputs)
        n, out_dtype = kernel.n, kernel.out_dtype

        def run(a: np.ndarray) -> np.ndarray:
            return kernel(a, out=arena.get((*a.shape[:-1], n), out_dtype))
        return run


_BYTES = (np.dtype(np.uint8), np.dtype(np.int8))


def _native_types(x_dtype: np.dtype, w_dtype: np.dtype, requant: Requant) -> bool:
    """The native kernels take 8-bit activations and weights and write 8-bit outputs."""
    return (np.dtype(x_dtype) in _BYTES and np.dtype(w_dtype) in _BYTES
            and requant.out_dtype in _BYTES)


def native_available() -> bool:
    try:
        from . import native_backend
    except ImportError:
        return False
    return bool(getattr(native_backend, "NativeConv", None))


BackendFactory = Callable[[int], ReferenceBackend]
BACKENDS: dict[str, BackendFactory] = {
    "reference": ReferenceBackend,
    "native": NativeBackend,
}


def register_backend(name: str, factory: BackendFactory) -> None:
    """Make `Session(model, backend=name)` build its kernels with `factory(threads)`."""
    BACKENDS[name] = factory


def make_backend(name: str | ReferenceBackend, threads: int = 0) -> ReferenceBackend:
    """'auto' (native when the extension is present), a name from BACKENDS, or a backend
    object built by the caller (e.g. ``Acc16Backend(nbits_in_non_outlier=5)``)."""
    if isinstance(name, ReferenceBackend):
        return name
    if name == "auto":
        name = "native" if native_available() else "reference"
    if name == "native" and not native_available():
        raise LowpError("the native backend is not available (the C++ extension did "
                        "not build or import); use backend='reference'")
    if name not in BACKENDS and name.startswith("dnnlowp"):
        import importlib
        importlib.import_module("lowp.engines")       # registers the DNNLOWP backends
    try:
        factory = BACKENDS[name]
    except KeyError:
        raise LowpError(f"unknown backend '{name}'; choose auto or one of "
                        f"{', '.join(sorted(BACKENDS))}") from None
    return factory(threads)
