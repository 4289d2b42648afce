"""HTML pieces the monitors show: state badges, tables, and an SVG line plot of metrics."""

from __future__ import annotations

import datetime
from html import escape

from ...client.node_load import cpu_text, gpu_text, memory_text

STATE_COLOURS = {
    "queued": "#9e9e9e",
    "running": "#1e88e5",
    "terminating": "#fb8c00",
    "terminated": "#fb8c00",  # by its user: not a failure
    "succeeded": "#43a047",
    "failed": "#e53935",
    "idle": "#43a047",
    "preparing": "#fb8c00",
    "unusable": "#e53935",
    "leaving": "#9e9e9e",
}
# Lab styles links in rendered HTML outputs, not inside a widget's HTML, where they looked like plain text.
LINK_STYLE = "color:var(--jp-content-link-color,#1976d2);text-decoration:underline"
SERIES_COLOURS = ("#1e88e5", "#e53935", "#43a047", "#fb8c00", "#8e24aa", "#00897b")


def badge(state: str, text: str | None = None) -> str:
    colour = STATE_COLOURS.get(state, "#616161")
    return (
        f'<span style="background:{colour};color:white;border-radius:4px;padding:1px 6px">'
        f"{escape(text if text is not None else state)}</span>"
    )


def load_cells(node: dict) -> list[str]:
    """A node's CPU, memory and GPU use, as the monitors' tables show them."""
    return [cpu_text(node), memory_text(node), gpu_text(node)]


def _cell_html(cell: object) -> str:
    return cell if isinstance(cell, Raw) else escape("" if cell is None else str(cell))


def html_table(headers: list[str], rows: list[list[object]]) -> str:
    head = "".join(f'<th style="text-align:left;padding:2px 8px">{escape(h)}</th>' for h in headers)
    body = "".join(
        "<tr>" + "".join(f'<td style="padding:2px 8px">{_cell_html(cell)}</td>' for cell in row) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


class Raw(str):
    """Cell content that is already HTML."""


def parse_time(text: str | None) -> datetime.datetime | None:
    if not text:
        return None
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def elapsed(start: str | None, end: str | None, now: datetime.datetime | None = None) -> str:
    """From start to end (to `now` while running): "0.4 s" under a minute (a job that ran at all never
    shows nothing), "2:05" under an hour, then "1:02:05"."""
    began = parse_time(start)
    if began is None:
        return "-"
    finished = parse_time(end) or now or datetime.datetime.now(datetime.timezone.utc)
    seconds = max(0.0, (finished - began).total_seconds())
    if seconds < 60:
        return f"{int(seconds * 10) / 10:.1f} s"  # cut, not rounded: 59.97 s is not "60.0 s"
    whole = int(seconds)
    if whole < 3600:
        return f"{whole // 60}:{whole % 60:02d}"
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def line_plot(
    series: dict[str, list[tuple[float, float]]],
    width: int = 480,
    height: int = 180,
    colours: dict[str, str] | None = None,
) -> str:
    """An SVG plot of `series` ({name: [(step, value)]}), one polyline each, with a legend; `colours`
    fixes some series' colours (a sweep's pruned trials in grey)."""
    points = [p for values in series.values() for p in values]
    if not points:
        return ""
    pad = 36
    low_x, high_x = min(p[0] for p in points), max(p[0] for p in points)
    low_y, high_y = min(p[1] for p in points), max(p[1] for p in points)
    span_x, span_y = (high_x - low_x) or 1.0, (high_y - low_y) or 1.0

    def place(step: float, value: float) -> str:
        x = pad + (step - low_x) / span_x * (width - 2 * pad)
        y = height - pad - (value - low_y) / span_y * (height - 2 * pad)
        return f"{x:.1f},{y:.1f}"

    lines, legend = [], []
    per_row = max(1, (width - pad) // 110)  # legend entries side by side
    for position, (name, values) in enumerate(sorted(series.items())):
        colour = (colours or {}).get(name) or SERIES_COLOURS[position % len(SERIES_COLOURS)]
        lines.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" '
            f'points="{" ".join(place(s, v) for s, v in sorted(values))}"/>'
        )
        legend.append(
            f'<text x="{pad + 110 * (position % per_row)}" y="{14 + 12 * (position // per_row)}" '
            f'fill="{colour}" font-size="11">'
            f"{escape(name)} {values[-1][1]:.4g}</text>"
        )
    # Axis labels in the text colour around them (currentColor): readable in light and dark themes.
    label = 'font-size="10" fill="currentColor"'
    axes = (
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#999"/>'
        f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="#999"/>'
        f'<text x="2" y="{pad + 4}" {label}>{high_y:.3g}</text>'
        f'<text x="2" y="{height - pad}" {label}>{low_y:.3g}</text>'
        f'<text x="{pad}" y="{height - pad + 14}" {label}>step {low_x:g}</text>'
        f'<text x="{width - pad - 40}" y="{height - pad + 14}" {label}>{high_x:g}</text>'
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">'
        f"{axes}{''.join(lines)}{''.join(legend)}</svg>"
    )


def metric_plots(series: dict[str, list[tuple[float, float]]]) -> str:
    """One plot per metric, each with its own y axis (a loss near 2 and a learning rate near 0.001 on one
    axis left the rate a flat line), side by side while they fit; a metric's ranks ("loss (rank 1)") share
    its plot."""
    metrics: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for name, values in series.items():
        metrics.setdefault(name.split(" (rank ")[0], {})[name] = values
    plots = "".join(line_plot(metrics[metric], width=320, height=160) for metric in sorted(metrics))
    return f'<div style="display:flex;flex-wrap:wrap;gap:8px">{plots}</div>' if plots else ""
