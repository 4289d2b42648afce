"""RunCompare: an experiment's runs side by side: a table sortable by any metric or field (parameters and
each metric's final value as columns), the curves of the selected runs overlaid in one plot, and the
parameters against the chosen metric in parallel coordinates."""

from __future__ import annotations

from html import escape

import ipywidgets as widgets

from ...client import Client
from ...errors import BatchAIError
from .poller import own_client
from .render import SERIES_COLOURS, Raw, badge, html_table, line_plot

FIELDS = ("created", "name", "duration", "nodeHours")
GREY = "#9e9e9e"


def parallel_plot(runs: list[dict], metric: str, width: int = 640, height: int = 220) -> str:
    """Parallel coordinates: one axis per parameter (numbers scaled, other values spread in their order) and a
    last one for the metric's final value; one line per run that logged it, pruned runs grey."""
    runs = [run for run in runs if metric in run["metrics"]]
    params = sorted({p for run in runs for p in run["params"] if len({str(r["params"].get(p)) for r in runs}) > 1})
    if not runs or not params:
        return ""
    axes = [*params, metric]
    values = {run["name"]: [*(run["params"].get(p) for p in params), run["metrics"][metric]["final"]] for run in runs}
    pad, top = 40, 24
    step = (width - 2 * pad) / max(1, len(axes) - 1)

    def scale(index: int, value) -> float:
        column = [row[index] for row in values.values()]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in column):
            low, high = min(column), max(column)
            share = (value - low) / (high - low) if high > low else 0.5
        else:
            order = sorted({str(v) for v in column})
            share = order.index(str(value)) / max(1, len(order) - 1)
        return height - pad - share * (height - pad - top)

    parts = []
    for index, axis in enumerate(axes):
        x = pad + index * step
        parts.append(f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{height - pad}" stroke="#999"/>')
        parts.append(f'<text x="{x - 20:.1f}" y="{height - pad + 14}" font-size="10">{escape(axis)}</text>')
    for position, run in enumerate(runs):
        colour = GREY if run["pruned"] else SERIES_COLOURS[position % len(SERIES_COLOURS)]
        points = " ".join(f"{pad + i * step:.1f},{scale(i, v):.1f}" for i, v in enumerate(values[run["name"]]))
        parts.append(
            f'<polyline class="batchai-run" fill="none" stroke="{colour}" stroke-width="1.5" points="{points}"/>'
        )
    return f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">{"".join(parts)}</svg>'


def _cell(value) -> object:
    return f"{value:.4g}" if isinstance(value, float) else value


class RunCompare(widgets.VBox):
    def __init__(
        self, workspace, experiment: str, sort_by: str | None = None, descending: bool = False, load: bool = True
    ):
        self.client: Client = own_client(workspace.client)
        self.workspace_name = workspace.name
        self.experiment = experiment
        self.runs: list[dict] = []
        self.curves: dict[str, dict[str, list[tuple[float, float]]]] = {}  # run -> metric -> points
        self.sort_by = widgets.Dropdown(
            description="sort by", options=[sort_by or "created"], value=sort_by or "created"
        )
        self.descending = widgets.Checkbox(value=descending, description="descending", indent=False)
        self.metric = widgets.Dropdown(description="curves of", options=[])
        self.selected = widgets.SelectMultiple(description="runs", options=[], rows=6)
        self.refresh_button = widgets.Button(description="Refresh", tooltip="read the runs again")
        self.table = widgets.HTML()
        self.plot = widgets.HTML()
        self.parallel = widgets.HTML()  # parameters against the metric's final value
        self.error_view = widgets.HTML()
        super().__init__(
            [
                widgets.HBox([self.sort_by, self.descending, self.refresh_button]),
                self.table,
                widgets.HBox([self.selected, self.metric]),
                self.plot,
                self.parallel,
                self.error_view,
            ]
        )
        self.sort_by.observe(lambda _change: self.render_table(), names="value")
        self.descending.observe(lambda _change: self.render_table(), names="value")
        self.selected.observe(lambda _change: self.render_plot(), names="value")
        self.metric.observe(lambda _change: self.render_plot(), names="value")
        self.refresh_button.on_click(lambda _button: self.refresh())
        if load:
            self.refresh()

    def refresh(self) -> None:
        try:
            self.runs = self.client.runs(self.workspace_name, self.experiment)
        except BatchAIError as failure:
            self.error_view.value = f'<span style="color:#e53935">{escape(str(failure))}</span>'
            return
        self.error_view.value = ""
        self.curves = {}
        metrics = sorted({m for run in self.runs for m in run["metrics"]})
        keys = list(FIELDS) + [key for m in metrics for key in (m, f"{m}.min", f"{m}.max")]
        chosen = self.sort_by.value if self.sort_by.value in keys else (metrics[0] if metrics else "created")
        with self.hold_sync():
            self.sort_by.options, self.sort_by.value = keys, chosen
            self.metric.options = metrics
            if metrics and self.metric.value not in metrics:
                self.metric.value = metrics[0]
            names = [run["name"] for run in self.runs]
            self.selected.options = names
            self.selected.value = tuple(name for name in self.selected.value if name in names) or tuple(names[:5])
        self.render_table()
        self.render_plot()

    def ordered(self) -> list[dict]:
        """The runs in the table's order (those without the sort key last)."""
        key = self.sort_by.value
        metric, _, kind = key.rpartition(".") if key.endswith((".min", ".max")) else (key, "", "final")

        def value(run: dict):
            return run.get(key) if key in FIELDS else run["metrics"].get(metric, {}).get(kind)

        having = [run for run in self.runs if value(run) is not None]
        missing = [run for run in self.runs if value(run) is None]
        return sorted(having, key=value, reverse=self.descending.value) + missing

    def render_table(self) -> None:
        params = sorted({p for run in self.runs for p in run["params"]})
        metrics = sorted({m for run in self.runs for m in run["metrics"]})
        rows = []
        for run in self.ordered():
            state = "pruned" if run["pruned"] else run["state"]
            rows.append(
                [run["name"], Raw(badge(state if state != "pruned" else "leaving", state)), _cell(run["duration"])]
                + [_cell(run["nodeHours"])]
                + [_cell(run["params"].get(p)) for p in params]
                + [_cell(run["metrics"].get(m, {}).get("final")) for m in metrics]
            )
        headers = ["run", "state", "duration (s)", "node-hours", *params, *metrics]
        self.table.value = html_table(headers, rows) if rows else f"experiment {escape(self.experiment)} has no runs"

    def _curve(self, run: str, metric: str) -> list[tuple[float, float]]:
        if metric not in self.curves.get(run, {}):
            points = self.client.run_metrics(self.workspace_name, self.experiment, run, [metric])["metrics"][metric]
            self.curves.setdefault(run, {})[metric] = [(step, value) for step, value in points]
        return self.curves[run][metric]

    def render_plot(self) -> None:
        metric = self.metric.value
        self.parallel.value = parallel_plot(self.runs, metric) if metric else ""
        if not metric or not self.selected.value:
            self.plot.value = ""
            return
        pruned = {run["name"] for run in self.runs if run["pruned"]}
        series = {name: self._curve(name, metric) for name in self.selected.value}
        series = {name: points for name, points in series.items() if points}
        self.plot.value = line_plot(series, width=640, height=220, colours={name: GREY for name in pruned})

    def close(self) -> None:
        self.client.close()
        super().close()
