"""The typed client of the batchai REST API: one method per route, every path segment URL-quoted.

Kernels, the CLI, the widgets and the demo use only this package, never the server code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urljoin

from .discovery import Announce, find_service
from .events import EventStream
from .experiments import ExperimentRoutes
from .polling import poll_until_ended
from .transport import API, Transport, q

ENDED = ("succeeded", "failed")
__all__ = ["API", "ENDED", "Client"]


class Client(ExperimentRoutes, Transport):
    @classmethod
    def discover(cls, start: bool = True, announce: Announce = print) -> Client:
        """The service from BATCHAI_URL/BATCHAI_TOKEN, a running Jupyter server, or one started here."""
        return cls(*find_service(start, announce))

    def clone(self) -> Client:
        """A client of the same service with its own connection pool (for another thread)."""
        return type(self)(self.url, self.token, self.timeout)

    # -- paths ---------------------------------------------------------------------------------

    @staticmethod
    def workspace_path(workspace: str) -> str:
        return f"workspaces/{q(workspace)}"

    def experiment_path(self, workspace: str, experiment: str) -> str:
        return f"{self.workspace_path(workspace)}/experiments/{q(experiment)}"

    def datastore_path(self, workspace: str, name: str) -> str:
        return f"{self.workspace_path(workspace)}/datastores/{q(name)}"

    def cluster_path(self, workspace: str, name: str) -> str:
        return f"{self.workspace_path(workspace)}/clusters/{q(name)}"

    def job_path(self, workspace: str, experiment: str, name: str) -> str:
        return f"{self.experiment_path(workspace, experiment)}/jobs/{q(name)}"

    # -- service ---------------------------------------------------------------------------------

    def version(self) -> dict:
        return self.get("version")

    def usages(self) -> list[dict]:
        """Clusters and their nodes' CPUs, as az batchai list-usages showed them."""
        return self.list("usages")

    def events(self, **filters: str) -> EventStream:
        """The event stream (filters: type, workspace, experiment, name); iterate it, close it when done."""
        return EventStream(self, **filters)

    # -- workspaces and experiments --------------------------------------------------------------

    def workspaces(self) -> list[dict]:
        return self.list("workspaces")

    def workspace(self, name: str) -> dict:
        return self.get(self.workspace_path(name))

    def create_workspace(self, name: str, resource_group: str | None = None, location: str | None = None) -> dict:
        """A workspace; `resource_group` and `location` are those of its ARM id (az's -g and -l)."""
        where = {"resourceGroup": resource_group, "location": location}
        body = {key: value for key, value in where.items() if value}
        return self.request("PUT", self.workspace_path(name), json_body=body or None)

    def delete_workspace(self, name: str) -> None:
        self.request("DELETE", self.workspace_path(name))

    def experiments(self, workspace: str) -> list[dict]:
        return self.list(f"{self.workspace_path(workspace)}/experiments")

    def experiment(self, workspace: str, name: str) -> dict:
        return self.get(self.experiment_path(workspace, name))

    def create_experiment(self, workspace: str, name: str, mlflow_tracking_uri: str | None = None) -> dict:
        """A new experiment; with `mlflow_tracking_uri` its jobs are recorded in that MLflow."""
        body = {"mlflowTrackingUri": mlflow_tracking_uri} if mlflow_tracking_uri else None
        return self.request("PUT", self.experiment_path(workspace, name), json_body=body)

    def update_experiment(self, workspace: str, name: str, mlflow_tracking_uri: str) -> dict:
        """Sets the experiment's own MLflow tracking URI ("": the service's again)."""
        return self.request(
            "PATCH", self.experiment_path(workspace, name), json_body={"mlflowTrackingUri": mlflow_tracking_uri}
        )

    def delete_experiment(self, workspace: str, name: str) -> None:
        self.request("DELETE", self.experiment_path(workspace, name))

    # -- datastores ------------------------------------------------------------------------------

    def datastores(self, workspace: str) -> list[dict]:
        return self.list(f"{self.workspace_path(workspace)}/datastores")

    def datastore(self, workspace: str, name: str) -> dict:
        return self.get(self.datastore_path(workspace, name))

    def create_datastore(self, workspace: str, name: str, document: dict) -> dict:
        return self.request("PUT", self.datastore_path(workspace, name), json_body=document)

    def delete_datastore(self, workspace: str, name: str) -> None:
        self.request("DELETE", self.datastore_path(workspace, name))

    def datastore_files(self, workspace: str, name: str, path: str = ".") -> list[dict]:
        return self.list(f"{self.datastore_path(workspace, name)}/files", path=path)

    def missing_datastore_files(self, workspace: str, name: str, files: list[dict]) -> list[str]:
        """Of `files` ([{"path", "size", "sha256"?}]), the paths the datastore does not hold yet."""
        return self.request("POST", f"{self.datastore_path(workspace, name)}/missing", json_body={"files": files})[
            "missing"
        ]

    def write_datastore_chunk(
        self,
        workspace: str,
        name: str,
        path: str,
        data: bytes,
        offset: int = 0,
        final: bool = True,
        sha256: str | None = None,
    ) -> dict:
        """One chunk of an upload (see client.uploads.upload_files, which sends whole files)."""
        params: dict[str, Any] = {"path": path, "offset": offset, "final": "true" if final else "false"}
        if sha256:
            params["sha256"] = sha256
        return self.request("PUT", f"{self.datastore_path(workspace, name)}/files/content", params=params, data=data)

    def read_datastore_file(
        self, workspace: str, name: str, path: str, offset: int = 0, length: int | None = None
    ) -> bytes:
        return self._read(f"{self.datastore_path(workspace, name)}/files/content", {"path": path}, offset, length)

    # -- clusters ----------------------------------------------------------------------------------

    def clusters(self, workspace: str) -> list[dict]:
        return self.list(f"{self.workspace_path(workspace)}/clusters")

    def cluster(self, workspace: str, name: str) -> dict:
        return self.get(self.cluster_path(workspace, name))

    def create_cluster(self, workspace: str, spec: dict, name: str | None = None) -> dict:
        if name:
            return self.request("PUT", self.cluster_path(workspace, name), json_body=spec)
        return self.request("POST", f"{self.workspace_path(workspace)}/clusters", json_body=spec)

    def scale_cluster(self, workspace: str, name: str, scale_settings: dict) -> dict:
        return self.request("PATCH", self.cluster_path(workspace, name), json_body={"scaleSettings": scale_settings})

    def delete_cluster(self, workspace: str, name: str) -> None:
        self.request("DELETE", self.cluster_path(workspace, name))

    def cluster_nodes(self, workspace: str, name: str) -> list[dict]:
        return self.list(f"{self.cluster_path(workspace, name)}/nodes")

    def exec_on_node(self, workspace: str, cluster: str, node: str, command: str, timeout: float = 300.0) -> dict:
        return self.request(
            "POST",
            f"{self.cluster_path(workspace, cluster)}/nodes/{q(node)}/exec",
            json_body={"command": command, "timeout": timeout},
            timeout=max(self.timeout, timeout + 30),
        )

    def exec_on_job_node(
        self, workspace: str, experiment: str, job: str, node: str, command: str, timeout: float = 300.0
    ) -> dict:
        """Runs `command` on one of the job's nodes ("" its first)."""
        nodes = f"{self.job_path(workspace, experiment, job)}/nodes"
        return self.request(
            "POST",
            f"{nodes}/{q(node)}/exec" if node else f"{nodes}/exec",
            json_body={"command": command, "timeout": timeout},
            timeout=max(self.timeout, timeout + 30),
        )

    def cluster_files(self, workspace: str, name: str, path: str = ".") -> list[dict]:
        return self.list(f"{self.cluster_path(workspace, name)}/files", path=path)

    def read_cluster_file(
        self, workspace: str, name: str, path: str, offset: int = 0, length: int | None = None
    ) -> bytes:
        return self._read(f"{self.cluster_path(workspace, name)}/files/content", {"path": path}, offset, length)

    # -- jobs ----------------------------------------------------------------------------------------

    def jobs(self, workspace: str, experiment: str | None = None, state: str | None = None) -> list[dict]:
        base = self.experiment_path(workspace, experiment) if experiment else self.workspace_path(workspace)
        return self.list(f"{base}/jobs", state=state)

    def create_job(
        self, workspace: str, experiment: str, spec: dict, name: str | None = None, cluster: str | None = None
    ) -> dict:
        if name:
            params = {"cluster": cluster} if cluster else None
            return self.request("PUT", self.job_path(workspace, experiment, name), json_body=spec, params=params)
        body = dict(spec, cluster=cluster) if cluster else spec
        return self.request("POST", f"{self.experiment_path(workspace, experiment)}/jobs", json_body=body)

    def job(self, workspace: str, experiment: str, name: str) -> dict:
        return self.get(self.job_path(workspace, experiment, name))

    def terminate_job(self, workspace: str, experiment: str, name: str) -> dict:
        return self.request("POST", f"{self.job_path(workspace, experiment, name)}/terminate")

    def delete_job(self, workspace: str, experiment: str, name: str, keep_files: bool = False) -> None:
        """Deletes the job and its files in the workspace's default datastore (kept with `keep_files`)."""
        params = {"keepFiles": "true"} if keep_files else None
        self.request("DELETE", self.job_path(workspace, experiment, name), params=params)

    def job_tasks(self, workspace: str, experiment: str, name: str) -> list[dict]:
        return self.list(f"{self.job_path(workspace, experiment, name)}/tasks")

    def job_nodes(self, workspace: str, experiment: str, name: str) -> list[dict]:
        return self.list(f"{self.job_path(workspace, experiment, name)}/nodes")

    def job_files(
        self,
        workspace: str,
        experiment: str,
        name: str,
        output_id: str = "stdouterr",
        path: str = ".",
        link_expiry_minutes: int | None = None,
    ) -> list[dict]:
        return self.list(
            f"{self.job_path(workspace, experiment, name)}/files",
            outputdirectoryid=output_id,
            path=path,
            linkexpiryinminutes=link_expiry_minutes,
        )

    def read_job_file(
        self,
        workspace: str,
        experiment: str,
        name: str,
        path: str,
        output_id: str = "stdouterr",
        offset: int = 0,
        length: int | None = None,
    ) -> bytes:
        return self._read(
            f"{self.job_path(workspace, experiment, name)}/files/content",
            {"outputdirectoryid": output_id, "path": path},
            offset,
            length,
        )

    def job_snapshot(
        self,
        workspace: str,
        experiment: str,
        name: str,
        tail_bytes: int | None = None,
        since: dict[str, int] | None = None,
    ) -> dict:
        """The job, its tasks, the tails of its logs and metrics, its output files, in one response.
        `since` ({file in stdouterr: offset}) reads those files on from where the caller got to."""
        params: dict[str, Any] = {}
        if tail_bytes is not None:
            params["tailbytes"] = tail_bytes
        if since:
            params["since"] = [f"{offset}:{path}" for path, offset in since.items()]
        return self.request("GET", f"{self.job_path(workspace, experiment, name)}/snapshot", params=params)

    def open_tensorboard(self, workspace: str, experiment: str, job: str | None = None) -> dict:
        """Starts (or reuses) TensorBoard over one job's runs, or every job of the experiment: {"id", "url",
        "runs"}; `url` is absolute, served by the service behind its token."""
        path = self.job_path(workspace, experiment, job) if job else self.experiment_path(workspace, experiment)
        opened = self.request("POST", f"{path}/tensorboard")
        return {**opened, "url": urljoin(self.url, opened["url"])}

    def wait_for_job(
        self,
        workspace: str,
        experiment: str,
        name: str,
        timeout: float | None = None,
        on_change: Callable[[dict], None] | None = None,
        poll: float = 0.2,
    ) -> dict:
        """Blocks until the job has ended; `on_change(job)` on each state it is seen in."""
        return poll_until_ended(
            lambda: self.job(workspace, experiment, name),
            seen=lambda job: job["executionState"],
            ended=lambda job: job["executionState"] in ENDED,
            describe=lambda job: f"job '{name}' is still {job['executionState']}",
            timeout=timeout,
            on_change=on_change,
            poll=poll,
        )

    # -- helpers -------------------------------------------------------------------------------------

    def _read(self, path: str, params: dict, offset: int, length: int | None) -> bytes:
        params = {**params, "offset": offset}
        if length is not None:
            params["length"] = length
        return self.request("GET", path, params=params, raw=True).content
