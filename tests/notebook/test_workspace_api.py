"""`from batchai_jupyter import Workspace`: the azure-mgmt-batchai-shaped Python API."""

from __future__ import annotations

import subprocess
import sys

import batchai_jupyter
from batchai_jupyter.notebook.jobhandle import Job
from helpers.waits import wait_for


def test_import_stays_light():
    code = "import sys, batchai_jupyter; assert 'IPython' not in sys.modules and 'ipywidgets' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
    assert batchai_jupyter.Workspace.__name__ == "Workspace"


def test_workspace_found_from_the_environment(service_env, shared_client):
    from batchai_jupyter import Workspace

    assert Workspace().client.url == shared_client.url


def test_clusters_experiments_and_jobs(ws, unique):
    cluster, experiment, name = unique("api"), unique("exp"), unique("job")
    created = ws.clusters.create(cluster, nodes=1, idle_seconds=30)
    assert created["name"] == cluster and created["targetNodeCount"] == 1
    assert cluster in [c["name"] for c in ws.clusters.list()]
    wait_for(lambda: ws.clusters.get(cluster)["nodeStateCounts"]["idleNodeCount"] == 1, "an idle node")
    ws.clusters.resize(cluster, 2)
    assert ws.clusters.get(cluster)["targetNodeCount"] == 2
    scaled = ws.clusters.auto_scale(cluster, 0, 3)
    assert scaled["properties"]["scaleSettings"]["autoScale"]["maximumNodeCount"] == 3
    ws.experiments.create(experiment)
    assert experiment in [e["name"] for e in ws.experiments.list()]
    job = ws.jobs.create(
        experiment,
        name,
        {
            "properties": {
                "nodeCount": 1,
                "stdOutErrPathPrefix": "$AZ_BATCHAI_JOB_MOUNT_ROOT/afs",
                "customToolkitSettings": {"commandLine": "echo batch ai says hi"},
            }
        },
        cluster=cluster,
    )
    assert isinstance(job, Job)
    assert job.wait(timeout=120).info["executionState"] == "succeeded"
    assert job.logs() == "batch ai says hi\n"
    assert "stdout.txt" in [f["name"] for f in ws.jobs.list_output_files(experiment, name)]
    assert [j["name"] for j in ws.jobs.list(experiment)] == [name]
    assert ws.jobs.get(experiment, name).state == "succeeded"
    ws.jobs.delete(experiment, name)
    assert ws.jobs.list(experiment) == []
    ws.clusters.delete(cluster)


def test_uploads_give_locations_that_jobs_read(ws, shared_service, unique, tmp_path):
    folder = tmp_path / "set"
    folder.mkdir()
    (folder / "a.txt").write_text("alpha\n")
    (tmp_path / "labels.txt").write_text("beta\n")
    data = ws.datastores.upload(str(folder))
    labels = ws.datastores.upload(str(tmp_path / "labels.txt"), prefix="labels")
    assert data.startswith("datastore://default/datasets/") and labels.endswith("/labels.txt")
    assert ws.datastores.upload(str(folder)) == data  # the same content, the same place
    assert "datastore://default/" in [d["location"] for d in ws.datastores.list()]
    cluster, name = unique("up"), unique("job")
    ws.clusters.create(cluster, nodes=1)
    job = ws.jobs.create(
        "default",
        name,
        {
            "nodeCount": 1,
            "inputDirectories": [{"id": "DATA", "path": data}, {"id": "LABELS", "path": labels}],
            "customToolkitSettings": {"commandLine": 'cat "$AZ_BATCHAI_INPUT_DATA/a.txt" "$AZ_BATCHAI_INPUT_LABELS"'},
        },
        cluster=cluster,
    )
    assert job.wait(timeout=120).info["executionState"] == "succeeded", job.logs(stderr=True)
    assert job.logs() == "alpha\nbeta\n"
    assert shared_service.home not in str(job.info)
