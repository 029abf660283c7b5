"""Plain-text tables for terminal summaries."""

from __future__ import annotations

from collections.abc import Sequence


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]],
                 title: str | None = None) -> str:
    """Align columns; numbers right-aligned, text left-aligned.

    Examples
    --------
    >>> print(format_table(["a", "b"], [["x", 1], ["yy", 22]]))
    a  |  b
    ---+---
    x  |  1
    yy | 22
    """
    cells = [[str(h) for h in headers]] + [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    numeric = [all(_is_num(r[i]) for r in rows) and rows for i in range(len(headers))]

    def line(row: list[str]) -> str:
        return " | ".join(c.rjust(w) if numeric[i] else c.ljust(w)
                          for i, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip()

    out = [title] if title else []
    out.append(line(cells[0]))
    out.append("-+-".join("-" * w for w in widths))
    out.extend(line(r) for r in cells[1:])
    return "\n".join(out)


def _is_num(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.3e}"
    return str(v)
