"""A job on the local backend that attacks its service and the other jobs (issue 12, item 3): it looks for the
token in the service's /proc entries, its command line and environment, Jupyter's runtime files and its own
environment; it reads the store, another job's outputs and logs, another node's sandbox; it calls the API
with whatever it found. Each probe fails, and what the job started does not outlive it."""

from __future__ import annotations

import json
import os
import shlex
import sys
import uuid

import pytest

from helpers.api import execution_log, job_folder, make_cluster, stdout_text
from helpers.jobs import one_record, run_job
from helpers.service import TOKEN, ServiceProcess, kill_leftover_tasks

SECRET = "s3cret-" + uuid.uuid4().hex
# Token-like variables of the service's own environment, none of which a job may see.
SERVICE_SECRETS = {
    "JUPYTERHUB_API_TOKEN": "hub-" + SECRET,
    "AZURE_STORAGE_KEY": "az-" + SECRET,
    "MY_DB_PASSWORD": "pw-" + SECRET,
    "AWS_SECRET_ACCESS_KEY": "aws-" + SECRET,
}

PROBE = r"""
import glob, json, os, sys, urllib.request, urllib.error

target = json.loads(os.environ["PROBE_TARGET"])
found = {}  # probe: what it read (None: refused or not there)

def read(path):
    try:
        with open(path, "rb") as handle:
            return handle.read().decode(errors="replace")
    except OSError as failure:
        return None

def listing(path):
    try:
        return sorted(os.listdir(path))
    except OSError:
        return None

found["service environ"] = read(f"/proc/{target['service_pid']}/environ")
found["service cmdline"] = read(f"/proc/{target['service_pid']}/cmdline")
# Every process in sight, as `ps e` would show them.
found["all environs"] = "".join(read(p) or "" for p in glob.glob("/proc/[0-9]*/environ"))
found["all cmdlines"] = "".join(read(p) or "" for p in glob.glob("/proc/[0-9]*/cmdline"))
found["processes"] = sorted(int(p.split("/")[2]) for p in glob.glob("/proc/[0-9]*"))
found["own environ"] = json.dumps(dict(os.environ))
found["runtime dir"] = listing(target["runtime_dir"])
found["runtime files"] = "".join(read(p) or "" for p in glob.glob(os.path.join(target["runtime_dir"], "*")))
found["store"] = read(target["store"])
found["home"] = listing(target["home"])
found["other job's output"] = read(target["other_output"])
found["other job's logs"] = listing(target["other_logs"])
found["other node"] = listing(target["other_node"])
found["own node's run dir"] = listing(target["own_run"])
found["other job's output through a planted link"] = read(target["planted_output"])
found["store through a planted link"] = read(target["planted_store"])
try:  # a file the service's user runs or imports later (~/.bashrc, ~/.local/...): a way out for good
    with open(os.path.join(os.path.expanduser("~"), ".batchai-probe"), "w") as handle:
        handle.write("planted")
    found["wrote into the user's home"] = True
except OSError:
    found["wrote into the user's home"] = False

candidates = set()
for value in found.values():
    for word in str(value).replace("\0", " ").replace("=", " ").replace('"', " ").split():
        if len(word) >= 16 and word.isprintable():
            candidates.add(word)
statuses = set()
for candidate in sorted(candidates)[:2000] + [""]:
    headers = {"Authorization": f"token {candidate}"}
    request = urllib.request.Request(target["delete_url"], method="DELETE", headers=headers)
    try:
        statuses.add(urllib.request.urlopen(request, timeout=30).status)
    except urllib.error.HTTPError as failure:
        statuses.add(failure.code)
found["api statuses"] = sorted(statuses)
print("RECORD " + json.dumps(found))
"""


@pytest.fixture(scope="module")
def attacked(tmp_path_factory):
    """A service with token-like variables in its environment, as under JupyterHub or with Azure keys set."""
    base = tmp_path_factory.mktemp("attacked")
    service = ServiceProcess(str(base / "home"), str(base / "runtime"), extra_env=SERVICE_SECRETS)
    client = service.start()
    yield service, client
    service.stop()
    kill_leftover_tasks(service.home)


def test_a_job_finds_nothing_of_the_service_or_other_jobs(attacked, tmp_path):
    service, client = attacked
    make_cluster(client, "victims", nodes=1)
    make_cluster(client, "attackers", nodes=1)
    # The victim: a secret of its own, an output file and a node sandbox with its job's files.
    victim = {
        "customToolkitSettings": {"commandLine": 'echo "$VICTIM_SECRET" > $AZ_BATCHAI_OUTPUT_OUT/secret.txt'},
        "outputDirectories": [{"id": "OUT", "pathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/afs"}],
        "secrets": [{"name": "VICTIM_SECRET", "value": SECRET}],
    }
    run_job(client, "victim", "victims", victim)
    folder = job_folder(service.home, client, "victim")
    victim_output = os.path.join(folder, "outputs", "OUT", "secret.txt")
    assert open(victim_output).read().strip() == SECRET  # the service's own view: it is there

    script = tmp_path / "probe.py"
    script.write_text(PROBE)
    victim_node = client.cluster_nodes("default", "victims")[0]
    attacker_node = client.cluster_nodes("default", "attackers")[0]
    nodes = os.path.join(service.home, "nodes", "default")
    target = {
        "service_pid": service.process.pid,
        "runtime_dir": service.runtime_dir,
        "store": os.path.join(service.home, "batchai.db"),
        "home": service.home,
        "other_output": victim_output,
        "other_logs": os.path.join(folder, "stdouterr"),
        "other_node": os.path.join(nodes, "victims", victim_node["nodeId"]),
        "own_run": os.path.join(nodes, "attackers", attacker_node["nodeId"], "run"),
        "delete_url": f"{service.url}batchai/api/v1/workspaces/default/experiments/default/jobs/victim",
    }
    # An earlier job on the attackers' node leaves links where the next job's mounts are shown.
    planter = f"ln -s {folder} $AZ_BATCHAI_MOUNT_ROOT/victim && ln -s {service.home} $AZ_BATCHAI_MOUNT_ROOT/home"
    run_job(client, "planter", "attackers", {"customToolkitSettings": {"commandLine": planter}})
    mount_root = os.path.join(nodes, "attackers", attacker_node["nodeId"], "mounts")
    target["planted_output"] = os.path.join(mount_root, "victim", "outputs", "OUT", "secret.txt")
    target["planted_store"] = os.path.join(mount_root, "home", "batchai.db")
    attack = {
        "customToolkitSettings": {"commandLine": f"{shlex.quote(sys.executable)} {script}"},
        "environmentVariables": [{"name": "PROBE_TARGET", "value": json.dumps(target)}],
    }
    run_job(client, "attacker", "attackers", attack)
    found = one_record(stdout_text(client, "attacker"))

    assert found["service environ"] is None and found["service cmdline"] is None
    assert found["processes"] and max(found["processes"]) < 100, found["processes"]  # its own PID namespace
    everything = json.dumps(found)
    for secret in (TOKEN, SECRET, *SERVICE_SECRETS.values()):
        assert secret not in everything, secret
    for name in ("BATCHAI_TOKEN", "BATCHAI_HOME", "BATCHAI_URL", "JUPYTER_RUNTIME_DIR", *SERVICE_SECRETS):
        assert name not in json.loads(found["own environ"]), name
    assert found["runtime dir"] == [] and found["runtime files"] == ""
    assert found["store"] is None and found["other job's output"] is None
    assert found["other job's logs"] is None and found["other node"] is None
    assert found["own node's run dir"] == []
    assert found["other job's output through a planted link"] is None and found["store through a planted link"] is None
    assert found["wrote into the user's home"] is False
    assert "batchai.db" not in found["home"] and "shared" in found["home"]  # its own job's shared temp only
    assert found["api statuses"] and set(found["api statuses"]) <= {401, 403}, found["api statuses"]
    assert client.job("default", "default", "victim")["executionState"] == "succeeded"
    assert open(victim_output).read().strip() == SECRET
    assert all(node["isolation"] == "bwrap" for node in (victim_node, attacker_node))


def test_a_background_process_does_not_outlive_its_job(attacked):
    _service, client = attacked
    make_cluster(client, "background", nodes=1)
    marker = f"177.{uuid.uuid4().int % 10**6}"  # a sleep no other process runs
    job = run_job(
        client, "leaves-a-sleep", "background", {"customToolkitSettings": {"commandLine": f"sleep {marker} &"}}
    )
    assert job["executionState"] == "succeeded"
    left = [pid for pid in _pids() if _cmdline(pid) == ["sleep", marker]]
    assert left == [], f"sleep {marker} outlived its job: {left}"


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return [part.decode() for part in handle.read().split(b"\0") if part]
    except OSError:
        return []


def test_a_wrong_sandbox_setting_is_refused(attacked, expect_refused):
    service, client = attacked
    response = client.session.put(
        f"{service.url}batchai/api/v1/workspaces/default/clusters/maybe",
        json={"backend": "local", "nodeCount": 1, "backendOptions": {"sandbox": "maybe"}},
        timeout=60,
    )
    expect_refused(response, 400, "sandbox must be one of auto, required, off", "'maybe'")


@pytest.fixture
def without_bwrap(tmp_path):
    """A service on a machine where bwrap cannot run: none on its PATH."""
    empty = tmp_path / "bin"
    empty.mkdir()
    service = ServiceProcess(str(tmp_path / "home"), str(tmp_path / "runtime"), extra_env={"PATH": str(empty)})
    client = service.start()
    yield service, client
    service.stop()
    kill_leftover_tasks(service.home)


def test_without_bwrap_a_node_says_it_is_unsandboxed_and_a_cluster_requiring_it_is_refused(
    without_bwrap, expect_refused
):
    service, client = without_bwrap
    required = {"backend": "local", "nodeCount": 1, "backendOptions": {"sandbox": "required"}}
    response = client.session.put(
        f"{service.url}batchai/api/v1/workspaces/default/clusters/strict", json=required, timeout=60
    )
    expect_refused(response, 400, "sandbox is required but bwrap (bubblewrap) is not installed")
    assert (
        client.session.get(f"{service.url}batchai/api/v1/workspaces/default/clusters/strict", timeout=60).status_code
        == 404
    )

    make_cluster(client, "lax", nodes=1)
    (node,) = client.cluster_nodes("default", "lax")
    assert node["isolation"] == "none"
    assert "tasks run UNSANDBOXED (isolation: none): bwrap (bubblewrap) is not installed" in service.log()
    run_job(client, "runs-anyway", "lax", {"customToolkitSettings": {"commandLine": "echo ran"}})


def test_a_mount_command_runs_without_the_services_secrets(attacked):
    """unmanagedFileSystems.mountCommand runs with a task's clean environment, never the service's own, and
    what it printed is in the job's execution log."""
    _service, client = attacked
    make_cluster(client, "mounting", nodes=1)
    dump = "bash -c 'env > \"$1/env.txt\"; echo dumped' mount"  # Batch AI appends the mount path
    spec = {
        "mountVolumes": {"unmanagedFileSystems": [{"mountCommand": dump, "relativeMountPath": "dump"}]},
        "customToolkitSettings": {"commandLine": "cat $AZ_BATCHAI_JOB_MOUNT_ROOT/dump/env.txt"},
    }
    name = "mounts-with-a-clean-env"
    run_job(client, name, "mounting", spec)
    seen = stdout_text(client, name)
    assert "PATH=" in seen
    (node,) = client.cluster_nodes("default", "mounting")
    note = f"mount dump on {node['nodeId']}: mountCommand {dump!r} exited with code 0:\ndumped"
    assert note in execution_log(client, name)
    for name, value in (("BATCHAI_TOKEN", TOKEN), *SERVICE_SECRETS.items()):
        assert name not in seen and value not in seen, name
