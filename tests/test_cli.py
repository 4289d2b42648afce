"""The real `batchai` console script, run as a subprocess against a real `batchai serve`.

Batch AI job.json files of each API version are written here, in the tests, and run unchanged.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import uuid

import pytest

from batchai_jupyter.client import Client
from helpers.cli import batchai_script, cli, ok, one_line_error
from helpers.service import TOKEN
from helpers.waits import wait_for


def table_rows(output: str) -> tuple[list[str], list[list[str]]]:
    """(header line, rows split on runs of 2+ spaces) of a CLI table."""
    lines = output.rstrip("\n").splitlines()
    assert len(lines) >= 2 and set(lines[1].replace(" ", "")) <= {"-"}, output
    rows = [[cell.strip() for cell in line.split("  ") if cell.strip()] for line in lines[2:]]
    return lines[0], rows


def header_columns(header: str) -> list[str]:
    return [cell.strip() for cell in header.split("  ") if cell.strip()]


def row_of(rows: list[list[str]], name: str) -> list[str]:
    matches = [row for row in rows if row[0] == name]
    assert len(matches) == 1, (name, rows)
    return matches[0]


def write_json(directory, name: str, document: dict) -> str:
    path = directory / name
    path.write_text(json.dumps(document, indent=2))
    return str(path)


def api(service) -> Client:
    return Client(service.url, TOKEN)


def job_named(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="module")
def cluster_c(shared_service):
    """`batchai cluster create -n c -t 2`, run once; the module's jobs run on it."""
    created = cli(shared_service, "cluster", "create", "-n", "c", "-t", "2")
    client = api(shared_service)
    wait_for(
        lambda: client.get(client.cluster_path("default", "c"))["nodeStateCounts"]["idleNodeCount"] == 2,
        "cluster c to have 2 idle nodes",
    )
    return created


def submit_cli(service, tmp_path, name: str, command: str, cluster: str = "c") -> dict:
    path = write_json(
        tmp_path,
        f"{name}.json",
        {
            "properties": {
                "nodeCount": 1,
                "stdOutErrPathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/afs",
                "customToolkitSettings": {"commandLine": command},
            }
        },
    )
    return json.loads(ok(cli(service, "job", "create", "-f", path, "-c", cluster, "-n", name)))


# ---- workspaces, clusters, experiments --------------------------------------------------------------


def test_workspace_list_is_a_table(shared_service):
    header, rows = table_rows(ok(cli(shared_service, "workspace", "list")))
    assert header_columns(header) == ["Name", "Created"]
    assert row_of(rows, "default")[1].endswith("Z")


def test_cluster_create_list_show_and_node_list(shared_service, cluster_c):
    created = json.loads(ok(cluster_c))
    assert created["name"] == "c" and created["targetNodeCount"] == 2
    assert created["properties"]["scaleSettings"]["manual"]["targetNodeCount"] == 2

    header, rows = table_rows(ok(cli(shared_service, "cluster", "list")))
    columns = header_columns(header)
    assert columns[0] == "Name" and "VM Size" in columns and "State" in columns
    assert columns[-5:] == ["Idle", "Running", "Preparing", "Leaving", "Unusable"]
    row = row_of(rows, "c")
    assert len(row) == len(columns)
    assert row[columns.index("State")] == "steady"
    assert row[-5:] == ["2", "0", "0", "0", "0"]

    shown = json.loads(ok(cli(shared_service, "cluster", "show", "-n", "c")))
    assert shown["name"] == "c" and shown["nodeStateCounts"]["idleNodeCount"] == 2

    header, rows = table_rows(ok(cli(shared_service, "cluster", "node", "list", "-n", "c")))
    assert header_columns(header)[:3] == ["ID", "IP", "SSH Port"]
    api_nodes = api(shared_service).list(f"{api(shared_service).cluster_path('default', 'c')}/nodes")
    assert sorted(r[0] for r in rows) == sorted(n["nodeId"] for n in api_nodes)
    assert len(rows) == 2 and all("idle" in r for r in rows)
    assert header_columns(header)[-3:] == ["CPU", "Memory", "GPU"]  # each node's load


def test_cluster_resize_and_auto_scale(shared_service):
    name = job_named("rs")
    client = api(shared_service)
    path = client.cluster_path("default", name)
    assert json.loads(ok(cli(shared_service, "cluster", "create", "-n", name, "-t", "1")))["targetNodeCount"] == 1
    resized = json.loads(ok(cli(shared_service, "cluster", "resize", "-n", name, "-t", "2")))
    assert resized["targetNodeCount"] == 2
    assert resized["properties"]["scaleSettings"]["manual"]["targetNodeCount"] == 2
    wait_for(lambda: client.get(path)["nodeStateCounts"]["idleNodeCount"] == 2, "the resize to 2 nodes")
    scaled = json.loads(ok(cli(shared_service, "cluster", "auto-scale", "-n", name, "--min", "0", "--max", "3")))
    assert scaled["properties"]["scaleSettings"] == {
        "autoScale": {"minimumNodeCount": 0, "maximumNodeCount": 3, "initialNodeCount": 0}
    }
    assert client.get(path)["properties"]["scaleSettings"]["autoScale"]["maximumNodeCount"] == 3
    one_line_error(cli(shared_service, "cluster", "delete", "-n", name), "add -y")
    ok(cli(shared_service, "cluster", "delete", "-n", name, "-y"))
    wait_for(lambda: name not in {c["name"] for c in client.clusters("default")}, "the cluster to be deleted")


def test_cluster_create_native_mounts(shared_service):
    created = json.loads(ok(cli(shared_service, "cluster", "create", "-n", "nm", "-t", "0", "--native-mounts")))
    assert created["properties"]["nativeMounts"] is True
    ok(cli(shared_service, "cluster", "delete", "-n", "nm", "-y"))


def test_experiment_create_and_list(shared_service):
    name = job_named("exp")
    created = json.loads(ok(cli(shared_service, "experiment", "create", "-n", name)))
    assert created == {**created, "name": name, "workspace": "default", "jobCount": 0}
    header, rows = table_rows(ok(cli(shared_service, "experiment", "list")))
    assert header_columns(header) == ["Name", "Workspace", "Jobs"]
    assert row_of(rows, name) == [name, "default", "0"]
    one_line_error(cli(shared_service, "experiment", "create", "-n", name), name, "already exists")


# ---- Batch AI job.json of each API version, unchanged ---------------------------------------------

SCHEMAS = "https://raw.githubusercontent.com/Azure/BatchAI/master/schemas"

JOB_FILES = {
    "2017-09-01-preview": {
        "$schema": f"{SCHEMAS}/2017-09-01-preview/job.json",
        "properties": {
            "location": "eastus",
            "experimentName": "legacy",
            "priority": 100,
            "nodeCount": 1,
            "customToolkitSettings": {
                "commandLine": "echo preview $AZ_BATCHAI_JOB_NAME > $AZ_BATCHAI_OUTPUT_MODEL/model.txt; "
                "echo preview-ran"
            },
            "outputDirectories": [
                {
                    "id": "MODEL",
                    "pathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/external",
                    "pathSuffix": "Models",
                    "type": "model",
                    "createNew": True,
                }
            ],
            "stdOutErrPathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/external",
        },
    },
    "2018-03-01": {
        "$schema": f"{SCHEMAS}/2018-03-01/job.json",
        "properties": {
            "location": "eastus",
            "priority": -10,
            "nodeCount": 1,
            "customToolkitSettings": {"commandLine": "echo march ${#DB_PASSWORD} $GREETING"},
            "environmentVariables": [{"name": "GREETING", "value": "hello"}],
            "secrets": [{"name": "DB_PASSWORD", "value": "pa55word-2018"}],
            "mountVolumes": {
                "azureFileShares": [
                    {
                        "accountName": "myaccount",
                        "azureFileUrl": "https://myaccount.file.core.windows.net/share",
                        "relativeMountPath": "afs",
                        "credentialsInfo": {"accountKey": "ACCOUNT-KEY-2018"},
                    }
                ]
            },
            "stdOutErrPathPrefix": "$AZ_BATCHAI_JOB_MOUNT_ROOT/afs",
        },
    },
    "2018-05-01": {
        "$schema": f"{SCHEMAS}/2018-05-01/job.json",
        "location": "eastus",
        "toolType": "mpi",
        "properties": {
            "nodeCount": 2,
            "schedulingPriority": "high",
            "cluster": {
                "id": "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/demo/providers/"
                "Microsoft.BatchAI/workspaces/ws/clusters/c"
            },
            "customMpiSettings": {
                "commandLine": "echo rank $OMPI_COMM_WORLD_RANK of $OMPI_COMM_WORLD_SIZE",
                "processCount": 2,
            },
            "constraints": {"maxWallClockTime": "1.00:00:00"},
            "stdOutErrPathPrefix": "$AZ_BATCHAI_MOUNT_ROOT/afs",
        },
    },
}


def _check_preview(service, name: str, shown: dict) -> None:
    assert shown["toolType"] == "custom" and shown["schedulingPriority"] == "high"  # integer priority 100
    client = api(service)
    assert client.read_job_file("default", "default", name, "stdout.txt") == b"preview-ran\n"
    assert (
        client.read_job_file("default", "default", name, "model.txt", output_id="MODEL") == f"preview {name}\n".encode()
    )


def _check_march(service, name: str, shown: dict) -> None:
    text = json.dumps(shown)
    assert "pa55word-2018" not in text and "ACCOUNT-KEY-2018" not in text
    assert shown["properties"]["secrets"] == [{"name": "DB_PASSWORD"}] and shown["schedulingPriority"] == -10
    assert api(service).read_job_file("default", "default", name, "stdout.txt") == b"march 13 hello\n"


def _check_may(service, name: str, shown: dict) -> None:
    assert shown["cluster"] == "c" and shown["nodeCount"] == 2
    assert shown["schedulingPriority"] == "high" and shown["properties"]["toolType"] == "mpi"
    assert shown["properties"]["constraints"]["maxWallClockTime"] == "1.00:00:00"
    lines = sorted(api(service).read_job_file("default", "default", name, "stdout.txt").decode().splitlines())
    assert lines == ["rank 0 of 2", "rank 1 of 2"]


CHECKS = {"2017-09-01-preview": _check_preview, "2018-03-01": _check_march, "2018-05-01": _check_may}


@pytest.mark.parametrize("version", list(JOB_FILES))
def test_a_batch_ai_job_file_of_each_api_version_runs_unchanged(shared_service, cluster_c, tmp_path, version):
    path = write_json(tmp_path, "job.json", JOB_FILES[version])
    original = open(path).read()
    name = job_named("v" + version[:4])
    args = ["job", "create", "-f", path, "-n", name]
    if version != "2018-05-01":  # the 2018-05-01 file names its cluster by ARM id
        args += ["-c", "c"]
    created = json.loads(ok(cli(shared_service, *args)))
    assert created["name"] == name and created["cluster"] == "c"
    waited = cli(shared_service, "job", "wait", "-n", name)
    ok(waited)
    assert "Job state: succeeded ExitCode: 0" in waited.stderr.splitlines()
    shown = json.loads(ok(cli(shared_service, "job", "show", "-n", name)))
    assert shown["executionState"] == "succeeded" and shown["executionInfo"]["exitCode"] == 0
    CHECKS[version](shared_service, name, shown)
    assert open(path).read() == original


# ---- job verbs ----------------------------------------------------------------------------------------


def test_job_list_table_and_json(shared_service, cluster_c, tmp_path):
    good, bad = job_named("listok"), job_named("listbad")
    submit_cli(shared_service, tmp_path, good, "echo fine")
    submit_cli(shared_service, tmp_path, bad, "exit 3")
    client = api(shared_service)
    for name in (good, bad):
        client.wait_for_job("default", "default", name, timeout=60)
    header, rows = table_rows(ok(cli(shared_service, "job", "list")))
    assert header_columns(header) == ["Name", "Experiment", "Cluster", "Tool", "Nodes", "State", "Exit code"]
    assert row_of(rows, good) == [good, "default", "c", "custom", "1", "succeeded", "0"]
    assert row_of(rows, bad) == [bad, "default", "c", "custom", "1", "failed", "3"]
    for args in (["job", "list", "-o", "json"], ["-o", "json", "job", "list"]):
        listed = json.loads(ok(cli(shared_service, *args)))
        by_name = {job["name"]: job for job in listed}
        assert by_name[good]["executionState"] == "succeeded" and by_name[bad]["executionInfo"]["exitCode"] == 3
    header, rows = table_rows(ok(cli(shared_service, "job", "list", "--state", "failed")))
    assert bad in [r[0] for r in rows] and good not in [r[0] for r in rows]
    shown = json.loads(ok(cli(shared_service, "job", "show", "-n", good)))
    assert shown["name"] == good and shown["properties"]["customToolkitSettings"]["commandLine"] == "echo fine"
    one_line_error(  # a typo: the closest job, and what the CLI does about it
        cli(shared_service, "job", "show", "-n", good[:-1]),
        f"job '{good[:-1]}' not found (did you mean '{good}'?); list jobs with `batchai job list",
    )


def test_job_wait_exits_with_the_job_exit_code(shared_service, cluster_c, tmp_path):
    name = job_named("exit7")
    submit_cli(shared_service, tmp_path, name, "sleep 1; echo failing; exit 7")
    result = cli(shared_service, "job", "wait", "-n", name)
    assert result.returncode == 7, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    states = [line for line in result.stderr.splitlines() if line.startswith("Job state: ")]
    assert states[-1] == "Job state: failed ExitCode: 7", result.stderr
    assert len(states) >= 2 and states[0] in ("Job state: queued ExitCode: None", "Job state: running ExitCode: None")
    assert any(line.startswith("FailureDetails: ErrorCode:JobFailed") for line in result.stderr.splitlines())


def test_job_file_list_and_node_list(shared_service, cluster_c, tmp_path):
    name = job_named("files")
    submit_cli(shared_service, tmp_path, name, "echo twelve-bytes; echo oops >&2")
    assert api(shared_service).wait_for_job("default", "default", name, timeout=60)["executionState"] == "succeeded"
    header, rows = table_rows(ok(cli(shared_service, "job", "file", "list", "-n", name)))
    assert header_columns(header) == ["Name", "Type", "Size", "Modified"]
    assert row_of(rows, "stdout.txt")[1:3] == ["file", "13"]
    assert row_of(rows, "stderr.txt")[1:3] == ["file", "5"]
    assert row_of(rows, "stdout.txt")[3].endswith("Z")
    one_line_error(cli(shared_service, "job", "file", "list", "-n", name, "-d", "NOPE"), "'NOPE'", "stdouterr")

    header, rows = table_rows(ok(cli(shared_service, "job", "node", "list", "-n", name)))
    assert header_columns(header)[:3] == ["ID", "IP", "SSH Port"]
    cluster_nodes = {n["nodeId"] for n in api(shared_service).list("workspaces/default/clusters/c/nodes")}
    assert len(rows) == 1 and rows[0][0] in cluster_nodes


def test_job_file_stream_follows_a_live_file_until_the_job_ends(shared_service, cluster_c, tmp_path):
    name = job_named("stream")
    go = tmp_path / "go"
    submit_cli(
        shared_service,
        tmp_path,
        name,
        f"echo before; while [ ! -f {go} ]; do sleep 0.05; done; echo after-1; sleep 0.5; echo after-2",
    )
    stream = subprocess.Popen(
        [batchai_script(), "job", "file", "stream", "-n", name, "-f", "stdout.txt"],
        env=shared_service.env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(stream.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        wait_for(lambda: "before\n" in lines, "the stream to print the first line", timeout=60)
        assert stream.poll() is None, "the stream ended while the job was still running"
        assert api(shared_service).job("default", "default", name)["executionState"] == "running"
        go.write_text("")
        stream.wait(timeout=60)
    finally:
        if stream.poll() is None:
            stream.kill()
    reader.join(10)
    stderr = stream.stderr.read()
    assert stream.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert "".join(lines) == "before\nafter-1\nafter-2\n"


def test_job_terminate_asks_for_confirmation_then_stops_the_job(shared_service, cluster_c, tmp_path):
    name = job_named("term")
    submit_cli(shared_service, tmp_path, name, "sleep 60")
    client = api(shared_service)
    wait_for(lambda: client.job("default", "default", name)["executionState"] == "running", "the job to run")
    one_line_error(cli(shared_service, "job", "terminate", "-n", name), "add -y")
    assert client.job("default", "default", name)["executionState"] == "running"
    terminated = json.loads(ok(cli(shared_service, "job", "terminate", "-n", name, "-y")))
    assert terminated["executionState"] in ("terminating", "failed")
    job = client.wait_for_job("default", "default", name, timeout=30)
    assert job["executionState"] == "failed"
    assert [e["code"] for e in job["executionInfo"]["errors"]] == ["JobTerminated"]


def test_job_delete_without_yes_and_no_terminal_is_refused(shared_service, cluster_c, tmp_path):
    name = job_named("del")
    submit_cli(shared_service, tmp_path, name, "echo x")
    client = api(shared_service)
    client.wait_for_job("default", "default", name, timeout=60)
    one_line_error(cli(shared_service, "job", "delete", "-n", name), f"'{name}'", "add -y")
    assert client.job("default", "default", name)["name"] == name
    ok(cli(shared_service, "job", "delete", "-n", name, "-y"))
    one_line_error(cli(shared_service, "job", "show", "-n", name), f"job '{name}' not found")


# ---- errors ----------------------------------------------------------------------------------------


def test_errors_are_one_line_and_exit_1(shared_service, cluster_c, tmp_path):
    one_line_error(cli(shared_service, "job", "show", "-n", "no-such-job"), "no-such-job", "not found")
    one_line_error(cli(shared_service, "cluster", "show", "-n", "no-such-cluster"), "no-such-cluster", "not found")
    one_line_error(  # a typo: the closest cluster, and what the CLI does about it
        cli(shared_service, "cluster", "show", "-n", "cx"),
        "cluster 'cx' not found (did you mean 'c'?); create it with `batchai cluster create",
    )
    one_line_error(
        cli(shared_service, "job", "create", "-f", str(tmp_path / "missing.json"), "-c", "c"),
        "missing.json",
        "does not exist",
    )
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    one_line_error(cli(shared_service, "job", "create", "-f", str(broken), "-c", "c"), "broken.json", "not valid JSON")
    zero = write_json(
        tmp_path,
        "zero.json",
        {"properties": {"nodeCount": 0, "stdOutErrPathPrefix": "x", "customToolkitSettings": {"commandLine": "true"}}},
    )
    one_line_error(
        cli(shared_service, "job", "create", "-f", zero, "-c", "c", "-n", "zero"),
        "properties.nodeCount",
        "an integer from 1 to 1000",
    )
    one_line_error(cli(shared_service, "job", "create", "-f", zero, "-c", "no-such-cluster", "-n", "zero"))
    one_line_error(cli(shared_service, "cluster", "create", "-n", "bad name", "-t", "1"), "'bad name'")
    unreachable = {**shared_service.env(), "BATCHAI_URL": "http://127.0.0.1:9/"}
    one_line_error(cli(shared_service, "workspace", "list", env=unreachable), "cannot reach")
    forbidden = {**shared_service.env(), "BATCHAI_TOKEN": "wrong"}
    one_line_error(cli(shared_service, "workspace", "list", env=forbidden), "403", "BATCHAI_TOKEN")


# ---- discovery ---------------------------------------------------------------------------------------


def test_the_cli_finds_the_service_through_jupyter_runtime_files(shared_service, cluster_c):
    runtime_files = [
        f for f in os.listdir(shared_service.runtime_dir) if f.startswith("jpserver-") and f.endswith(".json")
    ]
    assert runtime_files, os.listdir(shared_service.runtime_dir)
    env = {k: v for k, v in shared_service.env().items() if k not in ("BATCHAI_URL", "BATCHAI_TOKEN")}
    env["JUPYTER_RUNTIME_DIR"] = shared_service.runtime_dir
    result = cli(shared_service, "cluster", "list", env=env)
    _header, rows = table_rows(ok(result))
    assert row_of(rows, "c")
    assert "Started a local batchai service" not in result.stderr
    shown = json.loads(ok(cli(shared_service, "cluster", "show", "-n", "c", env=env)))
    assert shown["uuid"] == api(shared_service).get("workspaces/default/clusters/c")["uuid"]
