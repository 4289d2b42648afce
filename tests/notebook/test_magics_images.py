"""%%batchai_job --image: the cell, its package and its pushed and pulled variables in an image from a
private registry (real podman, a real docker-registry with TLS and htpasswd auth)."""

from __future__ import annotations

from batchai_jupyter.notebook.jobhandle import Job
from helpers.api import make_cluster
from helpers.containers import IMAGE_MARKER, IMAGE_MARKER_TEXT


def test_a_cell_runs_in_its_image_with_pushed_and_pulled_variables(run, shell, shared_client, container_setup, unique):
    cluster = unique("ci")
    make_cluster(shared_client, cluster, nodes=1, containerRuntime=container_setup.runtime())
    shell.user_ns["numbers"] = [1, 2, 3]
    shell.user_ns["registry"] = container_setup.credentials()
    image = container_setup.reference("notebook")
    options = f"--image {image} --registry-credentials registry --push numbers --pull total,marker"
    value, out, err = run(f"""%%batchai_job --cluster {cluster} {options}
total = sum(numbers)
marker = open("{IMAGE_MARKER}").read().strip()
print("ran in the image")
""")
    assert isinstance(value, Job), (out, err)
    job = value.wait(timeout=120)
    assert job.state == "succeeded", job.logs(stderr=True)
    assert job.result() == {"total": 6, "marker": IMAGE_MARKER_TEXT}
    assert "ran in the image" in job.logs()
    shown = shared_client.job(job.workspace, job.experiment, job.name)["properties"]["containerSettings"]
    assert shown["imageSourceRegistry"] == {
        "image": image,
        "credentials": {"username": container_setup.registry.username},
    }
    assert container_setup.registry.password not in out + err


def test_registry_credentials_must_name_a_notebook_dict(run, shell, shared_client, unique):
    cluster = unique("cn")
    make_cluster(shared_client, cluster, nodes=1, wait=False)
    shell.user_ns["token"] = "s3cret-token"
    for options, expected in (
        ("--image x --registry-credentials missing", "no such notebook variable"),
        ("--image x --registry-credentials token", "a dict with username and password, not a str"),
        ("--registry-credentials token", "goes with --image"),
    ):
        value, out, err = run(f"%%batchai_job --cluster {cluster} {options}\nprint(1)\n")
        assert value is None and expected in err, (options, out, err)
        assert "s3cret-token" not in out + err
