"""SweepMonitor: a sweep's trials by state with a progress bar, the best trial so far, the trials' table and
the live curves of their primary metric (pruned trials greyed). One Poller thread with its own connection
reads the sweep, its trials and the curves of the trials that ran since the last round; it ends once the
sweep has ended and every curve is read, or when the widget closes."""

from __future__ import annotations

from html import escape

import ipywidgets as widgets

from ...client import Client
from ...client.experiments import SWEEP_ENDED
from .poller import Poller, own_client
from .render import badge, line_plot
from .snapshot import snapshot_box

TRIAL_STATES = ("running", "completed", "pruned", "failed", "cancelled")
TRIAL_BADGES = {"completed": "succeeded", "pruned": "leaving", "cancelled": "terminating"}
GREY = "#9e9e9e"
JOB_RUNNING = ("queued", "running", "terminating")


def _value(value) -> str:
    return "" if value is None else f"{value:.4g}" if isinstance(value, float) else escape(str(value))


class SweepMonitor(widgets.VBox):
    def __init__(
        self, workspace, experiment: str, name: str, start: bool = True, poll_min: float = 0.3, poll_max: float = 2.0
    ):
        self.client: Client = own_client(workspace.client)
        self.workspace_name = workspace.name
        self.experiment = experiment
        self.name = name
        self.sweep: dict = {}
        self.trials: list[dict] = []
        self.curves: dict[str, list[tuple[float, float]]] = {}  # trial job -> (step, value) of the primary metric
        self._final_curves: set[str] = set()  # read after the trial's job ended: complete
        self.header = widgets.HTML()
        self.progress = widgets.IntProgress(min=0, max=1, value=0, description="trials")
        self.progress_text = widgets.Label()
        self.counts_view = widgets.HTML()
        self.best_view = widgets.HTML()
        self.trials_view = widgets.HTML()
        self.plot = widgets.HTML()
        self.error_view = widgets.HTML()
        super().__init__(
            [
                self.header,
                widgets.HBox([self.progress, self.progress_text]),
                self.counts_view,
                self.best_view,
                self.plot,
                self.trials_view,
                self.error_view,
            ]
        )
        self.poller = Poller(self.step, self._show_error, poll_min, poll_max, name=f"batchai-sweep-{name}")
        if start:
            self.step()
            self.poller.start()

    @property
    def state(self) -> str:
        return self.sweep.get("state", "?")

    def step(self) -> tuple[bool, bool]:
        sweep = self.client.sweep(self.workspace_name, self.experiment, self.name)
        trials = self.client.sweep_trials(self.workspace_name, self.experiment, self.name)
        changed = (sweep["state"], sweep["trialCounts"], trials) != (
            self.state,
            self.sweep.get("trialCounts"),
            self.trials,
        )
        self.sweep, self.trials = sweep, trials
        metric = sweep["primaryMetric"]["name"]
        for trial in trials:
            job = trial["job"]
            if job in self._final_curves or trial["jobState"] is None:
                continue
            ended = trial["jobState"] not in JOB_RUNNING
            points = self.client.run_metrics(self.workspace_name, self.experiment, job, [metric])["metrics"][metric]
            curve = [(step, value) for step, value in points]
            changed = changed or curve != self.curves.get(job)
            self.curves[job] = curve
            if ended:
                self._final_curves.add(job)
        if changed:
            self._render()
        self.error_view.value = ""
        finished = sweep["state"] in SWEEP_ENDED and all(t["job"] in self._final_curves for t in trials)
        if finished:
            self.client.close()
        return changed, finished

    def _render(self) -> None:
        sweep = self.sweep
        counts = sweep["trialCounts"]
        ended = sum(counts[state] for state in TRIAL_STATES if state != "running")
        metric = sweep["primaryMetric"]
        self.header.value = (
            f"<b>sweep {escape(self.experiment)}/{escape(self.name)}</b> &nbsp; "
            f"{badge(TRIAL_BADGES.get(sweep['state'], sweep['state']), sweep['state'])} &nbsp; "
            f"{escape(sweep['sampler'])} sampler, {escape(metric['goal'])} {escape(metric['name'])}, "
            f"early termination: {escape(sweep['earlyTermination']['policy'])}, "
            f"at most {sweep['maxConcurrentTrials']} at once"
        )
        self.progress.max = sweep["maxTrials"]
        self.progress.value = ended
        self.progress_text.value = f"{ended} of {sweep['maxTrials']} ended, {counts['running']} running"
        self.counts_view.value = " ".join(
            badge(TRIAL_BADGES.get(state, state), f"{state} {counts[state]}") for state in TRIAL_STATES
        )
        best = sweep["bestTrial"]
        self.best_view.value = (
            f"best so far: <b>{escape(best['job'])}</b> {escape(metric['name'])} {best['value']:.4g} "
            + ", ".join(f"{escape(k)}={_value(v)}" for k, v in best["params"].items())
            if best
            else "best so far: none yet"
        )
        greyed = {t["job"]: GREY for t in self.trials if t["state"] in ("pruned", "cancelled", "failed")}
        series = {job: points for job, points in self.curves.items() if points}
        self.plot.value = line_plot(series, width=640, height=220, colours=greyed)
        self.trials_view.value = self._trials_table()

    def _trials_table(self) -> str:
        params = sorted({p for t in self.trials for p in t["params"]})
        head = "".join(
            f'<th style="text-align:left;padding:2px 8px">{escape(h)}</th>'
            for h in ["trial", "job", "state", "value", "pruned at step", *params]
        )
        rows = []
        for t in self.trials:
            style = "opacity:0.45" if t["state"] in ("pruned", "cancelled", "failed") else ""
            cells = [
                str(t["number"]),
                escape(t["job"]),
                badge(TRIAL_BADGES.get(t["state"], t["state"]), t["state"]),
                _value(t["value"]),
                _value(t["prunedStep"]),
            ] + [_value(t["params"].get(p)) for p in params]
            body = "".join(f'<td style="padding:2px 8px">{cell}</td>' for cell in cells)
            rows.append(
                f'<tr class="batchai-trial" data-state="{escape(t["state"], quote=True)}" style="{style}">{body}</tr>'
            )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"

    def _show_error(self, failure: Exception) -> None:
        self.error_view.value = f'<span style="color:#e53935">{escape(str(failure))}</span>'

    def wait(self, timeout: float | None = None) -> dict:
        """Blocks until the monitor has read the sweep's end (or `timeout`); returns the sweep."""
        thread = self.poller.thread
        if thread is not None:
            thread.join(timeout)
        return self.sweep

    def _repr_mimebundle_(self, **kwargs):
        bundle = super()._repr_mimebundle_(**kwargs) or {}
        sections = [self.header.value, self.progress_text.value, self.counts_view.value, self.best_view.value]
        bundle["text/html"] = snapshot_box(self.state, [*sections, self.plot.value, self.trials_view.value])
        bundle["text/plain"] = f"sweep {self.experiment}/{self.name}: {self.state}"
        return bundle

    def close(self) -> None:
        self.poller.stop()
        self.client.close()
        super().close()
