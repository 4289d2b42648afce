"""The Python API of sweeps and the run history: `ws.sweeps.create(...)`, `ws.experiments.runs(...)`."""

from __future__ import annotations

from ..errors import BatchAIError


class SweepOperations:
    def __init__(self, workspace):
        self.ws = workspace

    def create(
        self, experiment_name: str, parameters: dict, sweep_name: str | None = None, replace: bool = False
    ) -> dict:
        """Starts a sweep (the spec of `batchai sweep create -f`); with `replace`, a sweep of that name is
        deleted first with its trials' jobs (a notebook run again)."""
        name = sweep_name or parameters.get("name")
        if replace and name:
            self._delete_with_trials(experiment_name, name)
        return self.ws.client.create_sweep(self.ws.name, experiment_name, parameters, sweep_name)

    def _delete_with_trials(self, experiment_name: str, sweep_name: str) -> None:
        try:
            trials = self.trials(experiment_name, sweep_name)
            self.delete(experiment_name, sweep_name)
        except BatchAIError as failure:
            if failure.status != 404:
                raise
            return
        for trial in trials:
            try:
                self.ws.jobs.delete(experiment_name, trial["job"])  # answers once the job is gone
            except BatchAIError as failure:
                if failure.status != 404:
                    raise

    def get(self, experiment_name: str, sweep_name: str) -> dict:
        return self.ws.client.sweep(self.ws.name, experiment_name, sweep_name)

    def list(self, experiment_name: str) -> list[dict]:
        return self.ws.client.sweeps(self.ws.name, experiment_name)

    def trials(self, experiment_name: str, sweep_name: str) -> list[dict]:
        return self.ws.client.sweep_trials(self.ws.name, experiment_name, sweep_name)

    def best(self, experiment_name: str, sweep_name: str) -> dict | None:
        """The best completed trial so far: {"number", "job", "value", "params"} (None before the first)."""
        return self.get(experiment_name, sweep_name)["bestTrial"]

    def wait(self, experiment_name: str, sweep_name: str, timeout: float | None = None) -> dict:
        return self.ws.client.wait_for_sweep(self.ws.name, experiment_name, sweep_name, timeout)

    def cancel(self, experiment_name: str, sweep_name: str) -> dict:
        return self.ws.client.cancel_sweep(self.ws.name, experiment_name, sweep_name)

    def delete(self, experiment_name: str, sweep_name: str) -> None:
        self.ws.client.delete_sweep(self.ws.name, experiment_name, sweep_name)

    def monitor(self, experiment_name: str, sweep_name: str, **options):
        from .widgets.sweep_monitor import SweepMonitor

        return SweepMonitor(self.ws, experiment_name, sweep_name, **options)
