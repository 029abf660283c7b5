"""Replayed Programs whose step outputs share memory (lowp.runtime.sharing) give exactly the
results of plain runs, keep live values apart, and hand the caller arrays no later run
writes."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from lowp.pipeline import quantize
from lowp.runtime import Session, replay, sharing
from lowp.runtime.backends import native_available
from tests import model_zoo

pytestmark = pytest.mark.skipif(not native_available(), reason="the native extension is not built")

WIDTH = 96


def _chain_model() -> onnx.ModelProto:
    """Float steps a Program takes, where `a` is read again after three other values were
    made and dropped, `b`, a graph output, is also read by the steps after it, and `n`, a
    graph output, by none: an allocator that frees a value after its next reader, or a
    graph output after its last reader, hands their memory to a later step. (The products
    keep the element-wise steps apart: no chain of them is fused into one step.)"""
    nodes = [
        helper.make_node("MatMul", ["x", "w0"], ["a"]),
        helper.make_node("Relu", ["a"], ["b"]),
        helper.make_node("MatMul", ["b", "w1"], ["c"]),
        helper.make_node("Neg", ["c"], ["n"]),            # an output no step reads
        helper.make_node("Tanh", ["c"], ["d"]),
        helper.make_node("MatMul", ["d", "w2"], ["e"]),
        helper.make_node("Add", ["e", "a"], ["f"]),       # `a` still live here
        helper.make_node("MatMul", ["f", "w3"], ["g"]),
        helper.make_node("Sub", ["g", "b"], ["y"]),       # and `b`, an output, here
    ]
    shape = ["batch", WIDTH]
    rng = np.random.default_rng(0)
    weights = [helper.make_tensor(f"w{k}", TensorProto.FLOAT, [WIDTH, WIDTH], (
        rng.standard_normal((WIDTH, WIDTH)) / WIDTH ** 0.5).astype(np.float32))
        for k in range(4)]
    graph = helper.make_graph(
        nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, shape),
         helper.make_tensor_value_info("n", TensorProto.FLOAT, shape)], weights)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _feeds(seed: int, batch: int = 4) -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(seed).standard_normal((batch, WIDTH)).astype(np.float32)}


def _equal(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def _signature(session: Session, feeds: dict[str, np.ndarray]) -> tuple[object, ...]:
    return tuple((k, v.shape, v.dtype.str) for k, v in session._check_feeds(feeds).items())


def _shared(session: Session, feeds: dict[str, np.ndarray]) -> list[tuple[int, int, int]]:
    assert session._replayer is not None
    return session._replayer.shared_memory(_signature(session, feeds))


@pytest.mark.parametrize("threads", [1, 2])
def test_live_values_keep_their_memory(threads):
    """The replayed Program runs on shared memory (fewer bytes than its buffers), and every
    run, over several signatures and back, equals a plain run; results handed out earlier
    are untouched by later runs."""
    model = _chain_model()
    fast, plain = Session(model, threads=threads), Session(model, threads=threads,
                                                             replay=False)
    kept = []
    for seed, batch in enumerate([4, 4, 4, 4, 1, 1, 1, 3, 3, 3, 4, 1, 3, 4]):
        feeds = _feeds(seed, batch)
        got = fast.run(feeds)
        _equal(got, plain.run(feeds))
        kept.append(({k: v.copy() for k, v in got.items()}, got))
    for batch in (4, 1, 3):
        ((moved, moved_bytes, arena),) = _shared(fast, _feeds(0, batch))
        # (a, b, c, n, d, f, g, y (MatMul and Add are one Gemm): five live at most at
        # once, a, b, n, d and f at the Gemm)
        assert moved == 8 and arena == 5 * batch * WIDTH * 4
        assert arena < moved_bytes
    for copy, got in kept:
        _equal(copy, got)


def test_runs_asking_for_intermediates_get_them():
    """A run naming intermediate values runs the Program whose buffers are the steps' own."""
    model = _chain_model()
    fast, plain = Session(model), Session(model, replay=False)
    for seed in range(4):
        fast.run(_feeds(seed))
    assert _shared(fast, _feeds(0))
    names = ["a", "c", "f", "y"]
    for seed in range(3):
        _equal(fast.run(_feeds(10 + seed), names), plain.run(_feeds(10 + seed), names))
        _equal(fast.run(_feeds(20 + seed)), plain.run(_feeds(20 + seed)))


def test_a_plan_that_overlaps_live_values_is_dropped(monkeypatch):
    """Should the placement ever put two live values in one place, the run on the poisoned
    arena that decides whether the shared Program replaces the other finds the difference:
    that run, and every later one, is right."""
    def overlapping(calls, produced, outside, to_end):
        return [sharing.Block(b.root, b.first, b.last, 0)
                for b in plan(calls, produced, outside, to_end)]

    plan = sharing.plan
    monkeypatch.setattr(sharing, "plan", overlapping)
    model = _chain_model()
    fast, plain = Session(model), Session(model, replay=False)
    for seed in range(6):
        _equal(fast.run(_feeds(seed)), plain.run(_feeds(seed)))
    assert _shared(fast, _feeds(0)) == []
    assert fast._replayer is not None and fast._replayer.native_only(_signature(fast, _feeds(0)))


def test_plan_places_only_values_not_live_together():
    """Blocks overlapping in time never overlap in memory; what is outside stays; outputs
    read after the run live to the last call."""
    bufs = [np.empty(n, np.float32) for n in (64, 64, 32, 64, 48)]
    a, b, c, d, e = bufs
    calls = [(print, (a,)), (print, (a, b)), (print, (b, c[::2])), (print, (c, d.reshape(8, 8))),
             (print, ([d, b], e))]
    blocks = sharing.plan(calls, bufs, outside={id(e)}, to_end={id(b)})
    spans = {id(x.root): x for x in blocks}
    assert id(e) not in spans and len(spans) == 4
    assert (spans[id(b)].first, spans[id(b)].last) == (1, 4)
    assert (spans[id(a)].first, spans[id(a)].last) == (0, 1)
    assert (spans[id(c)].first, spans[id(c)].last) == (2, 3)
    for x in blocks:
        for y in blocks:
            if x is not y and x.first <= y.last and y.first <= x.last:
                assert (x.offset + x.root.nbytes <= y.offset
                        or y.offset + y.root.nbytes <= x.offset)
        assert x.offset % sharing.ALIGN == 0
    assert spans[id(d)].offset == spans[id(a)].offset      # a is dead when d is made
    move = sharing.Relocation(blocks)
    view = move.array(c[::2])
    assert view.strides == c[::2].strides and np.shares_memory(view, move.arena)
    assert move.array(e) is e


@pytest.mark.parametrize("threads", [1, 2])
def test_quantized_model_shares_and_equals_plain_runs(threads, tmp_path):
    """A residual network's quantized Programs (convolutions, adds, pools) on shared
    memory: equal to plain runs over repeated runs and two batch sizes."""
    path, data = model_zoo.BUILDERS["resnet_style"](tmp_path)
    model = quantize(path, data).model
    fast, plain = Session(model, threads=threads), Session(model, threads=threads,
                                                             replay=False)
    rng = np.random.default_rng(threads)
    for batch in (2, 2, 2, 2, 1, 1, 1, 2):
        feeds = {k: (rng.standard_normal((batch, *v.shape[1:])) * v.std()).astype(v.dtype)
                 for k, v in data.items()}
        _equal(fast.run(feeds), plain.run(feeds))
    assert _shared(fast, feeds)


def test_segments_keep_what_later_steps_read(monkeypatch):
    """A value a later runner reads (here every value, as a step run the plain way sits
    between two Programs) is not moved."""
    model = _chain_model()
    fast, plain = Session(model), Session(model, replay=False)
    real = replay._compile

    def split(plan, *args, **kwargs):
        # (the Tanh step run the plain way: the Programs before and after it exchange
        # values)
        plan = [e.step if type(e) is replay._Replay and e.step.op_type == "Tanh" else e
                for e in plan]
        return real(plan, *args, **kwargs)

    monkeypatch.setattr(replay, "_compile", split)
    for seed in range(6):
        _equal(fast.run(_feeds(seed)), plain.run(_feeds(seed)))
    assert fast._replayer is not None
    signature = _signature(fast, _feeds(0))
    assert fast._replayer.programs(signature) == [4, 3]
    # (the first Program's a, b and c are read after it, n alone moves; of the second's,
    # the Gemm's f, then g, then y: y takes f's place)
    size = 4 * WIDTH * 4
    assert fast._replayer.shared_memory(signature) == [(1, size, size),
                                                        (3, 3 * size, 2 * size)]


def test_sessions_made_while_disabled_keep_their_own_buffers():
    model = _chain_model()
    with sharing.disabled():
        own = Session(model)
    shared, plain = Session(model), Session(model, replay=False)
    for seed in range(4):
        _equal(own.run(_feeds(seed)), plain.run(_feeds(seed)))
        _equal(shared.run(_feeds(seed)), plain.run(_feeds(seed)))
    assert _shared(own, _feeds(0)) == [] and _shared(shared, _feeds(0))


def test_runs_naming_graph_outputs_share():
    """A run naming graph outputs only (as a benchmark naming ONNX Runtime's outputs does)
    stores what a run naming none does, so it runs the shared Program too."""
    model = _chain_model()
    fast, plain = Session(model), Session(model, replay=False)
    for seed in range(5):
        _equal(fast.run(_feeds(seed), ["n", "y"]), plain.run(_feeds(seed), ["n", "y"]))
    assert _shared(fast, _feeds(0))
