"""The accuracy-budget section of the HTML report: per-layer sensitivity bars, the fallback
steps with the SQNR after each, and the final SQNR against the budget, as inline SVG."""

from __future__ import annotations

import html
import math

from ..passes.fallback import FallbackResult

_W = 1000                    # drawing width in px
_LABEL = 330                 # left column for layer names
_ROW = 18
_CAP_DB = 120.0              # values above (an exact output) are drawn at this height


def _esc(text: object) -> str:
    return html.escape(str(text))


def _db(value: float | None) -> str:
    if value is None:
        return ""
    return f"{value:.2f}" if math.isfinite(value) else str(value)


def _short(name: str, limit: int = 48) -> str:
    return name if len(name) <= limit else "\u2026" + name[-(limit - 1):]


def sensitivity_svg(result: FallbackResult) -> str:
    """Measured layers as horizontal bars of their remove-one gain (dB), largest first."""
    rows = [c for c in result.layers if c.gain_db is not None]
    if not rows:
        return "<p>No layer was measured.</p>"
    gains = [max(-_CAP_DB, min(_CAP_DB, c.gain_db or 0.0)) for c in rows]
    lo, hi = min(0.0, *gains), max(0.0, *gains)
    span = (hi - lo) or 1.0
    plot = _W - _LABEL - 90
    zero = _LABEL + plot * (-lo / span)
    height = _ROW * len(rows) + 30
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{height}" '
             'font-family="sans-serif" font-size="12">']
    for i, (cost, gain) in enumerate(zip(rows, gains, strict=True)):
        y = 20 + i * _ROW
        x0, x1 = sorted((zero, zero + plot * gain / span))
        color = "#c0392b" if gain >= 1.0 else "#e67e22" if gain > 0 else "#95a5a6"
        what = (f"{len(cost.members)} layers at 16 bits" if cost.is_group
                else _esc(cost.op_type))
        parts.append(f'<text x="{_LABEL - 6}" y="{y + 12}" text-anchor="end">'
                     f'<title>{_esc(cost.node)}</title>{_esc(_short(cost.node))} '
                     f'({what})</text>')
        parts.append(f'<rect x="{x0:.1f}" y="{y + 2}" width="{max(1.0, x1 - x0):.1f}" '
                     f'height="{_ROW - 5}" fill="{color}"/>')
        parts.append(f'<text x="{max(x1, zero) + 4:.1f}" y="{y + 12}">'
                     f'{_db(cost.gain_db)} dB</text>')
    parts.append(f'<line x1="{zero:.1f}" y1="14" x2="{zero:.1f}" y2="{height - 8}" '
                 'stroke="#333"/>')
    parts.append(f'<text x="{zero:.1f}" y="11" text-anchor="middle">0 dB</text></svg>')
    return "".join(parts)


def steps_svg(result: FallbackResult) -> str:
    """SQNR after each move (kept moves green, undone ones grey) against the budget line."""
    points = [(0, result.initial.min_sqnr_db, True)]
    for i, s in enumerate(result.steps, 1):
        points.append((i, s.sqnr_after_db, s.kept))
    values = [min(_CAP_DB, v) for _, v, _ in points]
    if result.budget_db is not None:
        values.append(min(_CAP_DB, result.budget_db))
    finite = [v for v in values if math.isfinite(v)]
    lo, hi = min(finite, default=0.0), max(finite, default=1.0)
    lo, hi = math.floor(lo / 5) * 5 - 5, math.ceil(hi / 5) * 5 + 5
    width, height, left, top, bottom = _W, 300, 60, 20, 40
    plot_w, plot_h = width - left - 20, height - top - bottom
    steps = max(1, len(points) - 1)

    def x(i: float) -> float:
        return left + plot_w * i / steps

    def y(v: float) -> float:
        v = max(lo, min(hi, v if math.isfinite(v) else hi))
        return top + plot_h * (hi - v) / (hi - lo)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             'font-family="sans-serif" font-size="12">',
             f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" '
             'stroke="#999"/>']
    for tick in range(int(lo), int(hi) + 1, max(5, int((hi - lo) / 8) // 5 * 5 or 5)):
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y(tick):.1f}" '
                     f'y2="{y(tick):.1f}" stroke="#eee"/><text x="{left - 6}" '
                     f'y="{y(tick) + 4:.1f}" text-anchor="end">{tick}</text>')
    if result.budget_db is not None:
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y(result.budget_db):.1f}" '
                     f'y2="{y(result.budget_db):.1f}" stroke="#2980b9" stroke-dasharray="6 4"/>'
                     f'<text x="{left + 6}" y="{y(result.budget_db) - 5:.1f}" '
                     f'fill="#2980b9">budget {result.budget_db:g} dB</text>')
    # the model's SQNR follows the kept moves; undone moves are points off the path
    path, level = [], points[0][1]
    for i, v, kept in points:
        if kept:
            level = v
        path.append(f"{x(i):.1f},{y(level):.1f}")
    parts.append(f'<polyline points="{" ".join(path)}" fill="none" stroke="#27ae60" '
                 'stroke-width="2"/>')
    for i, v, kept in points:
        parts.append(f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="4" '
                     f'fill="{"#27ae60" if kept else "#bbb"}"><title>step {i}: {_db(v)} dB'
                     f'</title></circle>')
        if len(points) <= 40:
            parts.append(f'<text x="{x(i):.1f}" y="{top + plot_h + 15}" '
                         f'text-anchor="middle">{i}</text>')
    parts.append(f'<text x="{left + plot_w / 2:.1f}" y="{height - 6}" text-anchor="middle">'
                 'move (0: fully quantized)</text>'
                 f'<text x="14" y="{top + plot_h / 2:.1f}" transform="rotate(-90 14 '
                 f'{top + plot_h / 2:.1f})" text-anchor="middle">output SQNR (dB)</text></svg>')
    return "".join(parts)


def render_section(result: FallbackResult) -> str:
    """The whole section: verdict, sensitivity bars, step chart and step table."""
    verdict = ("met" if result.met else "NOT met")
    color = "#27ae60" if result.met else "#c0392b"
    steps = "\n".join(
        f"<tr{'' if s.kept else ' style=color:#999'}><td class=n>{i}</td>"
        f"<td>{_esc(s.node)}</td><td>{_esc(s.op_type)}</td><td>{s.before} &rarr; {s.after}</td>"
        f"<td class=n>{_db(s.sqnr_before_db)}</td><td class=n>{_db(s.sqnr_after_db)}</td>"
        + (f"<td class=n>{s.metric_after:.6g}</td>" if s.metric_after is not None else "")
        + f"<td>{'kept' if s.kept else 'no gain: undone'}</td></tr>"
        for i, s in enumerate(result.steps, 1))
    metric_th = f"<th>{_esc(result.metric_name)}</th>" if result.metric_name else ""
    blockers = "".join(f"<li>{_esc(b.node)} ({_esc(b.op_type)}): adds noise at "
                       f"{_db(b.added_noise_db)} dB SQNR</li>" for b in result.blockers)
    unmeasured = (f"<p>{result.unmeasured_quantized} further rounding layers were ranked by "
                  "added noise but not measured (raise --fallback-candidates).</p>"
                  if result.unmeasured_quantized else "")
    final = f"{_db(result.final.min_sqnr_db)} dB"
    if result.final.metric is not None:
        final += f", {_esc(result.metric_name)} {result.final.metric:.6g}"
    return f"""<h2>Accuracy budget</h2>
<p style="font-size:16px">Goal: {_esc(result.goal())}. Final: <b>{final}</b> (fully quantized:
{_db(result.initial.min_sqnr_db)} dB) &mdash; <b style="color:{color}">{verdict}</b>;
{len(result.sixteen_bit_nodes)} layers moved to 16 bits, {len(result.float_nodes)} to float,
{result.seconds:.1f} s. Measured on {_esc(result.engine)} against the float model in ONNX
Runtime on {result.samples} {result.data} samples; SQNR is the minimum over the float outputs.
</p>{f"<p>Layers still costing the most:</p><ul>{blockers}</ul>" if blockers else ""}
<h3>Per-layer sensitivity: output SQNR gain with only that layer kept float</h3>
<p>Groups (&ldquo;all Mul&rdquo;): every layer of that op type moved to 16 bits. Red: 1 dB
or more, orange: a gain below 1 dB, grey: none.</p>
{sensitivity_svg(result)}{unmeasured}
<h3>Fallback steps: output SQNR after each move</h3>
{steps_svg(result)}
<table><tr><th>#</th><th>layer</th><th>op</th><th>move</th><th>SQNR before (dB)</th>
<th>SQNR after (dB)</th>{metric_th}<th></th></tr>{steps}</table>
<details><summary>Options that give the same model without measuring</summary>
<p><code>{_esc(result.cli_flags()) or "(no change)"}</code></p></details>
"""
