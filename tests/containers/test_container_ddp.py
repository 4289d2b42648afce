"""A 2-node PyTorch DDP job (gloo) in containers: each rank in the job's image on its node, importing the
image's PyTorch (not the machine's), the ranks' gradients exchanged over the host network."""

from __future__ import annotations

import os
import sys

from helpers.api import make_cluster, read_log
from helpers.containers import IMAGE_MARKER, IMAGE_MARKER_TEXT
from helpers.jobs import one_record, run_job, write_script
from helpers.toolkit_jobs import DDP_ENV_INIT, DDP_TRAINING, PYTORCH_OUTPUTS, check_ddp_job

# Where each rank's PyTorch and Python came from, before it trains.
WHERE = f"""
    import sys
    print("WHERE " + json.dumps({{
        "torch": torch.__file__, "python": sys.executable, "marker": open("{IMAGE_MARKER}").read().strip(),
    }}), flush=True)
"""


def test_a_two_node_ddp_job_trains_in_its_image_with_the_images_pytorch(
    shared_client, container_setup, torch_image, tmp_path, unique
):
    write_script(tmp_path, "ddp_env.py", DDP_ENV_INIT + WHERE + DDP_TRAINING)
    cluster = unique("ddp-images")
    make_cluster(shared_client, cluster, nodes=2, containerRuntime=container_setup.runtime())
    name = unique("ddp-in-image")
    run_job(
        shared_client,
        name,
        cluster,
        {
            "nodeCount": 2,
            "image": torch_image,
            "inputDirectories": [{"id": "CODE", "path": str(tmp_path)}],
            "outputDirectories": PYTORCH_OUTPUTS,
            "pyTorchSettings": {
                "pythonScriptFilePath": "$AZ_BATCHAI_INPUT_CODE/ddp_env.py",
                "communicationBackend": "gloo",
            },
        },
        timeout=300,
    )
    check_ddp_job(shared_client, name)  # trained, in sync, the model saved where the contract says
    for rank in (0, 1):
        text = read_log(shared_client, name, f"stdout-{rank}.txt")
        where = one_record(text, "WHERE")
        assert where["marker"] == IMAGE_MARKER_TEXT, where
        assert where["torch"] == "/usr/lib/python3/dist-packages/torch/__init__.py", where  # the image's ...
        assert not os.path.exists(where["torch"])  # ... which this machine has not (its torch is the venv's)
        assert where["python"].startswith("/usr/bin/python3") and where["python"] != sys.executable, where
