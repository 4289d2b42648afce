"""The Slurm backend's pure parts: reading Slurm's output, options, the squeue pacing, sbatch options."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest

from batchai_jupyter.backends.slurm import QueuePacer, SlurmBackend
from batchai_jupyter.backends.slurm_commands import expand_hostlist, node_state, parse_nodes, parse_queue, sbatch_time
from batchai_jupyter.backends.slurm_options import parse_slurm_options
from batchai_jupyter.errors import BatchAIError
from batchai_jupyter.ports.compute import GangRequest


def test_hostlists_expand_like_scontrol_show_hostnames():
    assert expand_hostlist("n[1-3,5],gpu01") == ["n1", "n2", "n3", "n5", "gpu01"]
    assert expand_hostlist("node[08-10]-ib") == ["node08-ib", "node09-ib", "node10-ib"]
    assert expand_hostlist("") == [] and expand_hostlist("(null)") == []


def test_squeue_and_sinfo_lines():
    queue = parse_queue("12|batchai-abc-1|RUNNING|None|n[1-2]\n13|other|PENDING|Resources|\n\nbroken line\n")
    assert [(e.job_id, e.state, e.reason, e.nodes) for e in queue] == [
        ("12", "RUNNING", "None", "n[1-2]"),
        ("13", "PENDING", "Resources", ""),
    ]
    nodes = parse_nodes(
        "n1|idle|127.0.0.1|2|none\nn2|drained*|10.0.0.2|4|disk check\nn3|mixed|n3|8|none\n"
        "n3|mixed|n3|8|none\nn4|allocated|n4|8|none\nn5|down~|n5|8|powered off\n"
    )
    assert [(n.name, node_state(n)) for n in nodes] == [
        ("n1", "idle"),
        ("n2", "unusable"),
        ("n3", "running"),
        ("n4", "running"),
        ("n5", "unusable"),
    ]
    assert nodes[1].reason == "disk check" and nodes[1].address == "10.0.0.2" and nodes[1].cpus == 4


def test_wall_clock_in_slurm_time():
    assert sbatch_time(4) == "0-00:00:04"
    assert sbatch_time(90061.2) == "1-01:01:02"


def test_options_merge_site_and_cluster_and_name_what_is_wrong():
    options = parse_slurm_options(
        {"sharedRoot": "/shared/batchai", "partition": "cpu"},
        {"partition": "gpu", "gpusPerNode": 4, "sbatchOptions": ["--exclusive"], "pathMap": {"/home/svc": "/mnt/home"}},
        "/home/svc/.batchai",
    )
    assert (options.partition, options.gpus_per_node, options.sbatch_options) == ("gpu", 4, ("--exclusive",))
    assert options.shared_root == "/shared/batchai" and options.nodes_root == "/shared/batchai/nodes/NODE"
    assert options.on_nodes("/home/svc/ds/x") == "/mnt/home/ds/x" and options.on_nodes("/home/svcx") == "/home/svcx"
    assert not options.python_given and options.python == sys.executable
    assert parse_slurm_options({}, {"python": "/opt/py/bin/python3"}, "/h").python_given
    for bad, where in (
        ({"maxNodesInUse": 0}, "maxNodesInUse"),
        ({"gpusPerNode": "two"}, "gpusPerNode"),
        ({"sbatchOptions": ["exclusive"]}, "sbatchOptions"),
        ({"pathMap": {"rel": "/x"}}, "pathMap"),
        ({"sharedRoot": "relative"}, "sharedRoot"),
        ({"partitoin": "x"}, "partitoin"),
    ):
        with pytest.raises(BatchAIError) as failure:
            parse_slurm_options({}, bad, "/home")
        assert failure.value.code == "InvalidBackendOptions" and where in failure.value.message, failure.value


def request(priority: int = 0, explicit: bool = False) -> GangRequest:
    return GangRequest(
        key="u-1",
        job_name="j",
        context=None,
        node_count=2,
        max_wall_clock_seconds=3600.0,
        explicit_wall_clock=explicit,
        priority=priority,
    )


def test_sbatch_options_follow_the_job():
    options = parse_slurm_options(
        {}, {"partition": "debug", "account": "lab", "gres": "gpu:a100:2", "sbatchOptions": ["--constraint=ib"]}, "/h"
    )
    argv = SlurmBackend._sbatch_options(options, request(explicit=True), "/h/slurm/jobs/u-1")
    assert argv == [
        "--job-name=batchai-u-1",
        "--nodes=2",
        "--output=/h/slurm/jobs/u-1/batch.out",
        "--chdir=/h/slurm/jobs/u-1",
        "--no-requeue",
        "--partition=debug",
        "--account=lab",
        "--gres=gpu:a100:2",
        "--time=0-01:00:00",
        "--constraint=ib",
    ]
    low = SlurmBackend._sbatch_options(options, request(priority=-100), "/c")
    assert "--nice=100" in low and not any(a.startswith("--time") for a in low)
    high = SlurmBackend._sbatch_options(
        parse_slurm_options({}, {"highPriorityQos": "urgent"}, "/h"), request(priority=100), "/c"
    )
    assert "--qos=urgent" in high and not any(a.startswith("--nice") for a in high)


def test_squeue_backs_off_while_nothing_changes():
    pacer = QueuePacer(1.0, 8.0)
    assert pacer.due(0.0)
    pacer.observed(0.0, {"1": "PENDING"})
    assert not pacer.due(0.5) and pacer.due(1.0)
    for now in (1.0, 3.0, 7.0, 15.0):
        pacer.observed(now, {"1": "PENDING"})
    assert pacer.interval == 8.0 and not pacer.due(22.0)
    pacer.observed(23.0, {"1": "RUNNING"})
    assert pacer.interval == 1.0
    pacer.reset()
    assert pacer.due(23.1)


def test_gpus_default_to_the_clusters_own_gpus_per_node():
    backend = SlurmBackend("/h", {})
    assert backend.options(SimpleNamespace(gpus_per_node=4, backend_options={})).gpus_per_node == 4
    assert backend.options(SimpleNamespace(gpus_per_node=4, backend_options={"gpusPerNode": 1})).gpus_per_node == 1
    argv = SlurmBackend._sbatch_options(
        backend.options(SimpleNamespace(gpus_per_node=4, backend_options=None)), request(), "/c"
    )
    assert "--gres=gpu:4" in argv
