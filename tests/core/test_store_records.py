"""The Store's typed records: what the release before versions stored comes back as records with their
specs decoded, a job's secret values stay apart from its spec, and a record that must be there is."""

import dataclasses
import os
import sqlite3

import pytest

from batchai_jupyter.core.models import ClusterSpec, JobSpec
from batchai_jupyter.core.records import Cluster, Job, Node, Task
from batchai_jupyter.core.store import RecordGone, Store

V0_DUMP = os.path.join(os.path.dirname(__file__), "..", "data", "store-v0.sql")


@pytest.fixture
def v0_store(tmp_path):
    path = str(tmp_path / "batchai.db")
    with open(V0_DUMP) as dump, sqlite3.connect(path) as connection:
        connection.executescript(dump.read().replace("@BATCHAI_HOME@", str(tmp_path)))
    store = Store(path)
    yield store
    store.close()


def test_jobs_of_the_release_before_come_back_as_records(v0_store):
    job = v0_store.job_by_name("default", "default", "waiting-secret")
    assert isinstance(job, Job) and isinstance(job.spec, JobSpec)
    assert (job.state, job.cluster, job.spec.cluster, job.spec.node_count) == ("queued", "later", "later", 1)
    assert job.secrets == {"API_KEY": "s3cr3t-v0"} and job.spec.secrets == {}
    assert job.with_secrets().secrets == {"API_KEY": "s3cr3t-v0"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        job.state = "running"  # a snapshot: states move through the Store only
    assert [j.name for j in v0_store.jobs_of("default", "exp")] == ["failed", "waiting-low"]
    assert [j.name for j in v0_store.jobs_of_cluster("default", "later", "queued")] == [
        "waiting-secret",
        "waiting-low",
        "waiting-high",
    ]


def test_clusters_nodes_and_tasks_come_back_as_records(v0_store):
    cluster = v0_store.existing_cluster("default", "cpu")
    assert isinstance(cluster, Cluster) and isinstance(cluster.spec, ClusterSpec)
    assert (cluster.spec.backend, cluster.deleting) == ("local", False)
    assert [c.name for c in v0_store.clusters_of("default")] == ["cpu", "later"]
    done = v0_store.existing_job(v0_store.job_by_name("default", "default", "done").id)
    tasks = v0_store.tasks_of(done.id)
    assert tasks and all(isinstance(task, Task) and isinstance(task.required, bool) for task in tasks)
    node_id = v0_store.insert(
        "nodes",
        workspace="default",
        cluster="cpu",
        name="tvm-9",
        state="idle",
        ip="10.0.0.9",
        state_since=1.0,
        info={"cpus": 2},
    )
    node = v0_store.existing_node(node_id)
    assert isinstance(node, Node) and (node.cluster, node.info, node.errors) == ("cpu", {"cpus": 2}, [])
    assert v0_store.nodes_of("default", "cpu") == [node]


def test_a_record_that_must_be_there_and_is_not_is_a_clear_error(v0_store):
    assert v0_store.job(999) is None
    with pytest.raises(RecordGone, match="job 999 is not in the store"):
        v0_store.existing_job(999)
    with pytest.raises(RecordGone, match="cluster default/nowhere"):
        v0_store.existing_cluster("default", "nowhere")
