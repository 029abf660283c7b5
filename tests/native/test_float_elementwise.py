"""Native float32 element-wise kernels (native/float_elementwise.cpp, lowp.runtime.program)
against the numpy operators of lowp.runtime.float_ops, bit for bit, on every instruction-set
path; and a Program running them equals the direct calls."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lowp.runtime import native_backend as nb
from lowp.runtime import program
from lowp.runtime.float_registry import FLOAT_OPS
from lowp.runtime.tape import call, recording

from .helpers import PATHS

# float32 values including the edges: signed zeros, infinities, NaN, subnormals
FLOATS = st.floats(width=32, allow_nan=True, allow_infinity=True, allow_subnormal=True)
SPECIAL = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 1e-45, -1e-45, 3.4e38, -3.4e38, 1.0,
                    -1.0], np.float32)


def _bits_equal(a: np.ndarray, b: np.ndarray) -> None:
    """Equal bit patterns, NaN payloads aside (numpy keeps no promise about those)."""
    assert a.shape == b.shape and a.dtype == b.dtype
    nan = np.isnan(a)
    np.testing.assert_array_equal(nan, np.isnan(b))
    np.testing.assert_array_equal(a[~nan].view(np.uint32), b[~nan].view(np.uint32))


def _native(op: str, *inputs: np.ndarray, threads: int = 1) -> np.ndarray:
    kernel = program.FLOAT_KERNELS[op]
    shape = np.broadcast_shapes(*(v.shape for v in inputs))
    made = kernel(list(inputs), np.empty(shape, np.float32), threads)
    if made is None and op in ("Max", "Min"):
        # a whole-output run ONNX Runtime cuts into blocks runs in float_ops (O105)
        return np.asarray(FLOAT_OPS[op](*inputs), np.float32)
    assert made is not None
    (fn, args), y = made
    fn(*args)
    return y


@st.composite
def broadcast_pairs(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """Two float32 arrays of broadcast-compatible shapes (either side may broadcast)."""
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=5, min_side=1, max_side=5))
    shapes = []
    for _ in range(2):
        s = [1 if draw(st.booleans()) else n for n in shape]
        s = s[draw(st.integers(0, len(s))):]           # fewer leading axes
        shapes.append(tuple(s))
    return tuple(draw(hnp.arrays(np.float32, s, elements=FLOATS)) for s in shapes)  # type: ignore[return-value]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div", "Max", "Min", "PRelu"])
@settings(max_examples=60, deadline=None)
@given(pair=broadcast_pairs())
def test_binary_equals_numpy(path: str, op: str, pair: tuple[np.ndarray, np.ndarray]) -> None:
    a, b = pair
    if op == "PRelu" and b.ndim == 1 and b.size > 1:
        return                                          # not covered (see program._binary)
    with nb.use_path(path), np.errstate(all="ignore"):
        want = FLOAT_OPS[op](a, b)
        strides = [program.element_strides(v, want.shape) for v in (a, b)]
        if program.collapse_axes(want.shape, strides) is None:
            return                                      # more than four axes: not native
        _bits_equal(_native(op, a, b), want)


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div", "Max", "Min", "PRelu"])
def test_binary_special_values(op: str) -> None:
    a = np.repeat(SPECIAL, SPECIAL.size).reshape(SPECIAL.size, SPECIAL.size)
    b = np.tile(SPECIAL, SPECIAL.size).reshape(SPECIAL.size, SPECIAL.size)
    with np.errstate(all="ignore"):
        for path in PATHS:
            with nb.use_path(path):
                _bits_equal(_native(op, a, b), FLOAT_OPS[op](a, b))
                _bits_equal(_native(op, a, b[:1]), FLOAT_OPS[op](a, b[:1]))
                if op == "PRelu":
                    continue
                column = a[:, :1].copy()
                _bits_equal(_native(op, column, b), FLOAT_OPS[op](column, b))


@pytest.mark.parametrize("op", ["ClipLow", "ClipHigh"])
def test_clip_by_a_bound_keeps_the_operand_on_ties_and_nan(op: str) -> None:
    # a Clip by a computed bound (replay's two calls): float_ops.Clip's selects, x < lo ?
    # lo : x and hi < y ? hi : y, so -0 under a bound of +0 stays -0 and a NaN bound
    # clamps nothing (Max / Min give +0 and NaN there)
    a = np.repeat(SPECIAL, SPECIAL.size).reshape(SPECIAL.size, SPECIAL.size)
    b = np.tile(SPECIAL, SPECIAL.size).reshape(SPECIAL.size, SPECIAL.size)
    want = np.where(a < b, b, a) if op == "ClipLow" else np.where(b < a, b, a)
    for path in PATHS:
        with nb.use_path(path):
            got = _native(op, a, b)
            np.testing.assert_array_equal(np.signbit(got), np.signbit(want))
            _bits_equal(got, want)
            one = b[:1, 1:2]                            # -0: a one-value bound
            _bits_equal(_native(op, a, one), np.where(a < one, one, a) if op == "ClipLow"
                        else np.where(one < a, one, a))


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div", "Max", "Min", "PRelu"])
@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 70), form=st.sampled_from(["rows", "a one", "b one", "b column"]),
       data=st.data())
def test_binary_rows_of_vector_lengths(path: str, op: str, n: int, form: str,
                                       data: st.DataObject) -> None:
    """Rows of 0 to 70 values (whole vectors of every path and their tails) in each stride
    form of a row: both contiguous, one side one value, a per-row value (a gathered
    column); the same bits as numpy, and the same when the result overwrites an operand
    (a fused chain's register)."""
    a = data.draw(hnp.arrays(np.float32, (3, n), elements=FLOATS))
    shape = {"rows": (3, n), "a one": (1, 1), "b one": (), "b column": (3, 1)}[form]
    b = data.draw(hnp.arrays(np.float32, shape, elements=FLOATS))
    if form == "a one":
        a, b = b, a
    if op == "PRelu" and form == "a one":
        return                                          # (a slope of the input's shape)
    with nb.use_path(path), np.errstate(all="ignore"):
        want = FLOAT_OPS[op](a, b)
        if want.size == 0:      # no native call: the step runs numpy's operator
            assert program.FLOAT_KERNELS[op]([a, b], np.empty(want.shape, np.float32), 1) is None
            return
        _bits_equal(_native(op, a, b), want)
        same = a if a.shape == want.shape else b
        inplace = same.copy()
        operands = [inplace, b] if same is a else [a, inplace]
        made = program.FLOAT_KERNELS[op](operands, inplace, 1)
        assert made is not None
        (fn, args), y = made
        fn(*args)
        assert y is inplace
        _bits_equal(inplace, want)


@pytest.mark.parametrize("op", ["Add", "Mul", "Max"])
def test_binary_long_rows_split_between_threads(op: str) -> None:
    """Threads split the output elements, also inside one long row (an operand broadcast
    from one value collapses the whole tensor into a row), at any boundary."""
    rng = np.random.default_rng(6)
    a = rng.standard_normal((3, 70_001)).astype(np.float32)
    for b in (np.float32(0.5).reshape(()), rng.standard_normal((3, 1)).astype(np.float32),
              rng.standard_normal(70_001).astype(np.float32)):
        want = FLOAT_OPS[op](a, b)
        for path in PATHS:
            with nb.use_path(path):
                for threads in (1, 2, 3, 0):
                    _bits_equal(_native(op, a, b, threads=threads), want)
                    _bits_equal(_native(op, b, a[0], threads=threads), FLOAT_OPS[op](b, a[0]))


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("op", ["Relu", "Sigmoid", "Tanh", "HardSwish", "Reciprocal", "Neg",
                                "Abs", "Floor"])
@settings(max_examples=60, deadline=None)
@given(x=hnp.arrays(np.float32, hnp.array_shapes(min_dims=0, max_dims=4, max_side=9),
                    elements=FLOATS))
def test_unary_equals_numpy(path: str, op: str, x: np.ndarray) -> None:
    if x.size == 0:
        return
    x = np.concatenate([x.reshape(-1), SPECIAL])
    with nb.use_path(path), np.errstate(all="ignore"):
        _bits_equal(_native(op, x), FLOAT_OPS[op](x))


@pytest.mark.parametrize("path", PATHS)
@settings(max_examples=60, deadline=None)
@given(x=hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=3, max_side=9),
                    elements=FLOATS),
       lo=st.none() | FLOATS, hi=st.none() | FLOATS)
def test_clip_equals_numpy(path: str, x: np.ndarray, lo: float | None, hi: float | None
                           ) -> None:
    bounds = [None if v is None else np.array(v, np.float32) for v in (lo, hi)]
    with nb.use_path(path), np.errstate(all="ignore"):
        made = program.clip_call(x, bounds[0], bounds[1], np.empty(x.shape, np.float32), 1)
        if x.size == 0:
            assert made is None
            return
        assert made is not None
        (fn, args), y = made
        fn(*args)
        _bits_equal(y, FLOAT_OPS["Clip"](x, bounds[0], bounds[1]))


@pytest.mark.parametrize("dtype", [np.uint8, np.int8])
def test_dequantize_table_lookup(dtype: type) -> None:
    """lookup8_f32 gives table[x] for every byte value."""
    x = np.arange(256, dtype=np.uint8).view(dtype).reshape(16, 16)
    table = (np.arange(256, dtype=np.float32) * np.float32(0.37) - 3).astype(np.float32)
    made = program.dequantize_call(x, table, np.empty(x.shape, np.float32), 1)
    assert made is not None
    (fn, args), y = made
    fn(*args)
    _bits_equal(y, table[x.view(np.uint8)])


@settings(max_examples=200, deadline=None)
@given(signed=st.booleans(), zero_point=st.integers(-128, 255),
       scale=st.floats(2.0 ** -140, 2.0 ** 127, width=32, allow_subnormal=True)
       | st.sampled_from([2.0 ** -12, 0.1, 1.0]),
       tweak=st.none() | st.integers(0, 255), threads=st.sampled_from([1, 2]))
def test_dequantize_tables_compute_their_own_entries(signed, zero_point, scale, tweak,
                                                     threads) -> None:
    """A DequantizeLinear's table, float32(code - zp) * scale, runs as that arithmetic
    (the kernel checks every entry first); any other table (one entry changed, a denormal
    scale, results that overflow) is looked up: table[x] bit for bit either way."""
    dtype = np.dtype(np.int8 if signed else np.uint8)
    info = np.iinfo(dtype)
    zp = int(np.clip(zero_point, info.min, info.max))
    codes = np.arange(256, dtype=np.uint8).view(dtype).astype(np.int32)
    with np.errstate(over="ignore"):
        table = (codes - zp).astype(np.float32) * np.float32(scale)
    if tweak is not None:
        table[tweak] = np.nextafter(table[tweak], np.float32(np.inf))
    x = np.random.default_rng(zp & 0xFF).integers(0, 256, 70_001, dtype=np.uint8)
    made = program.dequantize_call(x.view(dtype), table, np.empty(x.shape, np.float32),
                                   threads)
    assert made is not None
    (fn, args), y = made
    fn(*args)
    _bits_equal(y, table[x])


def test_program_runs_recorded_calls_in_order() -> None:
    """A Program of a chain of calls equals the calls made one by one, run after run, and
    reads the arrays' memory as it is when run."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    c = rng.standard_normal((1, 3, 1)).astype(np.float32)
    mid = np.empty(x.shape, np.float32)
    out = np.empty(x.shape, np.float32)
    with recording() as tape:
        for op, ins, y in (("Mul", [x, c], mid), ("Relu", [mid], mid), ("Sub", [mid, x], out)):
            made = program.FLOAT_KERNELS[op](ins, y, 1)
            assert made is not None
            (fn, args), _ = made
            call(fn, *args)
    assert program.appendable(tape)
    prog = program.new_program()
    program.append(prog, tape)
    assert len(prog) == 3
    for seed in range(3):
        x[...] = np.random.default_rng(seed).standard_normal(x.shape)
        prog.run()
        want = FLOAT_OPS["Sub"](FLOAT_OPS["Relu"](FLOAT_OPS["Mul"](x, c)), x)
        _bits_equal(out, want)


def test_strided_or_converted_arguments_are_not_appended() -> None:
    """Calls on arrays the binding would convert (a copy) never go into a Program."""
    x = np.arange(8, dtype=np.float64)
    y = np.empty(8, np.float32)
    ext = nb._native  # noqa: SLF001
    assert not program.appendable([(ext.float_clamp, (x, y, 0.0, 0.0, True, False, 1))])
    xs = np.arange(16, dtype=np.float32)[::2]
    assert not program.appendable([(ext.float_clamp, (xs, y, 0.0, 0.0, True, False, 1))])
    assert program.appendable([(ext.float_clamp, (xs.copy(), y, 0.0, 0.0, True, False, 1))])
    assert not program.appendable([(print, (1,))])


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("lo", [None, 0.0, -0.0, -1.5, np.inf, -np.inf, np.nan])
@pytest.mark.parametrize("hi", [None, 0.0, 6.0, np.inf, np.nan])
def test_clamp_is_onnxruntimes_clip(path: str, lo: float | None, hi: float | None) -> None:
    """float_clamp (Clip, a fused convolution's Relu or Clip) is x < lo ? lo : x, then
    hi < . ? hi : . bit for bit (ONNX Runtime's Clip, MLAS's activations, docs/operators.md
    (O77)): NaN inputs stay, a NaN bound clamps nothing, -0 against a +0 bound stays -0
    (np.maximum gave the bound: repro 49)."""
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal(3000).astype(np.float32) * 4, SPECIAL])
    want = x.copy()
    with np.errstate(all="ignore"):
        if lo is not None:
            want = np.where(want < np.float32(lo), np.float32(lo), want)
        if hi is not None:
            want = np.where(np.float32(hi) < want, np.float32(hi), want)
    y = np.empty_like(x)
    with nb.use_path(path):
        nb._native.float_clamp(x, y, 0.0 if lo is None else float(lo),
                               0.0 if hi is None else float(hi), lo is not None,
                               hi is not None, 2)
    _bits_equal(y, want.astype(np.float32))
    if lo == 0.0 and hi is None and not np.signbit(lo):
        # Relu is x < 0 ? 0 : x (docs/operators.md (O63)): the same bits
        _bits_equal(y, FLOAT_OPS["Relu"](x))


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div"])
@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_binary_reads_a_channels_first_operand_viewed_channels_last(path: str, op: str,
                                                                    data: st.DataObject) -> None:
    """A channels-first operand viewed channels-last beside a channels-last one (the residual
    Adds of effword_resnet50_int8: an integer convolution's output channels-last, a float
    one's channels-first; replay._channels_last_operands) runs natively at its own strides,
    bit for bit numpy on the same views; a view with gaps does not (the kernel reads the
    view's memory as one block)."""
    n, c, h, w = (data.draw(st.integers(1, 6)) for _ in range(4))
    cl = data.draw(hnp.arrays(np.float32, (n, h, w, c), elements=FLOATS))
    cf = data.draw(hnp.arrays(np.float32, (n, c, h, w), elements=FLOATS))
    view = np.moveaxis(cf, 1, -1)
    with nb.use_path(path):
        for a, b in ((cl, view), (view, cl)):
            want = FLOAT_OPS[op](np.ascontiguousarray(a), np.ascontiguousarray(b))
            _bits_equal(_native(op, a, b, threads=2), np.asarray(want, np.float32))
    gaps = np.zeros((n, h, w, 2 * c), np.float32)[..., ::2]
    if not gaps.flags.c_contiguous:
        assert program.FLOAT_KERNELS[op]([cl, gaps], np.empty(cl.shape, np.float32), 1) is None
    if not view.flags.c_contiguous:     # the others read contiguous operands only
        assert program.FLOAT_KERNELS["Max"]([cl, view], np.empty(cl.shape, np.float32),
                                            1) is None
