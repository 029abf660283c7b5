"""A self-contained HTML report: per-layer SQNR as bars, engine agreement, sizes."""

from __future__ import annotations

import html
import math
import os
import tempfile
from pathlib import Path

from .budget import render_section
from .summary import Summary


def _bar(value: float, best: float) -> str:
    width = 0.0 if not math.isfinite(value) else max(0.0, min(1.0, value / best)) * 100
    color = "#c0392b" if value < 20 else "#e67e22" if value < 30 else "#27ae60"
    return (f'<div style="background:{color};width:{width:.1f}%;height:12px"></div>')


def render(summary: Summary, title: str = "lowp quantization report") -> str:
    """The report as one HTML string (no scripts, no external files)."""
    layers = summary.worst_layers
    finite = [e.sqnr_db for e in layers if math.isfinite(e.sqnr_db)]
    best = max(finite, default=1.0) or 1.0
    rows = "\n".join(
        f"<tr><td>{html.escape(e.tensor)}</td><td>{html.escape(e.producer)}</td>"
        f"<td>{html.escape(e.op_type)}</td><td class=n>{e.sqnr_db:.2f}</td>"
        f"<td class=n>{e.max_abs_error:.4g}</td><td style='width:30%'>{_bar(e.sqnr_db, best)}"
        "</td></tr>" for e in layers)
    agree = "\n".join(
        f"<tr><td>{html.escape(a.output)}</td><td class=n>{a.elements}</td>"
        f"<td class=n>{100 * a.identical_share:.3f}</td><td class=n>{a.max_units:.3g}</td></tr>"
        for a in summary.agreement)
    budget = render_section(summary.fallback) if summary.fallback is not None else ""
    acc = "".join(f"<li>{html.escape(k)}: {100 * v:.2f}%</li>"
                  for k, v in summary.accuracy.items())
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font:14px sans-serif;margin:2em}} table{{border-collapse:collapse}}
td,th{{border-bottom:1px solid #ddd;padding:3px 8px;text-align:left}} .n{{text-align:right}}
</style></head><body><h1>{html.escape(title)}</h1>
<p>Model size: {summary.float_bytes / 1024:.1f} KiB float, {summary.int8_bytes / 1024:.1f} KiB
int8. lowp engine ({html.escape(summary.backend)}): {summary.int_ops} integer operators,
{summary.float_ops} float operators.</p>{f"<ul>{acc}</ul>" if acc else ""}{budget}
<h2>lowp engine vs ONNX Runtime on the same QDQ model</h2>
<table><tr><th>output</th><th>elements</th><th>identical %</th>
<th>max diff (quantized units)</th></tr>{agree}</table>
<h2>Per-layer error: end-to-end SQNR against the float model (worst first)</h2>
<p>Red below 20 dB, orange below 30 dB.</p>
<table><tr><th>tensor</th><th>producer</th><th>op</th><th>SQNR (dB)</th><th>max |error|</th>
<th></th></tr>{rows}</table></body></html>
"""


def write(summary: Summary, path: str | os.PathLike[str]) -> None:
    """Write the report atomically."""
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent or Path("."))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(render(summary))
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
