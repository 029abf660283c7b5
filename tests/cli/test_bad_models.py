"""Bad model files on every subcommand: exit status 2, one `lowp: ` line, no traceback."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.external_data_helper import set_external_data

from lowp.cli import EXIT_USER, main

K = 4   # the good model: y = x @ w, x (n, K), w (K, 3)


def _weight() -> np.ndarray:
    return np.linspace(-1, 1, K * 3, dtype=np.float32).reshape(K, 3)


def _model(nodes: list[onnx.NodeProto] | None = None, *, opset: int | None = 17,
           ir_version: int | None = None, extra_opsets: tuple[tuple[str, int], ...] = (),
           outputs: tuple[str, ...] = ("y",)) -> onnx.ModelProto:
    nodes = nodes if nodes is not None else [helper.make_node("MatMul", ["x", "w"], ["y"],
                                                              name="mm")]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", K])],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, ["n", 3]) for o in outputs],
        [numpy_helper.from_array(_weight(), "w")])
    imports = [helper.make_opsetid("", opset)] if opset is not None else []
    imports += [helper.make_opsetid(d, v) for d, v in extra_opsets]
    model = helper.make_model(graph, opset_imports=imports)
    if ir_version is not None:
        model.ir_version = ir_version
    return model


def _write(folder: Path, model: onnx.ModelProto, name: str = "model.onnx") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(model.SerializeToString())
    return path


def _external(folder: Path, location: str) -> Path:
    """The good model with its weight stored at `location` (relative to the model)."""
    model = _model()
    w = model.graph.initializer[0]
    set_external_data(w, location)
    w.data_location = TensorProto.EXTERNAL
    w.ClearField("raw_data")
    return _write(folder, model)


def ext_missing(tmp: Path) -> Path:
    return _external(tmp / "m", "weights.bin")


def ext_truncated(tmp: Path) -> Path:
    (tmp / "m").mkdir()
    (tmp / "m" / "weights.bin").write_bytes(_weight().tobytes()[:10])
    return _external(tmp / "m", "weights.bin")


def ext_escaping(tmp: Path) -> Path:
    # the file exists and holds the right bytes: only its place is wrong
    (tmp / "outside.bin").write_bytes(_weight().tobytes())
    return _external(tmp / "a" / "b", "../../outside.bin")


def ext_etc(tmp: Path) -> Path:
    return _external(tmp / "m", "../../../../../../../../etc/hostname")


def ext_absolute(tmp: Path) -> Path:
    (tmp / "outside.bin").write_bytes(_weight().tobytes())
    return _external(tmp / "m", str(tmp / "outside.bin"))


def opset_zero(tmp: Path) -> Path:
    return _write(tmp, _model(opset=0))


def opset_huge(tmp: Path) -> Path:
    return _write(tmp, _model(opset=99999))


def no_default_opset(tmp: Path) -> Path:
    return _write(tmp, _model(opset=None, extra_opsets=(("com.example", 1),)))


def duplicate_outputs(tmp: Path) -> Path:
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm"),
             helper.make_node("Relu", ["x"], ["y"], name="relu")]
    return _write(tmp, _model(nodes))


def dangling_input(tmp: Path) -> Path:
    nodes = [helper.make_node("MatMul", ["ghost", "w"], ["y"], name="mm")]
    return _write(tmp, _model(nodes))


def unknown_op(tmp: Path) -> Path:
    nodes = [helper.make_node("NoSuchOperator", ["x", "w"], ["y"], name="mystery")]
    return _write(tmp, _model(nodes))


def ir_version_zero(tmp: Path) -> Path:
    return _write(tmp, _model(ir_version=0))


def ir_version_huge(tmp: Path) -> Path:
    return _write(tmp, _model(ir_version=10**12))


def empty_file(tmp: Path) -> Path:
    path = tmp / "empty.onnx"
    path.write_bytes(b"")
    return path


def random_bytes(tmp: Path) -> Path:
    path = tmp / "random.onnx"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, np.uint8).tobytes())
    return path


def directory(tmp: Path) -> Path:
    path = tmp / "folder.onnx"
    path.mkdir()
    return path


def text_file(tmp: Path) -> Path:
    path = tmp / "notes.onnx"
    path.write_text("ir_version: 8\ngraph { name: 'g' }\n")
    return path


def wrong_message(tmp: Path) -> Path:
    """A valid protobuf, but a TensorProto, not a ModelProto."""
    path = tmp / "tensor.onnx"
    path.write_bytes(numpy_helper.from_array(_weight(), "w").SerializeToString())
    return path


def graph_message(tmp: Path) -> Path:
    """A valid protobuf, but a GraphProto, not a ModelProto."""
    path = tmp / "graph.onnx"
    path.write_bytes(_model().graph.SerializeToString())
    return path


def missing_file(tmp: Path) -> Path:
    return tmp / "nowhere.onnx"


def invalid_utf8_name(tmp: Path) -> Path:
    """An unknown operator in a node whose name is not UTF-8: the checker's message names
    the node and cannot be decoded (a bare UnicodeDecodeError once)."""
    nodes = [helper.make_node("NoSuchOperator", ["x", "w"], ["y"], name="NODE_NAME_TO_BREAK")]
    data = _model(nodes).SerializeToString()
    assert data.count(b"NODE_NAME_TO_BREAK") == 1
    path = tmp / "utf8.onnx"
    path.write_bytes(data.replace(b"NODE_NAME_TO_BREAK", b"\xff\xfe" * 9))
    return path


BAD_MODELS: dict[str, Callable[[Path], Path]] = {f.__name__: f for f in [
    ext_missing, ext_truncated, ext_escaping, ext_etc, ext_absolute, opset_zero, opset_huge,
    no_default_opset, duplicate_outputs, dangling_input, unknown_op,
    ir_version_zero, ir_version_huge, empty_file, random_bytes, directory, text_file,
    wrong_message, graph_message, missing_file, invalid_utf8_name]}


def _argv(command: str, model: Path, tmp: Path) -> tuple[list[str], list[Path]]:
    """Arguments of `command` on `model`, and the output files it must not leave behind."""
    x = np.ones((2, K), np.float32)
    np.savez(tmp / "calib.npz", x=x)
    np.save(tmp / "x.npy", x)
    out = tmp / "out"
    out.mkdir(exist_ok=True)
    table = {
        "quantize": (["quantize", str(model), "--calib", str(tmp / "calib.npz"), "-o",
                      str(out / "q.onnx"), "--quiet", "--calib-table", str(out / "t.json"),
                      "--report", str(out / "r.html")], [out]),
        "calibrate": (["calibrate", str(model), "--calib", str(tmp / "calib.npz"), "-o",
                       str(out / "t.json"), "--quiet", "--workers", "1"], [out]),
        "run": (["run", str(model), "--input", f"x={tmp / 'x.npy'}", "-o",
                 str(out / "y.npz")], [out]),
        "check": (["check", str(model), "--target", "lowp"], []),
        "convert": (["convert", str(model), "--to", "qoperator", "-o", str(out / "c.onnx")],
                    [out]),
        "compare": (["compare", str(model), "--targets", "lowp", "fbgemm", "--samples", "2"],
                    []),
    }
    return table[command]


COMMANDS = ("quantize", "calibrate", "run", "check", "compare", "convert")


def test_every_subcommand_that_takes_a_model_is_covered():
    from lowp.cli import build_parser
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    takes_model = {name for name, p in sub.choices.items()  # type: ignore[union-attr]
                   if any(a.dest == "model" for a in p._actions)}
    assert takes_model == set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", sorted(BAD_MODELS))
def test_bad_model(case, command, tmp_path, capfd):
    model = BAD_MODELS[case](tmp_path)
    argv, outputs = _argv(command, model, tmp_path)
    capfd.readouterr()
    code = main(argv)
    err = capfd.readouterr().err
    lines = err.strip().splitlines()
    assert code == EXIT_USER, err
    assert len(lines) == 1 and lines[0].startswith("lowp: error: "), err
    assert model.name in lines[0], err
    assert "Traceback" not in err
    for folder in outputs:
        assert list(folder.iterdir()) == [], f"{command} left {list(folder.iterdir())}"


@pytest.mark.parametrize("case", ["ext_etc", "random_bytes"])
def test_bad_model_as_a_process(case, tmp_path):
    """The installed entry point, not only main(): same single line, same status."""
    model = BAD_MODELS[case](tmp_path)
    for command in ("run", "quantize"):
        argv, outputs = _argv(command, model, tmp_path)
        proc = subprocess.run([sys.executable, "-m", "lowp.cli", *argv], capture_output=True,
                              text=True, timeout=120)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == EXIT_USER, proc.stderr
        assert len(lines) == 1 and lines[0].startswith(f"lowp: error: {model}"), proc.stderr
        assert not any(any(f.iterdir()) for f in outputs)


def duplicate_node_names(tmp: Path) -> Path:
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="same"),
             helper.make_node("MatMul", ["r", "w"], ["y"], name="same")]
    return _write(tmp, _model(nodes))


def duplicate_graph_outputs(tmp: Path) -> Path:
    return _write(tmp, _model(outputs=("y", "y")))


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", [duplicate_node_names, duplicate_graph_outputs])
def test_tolerated_oddities(case, command, tmp_path, capfd):
    """Not errors: node names are made unique when quantizing (ONNX Runtime refuses
    duplicates, lowp's own output never has them) and a graph output listed twice is
    still one well-defined tensor (ONNX Runtime accepts it)."""
    argv, _ = _argv(command, case(tmp_path), tmp_path)
    assert main(argv) == 0, capfd.readouterr().err
    if command == "quantize":
        names = [n.name for n in onnx.load(str(tmp_path / "out" / "q.onnx")).graph.node]
        assert len(names) == len(set(names))


def _conv(tmp: Path, op: str = "Conv", **attrs: object) -> Path:
    """A float Conv (weight 4x2x3x3) or MaxPool on a 1x2x8x8 input, with `attrs`."""
    inputs = ["x", "w"] if op == "Conv" else ["x"]
    inits = [numpy_helper.from_array(np.ones((4, 2, 3, 3), np.float32), "w")] * (op == "Conv")
    graph = helper.make_graph(
        [helper.make_node(op, inputs, ["y"], name="the_node", **attrs)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["a", "b", "c", "d"])], inits)
    return _write(tmp, helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))


def _run_fails_cleanly(model: Path, tmp: Path, capfd) -> str:
    np.save(tmp / "x.npy", np.ones((1, 2, 8, 8), np.float32))
    code = main(["run", str(model), "--input", f"x={tmp / 'x.npy'}"])
    lines = capfd.readouterr().err.strip().splitlines()
    assert code == EXIT_USER and len(lines) == 1 and lines[0].startswith("lowp: error: "), lines
    return lines[0]


@pytest.mark.parametrize("attrs", [{"strides": [1]}, {"pads": [-5, -5, -5, -5]}],
                         ids=["strides_for_one_axis", "negative_pads"])
def test_attributes_shape_inference_refuses(attrs, tmp_path, capfd):
    _run_fails_cleanly(_conv(tmp_path, **attrs), tmp_path, capfd)


def test_per_axis_scale_that_does_not_fit_its_weight(tmp_path, capfd):
    w = numpy_helper.from_array(np.ones((4, 2, 3, 3), np.int8), "wq")
    scale = numpy_helper.from_array(np.ones(4, np.float32), "s")
    zp = numpy_helper.from_array(np.zeros(4, np.int8), "z")
    graph = helper.make_graph(
        [helper.make_node("DequantizeLinear", ["wq", "s", "z"], ["w"], name="dq", axis=1),
         helper.make_node("Conv", ["x", "w"], ["y"], name="conv")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["a", "b", "c", "d"])],
        [w, scale, zp])
    model = _write(tmp_path, helper.make_model(graph,
                                               opset_imports=[helper.make_opsetid("", 17)]))
    line = _run_fails_cleanly(model, tmp_path, capfd)
    assert line.endswith("node 'dq' (DequantizeLinear): axis 1 of 'wq' (shape [4, 2, 3, 3]) "
                         "has 2 entries, the scale 's' 4"), line


@pytest.mark.parametrize("op, attrs", [
    ("Conv", {"group": 2**31 - 1}), ("Conv", {"group": 0}),
    ("Conv", {"kernel_shape": [9, 9]}),            # the weight is 3x3: runs, ignoring it
    # past the 8x8 input by two strides (past by one, 9x9, is an empty output as in ONNX
    # Runtime: docs/operators.md (O181))
    ("MaxPool", {"kernel_shape": [10, 10]})],
    ids=["conv_group_huge", "conv_group_zero", "conv_kernel_shape_not_the_weights",
         "maxpool_kernel_two_strides_past_the_input"])
def test_engine_validation_gaps(op, attrs, tmp_path, capfd):
    _run_fails_cleanly(_conv(tmp_path, op, **attrs), tmp_path, capfd)


@pytest.mark.parametrize("location", ["weights.bin", "data/weights.bin"])
def test_external_data_inside_the_folder_is_read(location, tmp_path, capfd):
    (tmp_path / "m" / "data").mkdir(parents=True)
    (tmp_path / "m" / location).write_bytes(_weight().tobytes())
    model = _external(tmp_path / "m", location)
    argv, _ = _argv("run", model, tmp_path)
    assert main(argv) == 0, capfd.readouterr().err
    with np.load(tmp_path / "out" / "y.npz") as z:
        np.testing.assert_allclose(z["y"], np.ones((2, K), np.float32) @ _weight(), rtol=1e-6)


def test_model_bytes_with_external_data_are_refused(tmp_path):
    from lowp.errors import ModelError
    from lowp.ir.graph import load_model
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "weights.bin").write_bytes(_weight().tobytes())
    data = _external(tmp_path / "m", "weights.bin").read_bytes()
    with pytest.raises(ModelError, match="tensor 'w' is stored in an external file"):
        load_model(data)


def test_stale_declared_shapes_are_not_refused(tmp_path, capfd):
    """ONNX Runtime treats declared output and intermediate shapes as hints; so does the
    shape check of load_model (only what the nodes define must fit together)."""
    model = _model(outputs=("y",))
    model.graph.output[0].type.tensor_type.shape.dim[1].dim_value = 5     # really 3
    model.graph.value_info.append(helper.make_tensor_value_info("y", TensorProto.FLOAT, [7]))
    argv, _ = _argv("run", _write(tmp_path, model), tmp_path)
    assert main(argv) == 0, capfd.readouterr().err
