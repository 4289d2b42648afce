"""Tests for the pure scheduler: every case is plain data in, decisions out."""

from __future__ import annotations

import random

import pytest

from batchai_jupyter.core.engine import _free_after
from batchai_jupyter.core.scheduler import (
    ClusterView,
    KillJob,
    NodeView,
    QueuedJob,
    RemoveIdleNodes,
    RunningJob,
    ScaleCluster,
    StartJob,
    format_duration,
    order_queue,
    plan,
    queue_position,
)

HIGH, NORMAL, LOW = 100, 0, -100


def manual(target=4, key="c"):
    return ClusterView(key=key, mode="manual", target=target, current_nodes=target)


def auto(minimum=0, maximum=4, current=0, idle_timeout=300.0, key="c"):
    return ClusterView(
        key=key,
        mode="auto",
        target=0,
        minimum=minimum,
        maximum=maximum,
        idle_seconds_before_scaledown=idle_timeout,
        current_nodes=current,
    )


def idle(*ids, since=0.0, cluster="c"):
    return [NodeView(i, cluster, "idle", since) for i in ids]


def busy(*ids, cluster="c"):
    return [NodeView(i, cluster, "running") for i in ids]


def job(id, n=1, prio=NORMAL, seq=None, wall=100.0, cluster="c"):
    return QueuedJob(
        id=id, cluster=cluster, priority=prio, seq=id if seq is None else seq, node_count=n, max_wall_clock=wall
    )


def run(id, node_ids, start=0.0, wall=100.0, cluster="c"):
    return RunningJob(id=id, cluster=cluster, node_ids=tuple(node_ids), started_at=start, max_wall_clock=wall)


def starts(decisions):
    return {d.job_id: d.node_ids for d in decisions if isinstance(d, StartJob)}


def of_type(decisions, kind):
    return [d for d in decisions if isinstance(d, kind)]


# --- basics ------------------------------------------------------------------------------------


def test_nothing_to_do():
    assert plan([manual()], idle(1, 2), [], [], now=0.0) == []


def test_single_job_gets_lowest_idle_node():
    assert plan([manual()], idle(3, 1, 2), [job(7)], [], now=0.0) == [StartJob(7, (1,))]


def test_jobs_for_unknown_clusters_are_ignored():
    assert plan([manual(key="c")], idle(1), [job(1, cluster="other")], [], now=0.0) == []


# --- priority and FIFO -------------------------------------------------------------------------


def test_high_before_normal_before_low_on_one_node():
    queue = [job(1, prio=LOW), job(2, prio=NORMAL), job(3, prio=HIGH)]
    assert plan([manual()], idle(1), queue, [], now=0.0) == [StartJob(3, (1,))]


def test_priority_order_decides_node_assignment():
    queue = [job(1, prio=LOW), job(2, prio=NORMAL), job(3, prio=HIGH)]
    assert plan([manual()], idle(1, 2, 3), queue, [], now=0.0) == [
        StartJob(3, (1,)),
        StartJob(2, (2,)),
        StartJob(1, (3,)),
    ]


def test_legacy_integer_priorities():
    queue = [job(1, prio=-1000), job(2, prio=20), job(3, prio=1000), job(4, prio=500)]
    assert [d.job_id for d in plan([manual()], idle(1, 2), queue, [], now=0.0)] == [3, 4]


def test_fifo_within_a_priority():
    queue = [job(1, seq=30), job(2, seq=10), job(3, seq=20)]
    assert plan([manual()], idle(1), queue, [], now=0.0) == [StartJob(2, (1,))]


def test_fifo_ties_broken_by_id():
    queue = [job(9, seq=5), job(4, seq=5)]
    assert plan([manual()], idle(1), queue, [], now=0.0) == [StartJob(4, (1,))]


# --- gang allocation ---------------------------------------------------------------------------


def test_two_node_job_waits_with_one_idle_node():
    assert plan([manual(2)], idle(1) + busy(2), [job(1, n=2)], [run(9, [2])], now=0.0) == []


def test_two_node_job_starts_with_two_idle_nodes():
    assert plan([manual(2)], idle(1, 2), [job(1, n=2)], [], now=0.0) == [StartJob(1, (1, 2))]


def test_gang_gets_exactly_node_count_nodes():
    assert plan([manual()], idle(4, 3, 2, 1), [job(1, n=3)], [], now=0.0) == [StartJob(1, (1, 2, 3))]


@pytest.mark.parametrize("state", ["preparing", "running", "leaving", "unusable"])
def test_non_idle_nodes_are_never_allocated(state):
    nodes = [NodeView(1, "c", state), *idle(2)]
    assert plan([manual(2)], nodes, [job(1, n=2)], [], now=0.0) == []
    assert plan([manual(2)], nodes, [job(1)], [], now=0.0) == [StartJob(1, (2,))]


def test_idle_node_still_listed_by_a_running_job_is_not_allocated():
    assert plan([manual(2)], idle(1, 2), [job(1)], [run(9, [1])], now=0.0) == [StartJob(1, (2,))]


def test_nodes_of_other_clusters_are_not_allocated():
    nodes = idle(1, cluster="other") + idle(2)
    assert plan([manual(key="c")], nodes, [job(1, n=2)], [], now=0.0) == []


# --- backfill and reservations -----------------------------------------------------------------
# Shared layout: job 9 runs on nodes 1-2 until t=100, so a head needing 3 or 4 nodes has its
# shadow time at 100.


def test_backfill_long_job_onto_nodes_beyond_the_reservation():
    # Head needs 3: at t=100 nodes 1-2 free, so it needs only one idle node held (3); node 4 is
    # free for any job, however long.
    nodes = busy(1, 2) + idle(3, 4)
    queue = [job(1, n=3, prio=HIGH), job(2, wall=10_000), job(3, wall=10_000)]
    assert plan([manual()], nodes, queue, [run(9, [1, 2])], now=10.0) == [StartJob(2, (4,))]


def test_no_backfill_onto_held_nodes_when_it_would_delay_the_head():
    nodes = busy(1, 2) + idle(3)
    queue = [job(1, n=3, prio=HIGH), job(2, wall=500.0)]
    assert plan([manual(3)], nodes, queue, [run(9, [1, 2])], now=10.0) == []


def test_backfill_onto_held_nodes_when_it_ends_by_the_shadow_time():
    nodes = busy(1, 2) + idle(3)
    queue = [job(1, n=3, prio=HIGH), job(2, wall=90.0)]
    assert plan([manual(3)], nodes, queue, [run(9, [1, 2])], now=10.0) == [StartJob(2, (3,))]


def test_backfill_onto_held_nodes_refused_one_second_past_the_shadow():
    nodes = busy(1, 2) + idle(3)
    queue = [job(1, n=3, prio=HIGH), job(2, wall=91.0)]
    assert plan([manual(3)], nodes, queue, [run(9, [1, 2])], now=10.0) == []


def test_short_backfill_takes_held_nodes_first_leaving_free_ones_for_long_jobs():
    nodes = busy(1, 2) + idle(3, 4)
    queue = [job(1, n=3, prio=HIGH), job(2, wall=50.0), job(3, wall=10_000)]
    assert plan([manual()], nodes, queue, [run(9, [1, 2])], now=10.0) == [StartJob(2, (3,)), StartJob(3, (4,))]


def test_head_waiting_for_two_running_jobs_uses_the_later_end_as_shadow():
    nodes = busy(1, 2) + idle(3)
    running = [run(8, [1], wall=50.0), run(9, [2], wall=200.0)]
    queue = [job(1, n=3, prio=HIGH), job(2, wall=150.0), job(3, wall=190.0)]
    assert plan([manual(3)], nodes, queue, running, now=10.0) == [StartJob(2, (3,))]


def test_shadow_counts_jobs_started_in_the_same_plan():
    # Job 1 takes nodes 1-2 until t=50; head 2 needs all 4, so nodes 3-4 are held until 50.
    queue = [job(1, n=2, prio=HIGH, wall=50.0), job(2, n=4, prio=HIGH), job(3, n=2, wall=40.0), job(4, wall=60.0)]
    assert plan([manual()], idle(1, 2, 3, 4), queue, [], now=0.0) == [StartJob(1, (1, 2)), StartJob(3, (3, 4))]


def test_unknown_shadow_holds_every_idle_node():
    # Node 3 is unusable and nothing runs: nobody knows when the head can start.
    nodes = idle(1, 2) + [NodeView(3, "c", "unusable")]
    queue = [job(1, n=3, prio=HIGH), job(2, wall=1.0)]
    assert plan([manual(3)], nodes, queue, [], now=0.0) == []


def test_preparing_nodes_may_arrive_any_moment_so_no_borrowing():
    nodes = idle(1, 2) + [NodeView(3, "c", "preparing")]
    queue = [job(1, n=3, prio=HIGH), job(2, wall=1.0)]
    assert plan([manual(3)], nodes, queue, [], now=0.0) == []


def test_only_the_first_blocker_gets_a_reservation():
    # Head 1 holds nodes 3-4; job 2 is blocked too but reserves nothing, so long job 3 starts on 5.
    nodes = busy(1, 2) + idle(3, 4, 5)
    queue = [job(1, n=4, prio=HIGH), job(2, n=2, wall=10_000), job(3, wall=10_000)]
    assert plan([manual(5)], nodes, queue, [run(9, [1, 2])], now=10.0) == [StartJob(3, (5,))]


def test_job_behind_the_head_that_fits_before_shadow_needs_enough_nodes():
    nodes = busy(1, 2) + idle(3)
    queue = [job(1, n=3, prio=HIGH), job(2, n=2, wall=10.0)]
    assert plan([manual(3)], nodes, queue, [run(9, [1, 2])], now=10.0) == []


# --- jobs that can never fit -------------------------------------------------------------------


def test_oversized_job_does_not_block_others_on_manual_cluster():
    queue = [job(1, n=3, prio=HIGH), job(2), job(3, wall=10_000)]
    assert plan([manual(2)], idle(1, 2), queue, [], now=0.0) == [StartJob(2, (1,)), StartJob(3, (2,))]


def test_oversized_job_does_not_block_others_on_auto_cluster():
    queue = [job(1, n=5, prio=HIGH), job(2)]
    decisions = plan([auto(maximum=2, current=2)], idle(1, 2), queue, [], now=0.0)
    assert decisions == [StartJob(2, (1,))]


def test_oversized_job_stays_queued_for_the_ui():
    queue = [job(1, n=3, prio=HIGH), job(2)]
    assert queue_position(queue, 1) == 1 and queue_position(queue, 2) == 2


# --- wall clock --------------------------------------------------------------------------------


def test_kill_at_max_wall_clock():
    decisions = plan([manual()], busy(1), [], [run(5, [1], start=10.0, wall=2.0)], now=12.0)
    assert decisions == [
        KillJob(5, "MaxWallClockTimeExceeded", "Job exceeded its maximum wall-clock time of 0:00:02 and was killed")
    ]


def test_no_kill_before_max_wall_clock():
    assert plan([manual()], busy(1), [], [run(5, [1], start=10.0, wall=2.0)], now=11.9) == []


def test_killed_jobs_nodes_are_not_free_in_the_same_plan():
    nodes = [NodeView(1, "c", "running")]
    decisions = plan([manual(1)], nodes, [job(1)], [run(5, [1], wall=2.0)], now=3.0)
    assert of_type(decisions, StartJob) == []
    assert [d.job_id for d in of_type(decisions, KillJob)] == [5]


def test_kills_come_first_sorted_by_job_id():
    running = [run(7, [1], wall=1.0), run(3, [2], wall=1.0), run(4, [3], wall=10.0)]
    decisions = plan([manual()], busy(1, 2, 3) + idle(4), [job(1)], running, now=5.0)
    assert [type(d).__name__ for d in decisions] == ["KillJob", "KillJob", "StartJob"]
    assert [d.job_id for d in decisions] == [3, 7, 1]


@pytest.mark.parametrize(
    "seconds, text", [(2.0, "0:00:02"), (3725, "1:02:05"), (7 * 24 * 3600.0, "168:00:00"), (1.5, "0:00:01.5")]
)
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


# --- auto-scale --------------------------------------------------------------------------------


def test_scale_up_to_demand():
    decisions = plan([auto(maximum=10)], [], [job(1, n=2), job(2, n=3)], [], now=0.0)
    assert decisions == [ScaleCluster("c", 5, decisions[0].reason)]
    assert "5" in decisions[0].reason


def test_scale_up_capped_at_maximum():
    decisions = plan([auto(maximum=6)], [], [job(1, n=4), job(2, n=4)], [], now=0.0)
    assert [(d.cluster, d.target) for d in decisions] == [("c", 6)]


def test_oversized_job_counts_only_up_to_maximum_in_demand():
    decisions = plan([auto(maximum=6, current=2)], busy(1, 2), [job(1, n=20)], [run(9, [1, 2])], now=0.0)
    assert [d.target for d in of_type(decisions, ScaleCluster)] == [6]
    decisions = plan([auto(maximum=10, current=0)], [], [job(1, n=20), job(2, n=1)], [], now=0.0)
    assert [d.target for d in of_type(decisions, ScaleCluster)] == [10]


def test_running_jobs_count_toward_demand():
    decisions = plan([auto(maximum=10, current=3)], busy(1, 2, 3), [job(1, n=2)], [run(9, [1, 2, 3])], now=0.0)
    assert [d.target for d in decisions] == [5]


def test_scale_up_to_minimum_when_empty():
    decisions = plan([auto(minimum=2, maximum=4, current=0)], [], [], [], now=0.0)
    assert [(d.target, "minimum" in d.reason) for d in decisions] == [(2, True)]


def test_no_scaling_when_at_demand():
    assert plan([auto(minimum=2, maximum=4, current=2)], idle(1, 2), [], [], now=10.0) == []


def test_scale_up_and_start_in_the_same_plan():
    decisions = plan([auto(maximum=4, current=1)], idle(1), [job(1), job(2, n=2)], [], now=0.0)
    assert decisions == [StartJob(1, (1,)), ScaleCluster("c", 3, decisions[1].reason)]


def test_idle_scale_down_after_timeout():
    cluster = auto(maximum=4, current=2, idle_timeout=300.0)
    assert plan([cluster], idle(1, 2, since=0.0), [], [], now=300.0) == [RemoveIdleNodes("c", (1, 2))]


def test_no_idle_scale_down_before_timeout():
    cluster = auto(maximum=4, current=2, idle_timeout=300.0)
    assert plan([cluster], idle(1, 2, since=0.0), [], [], now=299.9) == []


def test_only_expired_nodes_are_removed():
    nodes = idle(1, since=0.0) + idle(2, since=200.0)
    assert plan([auto(maximum=4, current=2)], nodes, [], [], now=300.0) == [RemoveIdleNodes("c", (1,))]


def test_idle_scale_down_never_below_minimum_longest_idle_first():
    nodes = [NodeView(1, "c", "idle", 50.0), NodeView(2, "c", "idle", 0.0), NodeView(3, "c", "idle", 10.0)]
    decisions = plan([auto(minimum=1, maximum=4, current=3)], nodes, [], [], now=1000.0)
    assert decisions == [RemoveIdleNodes("c", (2, 3))]


def test_node_without_idle_since_is_not_removed():
    nodes = [NodeView(1, "c", "idle", None)]
    assert plan([auto(maximum=4, current=1)], nodes, [], [], now=1e9) == []


def test_no_scale_down_below_demand_of_a_waiting_job():
    nodes = idle(1, 2) + [NodeView(3, "c", "preparing")]
    assert plan([auto(maximum=4, current=3)], nodes, [job(1, n=3)], [], now=1000.0) == []


def test_scale_down_never_removes_a_node_started_on():
    decisions = plan([auto(maximum=4, current=2)], idle(1, 2), [job(1)], [], now=1000.0)
    assert decisions == [StartJob(1, (1,)), RemoveIdleNodes("c", (2,))]


def test_scale_down_never_removes_busy_nodes():
    nodes = idle(1) + [NodeView(2, "c", "idle", 0.0)]  # 2 is still listed by a running job
    decisions = plan([auto(maximum=4, current=2)], nodes, [], [run(9, [2], wall=1e6)], now=1000.0)
    assert decisions == [RemoveIdleNodes("c", (1,))]


def test_manual_cluster_is_never_scaled_by_the_scheduler():
    queue = [job(1, n=2), job(2, n=3)]
    assert plan([manual(2)], idle(1, 2, since=0.0), queue, [], now=1e6) == [StartJob(1, (1, 2))]
    assert plan([manual(2)], idle(1, 2, since=0.0), [], [], now=1e6) == []


def test_auto_headroom_means_no_borrowing_of_held_nodes():
    # The head can start as soon as the scale-up lands, so a short job may not take its nodes.
    decisions = plan([auto(maximum=4, current=2)], idle(1, 2), [job(1, n=3, prio=HIGH), job(2, wall=1.0)], [], now=0.0)
    assert of_type(decisions, StartJob) == []
    assert [d.target for d in of_type(decisions, ScaleCluster)] == [4]


def test_auto_headroom_counts_as_arriving_now_for_the_shadow():
    # Node 3 frees at t=100, but one more node can be added at any moment, so job 2 may not
    # borrow; the same layout on a manual cluster lets it.
    nodes, running = idle(1, 2) + busy(3), [run(9, [3], wall=100.0)]
    queue = [job(1, n=3, prio=HIGH), job(2, wall=50.0)]
    decisions = plan([auto(maximum=4, current=3)], nodes, queue, running, now=10.0)
    assert of_type(decisions, StartJob) == []
    assert [d.target for d in of_type(decisions, ScaleCluster)] == [4]
    assert plan([manual(3)], nodes, queue, running, now=10.0) == [StartJob(2, (1,))]


def test_scale_down_never_removes_nodes_held_for_the_head():
    # Four unusable nodes inflate current_nodes above demand (and fill the maximum), yet the head
    # needs nodes 1-2.
    nodes = idle(1, 2) + [NodeView(i, "c", "unusable") for i in (3, 4, 5, 6)]
    decisions = plan([auto(maximum=6, current=6)], nodes, [job(1, n=3)], [], now=1000.0)
    assert decisions == []


def unusable(*ids, since=0.0, cluster="c"):
    return [NodeView(i, cluster, "unusable", since) for i in ids]


def test_auto_cluster_grows_past_unusable_nodes_up_to_its_maximum():
    # Node 1 failed its setup: the waiting job needs one usable node, so the cluster adds one.
    decisions = plan([auto(maximum=2, current=1)], unusable(1, since=999.0), [job(1)], [], now=1000.0)
    assert [d.target for d in of_type(decisions, ScaleCluster)] == [2]
    assert "1 unusable" in decisions[0].reason
    # Never above the maximum, however many nodes are unusable.
    assert plan([auto(maximum=2, current=2)], unusable(1, 2, since=999.0), [job(1)], [], now=1000.0) == []


def test_unusable_nodes_go_first_on_scale_down_after_the_idle_timeout():
    cluster = auto(maximum=4, current=3, idle_timeout=300.0)
    nodes = unusable(1, since=500.0) + idle(2, 3, since=0.0)
    assert plan([cluster], nodes, [], [], now=700.0) == [RemoveIdleNodes("c", (2, 3))]
    assert plan([cluster], nodes, [], [], now=800.0) == [RemoveIdleNodes("c", (1, 2, 3))]
    # One spare node (minimum 2): the unusable one goes before an idle one that has waited longer.
    cluster = auto(minimum=2, maximum=4, current=3, idle_timeout=300.0)
    assert plan([cluster], nodes, [], [], now=800.0) == [RemoveIdleNodes("c", (1,))]


def test_unusable_node_is_replaced_while_a_job_waits():
    # Both nodes unusable, the maximum reached: one is removed after the timeout, so a fresh node
    # (a new try of the setup task) can take its place.
    cluster = auto(maximum=2, current=2, idle_timeout=60.0)
    nodes = unusable(1, since=0.0) + unusable(2, since=30.0)
    assert plan([cluster], nodes, [job(1)], [], now=59.0) == []
    assert plan([cluster], nodes, [job(1)], [], now=60.0) == [RemoveIdleNodes("c", (1,))]


def test_manual_cluster_never_replaces_unusable_nodes():
    assert plan([manual(2)], unusable(1, 2), [job(1)], [], now=1e6) == []


# --- several clusters, determinism -------------------------------------------------------------


def test_clusters_are_planned_independently_in_key_order():
    clusters = [manual(1, key="b"), manual(1, key="a")]
    nodes = idle(1, cluster="b") + idle(2, cluster="a")
    queue = [job(1, cluster="b"), job(2, cluster="a")]
    assert plan(clusters, nodes, queue, [], now=0.0) == [StartJob(2, (2,)), StartJob(1, (1,))]


def _random_state(rng: random.Random):
    clusters = [manual(4, key="m"), auto(minimum=1, maximum=6, current=5, key="a")]
    nodes, running, node_id = [], [], 1
    for cluster in ("m", "m", "m", "m", "a", "a", "a", "a", "a"):
        state = rng.choice(["idle", "idle", "running", "preparing", "unusable"])
        nodes.append(NodeView(node_id, cluster, state, rng.choice([None, 0.0, 900.0])))
        if state == "running":
            running.append(
                run(
                    100 + node_id, [node_id], start=rng.uniform(0, 900), wall=rng.choice([50.0, 500.0]), cluster=cluster
                )
            )
        node_id += 1
    queued = [
        job(
            i,
            n=rng.randint(1, 5),
            prio=rng.choice([HIGH, NORMAL, LOW, 7]),
            seq=rng.randint(0, 5),
            wall=rng.choice([10.0, 100.0, 1e4]),
            cluster=rng.choice(["m", "a"]),
        )
        for i in range(1, 12)
    ]
    return clusters, nodes, queued, running


@pytest.mark.parametrize("seed", range(20))
def test_deterministic_under_input_order_and_invariants_hold(seed):
    rng = random.Random(seed)
    clusters, nodes, queued, running = _random_state(rng)
    expected = plan(clusters, nodes, queued, running, now=1000.0)
    assert plan(clusters, nodes, queued, running, now=1000.0) == expected
    for _ in range(5):
        shuffled = [rng.sample(x, len(x)) for x in (clusters, nodes, queued, running)]
        assert plan(*shuffled, now=1000.0) == expected
    by_id = {n.id: n for n in nodes}
    jobs = {j.id: j for j in queued}
    taken = [i for d in of_type(expected, StartJob) for i in d.node_ids]
    assert len(taken) == len(set(taken))
    busy_ids = {i for r in running for i in r.node_ids}
    for d in of_type(expected, StartJob):
        assert len(d.node_ids) == jobs[d.job_id].node_count
        assert all(by_id[i].state == "idle" and i not in busy_ids for i in d.node_ids)
        assert all(by_id[i].cluster == jobs[d.job_id].cluster for i in d.node_ids)
    removed = {i for d in of_type(expected, RemoveIdleNodes) for i in d.node_ids}
    assert not removed & set(taken)


# --- UI helpers --------------------------------------------------------------------------------


def test_order_queue_and_positions_per_cluster():
    queue = [job(1, prio=LOW), job(2, cluster="x"), job(3, prio=HIGH), job(4), job(5, cluster="x")]
    assert [j.id for j in order_queue(queue)] == [3, 2, 4, 5, 1]
    assert [queue_position(queue, i) for i in (3, 4, 1)] == [1, 2, 3]
    assert [queue_position(queue, i) for i in (2, 5)] == [1, 2]


def test_queue_position_of_unknown_job():
    with pytest.raises(KeyError):
        queue_position([job(1)], 99)


# --- starvation: a tiny pure simulation over many plan() rounds --------------------------------

BIG = 100


def greedy_without_reservations(clusters, nodes, queued, running, now):
    """The naive policy backfill must beat: start whatever fits, in queue order."""
    free = sorted(n.id for n in nodes if n.state == "idle")
    out = []
    for j in order_queue(queued):
        if j.node_count <= len(free):
            out.append(StartJob(j.id, tuple(free[: j.node_count])))
            del free[: j.node_count]
    return out


def simulate(planner, rounds=80):
    """Four nodes; jobs run exactly their wall clock; a 1-node job arrives every tick (short
    and long alternating) behind a big high-priority job that needs all four nodes."""
    cluster = manual(4)
    idle_since = {1: None, 2: None, 3: None, 4: 0.0}  # None: busy
    running = {i: run(i, [i], start=0.0, wall=float(end)) for i, end in ((1, 5), (2, 7), (3, 9))}
    queued = {BIG: job(BIG, n=4, prio=HIGH, seq=0, wall=50.0)}
    started = {}
    for tick in range(rounds):
        now = float(tick)
        for r in [r for r in running.values() if now >= r.started_at + r.max_wall_clock]:
            idle_since.update({i: now for i in r.node_ids})
            del running[r.id]
        queued[1000 + tick] = job(1000 + tick, seq=tick + 1, wall=3.0 if tick % 2 == 0 else 30.0)
        nodes = [NodeView(i, "c", "running" if s is None else "idle", s) for i, s in idle_since.items()]
        for d in planner([cluster], nodes, list(queued.values()), list(running.values()), now):
            assert isinstance(d, StartJob)
            j = queued.pop(d.job_id)
            running[j.id] = run(j.id, d.node_ids, start=now, wall=j.max_wall_clock)
            idle_since.update({i: None for i in d.node_ids})
            started[j.id] = now
    return started


def test_big_head_starts_as_soon_as_the_running_jobs_free_its_nodes():
    started = simulate(plan)
    assert started[BIG] == 9.0  # the last initial job ends at 9: not a tick later
    before = sorted(i - 1000 for i, t in started.items() if i != BIG and t < started[BIG])
    assert before == [0, 2, 4, 6]  # short jobs backfilled, each ending by t=9
    assert all(t >= 59.0 for i, t in started.items() if (i - 1000) % 2 and i != BIG)
    assert any(t >= 59.0 for t in started.values())  # the stream carries on after the big job


def test_without_reservations_the_same_stream_starves_the_big_job():
    assert BIG not in simulate(greedy_without_reservations)


@pytest.mark.parametrize("seed", range(40))
def test_a_queue_head_that_takes_every_free_node_decides_as_the_whole_queue(seed):
    """What Engine._schedule relies on to read only the head of a manual cluster's queue: once the
    head's starts leave no idle or preparing node free, no job further back changes the decisions."""
    rng = random.Random(seed)
    nodes = [
        NodeView(i, "c", rng.choice(["idle", "idle", "running", "preparing", "unusable"]), 0.0) for i in range(1, 7)
    ]
    running = [run(100, [n.id]) for n in nodes if n.state == "running" and rng.random() < 0.8]
    sizes, priorities, walls = [1, 1, 2, 3, 7], [HIGH, NORMAL, LOW], [5.0, 50.0, 500.0]
    queue = order_queue(
        [job(i, n=rng.choice(sizes), prio=rng.choice(priorities), wall=rng.choice(walls)) for i in range(1, 40)]
    )
    whole = plan([manual(target=6)], nodes, queue, running, now=10.0)
    for size in range(len(queue) + 1):
        head = plan([manual(target=6)], nodes, queue[:size], running, now=10.0)
        if not _free_after(head, nodes, running):
            assert head == whole, size
