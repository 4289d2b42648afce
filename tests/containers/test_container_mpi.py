"""A 2-rank MPI job in containers (Batch AI's customMpiSettings with a private image): mpirun runs in the
master node's container, and its remote shell starts the other rank in the other node's container, through
the relay the master's task runs under (runtime/mpi_agent.py); the ranks talk over the host network."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys

from helpers.api import make_cluster, wait_job
from helpers.containers import MPI_RANK, check_mpi_ranks_ran_in_the_image, mpi_in_image_job
from helpers.jobs import logs_of


def test_a_two_rank_mpi_job_runs_each_rank_in_the_image_on_its_node(
    shared_client, shared_service, container_setup, mpi_image, tmp_path, unique
):
    (tmp_path / "rank.py").write_text(MPI_RANK)
    cluster = unique("mpi-images")
    make_cluster(shared_client, cluster, nodes=2, containerRuntime=container_setup.runtime())
    name = unique("mpi-in-image")
    document = {
        "properties": {
            "cluster": cluster,
            "stdOutErrPathPrefix": "$AZ_BATCHAI_JOB_TEMP",
            **mpi_in_image_job(container_setup, mpi_image, str(tmp_path)),
        }
    }
    shared_client.create_job("default", "default", document, name)
    job = wait_job(shared_client, name, timeout=240)
    assert job["executionState"] == "succeeded", f"{job['executionInfo']}\n{logs_of(shared_client, name)}"

    check_mpi_ranks_ran_in_the_image(shared_client, name)
    assert container_setup.registry.password not in logs_of(shared_client, name) + shared_service.log()


def test_the_relay_runs_the_remote_shells_words_as_the_node_with_its_stdio_and_exit_code(tmp_path, unique):
    """The relay alone, with a shell standing in for the node's container: what the remote shell asks for
    runs as the node (its variables), writes to the remote shell's own stdout, and its exit code is the
    remote shell's."""
    from batchai_jupyter.runtime import mpi_agent

    nodes = {"10.9.0.2": {"cwd": str(tmp_path), "env": {"NODE_VAR": "node two"}, "container": ["/bin/sh", "-c"]}}
    (tmp_path / mpi_agent.NODES_FILE).write_text(json.dumps(nodes))
    agent = [sys.executable, "-S", mpi_agent.__file__]
    relay = unique("relay")
    remote_shell = shlex.join([*agent, "--rsh", "10.9.0.2", 'echo "as $NODE_VAR"; exit 7'])
    env = dict(os.environ, AZ_BATCHAI_SHARED_JOB_TEMP=str(tmp_path), BATCHAI_MPI_RELAY=relay)
    done = subprocess.run(
        [*agent, "--relay", relay, "/bin/sh", "-c", f'{remote_shell}; echo "remote shell exited $?"'],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "as node two\nremote shell exited 7\n", done.stdout + done.stderr
