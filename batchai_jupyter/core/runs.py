"""Run history: every job of an experiment as a run, with its parameters, metric summaries, duration,
state and node-hours, for comparing runs (`batchai experiment runs`, `%batchai_runs`, the REST `runs`).

Metrics are what jobs log with `batchai_jupyter.runtime.log_metric` (metrics.jsonl in their stdouterr);
rank 0's records are a run's values. An ended job's summary is read once and kept.
"""

from __future__ import annotations

import json
import math
import shlex
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import BatchAIError, NotFound
from .records import Job
from .store import Store

# A job's errors carry this code when a sweep's early termination stopped it.
PRUNED_CODE = "TrialPruned"
SORT_FIELDS = ("name", "created", "duration", "nodeHours", "state")
SUMMARY_KINDS = ("final", "min", "max")


@dataclass(frozen=True)
class MetricPoint:
    step: int
    value: float
    time: float


def parse_metric_lines(text: str, rank: int | None = 0) -> dict[str, list[MetricPoint]]:
    """{metric: its points in the order logged} from metrics.jsonl text; records of other ranks than
    `rank` (None: all), non-finite values and a last line still being written are left out."""
    series: dict[str, list[MetricPoint]] = {}
    for line in text.split("\n"):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict) or (rank is not None and record.get("rank", 0) != rank):
            continue
        value, name = record.get("value"), record.get("name")
        if not isinstance(name, str) or not isinstance(value, (int, float)) or not math.isfinite(value):
            continue
        series.setdefault(name, []).append(
            MetricPoint(int(record.get("step", 0)), float(value), float(record.get("time", 0.0)))
        )
    return series


def summarize(series: dict[str, list[MetricPoint]]) -> dict[str, dict[str, Any]]:
    return {
        name: {
            "final": points[-1].value,
            "min": min(p.value for p in points),
            "max": max(p.value for p in points),
            "count": len(points),
            "lastStep": points[-1].step,
        }
        for name, points in series.items()
        if points
    }


def argument_params(text: str) -> dict[str, str]:
    """`--lr 0.1 --width=64 --fast` -> {"lr": "0.1", "width": "64", "fast": "true"}."""
    try:
        words = shlex.split(text)
    except ValueError:
        return {}
    found: dict[str, str] = {}
    for index, word in enumerate(words):
        if not word.startswith("-") or word.strip("-") == "" or _is_number(word):
            continue
        name, equals, value = word.lstrip("-").partition("=")
        if equals:
            found[name] = value
        elif index + 1 < len(words) and (not words[index + 1].startswith("-") or _is_number(words[index + 1])):
            found[name] = words[index + 1]
        else:
            found[name] = "true"
    return found


def _is_number(word: str) -> bool:
    try:
        float(word)
    except ValueError:
        return False
    return True


def run_params(job: Job) -> dict[str, Any]:
    """The run's parameters: its environment variables, then its command-line arguments, then the
    spec's `params` (pushed variables and sweep values land there), each later source winning."""
    toolkit = job.spec.toolkit
    arguments = " ".join(
        part
        for part in (toolkit.args, toolkit.command_line, toolkit.master_args, toolkit.worker_args)
        if part and "--" in part
    )
    return {**job.spec.environment, **argument_params(arguments), **job.spec.params}


def sort_key(sort_by: str) -> tuple[str, str]:
    """("metric", "loss.min") -> which value a run is sorted by: a run field, or a metric's summary."""
    if sort_by in SORT_FIELDS:
        return "field", sort_by
    name, dot, kind = sort_by.rpartition(".")
    if dot and kind in SUMMARY_KINDS:
        return name, kind
    return sort_by, "final"


def sorted_runs(runs: list[dict[str, Any]], sort_by: str | None, descending: bool) -> list[dict[str, Any]]:
    """Runs ordered by `sort_by` (a field of SORT_FIELDS, `METRIC` = its final value, `METRIC.min|max|final`);
    runs without that value come last, in creation order."""
    if not sort_by:
        return runs
    metric, kind = sort_key(sort_by)

    def value(run: dict[str, Any]) -> Any:
        if metric == "field":
            return run.get(kind)
        return run["metrics"].get(metric, {}).get(kind)

    having = [run for run in runs if value(run) is not None]
    if not having and metric != "field":
        known = sorted({name for run in runs for name in run["metrics"]})
        raise BatchAIError(
            "InvalidArgument",
            f"sortBy: no run logged a metric {metric!r}; sort by one of: {', '.join(known + list(SORT_FIELDS))}",
        )
    missing = [run for run in runs if value(run) is None]
    return sorted(having, key=value, reverse=descending) + missing


class RunHistory:
    """The runs of an experiment, read from the store and the jobs' metrics files."""

    def __init__(self, store: Store, read_metrics: Callable[[Job, int], bytes]):
        self.store = store
        self.read_metrics = read_metrics
        self._ended: dict[tuple[int, str], dict[str, dict[str, Any]]] = {}  # (job id, uuid) -> summaries
        self._lock = threading.Lock()

    def metric_bytes(self, job: Job, offset: int = 0) -> bytes:
        """The job's metrics.jsonl from `offset` on (b"" while it has logged nothing)."""
        try:
            return self.read_metrics(job, offset)
        except BatchAIError as failure:
            if failure.status == 404:
                return b""
            raise

    def metric_text(self, job: Job) -> str:
        try:
            return self.read_metrics(job, 0).decode("utf-8", errors="replace")
        except BatchAIError as failure:
            if failure.status == 404:
                return ""  # nothing logged (yet)
            raise

    def _summaries(self, job: Job) -> dict[str, dict[str, Any]]:
        key = (job.id, job.uuid)
        with self._lock:
            if key in self._ended:
                return self._ended[key]
        summaries = summarize(parse_metric_lines(self.metric_text(job)))
        if job.state in ("succeeded", "failed"):
            with self._lock:
                self._ended[key] = summaries
        return summaries

    def runs(
        self, workspace: str, experiment: str, sort_by: str | None = None, descending: bool = False
    ) -> list[dict[str, Any]]:
        if not self.store.query_one(
            "SELECT 1 FROM experiments WHERE workspace = ? AND name = ?", workspace, experiment
        ):
            raise NotFound("experiment", experiment, f"list them with `batchai experiment list -w {workspace}`")
        jobs = self.store.jobs_of(workspace, experiment)
        hours = self.node_hours([job.id for job in jobs])
        runs = [self.run_view(job, hours.get(job.id, 0.0)) for job in jobs]
        return sorted_runs(runs, sort_by, descending)

    def run_view(self, job: Job, node_hours: float) -> dict[str, Any]:
        started, ended = job.started, job.ended
        duration = None if started is None else max(0.0, (ended or time.time()) - started)
        return {
            "name": job.name,
            "experiment": job.experiment,
            "cluster": job.cluster,
            "state": job.state,
            "pruned": any(error.get("code") == PRUNED_CODE for error in job.errors),
            "created": job.created,
            "startTime": started,
            "endTime": ended,
            "duration": duration,
            "nodeCount": job.spec.node_count,
            "nodeHours": node_hours,
            "exitCode": job.exit_code,
            "params": run_params(job),
            "metrics": self._summaries(job),
        }

    def node_hours(self, job_ids: Iterable[int]) -> dict[int, float]:
        """{job id: node-hours}: for each attempt, its nodes times how long its tasks ran."""
        ids = list(job_ids)
        if not ids:
            return {}
        marks = ", ".join("?" for _ in ids)
        now = time.time()
        hours: dict[int, float] = {}
        for row in self.store.query(
            "SELECT job_id, COUNT(DISTINCT node_id) AS nodes, MIN(launched) AS began, "
            f"MAX(COALESCE(ended, ?)) AS finished FROM tasks WHERE job_id IN ({marks}) GROUP BY job_id, attempt",
            now,
            *ids,
        ):
            span = max(0.0, row["finished"] - row["began"])
            hours[row["job_id"]] = hours.get(row["job_id"], 0.0) + row["nodes"] * span / 3600.0
        return hours

    def series(self, workspace: str, experiment: str, name: str, metrics: list[str]) -> dict[str, Any]:
        """The logged points of `metrics` (all when empty) of one run: {metric: [[step, value], ...]}."""
        job = self.store.job_by_name(workspace, experiment, name)
        if job is None:
            raise NotFound("job", name, f"list the runs with `batchai experiment runs -w {workspace} -n {experiment}`")
        series = parse_metric_lines(self.metric_text(job))
        wanted = metrics or sorted(series)
        return {
            "name": name,
            "state": job.state,
            "metrics": {m: [[p.step, p.value] for p in series.get(m, [])] for m in wanted},
        }
