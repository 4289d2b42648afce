"""A 2-rank MPI job in containers on SSH hosts (sshd in network namespaces): mpirun in the master host's
container, its remote shell asking the relay the master's task runs under on that host, which starts the
daemon in the other host's container through ssh with the cluster's key, as mpirun outside containers does
(runtime/mpi_agent.py); each host pulls the image from the private registry through its bridge."""

from __future__ import annotations

from helpers.api import wait_job
from helpers.containers import MPI_RANK, HeldProxy, check_mpi_ranks_ran_in_the_image
from helpers.jobs import logs_of, records
from helpers.ssh import create_ssh_cluster, put_in_datastore


def test_a_two_rank_mpi_job_runs_each_rank_in_the_image_on_its_host(
    shared_service, shared_client, ssh_hosts, container_setup, mpi_image, unique
):
    cluster = unique("sshmpiimg")
    runtime = container_setup.runtime_for_hosts(container_setup.service_storage)
    create_ssh_cluster(shared_client, cluster, ssh_hosts, spec_extra={"containerRuntime": runtime})
    code = put_in_datastore(shared_service.home, f"inputs/{cluster}", {"rank.py": MPI_RANK})
    proxy = HeldProxy(container_setup.registry.port, everywhere=True)  # the registry, seen from the hosts
    proxy.release()
    name = unique("mpi-on-hosts")
    document = {
        "cluster": cluster,
        "nodeCount": 2,
        "inputDirectories": [{"id": "CODE", "path": code}],
        "secrets": [{"name": "MPI_SECRET", "value": "mpi-secret"}],
        "containerSettings": {
            "imageSourceRegistry": {
                "serverUrl": f"{ssh_hosts.subnet}.1:{proxy.port}",
                "image": mpi_image,
                "credentials": container_setup.credentials(),
            }
        },
        "customMpiSettings": {"commandLine": "python3 $AZ_BATCHAI_INPUT_CODE/rank.py", "processCount": 2},
    }
    try:
        shared_client.create_job("default", "default", document, name)
        job = wait_job(shared_client, name, timeout=240)
    finally:
        proxy.close()
    assert job["executionState"] == "succeeded", f"{job['executionInfo']}\n{logs_of(shared_client, name)}"
    check_mpi_ranks_ran_in_the_image(shared_client, name, same_paths=False)
    networks = {record["net_namespace"] for record in records(logs_of(shared_client, name))}
    assert len(networks) == 2  # each rank in its own host's network (the containers' is the host's)
    assert container_setup.registry.password not in logs_of(shared_client, name) + shared_service.log()
