"""Native float32 recurrence of the ONNX LSTM and GRU ops (lowp._native.rnn).

Both in ONNX Runtime's DeepCPU order with its weights prepacked (lowp.runtime.float_nn.
_lstm_ort_direction and _gru_ort_direction, bit for bit): the extension projects the input
of every time step (X W^T, one product per direction in MLAS's prepacked order), runs the
time loop (recurrence GEMM, biases, gate activations, any of ONNX Runtime's (docs/
operators.md, (O62)), peepholes, clip, sequence-length masking) and writes Y, Y_h and Y_c
in their final layout. W and R are packed once per weight
array (`packed_weights`: they are constants, the same object on every run). The numpy
implementations in lowp.runtime.float_nn stay the reference and are used for everything
this front does not take (other dtypes, lengths outside [0, T],
weights that are not constants, or no extension); see `supported`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .prepacked import PackCache, aligned64
from .switch import Switch
from .tape import call

_native: Any = None   # the extension, bound at the first use (see _extension)

# the default activations (the default cells; others: recurrent.h RnnActs)
LSTM_ACTIVATIONS = ("sigmoid", "tanh", "tanh")
GRU_ACTIVATIONS = ("sigmoid", "tanh")

_enabled = Switch()


#: Run the body with the numpy recurrence (the reference), e.g. to compare.
disabled = _enabled.off


def _extension() -> Any:
    """lowp._native as lowp.runtime.native_backend holds it, or None without the extension
    (a pure-Python install). Looked up at the first use rather than at import, so that a
    substituted build (tools/sanitize.sh) is the one called."""
    global _native
    if _native is None:
        try:
            from . import native_backend
        except ImportError:
            return None
        _native = native_backend._native
    return _native


def kernels() -> str:
    """Name of the recurrence kernels of the active instruction-set path."""
    ext = _extension()
    return "none" if ext is None else str(ext.rnn_kernels())


def supported(dtype: np.dtype, params: Sequence[Sequence[tuple[str, float, float]]],
              lens: np.ndarray, seq: int, hidden: int, clip: float | None) -> bool:
    """Whether the native recurrence computes this node (else the numpy one does); `params`:
    per direction the activations with their alpha and beta (float_nn.deepcpu_activations),
    any of ONNX Runtime's."""
    if not _enabled or np.dtype(dtype) != np.float32 or hidden < 1 or _extension() is None:
        return False
    if any(n.lower() not in _CODES for d in params for n, _, _ in d):
        return False
    if clip is not None and not (float(clip) > 0):   # NaN or non-positive: numpy semantics
        return False
    return bool(lens.size == 0 or (lens.min() >= 0 and lens.max() <= seq))



def _states(s: np.ndarray | None, layout: int) -> np.ndarray | None:
    """An initial state as a float32 (B, D, H) view with unit inner stride."""
    if s is None:
        return None
    s = s.astype(np.float32, copy=False)
    if s.strides[-1] != 4:
        s = np.ascontiguousarray(s)
    return s if layout else s.transpose(1, 0, 2)


def _outputs(seq: int, batch: int, dirs: int, hidden: int, layout: int, n_states: int
             ) -> tuple[np.ndarray, list[np.ndarray]]:
    """Y and the final states, in buffers the signature owns while lowp.runtime.replay
    records (native_float.buffer), so that a recorded call repeats into them."""
    from .native_float import buffer
    if layout:
        return (buffer((batch, seq, dirs, hidden)),
                [buffer((batch, dirs, hidden)) for _ in range(n_states)])
    return (buffer((seq, dirs, batch, hidden)),
            [buffer((dirs, batch, hidden)) for _ in range(n_states)])


def _run(lens: np.ndarray | None, *args: object) -> None:
    """The recurrence call: recorded (lowp.runtime.tape), so that a Program repeats it, when
    every sequence runs its full length. Lengths are checked when the call is made, and a
    Program would read them again unchecked on every run, so a call with lengths is not."""
    ext = _extension()
    if lens is None:
        call(ext.rnn, *args[:8], None, *args[8:])
    else:
        ext.rnn(*args[:8], lens, *args[8:])


def _views(y: np.ndarray, finals: list[np.ndarray], layout: int
           ) -> tuple[np.ndarray, list[np.ndarray]]:
    """(T, B, D, H) and (B, D, H) views of the outputs, as the extension takes them."""
    if layout:
        return y.transpose(1, 0, 2, 3), finals
    return y.transpose(0, 2, 1, 3), [f.transpose(1, 0, 2) for f in finals]


def _lens32(lens: np.ndarray, batch: int, seq: int) -> np.ndarray | None:
    if bool(np.all(lens >= seq)):
        return None
    return np.ascontiguousarray(lens, dtype=np.int32).reshape(batch)


# recurrent.h: gate blocks padded to kRnnAlign floats, packed in panels of kRnnPanel columns
_ALIGN, _PANEL = 16, 64


def _panels(block: np.ndarray) -> np.ndarray:
    """(H, width) -> panels of _PANEL columns, each H rows (zero-padded), flattened."""
    h, width = block.shape
    n = -(-width // _PANEL) * _PANEL
    padded = np.zeros((h, n), np.float32)
    padded[:, :width] = block
    return padded.reshape(h, n // _PANEL, _PANEL).transpose(1, 0, 2).reshape(-1)


def pack(m: np.ndarray, blocks: tuple[int, ...]) -> np.ndarray:
    """W (D, G*H, I) or R (D, G*H, H) as the extension reads it (recurrent.h): per direction
    the transpose with every gate's columns padded to a multiple of 16, its gates grouped into
    `blocks` (gates per block, in order: W one block of all gates, LSTM's R one of four,
    GRU's R z and r then h), each block cut into panels of 64 columns. (D, floats), on a
    64-byte boundary: every panel row (64 floats), block and direction starts on one, so the
    kernels' loads of a row never straddle two cache lines (unaligned, the one- and two-row
    steps of a GRU of 400 units took 1.5x as long on the AMD EPYC)."""
    dirs, gh, k = m.shape
    gates = sum(blocks)
    hidden = gh // gates
    hp = -(-hidden // _ALIGN) * _ALIGN
    out = []
    for d in range(dirs):
        mt = np.zeros((k, gates, hp), np.float32)  # mt[k, g, j] = M[g * H + j, k]
        mt[:, :, :hidden] = np.asarray(m[d], np.float32).reshape(gates, hidden, k
                                                                 ).transpose(2, 0, 1)
        starts = np.cumsum((0, *blocks))
        out.append(np.concatenate([_panels(mt[:, g0:g1].reshape(k, -1))
                                   for g0, g1 in zip(starts[:-1], starts[1:], strict=True)]))
    return aligned64(np.stack(out))


# pack(m, blocks) once per constant W and R (the native path runs only for prepacked
# weights, float_nn.LSTM / GRU)
packed_weights = PackCache(pack)


def _inputs(x: np.ndarray, layout: int) -> np.ndarray:
    """x as a contiguous float32 (T, B, I) array."""
    return np.ascontiguousarray(x.transpose(1, 0, 2) if layout else x, dtype=np.float32)


def _threads(threads: int | None) -> int:
    from . import native_float
    return native_float.get_threads() if threads is None else threads


def _bias(b: np.ndarray | None) -> np.ndarray | None:
    return None if b is None else np.ascontiguousarray(b, dtype=np.float32).reshape(-1)


def lstm(x: np.ndarray, w: np.ndarray, r: np.ndarray, b: np.ndarray | None, lens: np.ndarray,
         h0: np.ndarray | None, c0: np.ndarray | None, p: np.ndarray | None,
         reverse: Sequence[bool], layout: int, clip: float | None, input_forget: bool,
         params: Sequence[Sequence[tuple[str, float, float]]] | None = None,
         threads: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """LSTM outputs (Y, Y_h, Y_c) of float32 `x` in its ONNX `layout` (see float_nn.LSTM).

    `lens` holds one length in [0, T] per batch entry; h0/c0 are in the op's layout. With
    `threads` > 1 (0 = all; None: the float kernels' count, lowp.runtime.native_float, which
    a Session sets to its own) the two directions of a bidirectional node run on two
    threads, or a single direction's products are cut between the threads; the results do
    not depend on it. `params`: per direction the activations f, g, h
    with their alpha and beta (float_nn.deepcpu_activations; None: the defaults).
    """
    seq, batch = (x.shape[1], x.shape[0]) if layout else x.shape[:2]
    dirs, hidden = r.shape[0], r.shape[-1]
    y, finals = _outputs(seq, batch, dirs, hidden, layout, 2)
    yv, (yh, yc) = _views(y, finals, layout)
    _run(_lens32(lens, batch, seq), False, _inputs(x, layout), packed_weights(w, (4,)),
         packed_weights(r, (4,)), hidden,
         None if p is None else np.ascontiguousarray(p, dtype=np.float32).reshape(-1),
         _states(h0, layout), _states(c0, layout), yv, yh, yc, list(reverse), _clip(clip),
         bool(input_forget), False, _threads(threads), _bias(b), *_acts(params))
    return y, finals[0], finals[1]


def gru(x: np.ndarray, w: np.ndarray, r: np.ndarray, b: np.ndarray | None, lens: np.ndarray,
        h0: np.ndarray | None, reverse: Sequence[bool], layout: int, clip: float | None,
        linear_before_reset: bool,
        params: Sequence[Sequence[tuple[str, float, float]]] | None = None,
        threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """GRU outputs (Y, Y_h) of float32 `x` in its ONNX `layout` (see float_nn.GRU, and
    `lstm` for `threads` and `params`, here f and g)."""
    seq, batch = (x.shape[1], x.shape[0]) if layout else x.shape[:2]
    dirs, hidden = r.shape[0], r.shape[-1]
    y, finals = _outputs(seq, batch, dirs, hidden, layout, 1)
    yv, (yh,) = _views(y, finals, layout)
    _run(_lens32(lens, batch, seq), True, _inputs(x, layout), packed_weights(w, (3,)),
         packed_weights(r, (2, 1)), hidden, None, _states(h0, layout), None, yv, yh, None,
         list(reverse), _clip(clip), False, bool(linear_before_reset), _threads(threads),
         _bias(b), *_acts(params))
    return y, finals[0]


def _acts(params: Sequence[Sequence[tuple[str, float, float]]] | None
          ) -> tuple[list[int] | None, list[float] | None, list[float] | None]:
    """The extension's activation arguments (native/recurrent.h RnnActs: codes of
    RNN_ACTIVATIONS, alphas and betas as float32, every direction's in order), or Nones for
    the defaults."""
    if params is None or all(tuple(n for n, _, _ in d) in (LSTM_ACTIVATIONS, GRU_ACTIVATIONS)
                             for d in params):
        return None, None, None
    flat = [e for d in params for e in d]
    f = np.float32
    return ([_CODES[n] for n, _, _ in flat], [float(f(a)) for _, a, _ in flat],
            [float(f(b)) for _, _, b in flat])


def _clip(clip: float | None) -> float:
    # ONNX Runtime's LSTM and GRU clip at FLT_MAX when the node has no clip attribute
    return float(np.finfo(np.float32).max) if clip is None else float(clip)


# native/float_rnn.h RnnActivation: ONNX Runtime's RNN activations by their exact names (any
# other name is its default, Tanh: lowp.runtime.float_nn._rnn_ort_activation)
RNN_ACTIVATIONS = ("Affine", "Relu", "LeakyRelu", "ThresholdedRelu", "Tanh", "ScaledTanh",
                   "Sigmoid", "HardSigmoid", "Elu", "Softsign", "Softplus")
_CODES = {n.lower(): i for i, n in enumerate(RNN_ACTIVATIONS)}


def simple_rnn(x: np.ndarray, w: np.ndarray, r: np.ndarray, b: np.ndarray | None,
               lens: np.ndarray | None, h0: np.ndarray | None,
               params: Sequence[tuple[str, float, float]], clip: float | None,
               direction: str, threads: int | None = None
               ) -> tuple[np.ndarray, np.ndarray] | None:
    """The float32 RNN operator without a layout (Y (T, D, B, H), Y_h (D, B, H)) as
    lowp.runtime.float_nn._rnn_ort computes it, bit for bit, by one native call; `params`:
    per direction the activation's name, alpha and beta (float_nn._rnn_ort_directions).
    None when the extension does not take it (an empty dimension, shapes the reference
    rejects, or no extension). Any sequence lengths: the kernel reads them when it runs, so
    the call is recorded (lowp.runtime.tape) with them too."""
    ext = _extension()
    if not _enabled or ext is None or x.dtype != np.float32 or x.ndim != 3:
        return None
    seq, batch, inp = x.shape
    dirs = len(params)
    hidden = r.shape[-1] if r.ndim == 3 else 0
    if min(seq, batch, inp, hidden) < 1 or dirs != (2 if direction == "bidirectional" else 1):
        return None
    if (w.shape != (dirs, hidden, inp) or r.shape != (dirs, hidden, hidden)
            or (b is not None and b.shape != (dirs, 2 * hidden))
            or (h0 is not None and h0.shape != (dirs, batch, hidden))
            or (lens is not None and lens.shape != (batch,))):
        return None
    from .native_float import buffer
    f = np.float32
    y, y_h = buffer((seq, dirs, batch, hidden)), buffer((dirs, batch, hidden))
    bound = None if clip is None or clip < 0 else float(f(clip))
    codes = [RNN_ACTIVATIONS.index(n) if n in RNN_ACTIVATIONS else RNN_ACTIVATIONS.index("Tanh")
             for n, _, _ in params]
    call(ext.float_rnn, np.ascontiguousarray(x), np.ascontiguousarray(w, f),
         np.ascontiguousarray(r, f), None if b is None else np.ascontiguousarray(b, f),
         None if h0 is None else np.ascontiguousarray(h0, f),
         None if lens is None else np.ascontiguousarray(lens, np.int64), y, y_h, codes,
         [float(f(a)) for _, a, _ in params], [float(f(be)) for _, _, be in params],
         [direction == "reverse" or d == 1 for d in range(dirs)], bound, _threads(threads))
    return y, y_h
