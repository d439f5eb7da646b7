"""Inline SVG line charts: a pure function from series to markup (no I/O, no matplotlib)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

PALETTE = (
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7",
    "#9c755f", "#bab0ac",
)  # fmt: skip


@dataclass(frozen=True)
class Series:
    name: str
    points: Sequence[tuple[float, float]]
    color: str = ""
    width: float = 1.5
    dashed: bool = False
    href: str = ""  # where clicking the line (or its legend entry) goes


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    x_label: str = "round",
    y_label: str = "",
    y_range: tuple[float, float] = (0.0, 1.0),
    width: int = 720,
    height: int = 260,
    legend_limit: int = 8,
) -> str:
    """An SVG chart of `series` (x: rounds, y within `y_range`); an empty-state text if no data."""
    left, right, top, bottom = 48, 16, 28, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    xs = [x for s in series for x, _ in s.points]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" aria-label="{escape(title)}">',
        f'<text x="{left}" y="18" class="chart-title">{escape(title)}</text>',
    ]
    if not xs:
        parts.append(
            f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" class="chart-empty">'
            "no data yet</text></svg>"
        )
        return "".join(parts)
    x0, x1 = min(xs), max(xs)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    y0, y1 = y_range

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * plot_w

    def sy(y: float) -> float:
        y = min(max(y, y0), y1)
        return top + plot_h - (y - y0) / (y1 - y0) * plot_h

    for i in range(5):  # horizontal grid with y ticks
        yv = y0 + (y1 - y0) * i / 4
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{sy(yv):.1f}" y2="{sy(yv):.1f}" class="grid"/>'
            f'<text x="{left - 6}" y="{sy(yv) + 4:.1f}" text-anchor="end" class="tick">{yv:.2f}</text>'
        )
    for xv in _x_ticks(x0, x1):
        parts.append(
            f'<text x="{sx(xv):.1f}" y="{top + plot_h + 16}" text-anchor="middle" class="tick">{xv:g}</text>'
        )
    parts.append(
        f'<text x="{left + plot_w / 2}" y="{height - 4}" text-anchor="middle" class="axis">'
        f"{escape(x_label)}</text>"
        f'<text x="12" y="{top + plot_h / 2}" text-anchor="middle" class="axis" '
        f'transform="rotate(-90 12 {top + plot_h / 2})">{escape(y_label)}</text>'
    )
    for i, s in enumerate(series):
        if not s.points:
            continue
        color = s.color or PALETTE[i % len(PALETTE)]
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in sorted(s.points))
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        line = (
            f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="{s.width}"{dash}>'
            f"<title>{escape(s.name)}</title></polyline>"
        )
        if len(s.points) == 1:
            ((x, y),) = s.points
            line += f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{color}"/>'
        parts.append(f'<a href="{escape(s.href)}">{line}</a>' if s.href else line)
    shown = [s for s in series if s.points][:legend_limit]
    for i, s in enumerate(shown):
        color = s.color or PALETTE[series.index(s) % len(PALETTE)]
        lx = left + 8 + (i % 4) * (plot_w / 4)
        ly = top + 8 + (i // 4) * 14
        # Addresses are shortened; other names are kept whole (keep them short).
        label = s.name[:10] + "…" + s.name[-6:] if s.name.startswith("0x") and len(s.name) > 24 else s.name
        parts.append(
            f'<rect x="{lx:.1f}" y="{ly - 7:.1f}" width="10" height="3" fill="{color}"/>'
            f'<text x="{lx + 14:.1f}" y="{ly:.1f}" class="legend">{escape(label)}</text>'
        )
    hidden = len([s for s in series if s.points]) - len(shown)
    if hidden > 0:
        parts.append(
            f'<text x="{left + plot_w}" y="{top - 10}" text-anchor="end" class="legend">'
            f"+{hidden} more (hover a line for its name)</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _x_ticks(x0: float, x1: float, count: int = 8) -> list[float]:
    span = x1 - x0
    step = max(1, round(span / count))
    first = int(x0) if x0 == int(x0) else int(x0) + 1
    return [float(v) for v in range(first, int(x1) + 1, step)]
