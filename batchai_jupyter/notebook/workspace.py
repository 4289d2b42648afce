"""The Python API, shaped like azure-mgmt-batchai's client so an old notebook maps line by line.

    Batch AI                                                        here
    client = BatchAIManagementClient(creds, sub)                    ws = Workspace()            # the default one
    client.clusters.create(rg, ws, name, parameters).result()       ws.clusters.create(name, parameters)
    client.clusters.get(rg, ws, name)                               ws.clusters.get(name)
    client.experiments.create(rg, ws, exp).result()                 ws.experiments.create(exp)
    client.jobs.create(rg, ws, exp, job, parameters).result()       ws.jobs.create(exp, job, parameters)
    client.jobs.list_output_files(rg, ws, exp, job, options)        ws.jobs.list_output_files(exp, job, "stdouterr")
    (files uploaded to an Azure File share or a Blob container)      ws.datastores.upload("./data") -> a location
                                                                    for inputDirectories: datastore://default/...

`parameters` is a Batch AI JSON body (camelCase, with or without "properties") or the native spec.
Clusters and jobs come back as the service's JSON; jobs as a Job handle (jobhandle.Job).
"""

from __future__ import annotations

from ..client import Client
from ..client.specs import cluster_document
from ..errors import BatchAIError
from . import datasets
from .jobhandle import Job
from .sweep_ops import SweepOperations


class ClusterOperations:
    def __init__(self, workspace: Workspace):
        self.ws = workspace

    def create(self, cluster_name: str, parameters: dict | None = None, exist_ok: bool = False, **options) -> dict:
        """Options: nodes, backend, min_nodes, max_nodes, idle_seconds, setup, priority, vm_size,
        backend_options (a dict merged into backendOptions), native_mounts (nodes with the tool mount
        Blob containers and file shares themselves). With `exist_ok`, a cluster of that name that exists
        already is returned as it is (a notebook run again finds the one it created)."""
        document = cluster_document(parameters, default_backend="local", **options)
        try:
            return self.ws.client.create_cluster(self.ws.name, document, cluster_name)
        except BatchAIError as failure:
            if exist_ok and failure.code == "ClusterExists":
                return self.get(cluster_name)
            raise

    def get(self, cluster_name: str) -> dict:
        return self.ws.client.cluster(self.ws.name, cluster_name)

    def list(self) -> list[dict]:
        return self.ws.client.clusters(self.ws.name)

    def list_by_workspace(self) -> list[dict]:  # azure-mgmt-batchai's name
        return self.list()

    def nodes(self, cluster_name: str) -> list[dict]:
        return self.ws.client.cluster_nodes(self.ws.name, cluster_name)

    def resize(self, cluster_name: str, target: int, deallocation: str = "requeue") -> dict:
        return self.ws.client.scale_cluster(
            self.ws.name, cluster_name, {"manual": {"targetNodeCount": target, "nodeDeallocationOption": deallocation}}
        )

    def auto_scale(self, cluster_name: str, minimum: int, maximum: int, idle_seconds: float | None = None) -> dict:
        auto = {"minimumNodeCount": minimum, "maximumNodeCount": maximum}
        if idle_seconds is not None:
            auto["idleSecondsBeforeScaledown"] = idle_seconds
        return self.ws.client.scale_cluster(self.ws.name, cluster_name, {"autoScale": auto})

    def update(self, cluster_name: str, scale_settings: dict) -> dict:  # azure-mgmt-batchai's PATCH
        return self.ws.client.scale_cluster(self.ws.name, cluster_name, scale_settings)

    def delete(self, cluster_name: str) -> None:
        self.ws.client.delete_cluster(self.ws.name, cluster_name)

    def monitor(self, cluster_name: str, **options):
        from .widgets.cluster_monitor import ClusterMonitor

        return ClusterMonitor(self.ws, cluster_name, **options)


class ExperimentOperations:
    def __init__(self, workspace: Workspace):
        self.ws = workspace

    def create(self, experiment_name: str) -> dict:
        return self.ws.client.create_experiment(self.ws.name, experiment_name)

    def get(self, experiment_name: str) -> dict:
        return self.ws.client.experiment(self.ws.name, experiment_name)

    def list(self) -> list[dict]:
        return self.ws.client.experiments(self.ws.name)

    def delete(self, experiment_name: str) -> None:
        self.ws.client.delete_experiment(self.ws.name, experiment_name)

    def runs(self, experiment_name: str, sort_by: str | None = None, descending: bool = False) -> list[dict]:
        """The experiment's jobs as runs: params, metric summaries, duration, state, node-hours."""
        return self.ws.client.runs(self.ws.name, experiment_name, sort_by, descending)

    def compare(self, experiment_name: str, **options):
        """A RunCompare widget: the runs as a sortable table and the curves of the selected ones."""
        from .widgets.run_compare import RunCompare

        return RunCompare(self.ws, experiment_name, **options)

    def ensure(self, experiment_name: str) -> None:
        """Creates the experiment unless it exists (the default one always does)."""
        try:
            self.get(experiment_name)
        except BatchAIError as failure:
            if failure.status != 404:
                raise
            self.create(experiment_name)


class DatastoreOperations:
    """The workspace's datastores, and uploads that give the location a job's inputDirectories name."""

    def __init__(self, workspace: Workspace):
        self.ws = workspace

    def list(self) -> list[dict]:
        return self.ws.client.datastores(self.ws.name)

    def get(self, datastore_name: str) -> dict:
        return self.ws.client.datastore(self.ws.name, datastore_name)

    def upload(self, local_path: str, datastore_name: str = "default", prefix: str = "datasets") -> str:
        """Uploads a file or a folder under `<prefix>/<digest of its content>/` (unchanged data is not
        sent again); returns its location, `datastore://<datastore>/<prefix>/<digest>[/<file>]`."""
        files = datasets.files_of(local_path, "local_path")
        report = datasets.upload(self.ws.client, self.ws.name, prefix, files, datastore=datastore_name)
        return datasets.location_of(report, local_path, files)


class JobOperations:
    def __init__(self, workspace: Workspace):
        self.ws = workspace

    def handle(self, experiment_name: str, job_name: str, info: dict | None = None) -> Job:
        return Job(self.ws.client, self.ws.name, experiment_name, job_name, info)

    def create(
        self, experiment_name: str, job_name: str, parameters: dict, cluster: str | None = None, replace: bool = False
    ) -> Job:
        """Submits a job (job.json or native spec); `cluster` names the cluster when the spec does not. With
        `replace`, a job of that name is deleted first (terminated if it runs): a notebook run again."""
        if replace:
            try:
                self.delete(experiment_name, job_name)  # answers once the job is gone
            except BatchAIError as failure:
                if failure.status != 404:
                    raise
        info = self.ws.client.create_job(self.ws.name, experiment_name, parameters, job_name, cluster)
        return self.handle(experiment_name, job_name, info)

    def get(self, experiment_name: str, job_name: str) -> Job:
        job = self.handle(experiment_name, job_name)
        job.refresh()
        return job

    def list(
        self, experiment_name: str | None = None, state: str | None = None, cluster: str | None = None
    ) -> list[dict]:
        jobs = self.ws.client.jobs(self.ws.name, experiment_name, state)
        return [j for j in jobs if cluster is None or j["cluster"] == cluster]

    def list_by_experiment(self, experiment_name: str) -> list[dict]:  # azure-mgmt-batchai's name
        return self.list(experiment_name)

    def terminate(self, experiment_name: str, job_name: str) -> dict:
        return self.handle(experiment_name, job_name).terminate()

    def delete(self, experiment_name: str, job_name: str) -> None:
        self.ws.client.delete_job(self.ws.name, experiment_name, job_name)

    def list_output_files(
        self, experiment_name: str, job_name: str, outputdirectoryid: str = "stdouterr", directory: str = "."
    ) -> list[dict]:
        return self.handle(experiment_name, job_name).files(outputdirectoryid, directory)


class Workspace:
    """One workspace of the batchai service (found as the client finds it: BATCHAI_URL, Jupyter, or started)."""

    def __init__(self, name: str = "default", client: Client | None = None):
        self.client = client or Client.discover()
        self.name = name
        self.clusters = ClusterOperations(self)
        self.experiments = ExperimentOperations(self)
        self.datastores = DatastoreOperations(self)
        self.jobs = JobOperations(self)
        self.sweeps = SweepOperations(self)

    def __repr__(self) -> str:
        return f"<Workspace {self.name} at {self.client.url}>"
