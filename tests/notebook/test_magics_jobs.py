"""%%batchai_job through a real IPython shell against a real service: packages, data, results, waiting."""

from __future__ import annotations

import _thread
import json
import os
import threading

from batchai_jupyter.notebook.jobhandle import Job
from batchai_jupyter.notebook.packaging import DEFAULT_LIMIT_BYTES
from helpers.api import make_cluster
from helpers.waits import wait_for


def test_cell_runs_as_job_with_pushed_and_pulled_variables(run, shell, shared_client, unique):
    cluster = unique("cj")
    make_cluster(shared_client, cluster, nodes=1)
    os.makedirs("lib")
    with open("lib/helper.py", "w") as handle:
        handle.write("def triple(x):\n    return 3 * x\n")
    shell.user_ns["numbers"] = [1, 2, 3]
    value, out, err = run(f"""%%batchai_job --cluster {cluster} --files lib --push numbers --pull total,squares
import os, sys
sys.path.insert(0, "lib")
from helper import triple
total = triple(sum(numbers))
squares = [n * n for n in numbers]
print("total is", total)
with open(os.path.join(os.environ["AZ_BATCHAI_OUTPUT_OUTPUTS"], "model.txt"), "w") as handle:
    handle.write("weights")
""")
    assert isinstance(value, Job), (out, err)
    assert "package" in out and "submitted" in out
    assert shell.user_ns["_"] is value
    job = value.wait(timeout=120)
    assert job.state == "succeeded", job.logs(stderr=True)
    assert "total is 18" in job.logs()
    assert [f["name"] for f in job.files()] == ["model.txt"]
    downloaded = job.download("model.txt", ".")
    with open(downloaded) as handle:
        assert handle.read() == "weights"
    assert job.result() == {"total": 18, "squares": [1, 4, 9]}


def test_data_is_uploaded_once_and_seen_by_the_job(run, shell, shared_service, shared_client, unique):
    cluster = unique("cd")
    make_cluster(shared_client, cluster, nodes=1)
    os.makedirs("dataset/sub")
    for path, text in (("dataset/a.txt", "alpha\n"), ("dataset/sub/b.txt", "beta\n" * 100)):
        with open(path, "w") as handle:
            handle.write(text)
    name = unique("data").replace("-", "_").upper()
    cell = f"""%%batchai_job --cluster {cluster} --data {name}=dataset --pull listing
import os
root = os.environ["AZ_BATCHAI_INPUT_{name}"]
listing = sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)
"""
    first, out, err = run(cell)
    assert isinstance(first, Job), (out, err)
    assert f"data {name}: 2 file(s) 506 B, 506 B sent" in out
    assert "HBox(children=(IntProgress(" in out and "max=506)" in out  # the upload's bar, as printed in a shell
    second, out, err = run(cell)
    assert f"data {name}: 2 file(s) 506 B, 0 B sent (already in the datastore)" in out
    assert "IntProgress" not in out and "0 B of 0 B" not in out  # nothing to send: no bar
    for job in (first, second):
        job.wait(timeout=120)
        assert job.result() == {"listing": ["a.txt", "sub/b.txt"]}, job.logs(stderr=True)
    # What the magic sent names the data by its location, never by where the service keeps it.
    sent = shared_client.job(first.workspace, first.experiment, first.name)["properties"]["inputDirectories"]
    assert [d["path"].split("/")[:4] for d in sent] == [
        ["datastore:", "", "default", ".batchai"],
        ["datastore:", "", "default", ".batchai"],
    ], sent
    home = shared_service.home
    assert home not in json.dumps(sent) and os.path.realpath(home) not in json.dumps(sent)


def test_data_upload_counts_bytes_written_by_the_datastore(shared_client, tmp_path):
    from batchai_jupyter.notebook import datasets

    (tmp_path / "f.bin").write_bytes(os.urandom(3000))
    files = datasets.files_of(str(tmp_path), "--data X")
    first = datasets.upload(shared_client, "default", f".batchai/test/{tmp_path.name}", files)
    second = datasets.upload(shared_client, "default", f".batchai/test/{tmp_path.name}", files)
    assert (first.bytes_sent, first.files_sent) == (3000, ["f.bin"])
    assert (second.bytes_sent, second.files_sent) == (0, [])
    assert first.location == second.location == f"datastore://default/{first.datastore_path}"
    stored = shared_client.read_datastore_file("default", "default", f"{first.datastore_path}/f.bin")
    assert stored == (tmp_path / "f.bin").read_bytes()


def test_oversize_package_is_refused_with_what_is_big(run, shell, shared_client, unique):
    cluster = unique("cs")
    make_cluster(shared_client, cluster, nodes=1, wait=False)
    with open("big.bin", "wb") as handle:
        handle.write(b"x" * 300_000)
    shell.run_line_magic("config", "BatchAIMagics.package_limit = 100000")
    try:
        value, out, err = run(f"%%batchai_job --cluster {cluster} --files big.bin\nprint(1)\n")
    finally:
        shell.run_line_magic("config", f"BatchAIMagics.package_limit = {DEFAULT_LIMIT_BYTES}")
    assert value is None
    assert err.strip().splitlines() == [err.strip()]  # one line, no traceback
    assert err.startswith("UsageError: the job package is 29")
    assert "over the 97.7 KB limit (biggest: file big.bin 293.0 KB" in err
    assert "--data NAME=PATH" in err
    assert shared_client.list("workspaces/default/jobs") == [] or all(
        j["cluster"] != cluster for j in shared_client.list("workspaces/default/jobs")
    )


def _interrupt_once_running(client, name: str) -> threading.Thread:
    """A thread that interrupts the main thread (as the kernel's stop button does) once the job runs."""

    def interrupt_when_running():
        wait_for(lambda: _state(client, name) == "running", "the job to run", timeout=120)
        _thread.interrupt_main()

    helper = threading.Thread(target=interrupt_when_running)
    helper.start()
    return helper


def test_interrupt_while_waiting_terminates_the_job(run, shell, shared_client, unique):
    cluster, name = unique("ci"), unique("long")
    make_cluster(shared_client, cluster, nodes=1)
    helper = _interrupt_once_running(shared_client, name)
    value, out, err = run(
        f"%%batchai_job --cluster {cluster} --name {name} --wait\n"
        "import time\nprint('started', flush=True)\ntime.sleep(600)\n"
    )
    helper.join()
    assert f"interrupted: job '{name}' terminated" in out, (out, err)
    assert isinstance(value, Job)
    job = value.wait(timeout=60)
    assert job.info["executionState"] == "failed"
    # Its monitor says the user terminated it: no "failed" badge, no failing task quoted, rank 0's log open.
    monitor = value.displayed
    wait_for(lambda: not monitor.poller.running, "the monitor to read the terminated job")
    assert ">terminated<" in monitor.header.value and ">failed<" not in monitor.header.value
    assert monitor.failure is None and monitor.summary().startswith(f"job default/{name}: terminated (exit code ")
    assert monitor.log_tabs.selected_index == 0 and monitor.logs_toggle.value is False


def test_wait_streams_output_and_reports_the_end(run, shared_client, unique):
    cluster = unique("cw")
    make_cluster(shared_client, cluster, nodes=1)
    value, out, err = run(f"%%batchai_job --cluster {cluster} --wait\nprint('hello from the node')\n")
    assert out.count("hello from the node") == 1, out
    assert f"job '{value.name}' succeeded (exit code 0)" in out
    # The monitor the cell shows has the logs folded: they are printed above it (they were shown twice).
    monitor = value.displayed
    wait_for(lambda: not monitor.poller.running, "the monitor to read the ended job")
    assert "hello from the node" in monitor.log_text()
    assert monitor.logs_toggle in monitor.children and not monitor.logs_toggle.value
    assert monitor.log_tabs.layout.display == "none"
    monitor.logs_toggle.value = True  # the user opens them
    assert monitor.log_tabs.layout.display is None and monitor.logs_toggle.description == "hide logs"
    # A failing task's log opens by default, even so.
    failed, out, err = run(
        f"%%batchai_job --cluster {cluster} --wait\nraise ValueError('bad input')\nprint('unreached')\n"
    )
    assert f"job '{failed.name}' failed (exit code 1)" in out, (out, err)
    wait_for(lambda: not failed.displayed.poller.running, "the monitor to read the failed job")
    assert failed.displayed.logs_toggle.value and failed.displayed.log_tabs.layout.display is None
    assert "ValueError: bad input" in failed.displayed.header.value


def _state(client, name):
    jobs = [j for j in client.list("workspaces/default/jobs") if j["name"] == name]
    return jobs[0]["executionState"] if jobs else None


def test_job_options_reach_the_spec_and_the_job(run, shared_client, unique):
    cluster, experiment = unique("co"), unique("exp")
    make_cluster(shared_client, cluster, nodes=2)
    with open("requirements.txt", "w") as handle:
        handle.write("# nothing to install\n")
    job, out, err = run(
        f"%%batchai_job -c {cluster} --nodes 2 --processes 2 --framework mpi --env GREETING=hi "
        f"MODE=fast --priority high --retries 2 --max-time 0:10:00 -e {experiment} "
        "--requirements requirements.txt --pull seen\n"
        "import os\nseen = (os.environ['GREETING'], os.environ['MODE'], "
        "os.environ['OMPI_COMM_WORLD_SIZE'], os.path.exists('requirements.txt'))\n"
    )
    assert job is not None, err
    job.wait(timeout=120)
    info = job.info
    assert info["executionState"] == "succeeded", job.logs(stderr=True)
    assert (info["experiment"], info["nodeCount"], info["schedulingPriority"], info["toolType"]) == (
        experiment,
        2,
        "high",
        "customMpi",
    )
    assert info["properties"]["constraints"] == {"maxWallClockTime": "0.00:10:00", "maxRetries": 2}
    assert "pip install" in info["properties"]["jobPreparation"]["commandLine"]
    assert job.result() == {"seen": ("hi", "fast", "2", True)}


def test_detach_on_interrupt_leaves_the_job_running(run, shared_client, unique):
    cluster, name = unique("cx"), unique("detached")
    make_cluster(shared_client, cluster, nodes=1)
    helper = _interrupt_once_running(shared_client, name)
    job, out, err = run(
        f"%%batchai_job -c {cluster} -n {name} --wait --detach-on-interrupt\nimport time\ntime.sleep(600)\n"
    )
    helper.join()
    assert f"stopped waiting; job '{name}' goes on (running)" in out, (out, err)
    assert job.state == "running"
    job.terminate()


def test_a_syntax_error_is_reported_before_anything_is_queued(run, shared_client, unique):
    cluster = unique("se")
    make_cluster(shared_client, cluster, nodes=1, wait=False)
    name = unique("syntax")
    value, out, err = run(f"%%batchai_job --cluster {cluster} --name {name}\nx = 1\nprint(x +)\n")
    assert value is None and "uploading" not in out and "submitted" not in out, out
    assert (
        "UsageError: the cell does not compile (line 3: invalid syntax: print(x +)); "
        "nothing was uploaded or queued" in err.splitlines()
    ), err
    assert name not in [job["name"] for job in shared_client.jobs("default")]


def test_a_cell_run_again_finds_its_cluster_and_replaces_its_job(run, shared_client, unique):
    cluster, name = unique("again"), unique("again-job")
    uuids = []
    for _ in range(2):
        _, out, err = run(f"%batchai_cluster create {cluster} --nodes 1 --exist-ok --no-monitor")
        assert err == "" and cluster in out
        job, _, err = run(f"%%batchai_job --cluster {cluster} --name {name} --replace\nimport time\ntime.sleep(60)\n")
        assert err == "" and job.name == name
        uuids.append(job.info["uuid"])
    # The second --replace deleted the first job (queued or running) and created a new one of that name.
    assert [j["uuid"] for j in shared_client.jobs("default") if j["name"] == name] == [uuids[1]] != [uuids[0]]
    _, _, err = run(f"%%batchai_job --cluster {cluster} --name {name}\nprint(1)\n")
    assert err.strip() == (
        f"UsageError: job '{name}' already exists in experiment 'default'; delete it or pick "
        "another name; or add --replace to replace it"
    ), err
    _, _, err = run(f"%batchai_cluster create {cluster} --nodes 1 --no-monitor")
    assert f"cluster '{cluster}' already exists" in err
    job.terminate()
