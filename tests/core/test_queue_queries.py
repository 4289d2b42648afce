"""The light queue queries the engine and job views use agree with the full rows and with the
pure scheduler's queue order."""

import json
import random

import pytest

from batchai_jupyter.core import scheduler, views
from batchai_jupyter.core.models import JobSpec, ToolkitSettings
from batchai_jupyter.core.records import JobBrief
from batchai_jupyter.core.spec_codec import encode_job_spec
from batchai_jupyter.core.store import Store


@pytest.fixture
def store(tmp_path):
    store = Store(str(tmp_path / "batchai.db"))
    yield store
    store.close()


def _fill(store: Store, seed: int) -> None:
    rng = random.Random(seed)
    for index in range(60):
        state = rng.choice(["queued", "queued", "queued", "running", "succeeded"])
        spec = encode_job_spec(
            JobSpec(
                name=f"j{index}",
                cluster="c",
                toolkit=ToolkitSettings(command_line="true"),
                node_count=rng.randint(1, 4),
                max_wall_clock_seconds=rng.choice([60, 1.5, 604800]),
            )
        )
        store.insert(
            "jobs",
            workspace=rng.choice(["w1", "w2"]),
            experiment="e",
            name=f"j{index}",
            uuid="u",
            cluster=rng.choice(["a", "b"]),
            priority=rng.choice([-100, 0, 0, 100, 7]),
            state=state,
            spec=spec,
            created=0,
            state_since=0,
            started=1.0 if state == "running" else None,
            node_ids=[rng.randint(1, 9)] if state == "running" else [],
        )


def _whole_queue_positions(queued_jobs: list) -> dict[int, int]:
    return scheduler.queue_positions([views.queued_job(j) for j in queued_jobs])


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("json_in_sql", [True, False])
def test_job_briefs_match_the_full_rows(store, seed, json_in_sql):
    _fill(store, seed)
    store._json_in_sql = json_in_sql
    for states in (("queued",), ("running",), ("queued", "running", "succeeded")):
        full = store.jobs_in_state(*states)
        briefs = store.job_briefs(*states)
        assert briefs == [
            JobBrief(
                id=j.id,
                workspace=j.workspace,
                cluster=j.cluster,
                priority=j.priority,
                state=j.state,
                started=j.started,
                node_ids=j.node_ids,
                node_count=j.spec.node_count,
                max_wall_clock_seconds=j.spec.max_wall_clock_seconds,
            )
            for j in full
        ]
        assert [type(b.max_wall_clock_seconds) for b in briefs] == [
            type(json.loads(json.dumps(j.spec.max_wall_clock_seconds))) for j in full
        ]


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_queue_positions_agree_with_the_scheduler(store, seed):
    _fill(store, seed)
    queued = [views.queued_job(j) for j in store.jobs_in_state("queued")]
    expected = {job.id: scheduler.queue_position(queued, job.id) for job in queued}
    assert scheduler.queue_positions(queued) == expected
    assert _whole_queue_positions(store.job_briefs("queued")) == expected
    assert _whole_queue_positions(store.jobs_in_state("queued")) == expected
    assert {j.id: store.queued_ahead(j) + 1 for j in store.jobs_in_state("queued")} == expected


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_positions_of_any_few_queued_jobs_agree_with_the_whole_queue(store, seed):
    _fill(store, seed)
    expected = _whole_queue_positions(store.job_briefs("queued"))
    jobs = store.jobs_in_state("queued", "running", "succeeded")
    rng = random.Random(seed)
    for size in (1, 2, 5, 20, len(jobs)):
        chosen = rng.sample(jobs, size)
        assert store.queue_positions(chosen) == {j.id: expected[j.id] for j in chosen if j.state == "queued"}


@pytest.mark.parametrize("seed", [1, 2])
def test_job_pages_are_the_filtered_jobs_in_id_order(store, seed):
    _fill(store, seed)
    for workspace, experiment, state in [
        ("w1", None, None),
        ("w2", "e", None),
        ("w1", None, "queued"),
        ("w2", "e", "running"),
        ("w1", "other", None),
    ]:
        wanted = [
            j
            for j in store.jobs_in_state("queued", "running", "succeeded")
            if j.workspace == workspace and experiment in (None, j.experiment) and state in (None, j.state)
        ]
        assert store.job_page(workspace, experiment, state, 0, None) == (wanted, False)
        for skip, limit in [(0, 1), (0, 7), (3, 7), (len(wanted) - 2, 2), (len(wanted), 5), (0, len(wanted))]:
            rows, more = store.job_page(workspace, experiment, state, skip, limit)
            assert rows == wanted[skip : skip + limit]
            assert more == (skip + limit < len(wanted))


@pytest.mark.parametrize("seed", range(300))
def test_plan_ignores_the_queue_when_needs_queue_says_so(seed):
    rng = random.Random(seed)
    clusters = [
        scheduler.ClusterView(
            f"w/c{i}",
            rng.choice(["manual", "manual", "auto"]),
            rng.randint(0, 4),
            minimum=rng.randint(0, 1),
            maximum=rng.randint(1, 5),
            idle_seconds_before_scaledown=rng.choice([0, 60]),
            current_nodes=rng.randint(0, 4),
        )
        for i in range(rng.randint(1, 3))
    ]
    nodes = [
        scheduler.NodeView(
            i,
            rng.choice(clusters).key,
            rng.choice(["idle", "running", "running", "preparing"]),
            idle_since=rng.choice([None, 0.0, 90.0]),
        )
        for i in range(rng.randint(0, 8))
    ]
    busy_nodes = [n for n in nodes if n.state == "running"]
    running = [
        scheduler.RunningJob(
            100 + i, n.cluster, (n.id,), started_at=rng.choice([0.0, 50.0]), max_wall_clock=rng.choice([30.0, 1000.0])
        )
        for i, n in enumerate(busy_nodes)
    ]
    queued = [
        scheduler.QueuedJob(
            i, rng.choice(clusters).key, rng.choice([-100, 0, 100]), i, rng.randint(1, 3), rng.choice([10.0, 5000.0])
        )
        for i in range(rng.randint(0, 10))
    ]
    full = scheduler.plan(clusters, nodes, queued, running, now=100.0)
    if not scheduler.needs_queue(clusters, nodes, running):
        assert scheduler.plan(clusters, nodes, [], running, now=100.0) == full


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("json_in_sql", [True, False])
def test_the_head_of_a_clusters_queue_is_the_first_of_the_scheduler_order(store, seed, json_in_sql):
    _fill(store, seed)
    store._json_in_sql = json_in_sql
    for workspace in ("w1", "w2"):
        for cluster in ("a", "b"):
            whole = store.job_briefs("queued", workspace=workspace, cluster=cluster)
            ordered = [j.id for j in sorted(whole, key=lambda j: (-j.priority, j.id))]
            for first in (1, 3, len(ordered), len(ordered) + 5):
                head = store.job_briefs("queued", workspace=workspace, cluster=cluster, first=first)
                assert [j.id for j in head] == ordered[:first]
                assert all(j in whole for j in head)
