"""`cluster node exec` and `job node exec` on local nodes, in az's form and ours, and `-L` port forwarding: a
job serving on its node's address is reached from that node, not from another, and through a local port."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import urllib.request

import pytest

from batchai_jupyter.client import Client
from helpers.api import make_cluster
from helpers.cli import batchai_script, cli, ok
from helpers.service import TOKEN
from helpers.waits import wait_for

PAGE = "served-by-the-job"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fetch_on_node(port: int) -> str:
    """A command line that fetches the page from the node's own address, as the node."""
    program = (
        "import os, urllib.request; "
        f"print(urllib.request.urlopen('http://%s:{port}/index.html' % os.environ['AZ_BATCHAI_NODE_IP'], "
        "timeout=5).read().decode().strip())"
    )
    return f'{sys.executable} -c "{program}"'


@pytest.fixture(scope="module")
def serving(shared_service):
    """(cluster, job, node the job runs on, the other node, port): a job serving a page on its node's address."""
    client = Client(shared_service.url, TOKEN)
    cluster = "execnodes"
    make_cluster(client, cluster, nodes=2)
    port = free_port()
    job = "server"
    client.create_job(
        "default",
        "default",
        {
            "cluster": cluster,
            "nodeCount": 1,
            "customToolkitSettings": {
                "commandLine": f"cd $AZ_BATCHAI_JOB_TEMP && echo {PAGE} > index.html && "
                f"exec {sys.executable} -m http.server --bind $AZ_BATCHAI_NODE_IP {port}"
            },
        },
        job,
    )
    wait_for(lambda: client.job("default", "default", job)["executionState"] == "running", "the server job to run")
    (node,) = [n["nodeId"] for n in client.job_nodes("default", "default", job)]
    (other,) = [n["nodeId"] for n in client.cluster_nodes("default", cluster) if n["nodeId"] != node]
    yield cluster, job, node, other, port
    client.terminate_job("default", "default", job)


def test_cluster_node_exec_in_azs_form_reaches_the_job_on_its_node(shared_service, serving):
    cluster, _job, node, other, port = serving
    fetch = fetch_on_node(port)

    def served():
        result = cli(shared_service, "cluster", "node", "exec", "-c", cluster, "-n", node, "--exec", fetch)
        return result.stdout.strip() if result.returncode == 0 else None

    assert wait_for(served, "the job's server to answer on its node") == PAGE
    # The other node has an address of its own, where nothing listens.
    elsewhere = cli(shared_service, "cluster", "node", "exec", "-c", cluster, "-n", other, "--exec", fetch)
    assert elsewhere.returncode == 1 and "Connection refused" in elsewhere.stderr, elsewhere.stderr


def test_job_node_exec_in_both_forms(shared_service, serving):
    _cluster, job, node, _other, port = serving
    fetch = fetch_on_node(port)
    wait_for(
        lambda: cli(shared_service, "job", "node", "exec", "-n", job, "--", fetch).returncode == 0,
        "the job's server to answer",
    )
    assert ok(cli(shared_service, "job", "node", "exec", "-n", job, "--", fetch)).strip() == PAGE  # ours, first node
    assert ok(cli(shared_service, "job", "node", "exec", "-j", job, "-n", node, "--exec", fetch)).strip() == PAGE
    failed = cli(shared_service, "job", "node", "exec", "-j", job, "--exec", "echo oops >&2; exit 3")
    assert failed.returncode == 3 and failed.stderr == "oops\n"
    missing = cli(shared_service, "job", "node", "exec", "-j", job, "-n", "tvm-nope", "--exec", "true")
    assert missing.returncode == 1 and node in missing.stderr and "Traceback" not in missing.stderr


def test_address_forwards_a_local_port_to_the_node(shared_service, serving):
    _cluster, job, _node, _other, port = serving
    local = free_port()
    forwarding = subprocess.Popen(
        [batchai_script(), "job", "node", "exec", "-j", job, "-L", f"{local}:localhost:{port}"],
        env=shared_service.env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def page():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{local}/index.html", timeout=5) as answer:
                    return answer.read().decode().strip()
            except OSError:
                return None  # not forwarding yet, or the server not up yet

        assert wait_for(page, "the page through the forwarded port") == PAGE
    finally:
        forwarding.send_signal(signal.SIGTERM)  # as Ctrl-C does (SIGINT may be ignored where tests run)
        out, err = forwarding.communicate(timeout=30)
    assert forwarding.returncode == 0, err
    assert f"Forwarding 127.0.0.1:{local} to localhost:{port}" in err and "Traceback" not in err
    bad = cli(shared_service, "cluster", "node", "exec", "-n", "x", "y", "-L", "nonsense")
    assert bad.returncode == 1 and "LOCAL_PORT:HOST:REMOTE_PORT" in bad.stderr, bad.stderr
    assert json.loads(ok(cli(shared_service, "job", "node", "list", "-n", job, "-o", "json")))[0]["nodeId"]
