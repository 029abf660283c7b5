"""Attention (opset 23) gives ONNX Runtime's outputs bit for bit on both backends at 1 and 2
threads (docs/operators.md (O303)): float32 and float16, 3-D and 4-D inputs, grouped
key/value heads, boolean and float masks of every broadcast ONNX Runtime reads, causal,
scale, past keys and values, nonpad_kv_seqlen (opset 24), softcap, the Q·Kᵀ output in each
mode, rows hidden whole; and the refusals."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import helper

import lowp
from lowp.errors import NodeError, UnsupportedOpError
from lowp.runtime import float_attention, native_backend, native_float, program
from lowp.runtime.tape import recording

from .ort_agreement import onnxruntime_run

_LOWEST = np.finfo(np.float32).min


def attention_model(feeds: dict[str, np.ndarray | None], outputs: list[str],
                    opset: int = 23, **attrs: Any) -> onnx.ModelProto:
    """One Attention node over the graph inputs `feeds` (None: an omitted input), its
    outputs named `outputs` ("" for one it does not ask for)."""
    elem = helper.np_dtype_to_tensor_dtype(feeds["q"].dtype)  # type: ignore[union-attr]
    node = helper.make_node("Attention", [n if v is not None else "" for n, v in feeds.items()],
                            outputs, **attrs)
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
         for n, v in feeds.items() if v is not None],
        [helper.make_tensor_value_info(o, elem, None) for o in outputs if o])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 10
    return model


def assert_onnxruntimes_bits(model: onnx.ModelProto, feeds: dict[str, np.ndarray | None],
                             backends: tuple[str, ...] = ("reference", "native", "numpy")
                             ) -> None:
    """Every output of lowp's reference and native backends, and of the reference with its
    products in numpy, equals ONNX Runtime's bit for bit, at 1 and 2 threads."""
    given_feeds = {n: v for n, v in feeds.items() if v is not None}
    names = [o.name for o in model.graph.output]
    for threads in (1, 2):
        want = onnxruntime_run(model, given_feeds, threads)
        for backend in backends:
            session = lowp.Session(model, backend="reference" if backend == "numpy"
                                   else backend, threads=threads)
            with native_float.disabled() if backend == "numpy" else contextlib.nullcontext():
                got = session.run(dict(given_feeds))    # numpy: lowp.mlas_sgemm's products
            for name, w in zip(names, want, strict=True):
                g = got[name]
                where = f"{name} {backend} {threads} threads"
                assert g.shape == w.shape and g.dtype == w.dtype, (where, g.shape, w.shape)
                bits = np.dtype(f"u{w.dtype.itemsize}")
                np.testing.assert_array_equal(g.view(bits), w.view(bits), err_msg=where)


@st.composite
def cases(draw: st.DrawFn) -> tuple[dict[str, np.ndarray | None], list[str], dict[str, Any]]:
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    batch = draw(st.integers(1, 2))
    kv_heads = draw(st.integers(1, 2))
    q_heads = kv_heads * draw(st.integers(1, 3))
    seq = draw(st.integers(1, 33))
    kv_seq = draw(st.sampled_from([seq, draw(st.integers(1, 33))]))
    head = draw(st.integers(1, 17))
    v_head = draw(st.sampled_from([head, draw(st.integers(1, 9))]))
    past = draw(st.sampled_from([0, 0, draw(st.integers(1, 9))]))
    four_d = draw(st.booleans())
    total = past + kv_seq
    dtype = draw(st.sampled_from([np.float32, np.float32, np.float16]))

    def normal(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * draw(st.sampled_from([0.5, 2.0, 8.0]))
                ).astype(dtype)

    if four_d:
        q, k, v = (normal(batch, q_heads, seq, head), normal(batch, kv_heads, kv_seq, head),
                   normal(batch, kv_heads, kv_seq, v_head))
    else:
        q, k, v = (normal(batch, seq, q_heads * head), normal(batch, kv_seq, kv_heads * head),
                   normal(batch, kv_seq, kv_heads * v_head))
    mask: np.ndarray | None = None
    mask_kind = draw(st.sampled_from(["none", "bool", "float"]))
    if mask_kind != "none":
        lead = draw(st.sampled_from([(), (1,), (q_heads,), (1, 1), (batch, 1), (1, q_heads),
                                     (batch, q_heads)]))
        shape = lead + (seq, total)
        if mask_kind == "bool":
            mask = rng.random(shape) < draw(st.sampled_from([0.3, 0.8, 1.0]))
        else:
            mask = normal(*shape)
            mask[rng.random(shape) < 0.2] = draw(st.sampled_from(
                [-np.inf, np.finfo(dtype).min, -1e4]))
        if draw(st.booleans()):                  # a row hidden whole
            mask[..., rng.integers(seq), :] = False if mask.dtype == np.bool_ \
                else np.finfo(dtype).min
    feeds: dict[str, np.ndarray | None] = {"q": q, "k": k, "v": v, "attn_mask": mask}
    outputs = ["y"]
    if past:
        feeds["past_key"] = normal(batch, kv_heads, past, head)
        feeds["past_value"] = normal(batch, kv_heads, past, v_head)
    presents = past > 0 or draw(st.booleans())
    outputs += ["present_key", "present_value"] if presents else ["", ""]
    attrs: dict[str, Any] = {"is_causal": draw(st.integers(0, 1))}
    if draw(st.booleans()):
        outputs.append("qk")
        attrs["qk_matmul_output_mode"] = draw(st.integers(0, 3))
    if draw(st.booleans()):
        attrs["scale"] = draw(st.sampled_from([1.0, 0.125, 0.3, 2.5]))
    if draw(st.integers(0, 3)) == 0:
        attrs["softcap"] = draw(st.sampled_from([0.5, 2.0, 30.0]))
    if not four_d or draw(st.booleans()):
        attrs["q_num_heads"], attrs["kv_num_heads"] = q_heads, kv_heads
    if not past and draw(st.booleans()):        # opset 24: keys past a length per entry
        feeds["past_key"] = feeds["past_value"] = None
        feeds["nonpad_kv_seqlen"] = rng.integers(0, total + 1, batch).astype(np.int64)
    while outputs[-1] == "":
        outputs.pop()
    return feeds, outputs, attrs


@settings(max_examples=60, deadline=None)
@given(case=cases())
def test_attention(case: tuple[dict[str, np.ndarray | None], list[str], dict[str, Any]]
                   ) -> None:
    feeds, outputs, attrs = case
    opset = 24 if feeds.get("nonpad_kv_seqlen") is not None else 23
    assert_onnxruntimes_bits(attention_model(feeds, outputs, opset, **attrs), feeds)


def _call(feeds: dict[str, np.ndarray | None], outputs: list[str], opset: int,
          attrs: dict[str, Any]) -> tuple[np.ndarray | None, ...]:
    """The registered operator on `feeds` (in the node's input order) with the node's
    attributes and outputs."""
    names = ("q", "k", "v", "attn_mask", "past_key", "past_value", "nonpad_kv_seqlen")
    with np.errstate(all="ignore"):
        return float_attention.Attention(
            *(feeds.get(n) for n in names), outputs=tuple(bool(o) for o in outputs),
            opset=opset, **attrs)


def _assert_native_is_the_loop(feeds: dict[str, np.ndarray | None], outputs: list[str],
                               opset: int, attrs: dict[str, Any]) -> None:
    """The node as one native call (native_float.attention) equals the loop over batch
    entries and heads bit for bit, on every instruction-set path (each against the loop on
    the same path: which NaN the SGEMM kernels keep where two meet is the path's) at 1 and 2
    threads."""
    for path in native_backend.available_paths():
        with native_backend.use_path(path), float_attention.whole.off():
            want = _call(feeds, outputs, opset, attrs)
        for threads in (1, 2):
            with native_backend.use_path(path), native_float.threads(threads), \
                    recording() as tape:
                got = _call(feeds, outputs, opset, attrs)
            assert [program.appenders()[fn][0] for fn, _ in tape] == ["float_attention"]
            for i, (g, w) in enumerate(zip(got, want, strict=True)):
                if not (outputs + [""] * 4)[i]:
                    continue
                assert g is not None and w is not None
                where = f"output {i} {path} {threads} threads"
                assert g.shape == w.shape and g.dtype == w.dtype, where
                bits = np.dtype(f"u{w.dtype.itemsize}")
                np.testing.assert_array_equal(g.view(bits), w.view(bits), err_msg=where)


@settings(max_examples=60, deadline=None)
@given(case=cases(), specials=st.booleans())
def test_native_node_equals_the_loop(
        case: tuple[dict[str, np.ndarray | None], list[str], dict[str, Any]],
        specials: bool) -> None:
    feeds, outputs, attrs = case
    if specials:                                 # NaNs of any payload, infinities, -0
        rng = np.random.default_rng(7)
        for name in ("q", "k", "v", "attn_mask", "past_key"):
            x = feeds.get(name)
            if x is None or x.dtype == np.bool_:
                continue
            x = feeds[name] = x.copy()
            u = rng.random(x.shape)
            bits = np.dtype(f"u{x.itemsize}")
            exponent, keep = (0x7F800000, 0x807FFFFF) if x.itemsize == 4 else (0x7C00, 0x83FF)
            raw = rng.integers(1, 1 << (8 * x.itemsize), x.shape).astype(bits)
            nan = (raw & bits.type(keep)) | bits.type(exponent | 1)    # any sign and payload
            x[u < 0.03] = nan.view(x.dtype)[u < 0.03]
            x[(u > 0.03) & (u < 0.05)] = np.inf
            x[(u > 0.05) & (u < 0.06)] = -0.0
    opset = 24 if feeds.get("nonpad_kv_seqlen") is not None else 23
    _assert_native_is_the_loop(feeds, outputs, opset, attrs)


@st.composite
def causal_cases(draw: st.DrawFn) -> tuple[dict[str, np.ndarray | None], list[str],
                                           dict[str, Any]]:
    """Causal float32 nodes of more than one block of query rows (the native call skips the
    keys a block's rows do not see, float_attention.cpp `causal_scores`): sequences of
    33-100 against 33-130 keys with a past or not, masks, nonpad_kv_seqlen, the Q·Kᵀ output,
    values from ordinary to large enough that scale * q·k passes 2^100 (then every key is
    computed), and NaNs, infinities and -0."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    batch, kv_heads = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    q_heads = kv_heads * draw(st.integers(1, 2))
    seq = draw(st.integers(33, 100))
    kv_seq = draw(st.sampled_from([seq, draw(st.integers(33, 130))]))
    past = draw(st.sampled_from([0, 0, draw(st.integers(1, 40))]))
    head, v_head = draw(st.sampled_from([4, 16, 64])), draw(st.sampled_from([3, 16]))
    total = past + kv_seq
    size = draw(st.sampled_from([1.0, 1.0, 1e12, 1e14, 1e16]))

    def normal(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * size).astype(np.float32)

    feeds: dict[str, np.ndarray | None] = {
        "q": normal(batch, q_heads, seq, head), "k": normal(batch, kv_heads, kv_seq, head),
        "v": normal(batch, kv_heads, kv_seq, v_head), "attn_mask": None}
    mask_kind = draw(st.sampled_from(["none", "bool", "float"]))
    if mask_kind == "bool":
        feeds["attn_mask"] = rng.random((batch, 1, seq, total)) < 0.8
    elif mask_kind == "float":
        mask = rng.standard_normal((seq, total)).astype(np.float32)
        mask[rng.random(mask.shape) < 0.1] = draw(st.sampled_from([-np.inf, _LOWEST]))
        feeds["attn_mask"] = mask
    if draw(st.booleans()):                      # NaNs of any payload, infinities, -0
        name = draw(st.sampled_from(["q", "k", "v"]))
        x = feeds[name]
        assert x is not None
        where = tuple(int(rng.integers(n)) for n in x.shape)
        x[where] = draw(st.sampled_from([np.nan, np.inf, -np.inf, -0.0,
                                         np.uint32(0xFFC01234).view(np.float32)]))
    outputs = ["y", "", ""]
    if past:
        feeds["past_key"] = normal(batch, kv_heads, past, head)
        feeds["past_value"] = normal(batch, kv_heads, past, v_head)
        outputs = ["y", "present_key", "present_value"]
    attrs: dict[str, Any] = {"is_causal": 1}
    if draw(st.booleans()):
        outputs.append("qk")
        attrs["qk_matmul_output_mode"] = draw(st.sampled_from([2, 3]))
    if draw(st.booleans()):
        attrs["scale"] = draw(st.sampled_from([1.0, 0.125, 2.5]))
    if not past and draw(st.booleans()):
        feeds["nonpad_kv_seqlen"] = rng.integers(0, total + 1, batch).astype(np.int64)
    while outputs[-1] == "":
        outputs.pop()
    return feeds, outputs, attrs


@settings(max_examples=40, deadline=None)
@given(case=causal_cases())
def test_causal_blocks_equal_the_loop(
        case: tuple[dict[str, np.ndarray | None], list[str], dict[str, Any]]) -> None:
    feeds, outputs, attrs = case
    opset = 24 if feeds.get("nonpad_kv_seqlen") is not None else 23
    _assert_native_is_the_loop(feeds, outputs, opset, attrs)


@pytest.mark.parametrize("size", [1e14, 4e15, 3e16])
def test_causal_blocks_near_the_bound(size: float) -> None:
    """Scores around 2^100-2^110, where the lowest float plus the product stops being the
    lowest float: the keys the causal pattern hides show in the Q·Kᵀ output after the mask
    (mode 2), equal to the loop's whether the native call skips them or not."""
    rng = np.random.default_rng(3)
    feeds: dict[str, np.ndarray | None] = {
        n: (rng.standard_normal((1, 2, 70, 64)) * size).astype(np.float32)
        for n in ("q", "k", "v")}
    _assert_native_is_the_loop(feeds, ["y", "", "", "qk"], 23,
                               {"is_causal": 1, "qk_matmul_output_mode": 2})


def test_causal_blocks_keep_the_sign_of_zero_sums() -> None:
    """Equal scores and values of -2^-149 on the keys a block of rows sees: each product
    rounds to -0 and so does the sum; the full product's later keys (values +1, probability
    +0) make it +0, and the native call, which leaves those keys out, computes such a block
    again over every key. Infinities and a NaN on the later keys: every key."""
    tiny = np.float32(-2.0**-149)
    q = np.zeros((1, 1, 64, 8), np.float32)
    k = np.random.default_rng(0).standard_normal((1, 1, 64, 8)).astype(np.float32)
    for later in (1.0, np.inf, np.nan):
        v = np.full((1, 1, 64, 4), later, np.float32)
        v[:, :, :32] = tiny
        feeds: dict[str, np.ndarray | None] = {"q": q, "k": k, "v": v}
        _assert_native_is_the_loop(feeds, ["y"], 23, {"is_causal": 1})


@pytest.mark.parametrize("past", [False, True])
def test_feeds_read_in_place_by_the_node(past: bool) -> None:
    """Q, K and V feeds that only the node reads are not copied on replayed runs: its call
    reads the caller's arrays through slots of its Program (past keys and values are still
    copied). New arrays, arrays changed in place, one array fed as both K and V, and
    arrays it cannot read as they are (Fortran order, strided views: copied) all give the
    plain run's results."""
    shapes = {"q": (1, 4, 40, 16), "k": (1, 2, 40, 16), "v": (1, 2, 40, 16)}
    if past:
        shapes |= {"past_key": (1, 2, 5, 16), "past_value": (1, 2, 5, 16)}

    def feeds(seed: int) -> dict[str, np.ndarray]:
        r = np.random.default_rng(seed)
        return {n: r.standard_normal(s).astype(np.float32) for n, s in shapes.items()}

    given = feeds(0)
    outputs = ["y", "present_key", "present_value"] if past else ["y"]
    model = attention_model({"q": given["q"], "k": given["k"], "v": given["v"],
                             "attn_mask": None, **{n: given[n] for n in shapes if "past" in n}},
                            outputs, is_causal=1)
    fast = lowp.Session(model, backend="native")
    plain = lowp.Session(model, backend="native", replay=False)

    def same(f: dict[str, np.ndarray]) -> None:
        got, want = fast.run(dict(f)), plain.run({n: v.copy() for n, v in f.items()})
        for n in outputs:
            np.testing.assert_array_equal(got[n].view(np.uint32), want[n].view(np.uint32))

    for seed in range(3):
        same(feeds(seed))
    assert fast._replayer is not None
    signature = tuple((n, s, "<f4") for n, s in shapes.items())
    assert fast._replayer._in_place[signature] == frozenset({"q", "k", "v"})
    kept = feeds(5)
    for seed in range(3):
        for n, v in feeds(30 + seed).items():
            kept[n][...] = v
        same(kept)
        same(feeds(40 + seed))
        fortran = {n: np.asfortranarray(v) for n, v in feeds(50 + seed).items()}
        same(fortran)
        wide = {n: np.repeat(v, 2, axis=-1)[..., ::2] for n, v in feeds(60 + seed).items()}
        same(wide)
    shared = feeds(70)
    shared["v"] = shared["k"]                    # one array as two feeds
    same(shared)


def _qkv(batch: int = 1, heads: int = 2, seq: int = 3, head: int = 4
         ) -> dict[str, np.ndarray | None]:
    rng = np.random.default_rng(0)
    return {n: rng.standard_normal((batch, heads, seq, head)).astype(np.float32)
            for n in ("q", "k", "v")}


@pytest.mark.parametrize("mode", [0, 1, 2, 3])
def test_a_row_the_mask_hides_whole_is_zero(mode: int) -> None:
    """ONNX Runtime gives zeros for a row whose every mask value is at most the lowest
    float32 (-inf too), where its softmax alone gives 1 / n or NaN; not for a NaN, nor for
    scores that overflow to -inf under a finite mask."""
    feeds = _qkv(seq=6)
    mask = np.zeros((6, 6), np.float32)
    mask[0] = _LOWEST
    mask[1] = -np.inf
    mask[2] = -np.inf
    mask[2, 4] = np.nan
    mask[3] = _LOWEST
    mask[3, 5] = 0                               # hidden by the causal pattern
    mask[4, :2] = -np.inf
    feeds["attn_mask"] = mask
    feeds["v"][0, 0, 0] = [np.inf, -np.inf, np.nan, 1]  # type: ignore[index]
    model = attention_model(feeds, ["y", "", "", "qk"], is_causal=1,
                            qk_matmul_output_mode=mode)
    assert_onnxruntimes_bits(model, feeds)


@pytest.mark.parametrize("path", native_backend.available_paths())
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("mode", [0, 1, 2, 3])
def test_nan_payloads(dtype: type, mode: int, path: str) -> None:
    """NaNs (with payloads and signs), infinities in Q, K, V and the mask pass on as ONNX
    Runtime passes them, softcap or not, on each instruction-set path (forced: the SGEMM's
    NaN is (O349)'s on every one; before, the avx2 and scalar paths handed on others). Not
    the numpy products: lowp.mlas_sgemm's general kernel does not reproduce which NaN MLAS
    keeps where an element of A and one of B at the same k are both NaNs."""
    with native_backend.use_path(path):
        _nan_payloads(dtype, mode)


def _nan_payloads(dtype: type, mode: int) -> None:
    rng = np.random.default_rng(mode)

    def special(*shape: int) -> np.ndarray:
        x = rng.standard_normal(shape).astype(dtype)
        u = rng.random(shape)
        x[u < 0.05] = np.nan
        x[(u > 0.05) & (u < 0.08)] = np.inf
        x[(u > 0.08) & (u < 0.1)] = -np.inf
        if dtype == np.float32:
            payloads = np.uint32(0x7FC01234) | (rng.integers(0, 2, shape) << 31).astype(np.uint32)
            x[u > 0.97] = payloads.view(np.float32)[u > 0.97]
        return x

    for softcap in (0.0, 3.0):
        feeds: dict[str, np.ndarray | None] = {
            "q": special(2, 2, 5, 8), "k": special(2, 2, 7, 8), "v": special(2, 2, 7, 8),
            "attn_mask": special(5, 7) if mode % 2 else None}
        model = attention_model(feeds, ["y", "", "", "qk"], qk_matmul_output_mode=mode,
                                softcap=softcap, is_causal=mode // 2)
        assert_onnxruntimes_bits(model, feeds, backends=("reference", "native"))


def test_overflowing_scores_under_a_finite_mask() -> None:
    feeds = _qkv(heads=1, seq=2)
    feeds["q"][0, 0, 0] = 1e19  # type: ignore[index]
    feeds["k"][0, 0] = -1e19  # type: ignore[index]
    feeds["attn_mask"] = np.full((2, 2), -3e38, np.float32)
    assert_onnxruntimes_bits(attention_model(feeds, ["y", "", "", "qk"], scale=1.0,
                                             qk_matmul_output_mode=3), feeds)


@pytest.mark.parametrize("four_d", [False, True])
def test_decode_step_with_past_ignores_is_causal(four_d: bool) -> None:
    """One query after past keys sees every position (ONNX Runtime skips the causal
    pattern there), present_key and present_value are the concatenations."""
    rng = np.random.default_rng(1)
    q = rng.standard_normal((2, 4, 1, 5)).astype(np.float32)
    k = rng.standard_normal((2, 2, 1, 5)).astype(np.float32)
    v = rng.standard_normal((2, 2, 1, 3)).astype(np.float32)
    if not four_d:
        q, k, v = (x.transpose(0, 2, 1, 3).reshape(2, 1, -1) for x in (q, k, v))
    feeds: dict[str, np.ndarray | None] = {
        "q": q, "k": k, "v": v, "attn_mask": None,
        "past_key": rng.standard_normal((2, 2, 7, 5)).astype(np.float32),
        "past_value": rng.standard_normal((2, 2, 7, 3)).astype(np.float32)}
    model = attention_model(feeds, ["y", "present_key", "present_value"], is_causal=1,
                            q_num_heads=4, kv_num_heads=2)
    assert_onnxruntimes_bits(model, feeds)


def test_batch_zero_is_the_models_error() -> None:
    """ONNX Runtime refuses an empty batch: so does lowp, as the model's error."""
    feeds = {n: np.zeros((0, 1, 2, 4), np.float32) for n in ("q", "k", "v")}
    model = attention_model(dict(feeds), ["y"])
    with pytest.raises(Exception, match="Batch size"):
        onnxruntime_run(model, feeds)
    with pytest.raises(NodeError, match="batch size"):
        lowp.Session(model, backend="reference").run(feeds)


@pytest.mark.parametrize("change", ["mask_broadcast_rows", "float64"])
def test_refusals_name_the_node(change: str) -> None:
    feeds = _qkv()
    attrs: dict[str, Any] = {}
    if change == "mask_broadcast_rows":
        feeds["attn_mask"] = np.zeros((1, 3), np.float32)
    else:
        feeds = {n: v.astype(np.float64) for n, v in feeds.items()}  # type: ignore[union-attr]
    model = attention_model(feeds, ["y"], **attrs)
    model.graph.node[0].name = "attn0"
    given_feeds = {n: v for n, v in feeds.items() if v is not None}
    with pytest.raises(UnsupportedOpError, match="Attention.*attn0|attn0.*Attention"):
        lowp.Session(model, backend="reference").run(given_feeds)


def _replayed(session: lowp.Session, feeds: dict[str, np.ndarray]) -> list[int]:
    """Steps per native Program of the session's one feed signature, after three runs."""
    for _ in range(3):
        session.run(dict(feeds))
    assert session._replayer is not None
    (signature,) = session._replayer._ready
    return session._replayer.programs(signature)


@pytest.mark.parametrize("four_d", [False, True])
def test_the_node_replays_as_one_program(four_d: bool) -> None:
    """A float32 node with a boolean mask, past keys and values and the Q·Kᵀ output is one
    step of the session's Program (one native call a run), equal to ONNX Runtime."""
    rng = np.random.default_rng(3)
    q = rng.standard_normal((2, 4, 3, 5)).astype(np.float32)
    k = rng.standard_normal((2, 2, 3, 5)).astype(np.float32)
    v = rng.standard_normal((2, 2, 3, 6)).astype(np.float32)
    if not four_d:
        q, k, v = (x.transpose(0, 2, 1, 3).reshape(2, 3, -1) for x in (q, k, v))
    feeds: dict[str, np.ndarray | None] = {
        "q": q, "k": k, "v": v, "attn_mask": rng.random((2, 1, 3, 7)) < 0.7,
        "past_key": rng.standard_normal((2, 2, 4, 5)).astype(np.float32),
        "past_value": rng.standard_normal((2, 2, 4, 6)).astype(np.float32)}
    model = attention_model(feeds, ["y", "present_key", "present_value", "qk"], is_causal=1,
                            q_num_heads=4, kv_num_heads=2, qk_matmul_output_mode=2)
    given_feeds = {n: x for n, x in feeds.items() if x is not None}
    session = lowp.Session(model, backend="native", threads=2)
    assert _replayed(session, given_feeds) == [1]
    assert_onnxruntimes_bits(model, feeds, backends=("native",))


def test_a_replayed_nonpad_length_out_of_range_is_the_nodes_error() -> None:
    """nonpad_kv_seqlen is read as the Program runs: a value past the keys sends the step
    the plain way, which names it."""
    feeds = _qkv(batch=2, seq=4)
    feeds.update(attn_mask=None, past_key=None, past_value=None,
                 nonpad_kv_seqlen=np.array([4, 2], np.int64))
    model = attention_model(feeds, ["y"], opset=24, is_causal=1)
    model.graph.node[0].name = "attn0"
    given_feeds = {n: x for n, x in feeds.items() if x is not None}
    session = lowp.Session(model, backend="native")
    assert _replayed(session, given_feeds) == [1]
    want = onnxruntime_run(model, given_feeds)[0]
    np.testing.assert_array_equal(session.run(dict(given_feeds))["y"], want)
    with pytest.raises(NodeError, match="attn0.*nonpad_kv_seqlen|nonpad_kv_seqlen.*attn0"):
        session.run(dict(given_feeds, nonpad_kv_seqlen=np.array([5, 2], np.int64)))
