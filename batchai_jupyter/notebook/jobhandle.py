"""The Job handle a cell, `%batchai_job_show` and `Workspace.jobs` give back: state, logs, files, results."""

from __future__ import annotations

import os
import pickle
import sys
from collections.abc import Callable

from ..client import ENDED, Client
from ..client.follow import FileTail, follow_job
from ..errors import BatchAIError
from ..runtime import cellrunner

OUTPUTS_ID = "OUTPUTS"


class Job:
    def __init__(self, client: Client, workspace: str, experiment: str, name: str, info: dict | None = None):
        self.client = client
        self.workspace = workspace
        self.experiment = experiment
        self.name = name
        self._info = info
        self.displayed = None  # the JobMonitor this handle was last displayed as
        self.logs_printed = False  # wait(stream=True) printed its output: the monitor shown after folds its logs

    # -- state -------------------------------------------------------------------------------

    @property
    def path(self) -> str:
        return self.client.job_path(self.workspace, self.experiment, self.name)

    def refresh(self) -> dict:
        self._info = self.client.job(self.workspace, self.experiment, self.name)
        return self._info

    @property
    def info(self) -> dict:
        return self._info if self._info is not None else self.refresh()

    @property
    def state(self) -> str:
        return self.refresh()["executionState"]

    @property
    def exit_code(self) -> int | None:
        return self.info["executionInfo"]["exitCode"]

    def tasks(self) -> list[dict]:
        return self.client.job_tasks(self.workspace, self.experiment, self.name)

    def wait(
        self,
        timeout: float | None = None,
        stream: bool = False,
        out=None,
        on_change: Callable[[dict], None] | None = None,
    ) -> Job:
        """Blocks until the job ends; with `stream`, prints the first task's output as it comes."""
        if not stream:
            self._info = self.client.wait_for_job(
                self.workspace, self.experiment, self.name, timeout=timeout, on_change=on_change
            )
            return self
        self.logs_printed = True
        self._follow(None, out or sys.stdout, timeout)
        return self

    # -- logs ----------------------------------------------------------------------------------

    def log_task(self, task: int | str | None = None) -> dict | None:
        """The task whose log `task` names: a rank, a task name ("master", "wk-0") or None for rank 0."""
        attempt = self.refresh()["attempt"]
        tasks = [t for t in self.tasks() if t["phase"] == "main" and t["attempt"] == attempt]
        if task is None:
            return min(tasks, key=lambda t: t["index"], default=None)
        for candidate in tasks:
            if str(task) in (str(candidate["index"]), candidate["name"]):
                return candidate
        if tasks or self.info["executionState"] in ENDED:
            names = ", ".join(sorted({t["name"] for t in tasks})) or "none"
            raise BatchAIError("UnknownTask", f"--task {task}: job '{self.name}' has no such task; its tasks: {names}")
        return None  # not started yet

    def logs(self, task: int | str | None = None, follow: bool = False, stderr: bool = False, out=None) -> str | None:
        """The task's stdout (or stderr) so far; with `follow`, prints it live until the job ends."""
        if follow:
            self._follow(task, out or sys.stdout, None, stderr)
            return None
        chosen = self.log_task(task)
        if chosen is None:
            return ""
        return FileTail(
            self.client, self.workspace, self.experiment, self.name, chosen["stderr" if stderr else "stdout"]
        ).read()

    def _follow(self, task, out, timeout: float | None, stderr: bool = False) -> None:
        def chosen_file(_info: dict) -> list[str] | None:
            chosen = self.log_task(task)
            return [chosen["stderr" if stderr else "stdout"]] if chosen else None

        def write(_path: str, text: str) -> None:
            out.write(text)
            out.flush()

        self._info = follow_job(
            self.client, self.workspace, self.experiment, self.name, chosen_file, write, text=True, timeout=timeout
        )

    # -- files and results -----------------------------------------------------------------------

    def files(self, output_id: str = OUTPUTS_ID, path: str = ".") -> list[dict]:
        return self.client.job_files(self.workspace, self.experiment, self.name, output_id, path)

    def read_file(self, path: str, output_id: str = OUTPUTS_ID) -> bytes:
        return self.client.read_job_file(self.workspace, self.experiment, self.name, path, output_id)

    def download(self, path: str, to: str = ".", output_id: str = OUTPUTS_ID) -> str:
        """Saves an output file locally; `to` is a folder (the file keeps its name) or a file path."""
        data = self.read_file(path, output_id)
        target = os.path.join(to, os.path.basename(path)) if os.path.isdir(to) else to
        with open(target, "wb") as handle:
            handle.write(data)
        return target

    def terminate(self) -> dict:
        self._info = self.client.terminate_job(self.workspace, self.experiment, self.name)
        return self._info

    def result(self) -> dict:
        """The variables the job pulled (`--pull`), once it has succeeded."""
        if self.refresh()["executionState"] != "succeeded":
            raise BatchAIError(
                "NoResult",
                f"job '{self.name}' is {self.info['executionState']}; results come "
                "back when it has succeeded (job.wait() first)",
            )
        try:
            data = self.read_file(cellrunner.RESULT_NAME, cellrunner.RESULT_OUTPUT_ID)
        except BatchAIError as failure:
            if failure.code in ("FileNotFound", "InvalidOutputDirectoryId"):
                raise BatchAIError(
                    "NoResult", f"job '{self.name}' pulled no variables; submit it with --pull NAME,..."
                ) from None
            raise
        pulled = pickle.loads(data)
        for name, error in pulled["errors"].items():
            print(f"--pull {name}: {error}", file=sys.stderr)
        return pulled["values"]

    # -- display -----------------------------------------------------------------------------------

    def monitor(self, **options):
        from .widgets.job_monitor import JobMonitor

        return JobMonitor(self, **options)

    def _ipython_display_(self) -> None:
        self.displayed = self.monitor(logs_printed=self.logs_printed)
        self.displayed.show()

    def __repr__(self) -> str:
        state = self._info["executionState"] if self._info else "?"
        return f"<Job {self.experiment}/{self.name} {state}>"
