"""Inline SVG plots of the HTML report: an activation histogram with ranges marked, and
small SQNR bars for table cells. Every label is escaped (tensor names are user data)."""

from __future__ import annotations

import html
import math

import numpy as np

from .ranges import RangeChoice, ordered_methods, rebin

# Colour of each range method's marks (the chosen range and the grid have their own).
METHOD_COLORS = {"minmax": "#7f8c8d", "percentile": "#2980b9", "entropy": "#8e44ad",
                 "mse": "#16a085"}
CHOSEN_COLOR = "#c0392b"
GRID_COLOR = "#222"


def sqnr_color(db: float) -> str:
    """Red below 20 dB, orange below 30 dB, green above (grey: not measured)."""
    if math.isnan(db):
        return "#999"
    return "#c0392b" if db < 20 else "#e67e22" if db < 30 else "#27ae60"


def sqnr_bar(db: float, cap: float = 60.0, width: int = 90) -> str:
    """A bar as long as the SQNR (capped at `cap` dB; an exact result is full length)."""
    share = (1.0 if db == math.inf else 0.0 if not math.isfinite(db)
             else max(0.0, min(1.0, db / cap)))
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="10" '
            f'class="bar"><rect width="{width}" height="10" fill="#eee"/>'
            f'<rect width="{share * width:.1f}" height="10" fill="{sqnr_color(db)}"/></svg>')


def histogram_svg(rc: RangeChoice, grid: tuple[float, float], *, width: int = 560,
                  height: int = 170) -> str:
    """The histogram (log counts) over the span of the data and of every range, with the
    chosen range (red), the integer grid's range (black, dashed) and each method's range
    (thin, coloured) marked at both ends."""
    nonzero = np.flatnonzero(rc.counts)
    if nonzero.size == 0:
        return "<p>(empty histogram)</p>"
    ends = [float(rc.edges[nonzero[0]]), float(rc.edges[nonzero[-1] + 1]), *rc.chosen, *grid]
    for lo_hi in rc.candidates.values():
        ends.extend(lo_hi)
    lo, hi = min(ends), max(ends)
    span = (hi - lo) or 1.0
    lo, hi = lo - 0.02 * span, hi + 0.02 * span
    counts, edges = rebin(rc.counts, rc.edges, lo, hi)
    left, right, top, bottom = 10, 10, 10, 38
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(v: float) -> float:
        return left + plot_w * (min(max(v, lo), hi) - lo) / (hi - lo)

    peak = math.log10(1.0 + float(counts.max())) or 1.0
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             'font-family="sans-serif" font-size="11" class="hist">',
             f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fafafa" '
             'stroke="#ccc"/>']
    for c, e0, e1 in zip(counts, edges[:-1], edges[1:], strict=True):
        if c <= 0:
            continue
        h = plot_h * math.log10(1.0 + float(c)) / peak
        parts.append(f'<rect x="{x(e0):.1f}" y="{top + plot_h - h:.1f}" '
                     f'width="{max(0.6, x(e1) - x(e0)):.1f}" height="{h:.1f}" fill="#95a5a6">'
                     f'<title>[{e0:.4g}, {e1:.4g}): {int(c)}</title></rect>')

    def mark(v: float, color: str, label: str, *, width_px: float = 1.0,
             dash: str = "") -> None:
        dashes = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(f'<line x1="{x(v):.1f}" x2="{x(v):.1f}" y1="{top}" y2="{top + plot_h}" '
                     f'stroke="{color}" stroke-width="{width_px}"{dashes}>'
                     f'<title>{html.escape(label)}: {v:.6g}</title></line>')

    for method in ordered_methods(rc.candidates):
        for v in rc.candidates[method]:
            mark(v, METHOD_COLORS.get(method, "#999"), method, dash="3 2")
    for v in grid:
        mark(v, GRID_COLOR, "integer grid", dash="6 3")
    for v in rc.chosen:
        mark(v, CHOSEN_COLOR, "chosen range", width_px=2.0)
    y = top + plot_h + 13
    parts.append(f'<text x="{left}" y="{y}">{lo:.4g}</text><text x="{left + plot_w}" '
                 f'y="{y}" text-anchor="end">{hi:.4g}</text>')
    legend = [("chosen", CHOSEN_COLOR), ("grid", GRID_COLOR)] + [
        (m, METHOD_COLORS.get(m, "#999")) for m in ordered_methods(rc.candidates)]
    lx = left
    for name, color in legend:
        parts.append(f'<rect x="{lx}" y="{y + 8}" width="10" height="3" fill="{color}"/>'
                     f'<text x="{lx + 13}" y="{y + 13}">{html.escape(name)}</text>')
        lx += 20 + 7 * len(name)
    parts.append(f'<text x="{left + plot_w}" y="{y + 13}" text-anchor="end" fill="#777">'
                 'log count</text></svg>')
    return "".join(parts)
