"""Native recurrence of com.microsoft DynamicQuantizeLSTM (lowp._native.qlstm).

The extension computes what lowp.runtime.quantized_lstm computes in numpy, bit for bit
(docs/operators.md, (O23q); docs/native.md): X W for the first max(lens) steps as one
product, then per step H R per task of batch rows, each product's float operand quantized
to uint8 from its own range, the exact int32 product against the int8 weights, the float32
scaling, and the float LSTM's cell. The weights are packed once per array (`packed`: they
are constants). The numpy code stays the reference and runs whatever `supported` refuses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import native_float, native_rnn
from .prepacked import PackCache, aligned64
from .switch import Switch
from .tape import call

_enabled = Switch()

#: Run the body with the numpy recurrence (the reference), e.g. to compare.
disabled = _enabled.off

# recurrent.h / qrecurrent.h: gate blocks padded to 16 columns, panels of 64 columns
_ALIGN, _PANEL = 16, 64


def kernels() -> str:
    """Name of the integer product of the active instruction-set path."""
    ext = native_rnn._extension()
    return "none" if ext is None else str(ext.qlstm_kernels())


def supported(x: np.ndarray, hidden: int, lens: np.ndarray | None, clip: float | None
              ) -> bool:
    """Whether the extension computes this node (else the numpy code does): a batch,
    lengths (None: all T) in [0, T], a positive clip; any values, NaN and infinities
    included ((O149), (O189))."""
    seq, batch, inp = x.shape
    if not _enabled or native_rnn._extension() is None or min(batch, inp, hidden) < 1:
        return False
    if clip is not None and not float(clip) > 0:
        return False
    return not (lens is not None and lens.size and (lens.min() < 0 or lens.max() > seq))


@dataclass(frozen=True)
class Packed:
    """One weight input, all directions, as qrecurrent.h reads it."""

    b: np.ndarray        # (D, packed int8)
    colsum: np.ndarray   # (D, 4 hp) int32
    d: list[int]         # zero point - offset, per direction
    scale: np.ndarray    # (D, 4 hp) float32, 0 in padding columns
    # W only (`pack(..., tiles=True)`): per direction the same b as IntMatMul's B, K rows
    # past the input and padding columns set to d (no terms), zero point d in every column,
    # for the X W product on a path's own tiles (qrecurrent.h QLstmArgs::w_tiles)
    tiles: list[Any] | None = None


def pack(values: np.ndarray, scale: np.ndarray, zero_point: np.ndarray,
         tiles: bool = False) -> Packed:
    """values (D, K, 4 H) int8 or uint8, scale and zero point per direction or per column:
    b = values - offset (128 for uint8) as int8, each gate's columns padded to a multiple of
    16, K to a multiple of 4, cut into panels of 64 columns of K / 4 groups of 4 k (VNNI
    order); MLAS's zero point is the first of each direction. With `tiles`, also each
    direction's b as an IntMatMul (`Packed.tiles`)."""
    dirs, k, n0 = values.shape
    hid = n0 // 4
    hp = -(-hid // _ALIGN) * _ALIGN
    k4 = -(-k // 4)
    offset = 128 if values.dtype == np.uint8 else 0
    b = np.zeros((dirs, k4 * 4, 4, hp), np.int8)
    b[:, :k, :, :hid] = (values.astype(np.int16) - offset).reshape(dirs, k, 4, hid)
    b = b.reshape(dirs, k4 * 4, 4 * hp)
    colsum = b.astype(np.int32).sum(axis=1, dtype=np.int32)
    panels = b.reshape(dirs, k4, 4, 4 * hp // _PANEL, _PANEL).transpose(0, 3, 1, 4, 2)
    s = np.zeros((dirs, 4, hp), np.float32)
    s[:, :, :hid] = np.broadcast_to(np.asarray(scale, np.float32).reshape(dirs, -1),
                                    (dirs, n0)).reshape(dirs, 4, hid)
    zp = np.asarray(zero_point).reshape(dirs, -1)[:, 0].astype(np.int64)
    d = [int(z) - offset for z in zp]
    ops = None
    ext = native_rnn._extension()
    if tiles and ext is not None and hasattr(ext, "IntMatMul"):
        ops = []
        for i in range(dirs):
            bi = np.full((k4 * 4, 4, hp), d[i], np.int8)
            bi[:k, :, :hid] = b[i, :k].reshape(k, 4, hp)[:, :, :hid]
            ops.append(ext.IntMatMul(bi.reshape(k4 * 4, 4 * hp).view(np.uint8), True,
                                     np.full(4 * hp, d[i], np.int32)))
    return Packed(aligned64(panels.reshape(dirs, -1)), np.ascontiguousarray(colsum), d,
                  s.reshape(dirs, -1), ops)


# pack(values, scale, zero point) once per constant weight (the same objects on every run;
# arrays over immutable bytes, as the model loader reads initializers, are not compared
# again: the comparison of R costs a fifth of ONNX Runtime's whole node)
packed = PackCache(pack)


def _f32(a: np.ndarray | None, shape: tuple[int, ...] | None = None) -> np.ndarray | None:
    if a is None:
        return None
    a = np.ascontiguousarray(a, dtype=np.float32)
    return a.reshape(-1) if shape is None else a.reshape(shape)


def lstm(x: np.ndarray, w: Packed, r: Packed, hidden: int, b: np.ndarray | None,
         lens: np.ndarray | None, h0: np.ndarray | None, c0: np.ndarray | None,
         p: np.ndarray | None, reverse: Sequence[bool], clip: float | None,
         input_forget: bool, with_y: bool, rows_per_task: int, spans: tuple[int, int] = (0, 0),
         threads: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(Y (T, D, B, H), Y_h, Y_c (D, B, H)) of float32 x (T, B, I); lens one per entry in
    [0, T] (None: all T); `spans`: the values of each of MLAS's min / max calls over X's and
    H's operand holding a NaN (quantized_lstm.mlas_range_span; 0: one call); the two
    directions may run on two threads (the results do not depend on it)."""
    seq, batch, _ = x.shape
    dirs = len(reverse)
    # (buffers a replayed signature owns while it records, so that the call repeats)
    y = native_float.buffer((seq, dirs, batch, hidden))
    yh = native_float.buffer((dirs, batch, hidden))
    yc = native_float.buffer((dirs, batch, hidden))
    states = (dirs, batch, hidden)
    lens32 = (None if lens is None or bool(np.all(lens == seq))
              else np.ascontiguousarray(lens, np.int32))
    ext: Any = native_rnn._extension()
    args = (np.ascontiguousarray(x, dtype=np.float32), w.b, w.colsum, w.d, w.scale, r.b,
            r.colsum, r.d, r.scale, hidden, _f32(p), _f32(b), _f32(h0, states),
            _f32(c0, states), lens32, y, yh, yc, list(reverse), native_rnn._clip(clip),
            bool(input_forget), bool(with_y), int(rows_per_task), int(spans[0]), int(spans[1]),
            native_float.get_threads() if threads is None else threads, w.tiles)
    # Recorded (lowp.runtime.tape) only without lengths: a repeated call would read the
    # lengths of its recording, checked when it was made, and lengths equal to T are
    # dropped above (`supported`'s other conditions are the shapes', and the spans depend
    # on the shapes and the thread count only).
    if lens is None:
        call(ext.qlstm, *args)
    else:
        ext.qlstm(*args)
    return y, yh, yc
