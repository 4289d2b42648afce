"""A 2-node PyTorch DDP job (gloo) in containers: each rank in the job's image on its node, importing the
image's PyTorch (not the machine's), the ranks' gradients exchanged over the host network."""

from __future__ import annotations

from helpers.api import make_cluster
from helpers.containers import DDP_IN_IMAGE_SCRIPT, check_ranks_used_the_images_torch, ddp_in_image_job
from helpers.jobs import run_job, write_script
from helpers.toolkit_jobs import check_ddp_job


def test_a_two_node_ddp_job_trains_in_its_image_with_the_images_pytorch(
    shared_client, container_setup, torch_image, tmp_path, unique
):
    write_script(tmp_path, "ddp_env.py", DDP_IN_IMAGE_SCRIPT)
    cluster = unique("ddp-images")
    make_cluster(shared_client, cluster, nodes=2, containerRuntime=container_setup.runtime())
    name = unique("ddp-in-image")
    run_job(shared_client, name, cluster, ddp_in_image_job(torch_image, str(tmp_path)), timeout=300)
    check_ddp_job(shared_client, name)  # trained, in sync, the model saved where the contract says
    check_ranks_used_the_images_torch(shared_client, name)
