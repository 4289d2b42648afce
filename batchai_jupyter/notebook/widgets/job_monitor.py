"""JobMonitor: a job's state, tasks, live per-task logs, output files and metric plot, in one widget.

One background thread (Poller) with its own connection updates it from the job's snapshot (one
request: job, tasks, logs and metrics read on from the offsets shown so far, output files). While the
job runs it reads at a steady pace (log lines have no events); otherwise it waits for the service's
event stream (an EventWaker) to say the job changed, and polls with backoff while that stream is
unavailable. The threads end when the job has ended and everything is read, or when the widget closes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from html import escape
from urllib.parse import urljoin

import ipywidgets as widgets
from traitlets import HasTraits, Unicode

from ...client import ENDED, Client
from ...runtime.cellrunner import RESULT_OUTPUT_ID
from ...runtime.metrics import METRICS_FILE
from ..packaging import human_size
from .failure import outcome
from .poller import EventWaker, Poller, own_client
from .render import LINK_STYLE, Raw, badge, elapsed, html_table, load_cells, metric_plots
from .snapshot import log_section, snapshot_box

TAIL_BYTES = 256 * 1024  # of each log, when the monitor first sees it


@dataclass(frozen=True)
class JobRef:
    """Which job a monitor shows, and its own connection to the service."""

    client: Client
    workspace: str
    experiment: str
    name: str


def _task_colour(task: dict) -> str:
    if task["exitCode"] is None:
        return task["state"]
    return "succeeded" if task["exitCode"] == 0 else "failed"


def _task_key(task: dict) -> tuple:
    """Ranks and roles first, in index order; node preparation tasks after them."""
    return (task["role"] == "prep", str(task["role"]), task["index"] if task["index"] is not None else -1, task["name"])


class LogText(HasTraits):
    """The raw text read so far from one stream of a task (observable: `.observe(f, names="value")`)."""

    value = Unicode("")


# A scroll box laid out bottom-up starts scrolled to its end, so the newest lines stay in view as the
# log grows (each update renders the box afresh). The <pre> must not shrink to the box: Lab's output
# CSS gives it its own overflow, which would make it the scroller, at its top. Theme variables keep
# it readable in dark themes.
LOG_BOX = (
    "max-height:220px;overflow:auto;display:flex;flex-direction:column-reverse;"
    "border:1px solid var(--jp-border-color2,#e0e0e0);background:var(--jp-layout-color0,white)"
)
LOG_PRE = (
    "flex:none;overflow:visible;margin:0;padding:4px 8px;white-space:pre-wrap;word-break:break-all;"
    "line-height:1.35;"
    "font-family:var(--jp-code-font-family,monospace);font-size:var(--jp-code-font-size,12px);"
    "color:{colour}"
)


class TaskLog:
    """The stdout and stderr of one task, fed from snapshots, shown as one tailing log view."""

    def __init__(self, task: dict):
        self.task = task["name"]
        self.stdout = LogText()
        self.stderr = LogText()
        self.offsets: dict[str, int] = {}  # {file: the offset shown up to}
        self.box = widgets.HTML(layout=widgets.Layout(width="100%"))
        self._render()

    @property
    def has_output(self) -> bool:
        return bool(self.stdout.value or self.stderr.value)

    def add(self, part: dict) -> bool:
        """Takes a snapshot's part of one of the task's files if it continues what is shown."""
        shown = self.offsets.setdefault(part["path"], part["offset"])
        if part["offset"] != shown or not part["text"]:
            return False
        self.offsets[part["path"]] = part["nextOffset"]
        text = self.stdout if part["stream"] == "stdout" else self.stderr
        text.value += part["text"]
        self._render()
        return True

    def _render(self) -> None:
        task = escape(self.task, quote=True)
        parts = []
        if self.stdout.value or not self.stderr.value:
            body = escape(self.stdout.value) or '<i style="opacity:0.6">no output yet</i>'
            parts.append(
                f'<div style="{LOG_BOX}"><pre class="batchai-log" data-task="{task}" data-stream="stdout" '
                f'style="{LOG_PRE.format(colour="var(--jp-content-font-color1,#212121)")}">{body}</pre></div>'
            )
        if self.stderr.value:
            parts.append(
                f'<div style="{LOG_BOX};margin-top:4px"><pre class="batchai-log" data-task="{task}" '
                f'data-stream="stderr" title="stderr" '
                f'style="{LOG_PRE.format(colour="var(--jp-error-color1,#d32f2f)")}">'
                f"{escape(self.stderr.value)}</pre></div>"
            )
        self.box.value = "".join(parts)


class JobMonitor(widgets.VBox):
    """`job` is anything with client, workspace, experiment and name (a jobhandle.Job). `log_poll` is the
    pace while the job runs; `poll_min`/`poll_max` the backoff while polling without the event stream;
    `idle_wait` the longest wait for an event while the job is not running."""

    def __init__(
        self,
        job,
        start: bool = True,
        poll_min: float = 0.25,
        poll_max: float = 2.0,
        log_poll: float = 0.3,
        idle_wait: float = 10.0,
        events: bool = True,
        logs_printed: bool = False,
    ):
        """`logs_printed`: the cell printed the job's output already (`--wait`); the log tabs stay folded
        behind a button then, unless a task fails (its log opens, as always)."""
        self.job = JobRef(own_client(job.client), job.workspace, job.experiment, job.name)
        self.header = widgets.HTML()
        self.task_table = widgets.HTML()
        self.log_tabs = widgets.Tab(children=[])
        self.task_logs: dict[str, TaskLog] = {}
        self._task_order: dict[str, tuple] = {}
        self.files_view = widgets.HTML()
        self.metrics_view = widgets.HTML()
        self.error_view = widgets.HTML()
        self.metrics: dict[str, list[tuple[float, float]]] = {}
        self.state = "?"
        self.info: dict = {}
        self._metrics_offset = 0
        self._partial_metric = ""
        self._shown_files: tuple = ()
        self._shown_tasks: list = []
        self._shown_loads: dict[str, list[str]] = {}
        self._ended_seen = False
        self._failure_tab_opened = False
        self._display = None  # the DisplayHandle of show(): its snapshot is refreshed when the job ends
        self._pace = (log_poll, poll_min, poll_max, idle_wait)
        self.logs_toggle: widgets.ToggleButton | None = None
        log_views: list[widgets.Widget] = [self.log_tabs]
        if logs_printed:
            self.logs_toggle = widgets.ToggleButton(
                value=False, description="show logs", tooltip="the output of rank 0 is printed above"
            )
            self.logs_toggle.observe(self._fold_logs, names="value")
            self._fold_logs()
            log_views.insert(0, self.logs_toggle)
        super().__init__(
            [self.header, self.task_table, *log_views, self.metrics_view, self.files_view, self.error_view]
        )
        self.poller = Poller(self.step, self._show_error, poll_min, poll_max, name=f"batchai-job-{job.name}")
        self.events: EventWaker | None = None
        if start:
            self.start(events)

    def start(self, events: bool = True) -> None:
        if events and self.events is None:
            self.events = EventWaker(
                self.job.client,
                lambda _event: self.poller.wake(),
                thread_name=f"batchai-job-events-{self.job.name}",
                type="job",
                workspace=self.job.workspace,
                experiment=self.job.experiment,
                name=self.job.name,
            )
        self.poller.start()

    # -- one round of updates ----------------------------------------------------------------------

    def _snapshot(self) -> dict:
        since = {path: offset for log in self.task_logs.values() for path, offset in log.offsets.items()}
        since[METRICS_FILE] = self._metrics_offset
        return self.job.client.job_snapshot(
            self.job.workspace, self.job.experiment, self.job.name, tail_bytes=TAIL_BYTES, since=since
        )

    def step(self) -> tuple[bool, bool]:
        """Reads what is new; returns (changed, finished). Finished = the job ended and all is read."""
        snapshot = self._snapshot()
        info = snapshot["job"]
        if self.info and info["attempt"] != self.info["attempt"]:
            self._new_attempt()  # a retried job writes its logs afresh (earlier ones move to attempt-<n>/)
            snapshot = self._snapshot()
            info = snapshot["job"]
        ended = info["executionState"] in ENDED
        changed = info["executionState"] != self.state
        self.state, self.info = info["executionState"], info
        tasks = [t for t in snapshot["tasks"] if t["attempt"] == info["attempt"]]
        loads = {node["nodeId"]: load_cells(node) for node in snapshot.get("nodes", [])}
        if (tasks, loads) != (self._shown_tasks, self._shown_loads):
            self._render_tasks(tasks, loads)
            self._shown_tasks, self._shown_loads = tasks, loads
        for task in tasks:
            if task["name"] not in self.task_logs:
                self._add_task_log(task)
        more = False
        for part in snapshot["logs"]:
            log = self.task_logs.get(part["task"])
            if log is not None:
                changed = log.add(part) or changed
                more = more or part["nextOffset"] < part["size"]
        self._show_tabs()
        self._render_header()
        metrics = snapshot["metrics"]
        if metrics is not None:
            changed = self._update_metrics(metrics) or changed
            more = more or metrics["nextOffset"] < metrics["size"]
        self._render_files(snapshot["outputFiles"])
        self.error_view.value = ""
        finished = ended and self._ended_seen and not changed and not more
        self._ended_seen = self._ended_seen or ended
        # An ended job is read once more, at once, to be sure all its output is shown.
        self._set_pace(running=info["executionState"] in ("running", "terminating") or more or ended)
        if finished:
            self.stop_listening()
            self.job.client.close()
            if self._display is not None:
                self._display.update(self)  # the notebook keeps the final snapshot
        return changed or more, finished

    def _set_pace(self, running: bool) -> None:
        log_poll, poll_min, poll_max, idle_wait = self._pace
        if running:  # log lines come without events
            self.poller.pace(log_poll, log_poll)
        elif self.events is not None and self.events.connected:  # the job's next change wakes the poller
            self.poller.pace(idle_wait, idle_wait)
        else:
            self.poller.pace(poll_min, poll_max)

    def _new_attempt(self) -> None:
        self.task_logs = {}
        self._task_order = {}
        self._shown_tasks, self._shown_loads = [], {}
        self.log_tabs.children = []
        self.metrics = {}
        self.metrics_view.value = ""
        self._metrics_offset = 0
        self._partial_metric = ""

    def _add_task_log(self, task: dict) -> TaskLog:
        log = TaskLog(task)
        self.task_logs[task["name"]] = log
        self._task_order[task["name"]] = _task_key(task)
        return log

    def _show_tabs(self) -> None:
        """One tab per rank/role task, in rank order, first; a node preparation task's tab only once it
        has printed something (an empty first tab hid the ranks' logs)."""
        names = sorted(
            (name for name, log in self.task_logs.items() if not self._task_order[name][0] or log.has_output),
            key=self._task_order.get,
        )
        if names != list(self.log_tabs.titles) or len(names) != len(self.log_tabs.children):
            with self.log_tabs.hold_sync():
                self.log_tabs.children = [self.task_logs[name].box for name in names]
                self.log_tabs.titles = tuple(names)
                if names and self.log_tabs.selected_index is None:
                    self.log_tabs.selected_index = 0
        failed = self._failed_task()
        if failed is not None and not self._failure_tab_opened and failed in names:
            self.log_tabs.selected_index = names.index(failed)  # once: the user may look elsewhere
            self._failure_tab_opened = True
            if self.logs_toggle is not None:
                self.logs_toggle.value = True

    def _panel_link(self) -> str:
        """A button that opens the job in JupyterLab's Batch AI panel: Lab runs the command a clicked element
        names (its CommandLinker; elsewhere the button does nothing)."""
        job = {"workspace": self.job.workspace, "experiment": self.job.experiment, "name": self.job.name}
        return (
            f'<button class="batchai-open-job" data-commandlinker-command="batchai:open-job" '
            f'data-commandlinker-args="{escape(json.dumps(job), quote=True)}" '
            f'title="open this job in the Batch AI panel of JupyterLab" style="{LINK_STYLE};background:none;'
            f'border:none;padding:0;cursor:pointer;font:inherit">open in the Batch AI panel</button>'
        )

    def _failed_task(self) -> str | None:
        """The name of the task that failed first, as the service's failure summary names it; None unless
        the job failed (a job its user terminated did not)."""
        return (self.info.get("failure") or {}).get("task")

    def _fold_logs(self, _change=None) -> None:
        opened = self.logs_toggle is None or self.logs_toggle.value
        self.log_tabs.layout.display = None if opened else "none"
        if self.logs_toggle is not None:
            self.logs_toggle.description = "hide logs" if opened else "show logs"

    @property
    def failure(self) -> str | None:
        """ "rank 1 failed (exit code 1): ValueError: ..." once the job failed: the headline of the service's
        failure summary (which task failed first, and the line of its stderr that says why)."""
        return (self.info.get("failure") or {}).get("headline")

    def _render_header(self) -> None:
        execution = self.info["executionInfo"]
        exit_code = execution["exitCode"]
        parts = [
            f"<b>{escape(self.job.experiment)}/{escape(self.job.name)}</b>",
            badge(outcome(self.info, self.state)),
            f"cluster {escape(self.info['cluster'])}",
            f"elapsed {elapsed(execution['startTime'], execution['endTime'])}",
        ]
        if exit_code is not None:
            parts.append(f"exit code {exit_code}")
        if self.info.get("queuePosition"):
            parts.append(f"queue position {self.info['queuePosition']}")
        parts.append(self._panel_link())
        reason = self.info.get("waitingReason") or "; ".join(e.get("message", "") for e in execution["errors"] or [])
        html = " &nbsp; ".join(parts)
        failure = self.failure
        if failure:
            html += (
                f'<div class="batchai-failure" style="color:var(--jp-error-color1,#d32f2f);'
                f'font-family:var(--jp-code-font-family,monospace)">{escape(failure)}</div>'
            )
        if reason:
            html += f"<br><small>{escape(reason)}</small>"
        self.header.value = html

    def _render_tasks(self, tasks: list[dict], loads: dict[str, list[str]]) -> None:
        """`loads`: each running node's CPU, memory and GPU use (load_cells), shown beside its tasks."""
        # Node preparation tasks are listed while they run or when they failed, not once done well.
        tasks = sorted((t for t in tasks if t["role"] != "prep" or t["exitCode"] != 0), key=_task_key)
        rows = [
            [t["node"], f"{t['role']} {t['index']}", t["ip"], Raw(badge(_task_colour(t), t["state"])), t["exitCode"]]
            + (loads.get(t["node"], ["-"] * 3) if loads else [])
            for t in tasks
        ]
        headers = ["node", "rank / role", "host", "state", "exit code"] + (
            ["node cpu", "node memory", "node gpu"] if loads else []
        )
        self.task_table.value = html_table(headers, rows) if rows else ""

    def _update_metrics(self, part: dict) -> bool:
        if part["offset"] != self._metrics_offset or not part["text"]:
            return False
        self._metrics_offset = part["nextOffset"]
        lines = (self._partial_metric + part["text"]).split("\n")
        self._partial_metric = lines.pop()  # a line still being written
        added = False
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("value") is None:
                continue
            name = record["name"] if record.get("rank", 0) == 0 else f"{record['name']} (rank {record['rank']})"
            self.metrics.setdefault(name, []).append((record["step"], record["value"]))
            added = True
        if added:
            self.metrics_view.value = metric_plots(self.metrics)
        return added

    def _render_files(self, outputs: dict[str, list[dict]]) -> None:
        rows, shown = [], []
        for output_id, entries in outputs.items():
            if output_id == RESULT_OUTPUT_ID:
                continue
            for entry in entries:
                if entry["fileType"] != "file":
                    continue
                shown.append((output_id, entry["path"], entry["contentLength"]))
                link = urljoin(self.job.client.url, entry["downloadUrl"])
                rows.append(
                    [
                        output_id,
                        Raw(
                            f'<a href="{escape(link)}" download="{escape(entry["name"])}" '
                            f'target="_blank" style="{LINK_STYLE}">{escape(entry["path"])}</a>'
                        ),
                        human_size(entry["contentLength"] or 0),
                    ]
                )
        if tuple(shown) != self._shown_files:
            self._shown_files = tuple(shown)
            self.files_view.value = html_table(["output", "file", "size"], rows) if rows else ""

    def _show_error(self, failure: Exception) -> None:
        self.error_view.value = f'<span style="color:#e53935">{escape(str(failure))}</span>'

    # -- what the notebook keeps -------------------------------------------------------------------

    def show(self) -> None:
        """Displays the monitor with a display id, so the snapshot saved with it is the job's final one."""
        from IPython.display import display

        self._display = display(self, display_id=True)

    def summary(self) -> str:
        execution = self.info.get("executionInfo") or {}
        text = f"job {self.job.experiment}/{self.job.name}: {outcome(self.info, self.state)}"
        if execution.get("exitCode") is not None:
            text += f" (exit code {execution['exitCode']})"
        failure = self.failure
        return f"{text}; {failure}" if failure else text

    def snapshot_html(self) -> str:
        """What the widget shows, as plain HTML: header (state, failure), tasks, each task's last lines
        (the failing task's opened), the metric plot and the output files with their links."""
        failed = self._failed_task()
        names = sorted(self.task_logs, key=self._task_order.get)
        logs = [
            log_section(
                name,
                self.task_logs[name].stdout.value,
                self.task_logs[name].stderr.value,
                opened=failed == name,
            )
            for name in names
        ]
        return snapshot_box(
            self.state,
            [self.header.value, self.task_table.value, *logs, self.metrics_view.value, self.files_view.value],
        )

    def _repr_mimebundle_(self, **kwargs):
        bundle = super()._repr_mimebundle_(**kwargs) or {}
        bundle["text/plain"] = self.summary()
        bundle["text/html"] = self.snapshot_html()
        return bundle

    # -- life cycle --------------------------------------------------------------------------------

    def log_text(self, task: str | None = None) -> str:
        """The stdout shown for a task (default: the first one)."""
        if task is None:
            task = next((name for name in self.task_logs if not name.startswith("job_prep")), None)
        logs = self.task_logs.get(task) if task else None
        return logs.stdout.value if logs else ""

    def stop_listening(self) -> None:
        if self.events is not None:
            self.events.stop()

    def close(self) -> None:
        self.stop_listening()
        self.poller.stop()
        self.job.client.close()
        super().close()
