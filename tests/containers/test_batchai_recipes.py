"""Batch AI recipes that name public framework images (tests/data/recipes, as published but for the
storage account's placeholders) run unchanged in images of those names: the site's copy of Docker Hub
(a registries.conf in the cluster's containerRuntime) serves the tests' Python image under them. The
frameworks themselves are not in it: each recipe's script is a stand-in that shows where it ran, with which
arguments, and (PyTorch) that its ranks reached each other through the recipe's init method."""

from __future__ import annotations

import os

import pytest

from batchai_jupyter.client import Client
from helpers.api import execution_log, make_cluster, wait_job
from helpers.containers import IMAGE_MARKER, IMAGE_MARKER_TEXT, recipe
from helpers.jobs import logs_of, records
from helpers.service import TOKEN

# Every recipe's script: what it was given and saw; the PyTorch ranks greet each other at --dist-url.
STAND_IN = f"""
import json, os, socket, sys, time
args = sys.argv[1:]
record = {{"script": os.path.basename(sys.argv[0]), "args": args, "marker": open("{IMAGE_MARKER}").read().strip()}}
if "--dist-url" in args:
    host, port = args[args.index("--dist-url") + 1].removeprefix("tcp://").rsplit(":", 1)
    rank = int(args[args.index("--rank") + 1])
    if rank == 0:
        connection, _ = socket.create_server((host, int(port))).accept()
    else:
        for _ in range(300):
            try:
                connection = socket.create_connection((host, int(port)))
                break
            except OSError:
                time.sleep(0.1)
    connection.sendall(f"hello from rank {{rank}}".encode())
    record.update(rank=rank, heard=connection.recv(100).decode())
print("RECORD " + json.dumps(record))
"""
SCRIPTS = ("mnist_trainer.py", "mnist_replica.py", "mnist_cnn.py")


@pytest.fixture(scope="module")
def recipe_cluster(shared_service, container_setup, docker_hub_copy):
    client = Client(shared_service.url, TOKEN)
    runtime = {**container_setup.runtime(), "registriesConf": docker_hub_copy.registries_conf}
    make_cluster(client, "recipes", nodes=2, containerRuntime=runtime)
    # the recipes' file share (a local directory datastore here), with the recipes' scripts in it
    scripts = os.path.join(shared_service.home, "datastores", "default", "recipes", "scripts")
    os.makedirs(scripts, exist_ok=True)
    for script in SCRIPTS:
        with open(os.path.join(scripts, script), "w") as handle:
            handle.write(STAND_IN)
    return "recipes"


def run_recipe(client, cluster: str, file: str, name: str) -> dict:
    document = recipe(file)
    document["properties"]["cluster"] = cluster  # what `az batchai job create --cluster` adds
    client.create_job("default", "default", document, name)
    job = wait_job(client, name, timeout=180)
    assert job["executionState"] == "succeeded", f"{job['executionInfo']}\n{logs_of(client, name)}"
    return job


def test_the_pytorch_distributed_recipe_runs_in_the_image_it_names(shared_client, recipe_cluster, unique):
    name = unique("pytorch-recipe")
    run_recipe(shared_client, recipe_cluster, "pytorch-distributed-gloo.json", name)
    ranks = {record["rank"]: record for record in records(logs_of(shared_client, name))}
    assert ranks[0]["heard"] == "hello from rank 1" and ranks[1]["heard"] == "hello from rank 0"
    assert {record["marker"] for record in ranks.values()} == {IMAGE_MARKER_TEXT}
    assert ranks[1]["args"][:2] == ["--dist-backend", "gloo"] and "--world-size" in ranks[1]["args"]
    assert "pulling image docker.io/pytorch/pytorch:0.4_cuda9_cudnn7" in logs_of(shared_client, name)


def test_the_tensorflow_parameter_server_recipe_runs_in_the_image_it_names(shared_client, recipe_cluster, unique):
    name = unique("tensorflow-recipe")
    run_recipe(shared_client, recipe_cluster, "tensorflow-ps-workers.json", name)
    seen = records(logs_of(shared_client, name))
    roles = sorted(next(arg for arg in record["args"] if arg.startswith("--job_name=")) for record in seen)
    assert roles == ["--job_name=ps", "--job_name=worker", "--job_name=worker"]
    assert {record["marker"] for record in seen} == {IMAGE_MARKER_TEXT}
    assert all(record["script"] == "mnist_replica.py" for record in seen)


def test_the_keras_custom_toolkit_recipe_runs_in_the_image_it_names(shared_client, recipe_cluster, unique):
    name = unique("keras-recipe")
    run_recipe(shared_client, recipe_cluster, "keras-custom-toolkit.json", name)
    (seen,) = records(logs_of(shared_client, name))
    assert seen["marker"] == IMAGE_MARKER_TEXT and seen["script"] == "mnist_cnn.py"
    assert "image docker.io/tensorflow/tensorflow:1.8.0-gpu-py3" in execution_log(shared_client, name)
