"""A 2-host PyTorch DDP job (gloo) in containers on SSH hosts (sshd in network namespaces): each rank in
the job's image on its host, importing the image's PyTorch, the gradients exchanged over the hosts' own
network. The hosts share the local nodes' podman store, so the session's node-local torch image is theirs."""

from __future__ import annotations

from helpers.containers import DDP_IN_IMAGE_SCRIPT, check_ranks_used_the_images_torch, ddp_in_image_job
from helpers.jobs import run_job
from helpers.ssh import create_ssh_cluster, put_in_datastore
from helpers.toolkit_jobs import check_ddp_job


def test_a_two_host_ddp_job_trains_in_its_image_with_the_images_pytorch(
    shared_service, shared_client, ssh_hosts, container_setup, torch_image, unique
):
    cluster = unique("sshddpimg")
    runtime = container_setup.runtime_for_hosts(container_setup.service_storage)
    create_ssh_cluster(shared_client, cluster, ssh_hosts, spec_extra={"containerRuntime": runtime})
    code = put_in_datastore(shared_service.home, f"inputs/{cluster}", {"ddp_env.py": DDP_IN_IMAGE_SCRIPT})
    name = unique("ddp-on-hosts")
    run_job(shared_client, name, cluster, ddp_in_image_job(torch_image, code), timeout=300)
    check_ddp_job(shared_client, name, on_hosts=True)  # trained, in sync, the model saved where the contract says
    check_ranks_used_the_images_torch(shared_client, name)
