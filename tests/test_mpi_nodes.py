"""MPI across local nodes as across hosts: `mpirun -hosts $AZ_BATCH_HOST_LIST` (Intel MPI's words, as the
Horovod benchmark recipes wrote it) and `--hostfile $AZ_BATCHAI_MPI_HOST_FILE` start each rank as its own
node (its address, its directories), and the ranks talk to each other (an mpi4py allreduce)."""

from __future__ import annotations

import sys

from helpers.api import make_cluster, read_log, wait_job

RANK = """
import os, sys
from mpi4py import MPI
world = MPI.COMM_WORLD
total = world.allreduce(world.rank + 1)
with open(os.path.join(sys.argv[1], f"{world.rank}.txt"), "w") as handle:
    handle.write(f"{os.environ['AZ_BATCHAI_NODE_IP']} {os.environ['AZ_BATCHAI_JOB_TEMP']} {total}")
"""


def ranks(folder) -> dict[int, tuple[str, str, int]]:
    """What each rank wrote (a file each: mpirun's forwarding of their output is not what is tested)."""
    seen = {}
    for path in folder.iterdir():
        address, temp, total = path.read_text().split()
        seen[int(path.stem)] = (address, temp, int(total))
    return seen


def test_mpirun_over_the_host_list_and_the_hostfile_puts_each_rank_on_its_node(shared_client, unique, tmp_path):
    script = tmp_path / "rank.py"
    script.write_text(RANK)
    for launcher in ("hosts", "hostfile"):
        (tmp_path / launcher).mkdir()
    cluster = unique("mpi")
    make_cluster(shared_client, cluster, nodes=2)
    job = unique("ranks")
    program = f"{sys.executable} {script}"
    shared_client.create_job(
        "default",
        "default",
        {
            "properties": {
                "nodeCount": 2,
                "stdOutErrPathPrefix": "$AZ_BATCHAI_JOB_TEMP",
                "customToolkitSettings": {
                    "commandLine": f"mpirun --allow-run-as-root -n 2 -ppn 1 -hosts $AZ_BATCH_HOST_LIST {program} "
                    f"{tmp_path / 'hosts'} && "
                    f"mpirun --allow-run-as-root -np 2 --hostfile $AZ_BATCHAI_MPI_HOST_FILE {program} "
                    f"{tmp_path / 'hostfile'}"
                },
            }
        },
        job,
        cluster=cluster,
    )
    done = wait_job(shared_client, job)
    out, errors = read_log(shared_client, job, "stdout.txt"), read_log(shared_client, job, "stderr.txt")
    assert done["executionState"] == "succeeded", (done["executionInfo"], out, errors)
    nodes = {n["ipAddress"]: n["nodeId"] for n in shared_client.job_nodes("default", "default", job)}
    assert len(nodes) == 2
    for launcher in ("hosts", "hostfile"):
        seen = ranks(tmp_path / launcher)
        assert sorted(seen) == [0, 1], (out, errors)
        # One rank per node, each with its node's own address and its own job temp in that node's sandbox.
        assert {address for address, _temp, _total in seen.values()} == set(nodes), seen
        for address, temp, total in seen.values():
            assert f"/{nodes[address]}/jobs/" in temp, seen
            assert total == 3, seen
