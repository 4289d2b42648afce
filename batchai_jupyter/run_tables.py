"""The run history and a sweep's trials as text tables (the CLI and %batchai_runs --no-widget)."""

from __future__ import annotations

import sys

from .formatting import table


def format_value(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def run_rows(runs: list[dict], sort_by: str | None = None) -> tuple[list[str], list[list[str]]]:
    """The run history as a table: name, state, duration, node-hours, each parameter, each metric's final value
    (or, when sorted by `METRIC.min|max`, that summary)."""
    params = sorted({name for run in runs for name in run["params"]})
    metrics = sorted({name for run in runs for name in run["metrics"]})
    kinds = {name: "final" for name in metrics}
    if sort_by and "." in sort_by:
        name, _, kind = sort_by.rpartition(".")
        if name in kinds and kind in ("min", "max", "final"):
            kinds[name] = kind
    headers = ["Name", "State", "Duration (s)", "Node-hours", *params]
    headers += [name if kinds[name] == "final" else f"{name}.{kinds[name]}" for name in metrics]
    rows = []
    for run in runs:
        state = "pruned" if run["pruned"] else run["state"]
        row = [run["name"], state, format_value(run["duration"]), f"{run['nodeHours']:.4f}"]
        row += [format_value(run["params"].get(name)) for name in params]
        row += [format_value(run["metrics"].get(name, {}).get(kinds[name])) for name in metrics]
        rows.append(row)
    return headers, rows


def print_rows(headers: list[str], rows: list[list[str]], out=None) -> None:
    columns = [(title, (lambda row, i=i: row[i])) for i, title in enumerate(headers)]
    print(table(rows, columns), file=out or sys.stdout)


def trial_rows(trials: list[dict]) -> tuple[list[str], list[list[str]]]:
    params = sorted({name for trial in trials for name in trial["params"]})
    headers = ["Trial", "Job", "State", "Job state", "Value", "Pruned at step", *params]
    rows = [
        [
            str(t["number"]),
            t["job"],
            t["state"],
            t["jobState"] or "",
            format_value(t["value"]),
            format_value(t["prunedStep"]),
        ]
        + [format_value(t["params"].get(name)) for name in params]
        for t in trials
    ]
    return headers, rows
