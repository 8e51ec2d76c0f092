"""Reporting helpers shared by the benchmarks: medians, spreads and aligned tables."""

from __future__ import annotations

import statistics

__all__ = ["median", "spread", "table"]


def median(xs: list[float]) -> float:
    """The median of per-round measurements."""
    return statistics.median(xs)


def spread(xs: list[float]) -> str:
    """(max - min) / median of the per-round measurements, as a noise indicator."""
    if len(xs) < 2:
        return "-"
    return f"{(max(xs) - min(xs)) / median(xs) * 100:.0f}%"


def table(header: list[str], rows: list[list[str]]) -> str:
    """Rows under a header, first column left-aligned, the others right-aligned."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for j, r in enumerate([header, *rows]):
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)]
        lines.append("  " + "  ".join(cells))
        if j == 0:
            lines.append("  " + "  ".join("-" * w for w in widths))
    return "\n".join(lines)
