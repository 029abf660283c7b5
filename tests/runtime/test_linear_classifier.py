"""ai.onnx.ml LinearClassifier and Normalizer (lowp.runtime.ml_ops, docs/operators.md (O290))
against ONNX Runtime, output bytes compared: the operators of onnxruntime's own sample
logistic regression (`onnxruntime/datasets/logreg_iris.onnx`, the corpus's ort_logreg_iris,
OnnxMLTools 1.2: LinearClassifier -> Normalizer L1 -> ZipMap), which lowp refused ("domain
'ai.onnx.ml' is not supported beyond Scaler, ...")."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import lowp
from lowp.errors import NodeError, UnsupportedOpError
from lowp.pipeline import NothingToQuantizeWarning
from lowp.runtime import Session
from lowp.runtime.backends import native_available

BACKENDS = ["reference"] + (["native"] if native_available() else [])
_TYPES = {np.float32: TensorProto.FLOAT, np.float64: TensorProto.DOUBLE,
          np.int32: TensorProto.INT32, np.int64: TensorProto.INT64}
_ML = helper.make_opsetid("ai.onnx.ml", 1)


def _ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray], threads: int = 1
         ) -> list[np.ndarray]:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    s = ort.InferenceSession(model.SerializeToString(), opts,
                             providers=["CPUExecutionProvider"])
    return list(s.run(None, feeds))


def _classifier(dtype: type, rank: int, classes: int, features: int, post: str,
                extra: int = 0, seed: int = 0, labels: list[int] | None = None
                ) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    coef = rng.standard_normal(classes * features + extra).astype(np.float32) * 2
    if labels is None:
        labels = [int(v) for v in rng.permutation(40)[:classes] - 7]
    node = helper.make_node(
        "LinearClassifier", ["x"], ["label", "scores"], domain="ai.onnx.ml",
        coefficients=[float(v) for v in coef],
        intercepts=[float(v) for v in rng.standard_normal(classes).astype(np.float32)],
        post_transform=post, **({"classlabels_ints": labels} if labels else {}))
    shape = [None, features] if rank == 2 else [features]
    graph = helper.make_graph(
        [node], "linear", [helper.make_tensor_value_info("x", _TYPES[dtype], shape)],
        [helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
         helper.make_tensor_value_info("scores", TensorProto.FLOAT, [None, classes])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), _ML])


def _input(dtype: type, shape: tuple[int, ...], seed: int, specials: bool) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if np.issubdtype(dtype, np.integer):
        return rng.integers(-50, 50, shape).astype(dtype)
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    if specials and x.size >= 4:
        x.reshape(-1)[:4] = [np.nan, np.inf, -np.inf, -0.0]
    return x


def _same(got: dict[str, np.ndarray], want: list[np.ndarray], names: list[str]) -> None:
    for name, w in zip(names, want, strict=True):
        g = got[name]
        assert g.dtype == w.dtype and g.shape == w.shape, name
        assert g.tobytes() == w.tobytes(), name


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("post", ["NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO", "PROBIT"])
@pytest.mark.parametrize(("classes", "rows"), [(3, 7), (2, 5), (6, 33), (4, 4100)])
def test_linear_classifier_matches_onnxruntime(backend: str, threads: int, post: str,
                                                classes: int, rows: int) -> None:
    """Labels and scores bit for bit: scores through the Gemm (MLAS's SGEMM onto the
    broadcast intercepts), the label the first largest raw score, each post transform as
    batched_update_scores_inplace runs it (SOFTMAX on MLAS from 5 classes, or from
    16384 scores with 3 or 4); NaN and infinite features among the rows."""
    model = _classifier(np.float32, 2, classes, 5, post, seed=classes)
    x = _input(np.float32, (rows, 5), rows, specials=True)
    want = _ort(model, {"x": x}, threads)
    session = Session(model, backend=backend, threads=threads)
    for _ in range(2):      # the first run and the replayed one
        _same(session.run({"x": x}), want, ["label", "scores"])


@pytest.mark.parametrize("dtype", list(_TYPES))
@pytest.mark.parametrize("rank", [1, 2])
def test_linear_classifier_converts_other_inputs_to_float32(dtype: type, rank: int) -> None:
    model = _classifier(dtype, rank, 3, 4, "LOGISTIC", seed=7)
    x = _input(dtype, (6, 4) if rank == 2 else (4,), 3, specials=False)
    _same(Session(model).run({"x": x}), _ort(model, {"x": x}), ["label", "scores"])


@pytest.mark.parametrize("nan", [False, True])
def test_linear_classifier_label_of_tied_scores(nan: bool) -> None:
    """Tied largest scores (classes 1 and 2 the same row of coefficients, 0 and -0 scores
    of class 0) give the first one's label, with a NaN score in the batch or none."""
    node = helper.make_node(
        "LinearClassifier", ["x"], ["label", "scores"], domain="ai.onnx.ml",
        coefficients=[-1.0, 0.0, 2.0, 1.0, 2.0, 1.0], intercepts=[0.0, 0.0, 0.0],
        classlabels_ints=[5, 3, 9])
    graph = helper.make_graph(
        [node], "ties", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
         helper.make_tensor_value_info("scores", TensorProto.FLOAT, [None, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), _ML])
    x = np.array([[1, 2], [0, 0], [-0.0, -1], [-3, 6], [2, -4], [0, 1]], np.float32)
    if nan:
        x[5, 0] = np.nan
    _same(Session(model).run({"x": x}), _ort(model, {"x": x}), ["label", "scores"])


def test_linear_classifier_reads_the_first_c_times_f_coefficients() -> None:
    """logreg_iris lists 12 coefficients for 3 classes but takes 2 features: ONNX Runtime's
    Gemm reads the first 6 as a 3 x 2 matrix."""
    model = _classifier(np.float32, 2, 3, 2, "LOGISTIC", extra=6, seed=2)
    x = _input(np.float32, (3, 2), 5, specials=False)
    _same(Session(model).run({"x": x}), _ort(model, {"x": x}), ["label", "scores"])


def test_linear_classifier_refusals() -> None:
    """What ONNX Runtime 1.32 refuses, lowp refuses: too few coefficients for the input's
    features (at run time), a count not a multiple of the classes, fewer labels than
    classes (at load); and ONNX Runtime's binary case, which lowp does not run."""
    x = np.ones((2, 4), np.float32)
    for extra, match in ((-3, "9 coefficients for 3 classes of 4 features"),
                         (-1, "11 coefficients are not a multiple of the 3 classes")):
        model = _classifier(np.float32, 2, 3, 4, "NONE", extra=extra)
        with pytest.raises(NodeError, match=match):
            Session(model).run({"x": x})
        with pytest.raises(Exception):  # noqa: B017  (ONNX Runtime: load or run error)
            _ort(model, {"x": x})
    few = _classifier(np.float32, 2, 3, 4, "NONE")
    labels = next(a for a in few.graph.node[0].attribute if a.name == "classlabels_ints")
    del labels.ints[-1]
    with pytest.raises(NodeError, match="2 class labels for 3 classes"):
        Session(few).run({"x": x})
    with pytest.raises(Exception):  # noqa: B017
        _ort(few, {"x": x})
    probit = _classifier(np.float32, 2, 1, 4, "PROBIT", labels=[3, 9])
    with pytest.raises(UnsupportedOpError, match="PROBIT on one score a row with two"):
        Session(probit).run({"x": x})
    for labels in ([7], [1, 2, 3]):
        odd = _classifier(np.float32, 2, 1, 4, "NONE", labels=labels)
        with pytest.raises(NodeError, match=f"{len(labels)} class labels for one score"):
            Session(odd).run({"x": x})
        with pytest.raises(Exception):  # noqa: B017
            _ort(odd, {"x": x})


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("labels", [[], [3, 9]])
@pytest.mark.parametrize("post", ["NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO", "PROBIT"])
def test_one_score_a_row_matches_onnxruntime(threads: int, labels: list[int], post: str
                                             ) -> None:
    """ONNX Runtime's binary case (one intercept): the label by the sign of the score;
    with two labels two scores a row, (ComputeLogistic(-s), ComputeLogistic(s)) under
    LOGISTIC and (1 - s, s) under the others; without labels the score, PROBIT only
    applied. lowp refused one score a row before."""
    if labels and post == "PROBIT":
        pytest.skip("refused (test_linear_classifier_refusals)")
    model = _classifier(np.float32, 2, 1, 3, post, seed=5, labels=labels)
    x = _input(np.float32, (37, 3), 8, specials=True)
    x[5:9] = x[5:9] * 1e-3     # scores near 0: PROBIT's domain, the sign of the label
    _same(Session(model, threads=threads).run({"x": x}), _ort(model, {"x": x}, threads),
          ["label", "scores"])


def _normalizer(dtype: type, rank: int, norm: str) -> onnx.ModelProto:
    node = helper.make_node("Normalizer", ["x"], ["y"], domain="ai.onnx.ml", norm=norm)
    graph = helper.make_graph(
        [node], "norm", [helper.make_tensor_value_info("x", _TYPES[dtype], [None] * rank)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None] * rank)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), _ML])


@pytest.mark.parametrize("dtype", list(_TYPES))
@pytest.mark.parametrize("norm", ["MAX", "L1", "L2"])
@pytest.mark.parametrize("shape", [(9, 5), (7,), (4, 1), (3, 0)])
def test_normalizer_matches_onnxruntime(dtype: type, norm: str, shape: tuple[int, ...]
                                        ) -> None:
    """Each row to float32 as ONNX Runtime's NormalizeMax/L1/L2 loops compute it: sums in
    order in float32, a zero row left as it is, NaN and infinities among the values."""
    x = _input(dtype, shape, len(shape) * 11 + shape[0], specials=True)
    if x.ndim == 2 and x.shape[1]:
        x[1] = 0                    # a row whose norm is 0
        if x.dtype.kind == "f":
            x[2] = -np.abs(x[2])    # a row of negatives (MAX below 0)
    model = _normalizer(dtype, len(shape), norm)
    want = _ort(model, {"x": x})
    _same(Session(model).run({"x": x}), want, ["y"])


def test_normalizer_refuses_an_unknown_norm() -> None:
    with pytest.raises(NodeError, match="norm must be MAX, L1 or L2"):
        Session(_normalizer(np.float32, 2, "L3")).run({"x": np.ones((2, 2), np.float32)})


_IRIS = Path(ort.__file__).parent / "datasets" / "logreg_iris.onnx"


@pytest.mark.skipif(not _IRIS.exists(), reason="onnxruntime ships no logreg_iris.onnx")
@pytest.mark.parametrize("threads", [1, 2])
def test_onnxruntime_sample_logistic_regression_runs_and_quantizes(threads: int) -> None:
    """The whole sample model: labels and the ZipMap's maps as ONNX Runtime gives them, on
    the float file and on lowp's quantized one (nothing to quantize: every node float).
    quantize_model refused it before: "cannot upgrade the model from opset 1 to 13" (the
    file imports only ai.onnx.ml, which onnx's version converter cannot convert)."""
    model = onnx.load(str(_IRIS))
    x = np.random.default_rng(4).uniform(2, 8, (3, 2)).astype(np.float32)
    with pytest.warns(NothingToQuantizeWarning):    # (its opset import added, (O290))
        qdq = lowp.quantize_model(model, {"float_input": np.random.default_rng(0).uniform(
            2, 8, (3, 2)).astype(np.float32)})
    for m in (model, qdq):
        want = _ort(m, {"float_input": x}, threads)
        got = Session(m, threads=threads).run({"float_input": x})
        assert got["label"].tobytes() == want[0].tobytes()
        assert [list(r) for r in got["probabilities"]] == [list(r) for r in want[1]]
        assert np.array([list(r.values()) for r in got["probabilities"]], np.float32
                        ).tobytes() == np.array([list(r.values()) for r in want[1]],
                                                np.float32).tobytes()


@pytest.mark.skipif(not native_available(), reason="needs the native extension")
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("norm", ["MAX", "L1"])
@pytest.mark.parametrize("post", ["NONE", "LOGISTIC"])
def test_linear_classifier_and_normalizer_replay_as_a_native_program(threads: int, norm: str,
                                                                     post: str) -> None:
    """ort_logreg_iris' LinearClassifier -> Normalizer without its ZipMap: the labels
    (`first_largest_labels`: the first largest raw score, a NaN first never left) and the
    rows over their L1 sum or maximum (`normalize_rows`, a zero row as it is) are native
    calls into buffers the signature owns, so from the third run on the run is native
    Programs only; every run, on new rows with NaN, infinities, -0, ties and a zero row,
    gives ONNX Runtime's bits."""
    model = _classifier(np.float32, 2, 3, 2, post, seed=5)
    node = helper.make_node("Normalizer", ["scores"], ["y"], domain="ai.onnx.ml", norm=norm)
    model.graph.node.append(node)
    model.graph.output[1].CopyFrom(
        helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3]))
    session = Session(model, threads=threads)
    for run in range(5):
        x = _input(np.float32, (9, 2), run, specials=run % 2 == 1)
        x[run] = 0.0
        want = _ort(model, {"x": x}, threads)
        _same(session.run({"x": x}), want, ["label", "y"])
    assert session._replayer is not None and session._replayer.native_only(
        (("x", x.shape, x.dtype.str),)), "the replayed run is not native Programs only"
