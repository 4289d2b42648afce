"""The client's routes of an experiment's run history and sweeps (Client inherits them)."""

from __future__ import annotations

from collections.abc import Callable

from .polling import poll_until_ended
from .transport import Transport, q

SWEEP_ENDED = ("completed", "cancelled", "failed")


class ExperimentRoutes(Transport):
    def _experiment(self, workspace: str, experiment: str) -> str:
        return f"workspaces/{q(workspace)}/experiments/{q(experiment)}"

    def sweep_path(self, workspace: str, experiment: str, name: str) -> str:
        return f"{self._experiment(workspace, experiment)}/sweeps/{q(name)}"

    # -- run history ---------------------------------------------------------------------------------

    def runs(self, workspace: str, experiment: str, sort_by: str | None = None, descending: bool = False) -> list[dict]:
        """The experiment's jobs as runs: params, metric summaries (final/min/max), duration, node-hours.
        `sort_by`: a metric (its final value), `METRIC.min|max|final`, or name/created/duration/nodeHours."""
        return self.list(
            f"{self._experiment(workspace, experiment)}/runs",
            sortBy=sort_by,
            descending="true" if descending else None,
        )

    def run_metrics(self, workspace: str, experiment: str, job: str, names: list[str] | None = None) -> dict:
        """{"name", "state", "metrics": {metric: [[step, value], ...]}} of one run (rank 0's points)."""
        return self.get(f"{self._experiment(workspace, experiment)}/runs/{q(job)}/metrics", name=names or None)

    # -- sweeps --------------------------------------------------------------------------------------

    def sweeps(self, workspace: str, experiment: str) -> list[dict]:
        return self.list(f"{self._experiment(workspace, experiment)}/sweeps")

    def sweep(self, workspace: str, experiment: str, name: str) -> dict:
        return self.get(self.sweep_path(workspace, experiment, name))

    def create_sweep(
        self, workspace: str, experiment: str, spec: dict, name: str | None = None, cluster: str | None = None
    ) -> dict:
        if name:
            params = {"cluster": cluster} if cluster else None
            return self.request("PUT", self.sweep_path(workspace, experiment, name), json_body=spec, params=params)
        body = dict(spec, cluster=cluster) if cluster else spec
        return self.request("POST", f"{self._experiment(workspace, experiment)}/sweeps", json_body=body)

    def cancel_sweep(self, workspace: str, experiment: str, name: str) -> dict:
        return self.request("POST", f"{self.sweep_path(workspace, experiment, name)}/cancel")

    def delete_sweep(self, workspace: str, experiment: str, name: str) -> None:
        self.request("DELETE", self.sweep_path(workspace, experiment, name))

    def sweep_trials(self, workspace: str, experiment: str, name: str) -> list[dict]:
        return self.list(f"{self.sweep_path(workspace, experiment, name)}/trials")

    def wait_for_sweep(
        self,
        workspace: str,
        experiment: str,
        name: str,
        timeout: float | None = None,
        on_change: Callable[[dict], None] | None = None,
        poll: float = 0.5,
    ) -> dict:
        """Blocks until the sweep has ended (completed, cancelled or failed); `on_change(sweep)` on each change."""
        return poll_until_ended(
            lambda: self.sweep(workspace, experiment, name),
            seen=lambda sweep: (sweep["state"], tuple(sorted(sweep["trialCounts"].items()))),
            ended=lambda sweep: sweep["state"] in SWEEP_ENDED,
            describe=lambda sweep: f"sweep '{name}' is still {sweep['state']}",
            timeout=timeout,
            on_change=on_change,
            poll=poll,
        )
