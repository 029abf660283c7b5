"""`lowp quantize --report`: the HTML report opens in headless Chromium without a console
error, its DOM holds the layer table and the plots, the sorting script works, the
screenshot is not blank, and user-given names are escaped."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from lowp.cli import EXIT_OK, main
from lowp.data import demo_model_path, load_demo_calibration
from lowp.report.ranges import rebin

# Where Debian's chromium-headless-shell (and chromium) put the binary; LOWP_CHROMIUM wins.
_CANDIDATES = ("chromium-headless-shell", "chromium", "/usr/lib/chromium/chromium-headless-shell",
               "/usr/lib/chromium-headless-shell/chromium-headless-shell",
               "/usr/lib/chromium/chromium")


def _chromium() -> str | None:
    given = os.environ.get("LOWP_CHROMIUM")
    if given:
        return given
    for c in _CANDIDATES:
        found = shutil.which(c) or (c if os.path.isabs(c) and os.access(c, os.X_OK) else None)
        if found:
            return found
    return None


CHROMIUM = _chromium()
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="NO HEADLESS CHROMIUM: the HTML report is not rendered. `make chromium` (run by "
           "`make test`) installs Debian's chromium-headless-shell as root; or set "
           "LOWP_CHROMIUM to a Chromium binary")

# A name a browser would run if it were not escaped.
EVIL = '<script>window.evil=1</script>&"x'


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run([CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox",
                           "--hide-scrollbars", "--enable-logging=stderr", "--v=0", *args],
                          capture_output=True, text=True, timeout=timeout, check=False)


def _console_lines(stderr: str) -> list[str]:
    """The page's console messages (errors, uncaught exceptions) in Chromium's log."""
    return [ln for ln in stderr.splitlines() if ":CONSOLE" in ln or "Uncaught" in ln]


def _png_pixels(path: Path) -> tuple[int, int, bytes]:
    """Width, height and the decompressed (still row-filtered) pixel data of a PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, size = 8, b"", (0, 0)
    while pos < len(data):
        (length,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            size = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    return size[0], size[1], zlib.decompress(idat)


def _tiny_model(path: Path) -> None:
    """Conv -> Relu -> Conv -> Gemm with hostile names, one input of 1x2x6x6."""
    rng = np.random.default_rng(0)
    w1 = helper.make_tensor("w1", TensorProto.FLOAT, [4, 2, 3, 3],
                            rng.standard_normal(72).astype(np.float32))
    w2 = helper.make_tensor("w2", TensorProto.FLOAT, [4, 4, 3, 3],
                            rng.standard_normal(144).astype(np.float32) * 0.3)
    w3 = helper.make_tensor("w3", TensorProto.FLOAT, [3, 16],
                            rng.standard_normal(48).astype(np.float32))
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [-1, 16])
    nodes = [helper.make_node("Conv", ["x", "w1"], [EVIL], name=EVIL, pads=[1, 1, 1, 1]),
             helper.make_node("Relu", [EVIL], ["r"], name="relu"),
             helper.make_node("Conv", ["r", "w2"], ["c2"], name="conv2", strides=[3, 3]),
             helper.make_node("Reshape", ["c2", "shape"], ["flat"], name="flatten"),
             helper.make_node("Gemm", ["flat", "w3"], ["y"], name="head", transB=1)]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 3])],
        [w1, w2, w3, shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The demo model's report (AUTO ranges), the tiny model's (one layer at 16 bits, one
    kept in float), and the demo model's after an accuracy budget that moves layers to 16
    bits and to float."""
    tmp = tmp_path_factory.mktemp("report")
    demo_calib = tmp / "demo.npz"
    np.savez(demo_calib, **load_demo_calibration())
    out = {"demo": tmp / "demo.html", "tiny": tmp / "tiny.html", "budget": tmp / "budget.html"}
    assert main(["quantize", str(demo_model_path()), "--calib", str(demo_calib), "-o",
                 str(tmp / "demo.onnx"), "--quiet", "--method", "auto",
                 "--report", str(out["demo"])]) == EXIT_OK
    assert main(["quantize", str(demo_model_path()), "--calib", str(demo_calib), "-o",
                 str(tmp / "budget.onnx"), "--quiet", "--accuracy-budget", "60dB",
                 "--fallback-candidates", "2", "--fallback-samples", "16",
                 "--report", str(out["budget"])]) == EXIT_OK
    _tiny_model(tmp / "tiny.onnx")
    np.savez(tmp / "tiny.npz", x=np.random.default_rng(1).standard_normal(
        (24, 2, 6, 6)).astype(np.float32))
    assert main(["quantize", str(tmp / "tiny.onnx"), "--calib", str(tmp / "tiny.npz"), "-o",
                 str(tmp / "tiny_q.onnx"), "--quiet", "--batch-size", "8",
                 "--sixteen-bit", "conv2", "--exclude", "head",
                 "--report", str(out["tiny"])]) == EXIT_OK
    return out


def test_report_is_self_contained_and_escapes_names(reports: dict[str, Path]) -> None:
    for path in reports.values():
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"""(src|href)=["']?(https?:|//)""", text), path
        assert "<link" not in text
    tiny = reports["tiny"].read_text(encoding="utf-8")
    assert "<script>window.evil" not in tiny
    assert "&lt;script&gt;window.evil=1&lt;/script&gt;&amp;&quot;x" in tiny


@needs_chromium
@pytest.mark.parametrize("which", ["demo", "tiny", "budget"])
def test_report_renders_in_headless_chromium(reports: dict[str, Path], which: str,
                                             tmp_path: Path) -> None:
    page = reports[which]
    dom = _run("--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert _console_lines(dom.stderr) == []
    html = dom.stdout
    assert 'id="layers"' in html and "<tbody>" in html
    rows = re.findall(r'<section class="card" id="layer-\d+"', html)
    assert len(rows) >= 3
    assert html.count('class="hist"') >= 1 and html.count('class="bar"') == len(rows)
    assert "Where to look first" in html and "How the figures are computed" in html
    if which == "tiny":
        assert "int16" in html and "Layers kept in float" in html and ">head (Gemm)<" in html
    elif which == "budget":
        assert "<h2>Accuracy budget</h2>" in html and "int16" in html
        assert "Layers kept in float" in html and "Fallback steps" in html
    else:
        assert "AUTO kept" in html and "entropy" in html

    shot = tmp_path / "shot.png"
    result = _run("--window-size=1200,900", f"--screenshot={shot}", page.as_uri())
    assert result.returncode == 0 and shot.exists(), result.stderr[-2000:]
    assert _console_lines(result.stderr) == []
    width, height, pixels = _png_pixels(shot)
    assert (width, height) == (1200, 900)
    # a blank page compresses to a handful of distinct bytes; text and plots give many
    assert len(set(pixels)) > 50 and len(pixels) > 1000


@needs_chromium
def test_sorting_script_runs_without_errors(reports: dict[str, Path], tmp_path: Path) -> None:
    """Click the "local, lowp" heading: the worst layer by local error comes first."""
    text = reports["demo"].read_text(encoding="utf-8")
    probe = """<script>
var t = document.getElementById("layers");
var th = t.tHead.rows[0].cells[t.tHead.rows[0].cells.length - 1];
th.click();
document.body.setAttribute("data-first", t.tBodies[0].rows[0].cells[1].textContent);
</script></body>"""
    page = tmp_path / "probe.html"
    page.write_text(text.replace("</body>", probe), encoding="utf-8")
    dom = _run("--dump-dom", page.as_uri())
    assert _console_lines(dom.stderr) == []
    first = re.search(r'data-first="([^"]*)"', dom.stdout)
    worst = re.search(r'<ol id="worst"><li><a href="[^"]*">([^<]*)</a>', dom.stdout)
    assert first and worst and first.group(1) == worst.group(1)


@needs_chromium
def test_console_errors_are_caught(tmp_path: Path) -> None:
    """The check itself: a page that throws is noticed."""
    page = tmp_path / "bad.html"
    page.write_text("<!doctype html><p>x</p><script>no_such_function();</script>")
    assert any("Uncaught" in ln for ln in _console_lines(_run("--dump-dom",
                                                              page.as_uri()).stderr))


@pytest.mark.parametrize("bins", [4, 5, 7, 120, 240, 241, 1000])
@pytest.mark.parametrize(("lo", "hi"), [(-10.0, 10.0), (-0.3, 0.55), (0.999, 5.0)])
def test_rebin_keeps_counts_and_edges_in_step(bins: int, lo: float, hi: float) -> None:
    counts = np.arange(bins, dtype=np.int64) + 1
    edges = np.linspace(-1.0, 1.0, bins + 1)
    c, e = rebin(counts, edges, lo, hi, bars=10)
    assert len(e) == len(c) + 1 and len(c) <= 10 and np.all(np.diff(e) > 0)
    if lo <= -1.0 and hi >= 1.0:
        assert c.sum() == counts.sum() and e[0] == -1.0 and e[-1] == 1.0
