"""ONNX Runtime's NCHWc Add fusion mirrored at load (lowp.runtime.ort_nchwc_add): an Add of
two NCHWc values, one made by a Conv that only the Add reads, runs as that Conv with the
other as its Sum, which MLAS's NCHWc kernel adds its first block of input channels to
(found on open_nsfw_tf, ddddocr_ocr and PP-OCRv6's detector and recogniser, whose float
runs differed from ONNX Runtime's in the last bits: evals/corpus/repro/float_divergence.py).
Each model is built so that the unfused Add rounds otherwise (about a third of the values)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from lowp.runtime import nchwc_conv, ort_nchwc_add
from lowp.runtime.backends import native_available
from tests.runtime.ort_agreement import assert_sessions_equal_onnxruntime, onnxruntime_run

BACKENDS = ["reference"] + (["native"] if native_available() else [])
needs_blocks = pytest.mark.skipif(nchwc_conv.block_size() == 0,
                                  reason="ONNX Runtime keeps NCHW convolutions on this CPU")


def _model(*, c: int = 32, m: int = 32, k: int = 3, group: int = 1, bias: bool = True,
           order: tuple[str, str] = ("a", "c0"), branch: dict | None = None,
           relu_before: bool = False, relu_after: bool = False, identity: bool = False,
           dilation: int = 1, stride: int = 1, stem: bool = False, dynamic: bool = False,
           also_output: str = "", hw: int = 13, seed: int = 0
           ) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """x -> Conv (3 -> c) -> c0 -> Conv (c -> m, k x k) -> a -> Add(order) -> y. `branch`:
    a second Conv of c0 (its k, pads and stride) -> b, Add of a and b then; `stem`: a and b
    are Convs of x itself (fewer input channels than a block: MLAS's NCHW kernel)."""
    rng = np.random.default_rng(seed)
    f = np.float32

    def weights(name: str, shape: tuple[int, ...]) -> onnx.TensorProto:
        return numpy_helper.from_array((rng.standard_normal(shape) * 0.3).astype(f), name)

    src, cin = ("x", 3) if stem else ("c0", c)
    inits = [weights("w0", (c, 3, 3, 3)), numpy_helper.from_array(
        rng.standard_normal(c).astype(f), "b0"), weights("w1", (m, cin // group, k, k))]
    conv_a = [src, "w1"]
    if bias:
        inits.append(numpy_helper.from_array(rng.standard_normal(m).astype(f), "b1"))
        conv_a.append("b1")
    pad = (k - 1) // 2 * dilation
    nodes = [helper.make_node("Conv", ["x", "w0", "b0"], ["c0"], pads=[1] * 4),
             helper.make_node("Conv", conv_a, ["a0" if relu_before or identity else "a"],
                              pads=[pad] * 4, group=group, dilations=[dilation] * 2,
                              strides=[stride] * 2)]
    if relu_before:
        nodes.append(helper.make_node("Relu", ["a0"], ["a"]))
    if identity:
        nodes.append(helper.make_node("Identity", ["a0"], ["a"]))
    if branch is not None:
        kb = branch["k"]
        inits.append(weights("w2", (m, cin // group, kb, kb)))
        nodes.append(helper.make_node("Conv", [src, "w2"], ["b"], pads=branch["pads"],
                                      group=group, strides=[branch.get("stride", 1)] * 2))
    nodes.append(helper.make_node("Add", list(order), ["s" if relu_after else "y"]))
    if relu_after:
        nodes.append(helper.make_node("Relu", ["s"], ["y"]))
    x_shape: list = ["N", 3, "H", "W"] if dynamic else [2, 3, hw, hw]
    out = (hw - 1) // stride + 1
    y_shape: list = ["N", m, None, None] if dynamic else [2, m, out, out]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)]
    if also_output:
        outputs.append(helper.make_tensor_value_info(also_output, TensorProto.FLOAT, y_shape))
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)], outputs,
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              ir_version=8)
    return model, {"x": rng.standard_normal((2, 3, hw, hw)).astype(f)}


def _fused(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    return [n for n in ort_nchwc_add.apply(model).graph.node if n.op_type == "FusedConv"]


def _agree(model: onnx.ModelProto, feeds: dict[str, np.ndarray], backend: str) -> None:
    from lowp.runtime import Session

    theirs = onnxruntime_run(model, feeds)[0]
    ours = Session(model, backend=backend).run(feeds)["y"]
    np.testing.assert_array_equal(ours, theirs)


FUSED = {
    "residual": {},
    "residual_first": {"order": ("c0", "a")},
    "dynamic_sizes": {"dynamic": True},
    "pointwise": {"k": 1},
    "pointwise_two_chunks": {"c": 160, "m": 160, "k": 1},
    "partial_block": {"c": 20, "m": 20},
    "depthwise": {"group": 32},
    "no_bias": {"bias": False},
    "relu_after": {"relu_after": True},
    "identity_between": {"identity": True},
    "stem": {"stem": True, "branch": {"k": 1, "pads": [0] * 4}, "order": ("a", "b")},
    "two_branches_strided": {"dynamic": True, "stride": 2, "order": ("b", "a"),
                             "branch": {"k": 1, "pads": [0] * 4, "stride": 2}},
}


@needs_blocks
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", sorted(FUSED))
def test_fused_add_equals_onnxruntime(backend: str, case: str) -> None:
    model, feeds = _model(**FUSED[case])
    fused = _fused(model)
    assert len(fused) == 1
    _agree(model, feeds, backend)


@needs_blocks
def test_first_inputs_conv_takes_the_add() -> None:
    # both addends come from single-use NCHWc Convs: ONNX Runtime tries the first input's
    for order, conv, other in ((("a", "b"), "w1", "b"), (("b", "a"), "w2", "a")):
        model, _ = _model(branch={"k": 3, "pads": [1] * 4}, order=order)
        (node,) = _fused(model)
        assert node.input[1] == conv and node.input[3] == other


NOT_FUSED = {
    # the Conv's output is read twice (a graph output too)
    "conv_also_output": {"also_output": "a"},
    # through an Identity whose output is a graph output (ONNX Runtime keeps two readers)
    "identity_also_output": {"identity": True, "also_output": "a"},
    # a Relu between: ONNX Runtime fuses it into the Conv first, which then takes no Sum
    "activation_between": {"relu_before": True},
    # a dilated Conv keeps no dimension: shapes not provably equal (sizes unknown), so
    # ONNX Runtime adds reshaped NCHWc tensors instead
    "shapes_unproven": {"dynamic": True, "dilation": 2},
}


@needs_blocks
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", sorted(NOT_FUSED))
def test_unfused_add_equals_onnxruntime(backend: str, case: str) -> None:
    model, feeds = _model(**NOT_FUSED[case])
    assert _fused(model) == []
    _agree(model, feeds, backend)


@needs_blocks
@pytest.mark.skipif(not native_available(), reason="native module not built")
def test_replayed_runs_read_each_runs_sum() -> None:
    # from the third run on the native calls repeat as recorded: the Sum must be the
    # run's own value, not the recorded one
    from lowp.runtime import Session

    model, feeds = _model(group=32)
    session = Session(model, backend="native", replay=True)
    rng = np.random.default_rng(1)
    for _ in range(5):
        x = {"x": rng.standard_normal(feeds["x"].shape).astype(np.float32)}
        np.testing.assert_array_equal(session.run(x)["y"], onnxruntime_run(model, x)[0])
    # and they do repeat: the fused Conv is one of the replayed native calls, not a step
    # run from Python on every run
    (signature,) = session._replayer._ready
    assert session._replayer.plain_steps(signature) == []


def _upsampled_model(opset: int, resize: dict[str, object]
                     ) -> tuple[onnx.ModelProto, np.ndarray]:
    """x (32 channels, 16 x 16) -> Conv -> a; x -> strided Conv -> Resize (nearest, x2) ->
    up; y = Add(up, a). `resize`: the Resize's attributes and "scales"."""
    rng = np.random.default_rng(4)
    f = np.float32
    attrs = dict(resize)
    scales = np.array(attrs.pop("scales", [1, 1, 2, 2]), f)
    inits = [numpy_helper.from_array((rng.standard_normal((32, 32, 3, 3)) * 0.3).astype(f), n)
             for n in ("w1", "w2")]
    inits += [numpy_helper.from_array(rng.standard_normal(32).astype(f), n)
              for n in ("b1", "b2")]
    inits.append(numpy_helper.from_array(scales, "scales"))
    if opset >= 11:
        inits.append(numpy_helper.from_array(np.zeros(0, f), "roi"))
        op, ins = "Resize", ["down", "roi", "scales"]
    else:
        op, ins = ("Upsample" if opset == 9 else "Resize"), ["down", "scales"]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["a"], pads=[1] * 4),
             helper.make_node("Conv", ["x", "w2", "b2"], ["down"], pads=[1] * 4,
                              strides=[2, 2]),
             helper.make_node(op, ins, ["up"], **attrs),
             helper.make_node("Add", ["up", "a"], ["y"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 32, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              ir_version=8)
    return model, (rng.standard_normal((1, 32, 16, 16)) * 4).astype(f)


_NEAREST = {"mode": "nearest", "coordinate_transformation_mode": "asymmetric",
            "nearest_mode": "floor"}
UPSAMPLED = {  # (opset, Resize attributes and scales, whether ONNX Runtime fuses the Add)
    "resize_18": (18, _NEAREST, True),
    "resize_13": (13, _NEAREST, True),
    "resize_11": (11, _NEAREST, True),
    "resize_10": (10, {"mode": "nearest"}, True),
    "upsample_9": (9, {"mode": "nearest"}, True),
    "half_pixel": (18, {**_NEAREST, "coordinate_transformation_mode": "half_pixel"}, False),
    "round_prefer_floor": (18, {**_NEAREST, "nearest_mode": "round_prefer_floor"}, False),
    "nearest_mode_unwritten": (18, {"mode": "nearest",
                                    "coordinate_transformation_mode": "asymmetric"}, False),
    # linear from Resize-11 on, half_pixel (the default), asymmetric or align_corners (O320)
    "linear_half_pixel": (18, {"mode": "linear"}, True),
    "linear_asymmetric": (13, {"mode": "linear", "coordinate_transformation_mode":
                               "asymmetric"}, True),
    "linear_align_corners": (11, {"mode": "linear", "coordinate_transformation_mode":
                                  "align_corners"}, True),
    "linear_pytorch_half_pixel": (18, {"mode": "linear", "coordinate_transformation_mode":
                                       "pytorch_half_pixel"}, False),
}


@needs_blocks
@pytest.mark.skipif(not native_available(), reason="native module not built")
@pytest.mark.parametrize("case", sorted(UPSAMPLED))
def test_add_of_an_upsampled_nchwc_value_equals_onnxruntime(case: str) -> None:
    # ONNX Runtime's layout transformer runs a nearest Resize by whole factors (asymmetric,
    # floor) of an NCHWc value as its NCHWc Upsample: the Add of it and a Conv output is
    # the Conv's Sum then (terrain_consistency_unet's upsampling blocks), on every backend,
    # instruction-set path and thread count
    from lowp.runtime import native_backend

    opset, resize, fuses = UPSAMPLED[case]
    model, x = _upsampled_model(opset, resize)
    for path in native_backend.available_paths():
        with native_backend.use_path(path):
            assert_sessions_equal_onnxruntime(model, x)
    assert len(_fused(model)) == int(fuses)
