"""Jobs through a real Slurm: one Slurm job per attempt, one srun step per task plan, the same
files and variables as on the local backend."""

from __future__ import annotations

import subprocess

import pytest

from batchai_jupyter.errors import BatchAIError
from helpers.api import read_log, submit, wait_job
from helpers.slurm import make_slurm_cluster

JOB_TIMEOUT = 120.0


def test_custom_job_runs_as_one_slurm_job(slurm, slurm_client, unique):
    cluster = unique("hpc")
    view = make_slurm_cluster(slurm_client, cluster)
    assert view["backend"] == "slurm" and view["currentNodeCount"] == 2, view
    name = unique("hello")
    submit(
        slurm_client,
        name,
        cluster,
        {
            "nodeCount": 2,
            "customToolkitSettings": {
                "commandLine": "echo hello from $SLURMD_NODENAME job $SLURM_JOB_ID nodes $SLURM_JOB_NUM_NODES"
            },
        },
    )
    job = wait_job(slurm_client, name, timeout=JOB_TIMEOUT)
    assert job["executionState"] == "succeeded", job["executionInfo"]
    text = read_log(slurm_client, name, "stdout.txt")
    assert text.startswith("hello from n1 job ") and text.strip().endswith("nodes 2"), text
    slurm_job = text.split()[4]
    out = subprocess.run(
        ["squeue", "-h", "--states=all", "-j", slurm_job, "-o", "%j|%T|%D"],
        env=slurm.env(),
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert out.startswith("batchai-") and out.endswith("|COMPLETED|2"), out


def test_an_input_named_by_location_is_read_where_the_slurm_nodes_see_it(slurm_client, unique):
    cluster, name, folder = unique("hpc"), unique("located"), unique("set")
    make_slurm_cluster(slurm_client, cluster)
    slurm_client.write_datastore_chunk("default", "default", f"{folder}/a.txt", b"alpha\n")
    slurm_client.create_job(
        "default",
        "default",
        {
            "cluster": cluster,
            "nodeCount": 1,
            "inputDirectories": [{"id": "SET", "path": f"datastore://default/{folder}"}],
            "customToolkitSettings": {"commandLine": 'cat "$AZ_BATCHAI_INPUT_SET/a.txt"'},
        },
        name,
    )
    job = slurm_client.wait_for_job("default", "default", name, timeout=JOB_TIMEOUT)
    stdout = slurm_client.read_job_file("default", "default", name, "stdout.txt").decode()
    assert job["executionState"] == "succeeded", (job["executionInfo"], stdout)
    assert stdout == "alpha\n"


def test_a_job_in_an_image_is_refused_on_slurm_for_now(slurm_client, unique):
    cluster = unique("hpc-image")
    make_slurm_cluster(slurm_client, cluster)
    spec = {"cluster": cluster, "toolkit": "custom", "commandLine": "true", "image": "ubuntu"}
    with pytest.raises(BatchAIError) as refused:
        slurm_client.create_job("default", "default", spec, unique("refused"))
    assert refused.value.code == "ContainersUnsupported" and refused.value.status == 400
    assert "image" in refused.value.message and "slurm" in refused.value.message
