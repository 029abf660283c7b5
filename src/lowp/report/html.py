"""A self-contained HTML report: sizes, output agreement, the accuracy budget, and per layer
where accuracy went (`layers_html`). No external resources; a small script sorts tables."""

from __future__ import annotations

import html
import math
import os

from ..atomic import write_text
from . import layers_html
from .analysis import OutputAgreement
from .budget import render_section
from .layers import Comparison, LayerReport
from .speed import ENGINES
from .summary import Summary


def _bar(value: float, best: float) -> str:
    width = 0.0 if not math.isfinite(value) else max(0.0, min(1.0, value / best)) * 100
    color = "#c0392b" if value < 20 else "#e67e22" if value < 30 else "#27ae60"
    return (f'<div style="background:{color};width:{width:.1f}%;height:12px"></div>')


def _units(a: OutputAgreement) -> str:
    """The largest difference in quantized units; a float output has none: its value."""
    return f"{a.max_units:.3g}" if math.isfinite(a.max_units) else f"{a.max_abs:.3g} (float)"


def _outputs(report: LayerReport) -> str:
    """SQNR of the model's float outputs, three ways."""
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td>"
        + "".join(f"<td class=n>{layers_html.db_text(figures[c].sqnr_db)}</td>"
                  for c in Comparison) + "</tr>"
        for name, figures in report.outputs.items() if figures[Comparison.LOWP].elements)
    if not rows:
        return ""
    return ("<h2>Outputs: SQNR against the float model (dB)</h2><table><tr><th>output</th>"
            + "".join(f"<th>{c.value}</th>" for c in Comparison) + f"</tr>{rows}</table>")


def _target(report: LayerReport) -> str:
    t = report.target
    if t is None:
        return ""
    return (f"<p>Target <b>{html.escape(t.name)}</b> ({html.escape(t.description)}): "
            f"activations {t.activation_qtype.name.lower()}"
            f"{', symmetric' if t.activation_symmetric else ''}"
            f"{', reduced range' if t.reduce_range else ''}, weights "
            f"{t.weight_qtype.name.lower()}{', symmetric' if t.weight_symmetric else ''}"
            f"{', narrow range' if t.weight_narrow_range else ''}.</p>")


def _layer_sections(summary: Summary) -> tuple[str, str]:
    """(the summary's part above the budget, the per-layer part below it)."""
    report = summary.layers
    if report is None:
        return "", _old_layer_table(summary)
    top = _target(report) + _outputs(report) + layers_html.worst_section(report)
    return top, (layers_html.table_section(report) + layers_html.float_section(report)
                 + layers_html.EXPLANATION + layers_html.layer_cards(report)
                 + layers_html.SORT_SCRIPT)


def render(summary: Summary, title: str = "lowp quantization report") -> str:
    """The report as one HTML string (no external files; the content needs no script)."""
    top, per_layer = _layer_sections(summary)
    budget = render_section(summary.fallback) if summary.fallback is not None else ""
    agree = "\n".join(
        f"<tr><td>{html.escape(a.output)}</td><td class=n>{a.elements}</td>"
        f"<td class=n>{100 * a.identical_share:.3f}</td><td class=n>{_units(a)}</td></tr>"
        for a in summary.agreement)
    acc = "".join(f"<li>{html.escape(k)}: {100 * v:.2f}%</li>"
                  for k, v in summary.accuracy.items())
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font:14px sans-serif;margin:2em;max-width:1300px}} table{{border-collapse:collapse}}
td,th{{border-bottom:1px solid #ddd;padding:3px 8px;text-align:left}} .n{{text-align:right}}
th{{background:#f4f4f4}} table.sortable th{{cursor:pointer}} #layers td{{white-space:nowrap}}
.card{{border:1px solid #ddd;border-radius:4px;padding:0 1em 1em;margin:1em 0}}
.row{{display:flex;gap:2em;align-items:flex-start;flex-wrap:wrap}} small{{color:#777}}
</style></head><body><h1>{html.escape(title)}</h1>
<p>Model size: {summary.float_bytes / 1024:.1f} KiB float, {summary.int8_bytes / 1024:.1f} KiB
int8. lowp engine ({html.escape(summary.backend)}): {summary.int_ops} integer operators,
{summary.float_ops} float operators.</p>{f"<ul>{acc}</ul>" if acc else ""}{top}
<h2>lowp engine vs ONNX Runtime on the same QDQ model</h2>
<table><tr><th>output</th><th>elements</th><th>identical %</th>
<th>max diff (quantized units)</th></tr>{agree}</table>{_speed_section(summary)}{budget}
{per_layer}</body></html>
"""


def _speed_section(summary: Summary) -> str:
    """The latency table (lowp.report.speed), when one was measured."""
    speed = summary.speed
    if speed is None:
        return ""
    rows = "".join(
        f"<tr><td>{html.escape(e)}</td><td class=n>{speed.ms[e, 'float']:.3f}</td>"
        f"<td class=n>{speed.ms[e, 'int8']:.3f}</td>"
        f"<td class=n>{speed.ms[e, 'float'] / speed.ms[e, 'int8']:.2f}x</td></tr>"
        for e in ENGINES)
    return (f"\n<h2>Latency of one feed ({speed.threads} thread(s), median of {speed.rounds} "
            f"interleaved rounds)</h2>\n<table><tr><th>engine</th><th>float ms</th>"
            f"<th>int8 ms</th><th>int8 speed-up</th></tr>{rows}</table>\n"
            f"<p>{html.escape(speed.advice())}</p>")


def _old_layer_table(summary: Summary) -> str:
    """Without per-layer detail: the end-to-end SQNR of each layer, worst first."""
    layers = summary.worst_layers
    finite = [e.sqnr_db for e in layers if math.isfinite(e.sqnr_db)]
    best = max(finite, default=1.0) or 1.0
    rows = "\n".join(
        f"<tr><td>{html.escape(e.tensor)}</td><td>{html.escape(e.producer)}</td>"
        f"<td>{html.escape(e.op_type)}</td><td class=n>{e.sqnr_db:.2f}</td>"
        f"<td class=n>{e.max_abs_error:.4g}</td><td style='width:30%'>{_bar(e.sqnr_db, best)}"
        "</td></tr>" for e in layers)
    return f"""<h2>Per-layer error: end-to-end SQNR against the float model (worst first)</h2>
<p>Red below 20 dB, orange below 30 dB.</p>
<table><tr><th>tensor</th><th>producer</th><th>op</th><th>SQNR (dB)</th><th>max |error|</th>
<th></th></tr>{rows}</table>"""


def write(summary: Summary, path: str | os.PathLike[str]) -> None:
    """Write the report atomically."""
    write_text(path, render(summary))
