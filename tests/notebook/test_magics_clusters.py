"""%batchai_cluster, %batchai_jobs, %batchai_logs, %batchai_job_show and their one-line errors."""

from __future__ import annotations

import pytest

from batchai_jupyter.notebook.jobhandle import Job
from batchai_jupyter.notebook.magics import without_comment
from batchai_jupyter.notebook.widgets import ClusterMonitor
from helpers.api import make_cluster
from helpers.waits import wait_for


def test_cluster_life_cycle(run, shared_client, unique):
    name = unique("life")
    monitor, out, err = run(f"%batchai_cluster create {name} --nodes 1")
    assert isinstance(monitor, ClusterMonitor), err
    # What the notebook keeps besides the widget: the cluster as first shown, before any wait.
    bundle = monitor._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["text/html"].startswith('<div class="batchai-snapshot" data-state="')
    assert f"<b>cluster {name}</b>" in bundle["text/html"] and "<table>" in bundle["text/html"]
    try:
        wait_for(lambda: monitor.counts.get("idle") == 1, "the monitor to count 1 idle node", timeout=60)
        assert "idle 1" in monitor.counts_view.value
        assert name in monitor.header.value
    finally:
        monitor.close()
    assert not monitor.poller.running
    _, out, _ = run("%batchai_cluster list")
    assert name in out and "Idle" in out
    run(f"%batchai_cluster resize {name} --nodes 2 --no-monitor")
    wait_for(
        lambda: shared_client.get(f"workspaces/default/clusters/{name}")["nodeStateCounts"]["idleNodeCount"] == 2,
        "2 idle nodes",
        timeout=60,
    )
    _, out, _ = run(f"%batchai_cluster auto-scale {name} --min 0 --max 3 --no-monitor")
    assert name in out
    _, out, err = run(f"%batchai_cluster delete {name}")
    assert "add -y to confirm" in err
    _, out, err = run(f"%batchai_cluster delete {name} -y")
    assert f"cluster '{name}' is being deleted" in out


def test_cluster_monitor_resize_control(run, shared_client, unique):
    name = unique("rc")
    monitor, _, err = run(f"%batchai_cluster create {name} --nodes 1")
    try:
        wait_for(lambda: monitor.counts.get("idle") == 1, "1 idle node")
        monitor.target.value = 2
        monitor.resize_button.click()
        wait_for(lambda: monitor.counts.get("idle") == 2, "the monitor to show 2 idle nodes", timeout=60)
        assert monitor.nodes_view.value.count("<tr>") == 3  # header + 2 nodes
    finally:
        monitor.close()


def test_jobs_logs_and_show(run, shared_client, unique):
    cluster = unique("ls")
    make_cluster(shared_client, cluster, nodes=1)
    job, _, err = run(
        f"%%batchai_job -c {cluster} -n {unique('j')} --experiment {unique('exp')}\n"
        "import sys\nprint('to stdout')\nprint('to stderr', file=sys.stderr)\n"
    )
    job.wait(timeout=120)
    _, out, _ = run(f"%batchai_jobs --cluster {cluster}")
    assert job.name in out and "succeeded" in out
    _, out, _ = run(f"%batchai_jobs --cluster {cluster} --state failed")
    assert out.strip() == "no jobs"
    _, out, _ = run(f"%batchai_logs {job.name} -e {job.experiment}")
    assert out == "to stdout\n"
    _, out, _ = run(f"%batchai_logs {job.name} -e {job.experiment} --stderr --task 0")
    assert out == "to stderr\n"
    _, out, _ = run(f"%batchai_logs {job.name} -e {job.experiment} --follow")
    assert out == "to stdout\n"
    shown, _, _ = run(f"%batchai_job_show {job.name} -e {job.experiment}")
    assert isinstance(shown, Job) and shown.info["executionState"] == "succeeded"


@pytest.mark.parametrize(
    "cell, message",
    [
        (
            "%batchai_cluster create {missing} --nodes 1 --backend nowhere",
            "UsageError: backend: 'nowhere' is not available here",
        ),
        ("%batchai_cluster show {missing}", "UsageError: cluster '{missing}' not found"),
        ("%batchai_cluster resize {missing}", "UsageError: %batchai_cluster resize: give the new size with --nodes N"),
        ("%batchai_cluster explode", "UsageError: argument verb: invalid choice: 'explode'"),
        ("%batchai_cluster create", "UsageError: %batchai_cluster create: give the cluster's name"),
        ("%batchai_cluster create x -f nothere.json", "UsageError: -f 'nothere.json': the file does not exist"),
        ("%%batchai_job --cluster {missing}\nprint(1)", "UsageError: cluster '{missing}' not found"),
        ("%%batchai_job --nodes two\nprint(1)", "UsageError: argument --nodes: invalid int value: 'two'"),
        ("%%batchai_job --nodes 2\n", "UsageError: %%batchai_job runs the code below its line"),
        ("%%batchai_job --bogus\nprint(1)", "UsageError: unrecognized arguments: --bogus"),
        ("%%batchai_job --files nothere.py\nprint(1)", "UsageError: --files: 'nothere.py' matches no file in"),
        (
            "%%batchai_job --files ../up.py\nprint(1)",
            "UsageError: --files: '../up.py' is outside the notebook's folder",
        ),
        ("%%batchai_job --data X=nothere\nprint(1)", "UsageError: --data X: 'nothere' does not exist"),
        ("%%batchai_job --data nothere\nprint(1)", "UsageError: --data 'nothere': give a dataset as NAME=VALUE"),
        ("%%batchai_job --push nosuchvar\nprint(1)", "UsageError: --push nosuchvar: the notebook has no variable"),
        ("%%batchai_job --requirements req.txt\nprint(1)", "UsageError: --requirements 'req.txt': no such file"),
        ("%%batchai_job -f nothere.json\nprint(1)", "UsageError: -f 'nothere.json': the file does not exist"),
        ("%batchai_logs {missing}", "UsageError: job '{missing}' not found"),
        ("%batchai_job_show {missing}", "UsageError: job '{missing}' not found"),
        ("%batchai_jobs --state sleeping", "UsageError: argument --state: invalid choice: 'sleeping'"),
    ],
)
def test_bad_input_is_one_clear_line(run, shared_client, unique, cell, message):
    missing = unique("missing")
    if "--cluster" not in cell and "batchai_job\n" not in cell and cell.startswith("%%"):
        cell = cell.replace("%%batchai_job", f"%%batchai_job --cluster {_one_cluster(shared_client, unique)}", 1)
    value, out, err = run(cell.format(missing=missing))
    assert value is None
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(message.format(missing=missing)), err


def test_a_mistyped_cluster_job_or_option_gets_the_closest_one(run, shared_client, unique):
    cluster, experiment = unique("dym"), unique("dymexp")
    make_cluster(shared_client, cluster, nodes=1)
    typo = cluster[:-1]
    magic_hint = f"create it with `%batchai_cluster create {typo} --nodes 1` (see `%batchai_cluster list`)"
    for cell in (f"%batchai_cluster show {typo}", f"%%batchai_job --cluster {typo}\nprint(1)\n"):
        value, _, err = run(cell)
        assert value is None
        assert err.strip() == f"UsageError: cluster '{typo}' not found (did you mean '{cluster}'?); {magic_hint}", err
    job, _, err = run(f"%%batchai_job -c {cluster} -e {experiment} -n {unique('dymjob')}\nprint(1)\n")
    assert isinstance(job, Job), err
    _, _, err = run(f"%batchai_job_show {job.name}x -e {experiment}")
    assert err.strip() == (
        f"UsageError: job '{job.name}x' not found (did you mean '{job.name}'?); "
        f"list the jobs with `%batchai_jobs -e {experiment}`"
    ), err
    _, _, err = run(f"%batchai_logs {job.name}")  # in the default experiment: it is in another one
    assert err.strip().startswith(
        f"UsageError: job '{job.name}' not found (did you mean '{job.name}' in experiment '{experiment}' "
        f"(-e {experiment})?)"
    ), err
    _, _, err = run(f"%batchai_cluster create {unique('x')} --nodse 2  # a typo")
    assert err.strip() == "UsageError: unrecognized arguments: --nodse 2; did you mean --nodes?", err
    _, _, err = run(f"%%batchai_job -c {cluster} --wiat\nprint(1)\n")
    assert err.strip() == "UsageError: unrecognized arguments: --wiat; did you mean --wait?", err
    _, _, err = run("%batchai_cluster show nothing-like-it-at-all-zzzz")
    assert "did you mean" not in err and "%batchai_cluster create nothing-like-it-at-all-zzzz" in err, err


def test_unknown_task_names_the_tasks(run, shared_client, unique):
    cluster = unique("ut")
    make_cluster(shared_client, cluster, nodes=1)
    job, _, _ = run(f"%%batchai_job -c {cluster}\nprint(1)\n")
    job.wait(timeout=120)
    _, out, err = run(f"%batchai_logs {job.name} --task 7")
    assert err.strip() == f"UsageError: --task 7: job '{job.name}' has no such task; its tasks: master"


def test_help_explains_every_option(run):
    _, out, _ = run("%%batchai_job --help   # the cell has no body: --help needs none\n")
    for option in (
        "--cluster",
        "--nodes",
        "--processes",
        "--framework",
        "--files",
        "--data",
        "--push",
        "--pull",
        "--requirements",
        "--env",
        "--priority",
        "--retries",
        "--max-time",
        "--experiment",
        "--name",
        "--wait",
        "--detach-on-interrupt",
        "-f",
    ):
        assert option in out
    _, out, _ = run("%batchai_cluster --help")
    assert "auto-scale" in out and "--idle" in out and "--setup" in out


def test_line_magics_take_trailing_comments_as_a_shell_does(run, shared_client, unique):
    name = unique("cm")
    _, out, err = run(
        f"%batchai_cluster create {name} --nodes 1 --setup 'echo #1 > setup.txt' --no-monitor  # one node, see --help"
    )
    assert err == "" and name in out
    spec = shared_client.get(shared_client.cluster_path("default", name))
    assert spec["properties"]["nodeSetup"]["setupTask"]["commandLine"] == "echo #1 > setup.txt"


@pytest.mark.parametrize(
    "line, without",
    [
        ("create gpu --nodes 2   # shows a live ClusterMonitor", "create gpu --nodes 2   "),
        ("--env COLOR=#fff # the colour", "--env COLOR=#fff "),
        ("--setup 'echo # not a comment' \"#quoted\" x\\ #y", "--setup 'echo # not a comment' \"#quoted\" x\\ #y"),
        ("# all comment", ""),
    ],
)
def test_without_comment(line, without):
    assert without_comment(line) == without


_cluster_cache: dict = {}


def _one_cluster(client, unique) -> str:
    if "name" not in _cluster_cache:
        _cluster_cache["name"] = unique("bad")
        make_cluster(client, _cluster_cache["name"], nodes=1, wait=False)
    return _cluster_cache["name"]


def test_cluster_from_a_batch_ai_file_with_options(run, shared_client, unique):
    import json

    name = unique("file")
    with open("cluster.json", "w") as handle:
        json.dump(
            {
                "$schema": "https://raw.githubusercontent.com/Azure/BatchAI/master/schemas/2018-05-01/cluster.json",
                "properties": {"vmSize": "STANDARD_D2", "scaleSettings": {"manual": {"targetNodeCount": 3}}},
            },
            handle,
        )
    _, out, err = run(
        f"%batchai_cluster create {name} -f cluster.json --min 0 --max 2 --idle 45 "
        "--priority lowpriority --setup 'echo ready' --no-monitor"
    )
    assert name in out, err
    properties = shared_client.get(f"workspaces/default/clusters/{name}")["properties"]
    assert properties["vmSize"] == "STANDARD_D2" and properties["vmPriority"] == "lowpriority"
    assert properties["scaleSettings"]["autoScale"]["maximumNodeCount"] == 2
    assert properties["nodeSetup"]["setupTask"]["commandLine"] == "echo ready"
    run(f"%batchai_cluster delete {name} -y")


def test_backend_options_from_the_magic(run, shared_client, unique):
    name = unique("opts")
    _, out, err = run(
        f"%batchai_cluster create {name} --nodes 1 --no-monitor --option partition=debug "
        '--option maxNodesInUse=2 --option \'hosts=["me@a", "me@b"]\''
    )
    assert name in out, err
    properties = shared_client.get(f"workspaces/default/clusters/{name}")["properties"]
    options = properties["backendOptions"]
    assert options == {"partition": "debug", "maxNodesInUse": 2, "hosts": ["me@a", "me@b"]}, options
    assert properties["nativeMounts"] is False
    run(f"%batchai_cluster delete {name} -y")
    native = unique("native")
    _, out, err = run(f"%batchai_cluster create {native} --nodes 1 --no-monitor --native-mounts")
    assert shared_client.get(f"workspaces/default/clusters/{native}")["properties"]["nativeMounts"] is True, err
    run(f"%batchai_cluster delete {native} -y")
    _, _, err = run(f"%batchai_cluster create {unique('bad')} --option partition")
    assert err.strip() == "UsageError: --option 'partition': write KEY=VALUE, e.g. --option partition=debug", err


def test_unbalanced_quotes_are_one_line(run):
    _, _, err = run("%batchai_cluster create x --setup 'echo")
    assert err.strip() == "UsageError: %batchai_cluster create x --setup 'echo: No closing quotation; check the quotes"
