"""Replay compiled to native Programs (lowp.runtime.replay, lowp.runtime.program) gives the
results of plain runs bit for bit: zoo models and float glue chains, new and mutated input
arrays, changing batch sizes, 1 and 2 threads, two Python threads at once."""

from __future__ import annotations

import threading

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from lowp.pipeline import quantize
from lowp.runtime import Session
from lowp.runtime.backends import native_available
from tests import model_zoo
from tests.runtime.test_replay import _feeds

pytestmark = pytest.mark.skipif(not native_available(), reason="the native extension is not built")

MODELS = ["resnet_style", "mobilenet_v2_style", "mobilenet_v3_style", "detector_head_style",
          "linear_mlp"]


def _identical(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape, k
        np.testing.assert_array_equal(a[k].view(np.uint8), b[k].view(np.uint8), err_msg=k)


def _signature(feeds: dict[str, np.ndarray]) -> tuple:
    return tuple((k, v.shape, v.dtype.str) for k, v in feeds.items())


def _exercise(fast: Session, plain: Session, feeds_of: object) -> None:
    """New arrays, one array mutated in place, other batch sizes and back."""
    make = feeds_of  # type: ignore[assignment]
    for seed in range(5):
        feeds = make(seed, None)  # type: ignore[operator]
        _identical(fast.run(feeds), plain.run(feeds))
    same = make(10, None)  # type: ignore[operator]
    for seed in range(4):
        for k, v in make(20 + seed, None).items():  # type: ignore[operator]
            same[k][...] = v
        _identical(fast.run(same), plain.run({k: v.copy() for k, v in same.items()}))
    for batch in (1, 3, 1, 3, 3, 2, 2, 2):
        feeds = make(batch, batch)  # type: ignore[operator]
        _identical(fast.run(feeds), plain.run(feeds))


@pytest.fixture(scope="module")
def zoo_dir(tmp_path_factory: pytest.TempPathFactory):
    return tmp_path_factory.mktemp("zoo-program")


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("name", MODELS)
def test_programs_equal_plain_runs(name, threads, zoo_dir):
    path, data = model_zoo.BUILDERS[name](zoo_dir)
    model = quantize(path, data).model
    fast = Session(model, threads=threads)
    plain = Session(model, threads=threads, replay=False)
    _exercise(fast, plain, lambda seed, batch: _feeds(data, seed, batch))
    assert fast._replayer is not None
    programs = fast._replayer.programs(_signature(_feeds(data, 0)))
    assert programs and max(programs) > 1, programs     # steps really run as Programs


def _float_chain(steps: int = 24, plain_at: int | None = None) -> bytes:
    """A float glue chain over (N, 4, 3, 3): Add/Mul with per-channel and scalar
    constants, Sub/Div of two activations, Relu, Sigmoid, Tanh, HardSwish, Reshape,
    MaxPool, AveragePool, HardSigmoid, Erf, Max, PRelu, Clip, Min; a Selu (no native
    kernel: a new array on every run) as node `plain_at`."""
    rng = np.random.default_rng(0)
    nodes, inits = [], []
    x, prev = "x", "x"
    cycle = ["Add", "Relu", "Mul", "Flat", "Reshape", "Sigmoid", "Sub", "Tanh", "Div",
             "HardSwish", "MaxPool", "HardSigmoid", "AveragePool", "Erf", "Max", "PRelu",
             "Clip", "Min"]
    for i in range(steps):
        op, y = cycle[i % len(cycle)], f"t{i}"
        if i == plain_at:
            nodes.append(helper.make_node("Selu", [x], [y], alpha=0.1))
        elif op in ("Add", "Mul"):
            shape = (1, 4, 1, 1) if i % 4 else ()
            inits.append(numpy_helper.from_array(
                rng.uniform(0.5, 1.5, shape).astype(np.float32), f"c{i}"))
            nodes.append(helper.make_node(op, [x, f"c{i}"], [y]))
        elif op in ("PRelu", "Min"):
            inits.append(numpy_helper.from_array(
                rng.uniform(-0.5, 0.5, (1, 4, 1, 1) if op == "PRelu" else ()).astype(
                    np.float32), f"c{i}"))
            nodes.append(helper.make_node(op, [x, f"c{i}"], [y]))
        elif op == "Clip":
            for k, v in (("lo", -0.25), ("hi", 0.75)):
                inits.append(numpy_helper.from_array(np.array(v, np.float32), f"{k}{i}"))
            nodes.append(helper.make_node(op, [x, f"lo{i}", f"hi{i}"], [y]))
        elif op in ("Sub", "Div", "Max"):
            nodes.append(helper.make_node(op, [x, prev], [y]))
        elif op in ("Flat", "Reshape"):
            target = [0, 4, 9] if op == "Flat" else [0, 4, 3, 3]
            inits.append(numpy_helper.from_array(np.array(target, np.int64), f"s{i}"))
            nodes.append(helper.make_node("Reshape", [x, f"s{i}"], [y]))
        elif op in ("MaxPool", "AveragePool"):
            nodes.append(helper.make_node(op, [x], [y], kernel_shape=[3, 3], pads=[1, 1, 1, 1]))
        elif op == "HardSigmoid":
            nodes.append(helper.make_node(op, [x], [y], alpha=0.3, beta=0.4))
        else:
            nodes.append(helper.make_node(op, [x], [y]))
        prev, x = x, y
    inits.append(numpy_helper.from_array(np.array([0, 4, 3, 3], np.int64), "final_shape"))
    nodes.append(helper.make_node("Reshape", [x, "final_shape"], ["y"]))
    graph = helper.make_graph(
        nodes, "glue", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4, 3, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4, 3, 3])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


@pytest.mark.parametrize("threads", [1, 2])
def test_float_glue_chain_runs_as_one_program(threads):
    model = _float_chain(36)
    fast = Session(model, threads=threads)
    plain = Session(model, threads=threads, replay=False)

    def make(seed: int, batch: int | None) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((batch or 2, 4, 3, 3)).astype(np.float32)
        x.reshape(-1)[:4] = [0.0, -0.0, np.inf, -np.inf]
        return {"x": x}

    with np.errstate(all="ignore"):
        _exercise(fast, plain, make)
    assert fast._replayer is not None
    assert fast._replayer.programs(_signature(make(0, None))) == [len(fast.steps)]


def test_sessions_in_two_python_threads(zoo_dir):
    """Two threads running Programs at once (the native pool is shared) get plain results."""
    path, data = model_zoo.BUILDERS["resnet_style"](zoo_dir)
    model = quantize(path, data).model
    feeds = [_feeds(data, seed) for seed in range(4)]
    want = [Session(model, replay=False).run(f) for f in feeds]
    errors: list[BaseException] = []

    def work(offset: int, threads: int) -> None:
        try:
            s = Session(model, threads=threads)
            for i in range(24):
                k = (i + offset) % len(feeds)
                _identical(s.run(feeds[k]), want[k])
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    workers = [threading.Thread(target=work, args=(o, t)) for o, t in ((0, 1), (1, 2))]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    assert not errors, errors[0]


def test_outputs_never_alias_plan_buffers():
    """Results handed out are copies: a later run does not change them."""
    model = _float_chain(10)
    s = Session(model)
    x = np.random.default_rng(1).standard_normal((2, 4, 3, 3)).astype(np.float32)
    outs = [s.run({"x": x * (i + 1)}) for i in range(5)]
    copies = [{k: v.copy() for k, v in o.items()} for o in outs]
    s.run({"x": -x})
    for o, c in zip(outs, copies, strict=True):
        _identical(o, c)


def test_intermediate_and_constant_outputs_of_replayed_runs(zoo_dir):
    """A replayed run keeps only what later steps read; asking for an intermediate tensor
    or a constant by name still gives the plain run's value."""
    path, data = model_zoo.BUILDERS["resnet_style"](zoo_dir)
    model = quantize(path, data).model
    fast, plain = Session(model), Session(model, replay=False)
    feeds = _feeds(data, 3)
    captured = plain.run(feeds, capture=True)
    inner_names = [n for n in captured if n not in fast.output_names
                   and n not in fast._constants and n not in feeds]
    inner = inner_names[len(inner_names) // 2]
    constant = next(iter(fast._constants))
    for _ in range(4):
        _identical(fast.run(feeds), plain.run(feeds))
        _identical(fast.run(feeds, [inner, constant]), plain.run(feeds, [inner, constant]))


def test_segment_runs_plain_when_an_outside_tensor_changes():
    """A segment reading a tensor made by a step run the plain way replays only while that
    tensor is the memory it read when recorded; when it is not, the segment's steps run the
    plain way (and give their plain results)."""
    from lowp.runtime.plan import Step
    from lowp.runtime.program import FLOAT_KERNELS
    from lowp.runtime.replay import Replayer
    from lowp.runtime.session import execute
    from lowp.runtime.tape import call

    stable = np.zeros(6, np.float32)
    runs = {"n": 0}

    def make_x(feed: np.ndarray, *, layout: object) -> tuple[np.ndarray, ...]:
        runs["n"] += 1          # the same buffer on the first three runs, then new arrays
        out = stable if runs["n"] <= 3 else np.empty(6, np.float32)
        np.multiply(feed, 2, out=out)
        return (out,)

    own = np.empty(6, np.float32)

    def relu(x: np.ndarray, *, layout: object) -> tuple[np.ndarray, ...]:
        made = FLOAT_KERNELS["Relu"]([x], own, 1)
        assert made is not None
        (fn, args), y = made
        call(fn, *args)
        return (y,)

    steps = [Step("x", "Mul", "float", ["feed"], ["x"], make_x),
             Step("r", "Relu", "int", ["x"], ["y"], relu, replayable=True)]
    replayer = Replayer(steps, execute, set(), ["y"])
    signature = (("feed", (6,), "<f4"),)
    for k in range(6):
        feed = np.linspace(-1, 1, 6).astype(np.float32) * (k + 1)
        env: dict[str, np.ndarray] = {}
        replayer.run(signature, env, {}, {"feed": feed})
        np.testing.assert_array_equal(env["y"], np.maximum(feed * 2, 0))
        if k == 2:
            assert replayer.programs(signature) == [1]



def test_steps_after_a_plain_step_replay():
    """The outputs of a step run the plain way are copied into buffers the signature owns,
    so the steps reading them replay too (and give the plain results)."""
    model = _float_chain(20, plain_at=7)
    fast, plain = Session(model), Session(model, replay=False)

    def make(seed: int, batch: int | None) -> dict[str, np.ndarray]:
        x = np.random.default_rng(seed).standard_normal((batch or 2, 4, 3, 3))
        return {"x": x.astype(np.float32)}

    with np.errstate(all="ignore"):
        _exercise(fast, plain, make)
    assert fast._replayer is not None
    signature = _signature(make(0, None))
    assert fast._replayer.replayed_steps(signature) == len(fast.steps) - 1
    assert len(fast._replayer.programs(signature)) == 2


def test_constant_operand_add_and_mul_replay(tmp_path):
    """A quantized Add or Mul of a tensor and a one-value constant (its numpy reference in
    the plain way) replays as a lookup in the table of the step's own results."""
    rng = np.random.default_rng(0)
    nodes, inits = [], []
    x = "x"
    for i, op in enumerate(["Conv", "Mul", "Add", "Conv", "Add", "Mul", "Conv"]):
        y = f"t{i}"
        if op == "Conv":
            inits.append(numpy_helper.from_array(
                (rng.standard_normal((8, 8, 1, 1)) * 0.3).astype(np.float32), f"w{i}"))
            nodes.append(helper.make_node(op, [x, f"w{i}"], [y]))
        else:
            inits.append(numpy_helper.from_array(np.array(rng.uniform(0.5, 1.5), np.float32),
                                                 f"c{i}"))
            operands = [x, f"c{i}"] if i % 2 else [f"c{i}", x]
            nodes.append(helper.make_node(op, operands, [y]))
        x = y
    graph = helper.make_graph(
        nodes, "affine", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8, 4, 4])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["N", 8, 4, 4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "affine.onnx"
    onnx.save(model, path)
    data = {"x": rng.standard_normal((8, 8, 4, 4)).astype(np.float32)}
    qdq = quantize(path, data).model
    fast, plain = Session(qdq), Session(qdq, replay=False)
    _exercise(fast, plain, lambda seed, batch: _feeds(data, seed, batch or 2))
    assert fast._replayer is not None
    plan = fast._replayer._state[_signature(_feeds(data, 0, 2))]
    from lowp.runtime.replay import _Replay
    # (each a table step of the other operand, consecutive ones fused into one table)
    arithmetic = [p for e in plan if isinstance(e, _Replay) and e.step.kind == "int"
                  for p in e.step.op_type.split("+") if p in ("Add", "Mul")]
    assert len(arithmetic) == 4
