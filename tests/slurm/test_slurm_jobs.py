"""Jobs through a real Slurm: one Slurm job per attempt, one srun step per task plan, the same
files and variables as on the local backend."""

from __future__ import annotations

import os
import subprocess

from helpers.api import read_log, submit, wait_job
from helpers.containers import (
    DDP_IN_IMAGE_SCRIPT,
    EXCHANGE,
    IMAGE_MARKER_TEXT,
    MPI_RANK,
    HeldProxy,
    check_mpi_ranks_ran_in_the_image,
    check_ranks_used_the_images_torch,
    ddp_in_image_job,
    mpi_in_image_job,
    see_the_pull_held,
)
from helpers.jobs import logs_of, records, run_job, write_script
from helpers.slurm import make_slurm_cluster
from helpers.toolkit_jobs import check_ddp_job

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


def test_a_two_node_job_runs_in_its_image_through_srun(slurm_service, slurm_client, container_setup, tmp_path, unique):
    cluster = unique("hpc-image")
    make_slurm_cluster(slurm_client, cluster, spec_extra={"containerRuntime": container_setup.runtime()})
    (tmp_path / "exchange.py").write_text(EXCHANGE)
    name = unique("ranks")
    proxy = HeldProxy(container_setup.registry.port)  # holds the pull until the log has shown it
    document = {
        "nodeCount": 2,
        "inputDirectories": [{"id": "CODE", "path": str(tmp_path)}],
        "pyTorchSettings": {"pythonScriptFilePath": "$AZ_BATCHAI_INPUT_CODE/exchange.py"},
        "containerSettings": {
            "imageSourceRegistry": {
                "serverUrl": proxy.address,
                "image": container_setup.images["slurm"],
                "credentials": container_setup.credentials(),
            }
        },
    }
    try:
        submit(slurm_client, name, cluster, document)
        see_the_pull_held(slurm_client, name, proxy, proxy.address)  # the pull streams into the node's log
        job = wait_job(slurm_client, name, timeout=JOB_TIMEOUT)
    finally:
        proxy.close()
    logs = logs_of(slurm_client, name)
    assert job["executionState"] == "succeeded", f"{job['executionInfo']}\n{logs}"
    ranks = {record["rank"]: record for record in records(logs)}
    assert ranks[0]["heard"] == "hello from rank 1" and ranks[1]["heard"] == "hello from rank 0"
    assert {record["marker"] for record in ranks.values()} == {IMAGE_MARKER_TEXT}
    assert f"pulling image {proxy.address}/{container_setup.images['slurm']}" in logs and "Writing manifest" in logs
    assert container_setup.registry.password not in logs
    # The job's files on the shared file system (job.json, logs, ...) never hold it; only the store does.
    holding = [
        os.path.join(directory, file)
        for directory, _, files in os.walk(slurm_service.home)
        for file in files
        if not file.startswith("batchai.db") and container_setup.registry.password.encode() in _read(directory, file)
    ]
    assert holding == []


def test_a_two_node_ddp_job_trains_in_its_image_through_srun(
    slurm_client, container_setup, torch_image, tmp_path, unique
):
    """PyTorch DDP (gloo) with each rank in the session's torch image (node-local, in the nodes' store)
    inside its srun step, importing the image's PyTorch."""
    cluster = unique("hpc-torch")
    make_slurm_cluster(slurm_client, cluster, spec_extra={"containerRuntime": container_setup.runtime()})
    write_script(tmp_path, "ddp_env.py", DDP_IN_IMAGE_SCRIPT)
    name = unique("ddp-in-image")
    run_job(slurm_client, name, cluster, ddp_in_image_job(torch_image, str(tmp_path)), timeout=300)
    check_ddp_job(slurm_client, name)  # trained, in sync, the model saved where the contract says
    check_ranks_used_the_images_torch(slurm_client, name)


def test_a_two_rank_mpi_job_runs_each_rank_in_the_image_on_its_node(
    slurm_service, slurm_client, container_setup, mpi_image, tmp_path, unique
):
    """mpirun in the master node's container; its remote shell asks the relay the master's step runs
    under, which starts the daemon in the other node's container as an srun step (runtime/mpi_agent.py)."""
    cluster = unique("hpc-mpi")
    make_slurm_cluster(slurm_client, cluster, spec_extra={"containerRuntime": container_setup.runtime()})
    (tmp_path / "rank.py").write_text(MPI_RANK)
    name = unique("mpi-in-image")
    document = mpi_in_image_job(container_setup, mpi_image, str(tmp_path))
    submit(slurm_client, name, cluster, document)
    job = wait_job(slurm_client, name, timeout=240)
    logs = logs_of(slurm_client, name)
    assert job["executionState"] == "succeeded", f"{job['executionInfo']}\n{logs}"
    check_mpi_ranks_ran_in_the_image(slurm_client, name)
    assert container_setup.registry.password not in logs + slurm_service.log()


def _read(directory: str, file: str) -> bytes:
    try:
        with open(os.path.join(directory, file), "rb") as handle:
            return handle.read()
    except OSError:
        return b""


def test_a_failed_pull_on_slurm_fails_the_job_with_the_registrys_reason(slurm_client, container_setup, unique):
    cluster = unique("hpc-image")
    make_slurm_cluster(slurm_client, cluster, spec_extra={"containerRuntime": container_setup.runtime()})
    name = unique("unknown")
    image = f"{container_setup.registry.address}/batchai-test/none:1"
    submit(slurm_client, name, cluster, {"toolkit": "custom", "commandLine": "true", "image": image})
    job = wait_job(slurm_client, name, timeout=JOB_TIMEOUT)
    assert job["executionState"] == "failed"
    error = job["executionInfo"]["errors"][-1]
    assert error["code"] == "ImagePullFailed" and "batchai-test/none:1" in error["message"], error
