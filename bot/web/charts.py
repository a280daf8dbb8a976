"""Charts drawn on the server as inline SVG (no script, no library): a value per point (a day, an epoch), as stacked
bars (counts) or lines (shares, losses), with axes, gridlines, point labels, a legend and a <title> per point,
Korean text included.

Every text is escaped; the SVG is returned as `markupsafe.Markup` for the templates."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from html import escape

from markupsafe import Markup

WIDTH, HEIGHT = 760, 240
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 16, 40
COLOURS = ("#3b6fb6", "#d9822b", "#3a9a5b", "#c23b3b", "#8a5cb8", "#6b7b8c", "#b59a2a")
FONT = "font-family=\"'Noto Sans CJK KR', 'Noto Sans KR', sans-serif\" font-size=\"11\""


def _nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten at or above `value` (an axis maximum)."""
    if value <= 0:
        return 1.0
    power = 1.0
    while power * 10 <= value:
        power *= 10
    while power > value:
        power /= 10
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power


def _number(value: float, percent: bool) -> str:
    if percent:
        return f"{value * 100:.0f}%"
    return f"{value:,.0f}" if value >= 1 or value == 0 else f"{value:.2g}"


def daily_chart(
    days: Sequence[date],
    series: dict[str, Sequence[float | None]],
    *,
    title: str,
    lines: bool = False,
    percent: bool = False,
) -> Markup:
    """`series` maps a name to one value per day (None: no value that day); see `chart`."""
    return chart(
        [f"{day.month}/{day.day}" for day in days],
        [day.isoformat() for day in days],
        series,
        title=title,
        lines=lines,
        percent=percent,
    )


def chart(
    axis_labels: Sequence[str],
    point_names: Sequence[str],
    series: dict[str, Sequence[float | None]],
    *,
    title: str,
    lines: bool = False,
    percent: bool = False,
) -> Markup:
    """`series` maps a name to one value per point (None: no value there); `axis_labels` are the points' short
    labels under the axis, `point_names` their names in each value's tooltip. Bars are stacked in `series` order;
    `lines` draws each series as a line instead (shares: `percent` fixes the axis at 0-100%)."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    count = max(len(axis_labels), 1)
    slot = plot_w / count
    if percent:
        top = 1.0
    elif lines:
        top = _nice_ceiling(
            max((v for values in series.values() for v in values if v is not None), default=0)
        )
    else:
        top = _nice_ceiling(
            max(
                (sum(values[i] or 0 for values in series.values()) for i in range(len(axis_labels))),
                default=0,
            )
        )

    def y(value: float) -> float:
        return TOP + plot_h - plot_h * value / top

    parts = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" '
            f'role="img" aria-label="{escape(title)}" class="chart" {FONT}>'
        ),
        f"<title>{escape(title)}</title>",
    ]
    for tick in range(5):  # gridlines and the y axis's numbers
        value = top * tick / 4
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(value):.1f}" y2="{y(value):.1f}" stroke="#e3e3e3"/>'
            f'<text x="{LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end" fill="#555">'
            f"{_number(value, percent)}</text>"
        )
    parts.append(
        f'<line x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{TOP + plot_h}" stroke="#888"/>'
        f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{TOP + plot_h}" y2="{TOP + plot_h}" stroke="#888"/>'
    )
    every = max(1, round(count / 10))  # about ten labels, whatever the window
    for index, label in enumerate(axis_labels):
        if index % every == 0 or index == count - 1:
            x = LEFT + slot * (index + 0.5)
            parts.append(
                f'<text x="{x:.1f}" y="{TOP + plot_h + 16}" text-anchor="middle" fill="#555">'
                f"{escape(label)}</text>"
            )
    if lines:
        parts.extend(_lines(point_names, series, slot, y, percent))
    else:
        parts.extend(_bars(point_names, series, slot, y, TOP + plot_h))
    legend_x = LEFT
    for index, name in enumerate(series):  # the legend, under the point labels
        colour = COLOURS[index % len(COLOURS)]
        parts.append(
            f'<rect x="{legend_x}" y="{HEIGHT - 14}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{legend_x + 14}" y="{HEIGHT - 5}" fill="#333">{escape(name)}</text>'
        )
        legend_x += 24 + 11 * len(name)
    parts.append("</svg>")
    return Markup("".join(parts))


def _bars(point_names, series, slot, y, baseline) -> list[str]:
    parts = []
    width = max(slot * 0.7, 1.0)
    for index, point in enumerate(point_names):
        x = LEFT + slot * index + (slot - width) / 2
        stacked = 0.0
        for colour_index, (name, values) in enumerate(series.items()):
            value = values[index] or 0
            if value <= 0:
                continue
            top_y, bottom_y = y(stacked + value), y(stacked)
            stacked += value
            parts.append(
                f'<rect x="{x:.1f}" y="{top_y:.1f}" width="{width:.1f}" height="{bottom_y - top_y:.1f}" '
                f'fill="{COLOURS[colour_index % len(COLOURS)]}"><title>{escape(point)} {escape(name)}: '
                f"{value:,.0f}</title></rect>"
            )
    return parts


def _lines(point_names, series, slot, y, percent) -> list[str]:
    parts = []
    for colour_index, (name, values) in enumerate(series.items()):
        colour = COLOURS[colour_index % len(COLOURS)]
        points = [
            (LEFT + slot * (index + 0.5), y(value), point, value)
            for index, (point, value) in enumerate(zip(point_names, values, strict=True))
            if value is not None
        ]
        if len(points) > 1:
            path = " ".join(f"{x:.1f},{py:.1f}" for x, py, _, _ in points)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for x, py, point, value in points:
            parts.append(
                f'<circle cx="{x:.1f}" cy="{py:.1f}" r="3" fill="{colour}"><title>{escape(point)} '
                f"{escape(name)}: {_number(value, percent)}</title></circle>"
            )
    return parts
