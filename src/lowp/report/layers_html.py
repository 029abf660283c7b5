"""The per-layer sections of the HTML report: the worst layers, the sortable layer table,
how the figures are computed, and one card per layer (histogram, range choice, qparams)."""

from __future__ import annotations

import html
import math

from .layers import Comparison, Figures, LayerReport, LayerRow
from .ranges import ordered_methods
from .svg import CHOSEN_COLOR, histogram_svg, sqnr_bar, sqnr_color


def _esc(text: object) -> str:
    return html.escape(str(text))


def db_text(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    return f"{value:.2f}" if math.isfinite(value) else ("exact" if value > 0 else "-inf")


def _sort_key(value: float) -> str:
    """A data-v attribute JavaScript's Number() reads (inf -> Infinity)."""
    if math.isnan(value):
        return "NaN"
    return repr(value) if math.isfinite(value) else ("Infinity" if value > 0 else "-Infinity")


def _cell(f: Figures) -> str:
    db = f.sqnr_db
    return (f'<td class=n data-v="{_sort_key(db)}" style="color:{sqnr_color(db)}">'
            f"{db_text(db)}</td>")


def _agree_cell(f: Figures) -> str:
    return (f'<td class=n data-v="{_sort_key(f.sqnr_db)}" title="{100 * f.identical_share:.3f}% '
            f'identical, max |diff| {f.max_abs:.3g}">{db_text(f.sqnr_db)}</td>')


def _precision(row: LayerRow) -> str:
    return row.qparams.qtype.name.lower()


def _method(row: LayerRow) -> str:
    if row.shares_with is not None:
        return "shared"
    return row.ranges.method if row.ranges is not None else ""


def worst_section(report: LayerReport, n: int = 5) -> str:
    """Where to look first: the layers with the least local SQNR (lowp vs float)."""
    items = "".join(
        f'<li><a href="#layer-{r.index}">{_esc(r.producer)}</a> ({_esc(r.op_type)}, '
        f"{_precision(r)}): local {db_text(r.local_db())} dB, accumulated "
        f"{db_text(r.accumulated[Comparison.LOWP].sqnr_db)} dB</li>"
        for r in report.worst(n))
    return (f"<h2>Where to look first: the worst layers by local error</h2>"
            f"<ol id=worst>{items}</ol>")


def table_section(report: LayerReport) -> str:
    """Every quantized tensor in graph order; click a heading to sort."""
    rows = []
    for r in report.rows:
        a, lo = r.accumulated, r.local
        rows.append(
            f'<tr><td class=n data-v="{r.index}">{r.index}</td>'
            f'<td><a href="#layer-{r.index}">{_esc(r.producer)}</a></td>'
            f"<td>{_esc(r.op_type)}</td><td>{_precision(r)}</td><td>{_esc(r.weights)}</td>"
            f"<td>{_esc(_method(r))}</td>"
            f"{_cell(a[Comparison.FAKE_QUANT])}{_cell(a[Comparison.LOWP])}"
            f"{_agree_cell(a[Comparison.AGREEMENT])}"
            f"{_cell(lo[Comparison.FAKE_QUANT])}{_cell(lo[Comparison.LOWP])}"
            f"{_agree_cell(lo[Comparison.AGREEMENT])}"
            f'<td data-v="{_sort_key(r.local_db())}">{sqnr_bar(r.local_db())}</td></tr>')
    problem = (f"<p><b>lowp's engine could not run the local-error model</b> (its local "
               f"columns are n/a): {_esc(report.local_problem)}</p>"
               if report.local_problem else "")
    return f"""<h2>Layers in graph order: SQNR against the float model (dB)</h2>
{problem}<p>{len(report.rows)} quantized tensors, {report.samples} samples. Click a heading to sort.
Red below 20 dB, orange below 30 dB; &ldquo;exact&rdquo;: no difference at all;
&ldquo;n/a&rdquo;: that engine does not keep the tensor (an operator fused it away).</p>
<table id=layers class=sortable><thead><tr><th rowspan=2>#</th><th rowspan=2>layer</th>
<th rowspan=2>op</th><th rowspan=2>output type</th><th rowspan=2>weights</th>
<th rowspan=2>range</th><th colspan=3>accumulated</th><th colspan=3>local</th>
<th rowspan=2>local</th></tr>
<tr><th>fake-quant</th><th>lowp</th><th>lowp vs ORT</th><th>fake-quant</th><th>lowp</th>
<th>lowp vs ORT</th></tr></thead><tbody>
{"".join(rows)}</tbody></table>"""


EXPLANATION = """<h2>How the figures are computed</h2>
<p>Every quantized activation (the output of a DequantizeLinear node of the written QDQ
model) is compared with the same tensor of the float model, run in ONNX Runtime, as
<b>SQNR = 10 log10(&Sigma; f&sup2; / &Sigma; (f &minus; q)&sup2;)</b> over every element
of the samples (energies add over feeds, so nothing is held but one feed).</p>
<ul><li><b>fake-quant</b>: the QDQ model run in ONNX Runtime;</li>
<li><b>lowp</b>: the same model on lowp's integer engine;</li>
<li><b>lowp vs ORT</b>: the two engines against each other (ONNX Runtime is the reference;
the tooltip gives the share of identical elements). Large values mean the engines
agree; &ldquo;exact&rdquo; means bit for bit.</li></ul>
<p><b>Accumulated</b>: the whole quantized model up to that tensor, with the errors of every
layer before it. <b>Local</b>: the error the layer adds by itself. The QDQ model is rewired
so that every reader of a quantized tensor reads a copy of its quantize/dequantize pair,
with the same scale and zero point, fed the float model's value of that tensor. Each layer
then computes from the float model's inputs, rounded as the quantized model rounds them:
its local error is the rounding of its inputs, its weights and its output and its integer
arithmetic, without the errors of the layers before it. A layer with a low local SQNR
costs accuracy itself (a wider type, another range method or float helps); a layer with a
high local but low accumulated SQNR inherits its error.</p>
<p>The histogram of each tensor is the one calibration chose its range from (histogram
methods), or, after min/max calibration, a histogram of the report's samples. Marked on it:
the range calibration chose (red), the range the integer grid covers after the target's
constraints (black, dashed: scale &times; ([qmin, qmax] &minus; zero point)), and the range
each method would choose from the same histogram, with that range's quantization error
(mean squared error per element of rounding and clipping the histogram on its grid).</p>"""


def _range_table(r: LayerRow) -> str:
    rc = r.ranges
    if rc is None:
        return ""
    rows = []
    for m in ordered_methods(rc.candidates):
        lo, hi = rc.candidates[m]
        err = rc.errors.get(m)
        mark = (f' style="color:{CHOSEN_COLOR};font-weight:bold"' if m == rc.method else "")
        rows.append(f"<tr{mark}><td>{_esc(m)}</td><td class=n>{lo:.6g}</td>"
                    f"<td class=n>{hi:.6g}</td><td class=n>"
                    f"{'' if err is None else f'{err:.4g}'}</td></tr>")
    return ("<table class=ranges><tr><th>method</th><th>lo</th><th>hi</th>"
            "<th>error per element</th></tr>" + "".join(rows) + "</table>")


def _moved(chosen: tuple[float, float], grid: tuple[float, float], scale: float) -> bool:
    """The grid's ends differ from the chosen range by more than a step."""
    return (abs(min(chosen[0], 0.0) - grid[0]) > scale
            or abs(max(chosen[1], 0.0) - grid[1]) > scale)


def layer_cards(report: LayerReport) -> str:
    """One card per quantized tensor: its choices, its figures, histogram and ranges."""
    cards = []
    for r in report.rows:
        qp = r.qparams
        lo_grid, hi_grid = r.grid
        rc = r.ranges
        why = ""
        if r.shares_with is not None:
            why = (f"<p>Shares the scale and zero point of <code>{_esc(r.shares_with)}</code> "
                   "(the op moves data only).</p>")
        if rc is not None:
            chosen = f"[{rc.chosen[0]:.6g}, {rc.chosen[1]:.6g}]"
            why += (f"<p>Range {chosen} by <b>{_esc(rc.method)}</b>: {_esc(rc.why)}. "
                    f"Histogram: {_esc(rc.source)}.</p>")
            if _moved(rc.chosen, r.grid, float(qp.scale)):
                why += (f"<p>The integer grid covers [{lo_grid:.6g}, {hi_grid:.6g}] instead: "
                        "the target's constraints (zero exactly representable, its zero "
                        "point and scale rules) moved the range.</p>")
        figs = ", ".join(
            f"{c.value} {db_text(r.accumulated[c].sqnr_db)} / {db_text(r.local[c].sqnr_db)} dB"
            for c in Comparison)
        hist = histogram_svg(rc, r.grid) if rc is not None else ""
        cards.append(
            f'<section class=card id="layer-{r.index}"><h3>{r.index}. '
            f"{_esc(r.producer)} <small>({_esc(r.op_type)})</small></h3>"
            f"<p>Tensor <code>{_esc(r.tensor)}</code>: {_precision(r)}, scale "
            f"{float(qp.scale):.6g}, zero point {int(qp.zero_point)}, grid [{lo_grid:.6g}, "
            f"{hi_grid:.6g}]{'; weights ' + _esc(r.weights) if r.weights else ''}.</p>"
            f"<p>SQNR accumulated / local: {figs}.</p>{why}"
            f'<div class=row>{hist}{_range_table(r)}</div></section>')
    return "<h2>Layer by layer</h2>" + "".join(cards)


def float_section(report: LayerReport) -> str:
    if not report.float_nodes:
        return ""
    items = "".join(f"<li>{_esc(n)} ({_esc(op)})</li>" for n, op in report.float_nodes)
    return (f"<h2>Layers kept in float</h2><p>{len(report.float_nodes)} compute nodes whose "
            f"outputs are not quantized (excluded, moved to float by the accuracy budget, "
            f"or with no quantized form):</p><ul>{items}</ul>")


SORT_SCRIPT = """<script>
document.querySelectorAll("table.sortable").forEach(function (table) {
  var body = table.tBodies[0];
  table.querySelectorAll("thead th").forEach(function (th) {
    th.addEventListener("click", function () {
      var cells = Array.prototype.slice.call(th.parentNode.children);
      var col = 0;
      if (th.parentNode.rowIndex === 0) {
        for (var i = 0; i < cells.indexOf(th); i++) col += cells[i].colSpan;
        if (th.colSpan > 1) return;
      } else {
        col = 6 + cells.indexOf(th);
      }
      var asc = th.getAttribute("data-dir") !== "asc";
      th.setAttribute("data-dir", asc ? "asc" : "desc");
      var rows = Array.prototype.slice.call(body.rows);
      function key(row) {
        var c = row.cells[col];
        var v = c.getAttribute("data-v");
        return v === null ? c.textContent : Number(v);
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        var r = (typeof x === "number") ? x - y : String(x).localeCompare(String(y));
        if (isNaN(r)) r = 0;
        return asc ? r : -r;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
</script>"""
