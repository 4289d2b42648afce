"""JobMonitor: a job's state, tasks, live per-task logs, output files and metric plot, in one widget.

One background thread (Poller) with its own connection updates it by ranged reads; the thread ends
when the job has ended and everything is read, or when the widget is closed.
"""
from __future__ import annotations

import json
from html import escape
from urllib.parse import urljoin

import ipywidgets as widgets
from traitlets import HasTraits, Unicode

from ...runtime.metrics import METRICS_FILE
from ..jobhandle import ENDED, Job
from ..packaging import human_size
from ..tail import FileTail
from .poller import Poller, own_client
from .render import Raw, badge, elapsed, html_table, line_plot

FILES_EVERY_STEPS = 10


def _task_colour(task: dict) -> str:
    if task["exitCode"] is None:
        return task["state"]
    return "succeeded" if task["exitCode"] == 0 else "failed"


def _task_key(task: dict) -> tuple:
    """Ranks and roles first, in index order; node preparation tasks after them."""
    return (task["role"] == "prep", str(task["role"]), task["index"] if task["index"] is not None else -1,
            task["name"])


class LogText(HasTraits):
    """The raw text read so far from one stream of a task (observable: `.observe(f, names="value")`)."""
    value = Unicode("")


# A scroll box laid out bottom-up starts scrolled to its end, so the newest lines stay in view as the
# log grows (each update renders the box afresh). The <pre> must not shrink to the box: Lab's output
# CSS gives it its own overflow, which would make it the scroller, at its top. Theme variables keep
# it readable in dark themes.
LOG_BOX = ("max-height:220px;overflow:auto;display:flex;flex-direction:column-reverse;"
           "border:1px solid var(--jp-border-color2,#e0e0e0);background:var(--jp-layout-color0,white)")
LOG_PRE = ("flex:none;overflow:visible;margin:0;padding:4px 8px;white-space:pre-wrap;word-break:break-all;"
           "line-height:1.35;"
           "font-family:var(--jp-code-font-family,monospace);font-size:var(--jp-code-font-size,12px);"
           "color:{colour}")


class TaskLog:
    """The stdout and stderr of one task, fed by tails of its files, shown as one tailing log view."""

    def __init__(self, job: Job, task: dict):
        self.task = task["name"]
        self.stdout = LogText()
        self.stderr = LogText()
        self.box = widgets.HTML(layout=widgets.Layout(width="100%"))
        self._tails = [(FileTail(job.client, job.workspace, job.experiment, job.name, task[stream]), text)
                       for stream, text in (("stdout", self.stdout), ("stderr", self.stderr))]
        self._render()

    @property
    def has_output(self) -> bool:
        return bool(self.stdout.value or self.stderr.value)

    def update(self) -> bool:
        changed = False
        for tail, text in self._tails:
            more = tail.read()
            if more:
                text.value += more
                changed = True
        if changed:
            self._render()
        return changed

    def _render(self) -> None:
        task = escape(self.task, quote=True)
        parts = []
        if self.stdout.value or not self.stderr.value:
            body = escape(self.stdout.value) or '<i style="opacity:0.6">no output yet</i>'
            parts.append(f'<div style="{LOG_BOX}"><pre class="batchai-log" data-task="{task}" data-stream="stdout" '
                         f'style="{LOG_PRE.format(colour="var(--jp-content-font-color1,#212121)")}">{body}</pre></div>')
        if self.stderr.value:
            parts.append(f'<div style="{LOG_BOX};margin-top:4px"><pre class="batchai-log" data-task="{task}" '
                         f'data-stream="stderr" title="stderr" '
                         f'style="{LOG_PRE.format(colour="var(--jp-error-color1,#d32f2f)")}">'
                         f"{escape(self.stderr.value)}</pre></div>")
        self.box.value = "".join(parts)


class JobMonitor(widgets.VBox):
    def __init__(self, job: Job, start: bool = True, poll_min: float = 0.1, poll_max: float = 0.5):
        self.job = Job(own_client(job.client), job.workspace, job.experiment, job.name)
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
        self._metrics_tail = FileTail(self.job.client, job.workspace, job.experiment, job.name, METRICS_FILE)
        self._partial_metric = ""
        self._steps = 0
        self._ended_seen = False
        super().__init__([self.header, self.task_table, self.log_tabs, self.metrics_view, self.files_view,
                          self.error_view])
        self.poller = Poller(self.step, self._show_error, poll_min, poll_max, name=f"batchai-job-{job.name}")
        if start:
            self.poller.start()

    # -- one round of updates ----------------------------------------------------------------------

    def step(self) -> tuple[bool, bool]:
        """Reads what is new; returns (changed, finished). Finished = the job ended and all is read."""
        info = self.job.refresh()
        ended = info["executionState"] in ENDED
        changed = info["executionState"] != self.state
        if self.info and info["attempt"] != self.info["attempt"]:
            self._new_attempt()  # a retried job writes its logs afresh (earlier ones move to attempt-<n>/)
        self.state, self.info = info["executionState"], info
        self._render_header()
        tasks = [t for t in self.job.tasks() if t["attempt"] == info["attempt"]]
        self._render_tasks(tasks)
        for task in tasks:
            log = self.task_logs.get(task["name"]) or self._add_task_log(task)
            changed = log.update() or changed
        self._show_tabs()
        changed = self._update_metrics() or changed
        self._steps += 1
        if changed or ended or self._steps % FILES_EVERY_STEPS == 1:
            self._render_files()
        self.error_view.value = ""
        finished = ended and self._ended_seen and not changed
        self._ended_seen = self._ended_seen or ended
        if finished:
            self.job.client.session.close()
        return changed, finished

    def _new_attempt(self) -> None:
        self.task_logs = {}
        self._task_order = {}
        self.log_tabs.children = []
        self.metrics = {}
        self.metrics_view.value = ""
        self._metrics_tail = FileTail(self.job.client, self.job.workspace, self.job.experiment, self.job.name,
                                      METRICS_FILE)

    def _add_task_log(self, task: dict) -> TaskLog:
        log = TaskLog(self.job, task)
        self.task_logs[task["name"]] = log
        self._task_order[task["name"]] = _task_key(task)
        return log

    def _show_tabs(self) -> None:
        """One tab per rank/role task, in rank order, first; a node preparation task's tab only once it
        has printed something (an empty first tab hid the ranks' logs)."""
        names = sorted((name for name, log in self.task_logs.items()
                        if not self._task_order[name][0] or log.has_output), key=self._task_order.get)
        if names == list(self.log_tabs.titles) and len(names) == len(self.log_tabs.children):
            return
        with self.log_tabs.hold_sync():
            self.log_tabs.children = [self.task_logs[name].box for name in names]
            self.log_tabs.titles = tuple(names)
            if names and self.log_tabs.selected_index is None:
                self.log_tabs.selected_index = 0

    def _render_header(self) -> None:
        execution = self.info["executionInfo"]
        exit_code = execution["exitCode"]
        parts = [f"<b>{escape(self.job.experiment)}/{escape(self.job.name)}</b>", badge(self.state),
                 f"cluster {escape(self.info['cluster'])}",
                 f"elapsed {elapsed(execution['startTime'], execution['endTime'])}"]
        if exit_code is not None:
            parts.append(f"exit code {exit_code}")
        if self.info.get("queuePosition"):
            parts.append(f"queue position {self.info['queuePosition']}")
        reason = self.info.get("waitingReason") or "; ".join(e.get("message", "") for e in execution["errors"] or [])
        html = " &nbsp; ".join(parts)
        if reason:
            html += f"<br><small>{escape(reason)}</small>"
        self.header.value = html

    def _render_tasks(self, tasks: list[dict]) -> None:
        # Node preparation tasks are listed while they run or when they failed, not once done well.
        tasks = sorted((t for t in tasks if t["role"] != "prep" or t["exitCode"] != 0), key=_task_key)
        rows = [[t["node"], f"{t['role']} {t['index']}", t["ip"], Raw(badge(_task_colour(t), t["state"])),
                 t["exitCode"]] for t in tasks]
        self.task_table.value = html_table(["node", "rank / role", "host", "state", "exit code"], rows) if rows else ""

    def _update_metrics(self) -> bool:
        text = self._partial_metric + self._metrics_tail.read()
        lines = text.split("\n")
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
            self.metrics_view.value = line_plot(self.metrics)
        return added

    def _render_files(self) -> None:
        ids = [d["id"] for d in self.info["properties"].get("outputDirectories", [])
               if d["id"] != "BATCHAI_RESULT"]
        rows = []
        for output_id in ids:
            for entry in self.job.files(output_id):
                if entry["fileType"] != "file":
                    continue
                link = urljoin(self.job.client.url, entry["downloadUrl"])
                rows.append([output_id, Raw(f'<a href="{escape(link)}" download="{escape(entry["name"])}" '
                                            f'target="_blank">{escape(entry["path"])}</a>'),
                             human_size(entry["contentLength"] or 0)])
        self.files_view.value = html_table(["output", "file", "size"], rows) if rows else ""

    def _show_error(self, failure: Exception) -> None:
        self.error_view.value = f'<span style="color:#e53935">{escape(str(failure))}</span>'

    # -- life cycle --------------------------------------------------------------------------------

    def log_text(self, task: str | None = None) -> str:
        """The stdout shown for a task (default: the first one)."""
        if task is None:
            task = next((name for name in self.task_logs if not name.startswith("job_prep")), None)
        logs = self.task_logs.get(task) if task else None
        return logs.stdout.value if logs else ""

    def close(self) -> None:
        self.poller.stop()
        self.job.client.session.close()
        super().close()
