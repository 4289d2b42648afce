"""The lifecycle's tables, row by row, written out here on their own (not read back from the
module), so a changed transition shows up as a failing row; and every pair not listed is refused."""

from __future__ import annotations

import itertools

import pytest

from batchai_jupyter.core import lifecycle as lc
from batchai_jupyter.core.lifecycle import (
    ArchiveLogs,
    CancelInScheduler,
    ClaimNodes,
    FailJob,
    FlushOutputs,
    IllegalTransition,
    JobEvent,
    JobState,
    KillSetup,
    KillTasks,
    LaunchMain,
    NextAttempt,
    NodeEvent,
    NodeState,
    PrepareAndLaunch,
    ReleaseNodes,
    TaskBrief,
    TaskEvent,
    TaskState,
)

END = (KillTasks(force=True), FlushOutputs(), ReleaseNodes())
REQUEUE = (KillTasks(force=True), ArchiveLogs(), FlushOutputs(), ReleaseNodes())

# (state, event, next state, effects, what it is)
JOB_ROWS = [
    ("queued", "start", "running", (ClaimNodes(), PrepareAndLaunch()), "placed on nodes"),
    ("queued", "scheduler_started", "running", (), "a scheduler backend runs it"),
    ("queued", "terminate", "failed", END, "terminated before it started"),
    ("queued", "terminate_handed_over", "terminating", (CancelInScheduler(),), "terminated while queued in Slurm"),
    ("queued", "submission_failed", "failed", END, "the scheduler refused it"),
    ("queued", "start_failed", "failed", END, "starting raised before the claim"),
    ("queued", "cluster_deleted", "failed", END, "cluster deleted under a queued job"),
    ("running", "prep_done", "running", (LaunchMain(),), "job preparation succeeded"),
    ("running", "terminate", "terminating", (KillTasks(force=False),), "terminate (also while preparing)"),
    ("running", "terminate_handed_over", "terminating", (CancelInScheduler(),), "terminate a Slurm job"),
    ("running", "succeeded", "succeeded", END, "every required task exited 0"),
    ("running", "outputs_failed", "failed", (), "succeeded, but the final upload failed"),
    ("running", "task_failed_retry", "queued", (*REQUEUE, NextAttempt(count_as_retry=True)), "retry"),
    ("running", "task_failed", "failed", END, "retries exhausted"),
    ("running", "node_lost_retry", "queued", (*REQUEUE, NextAttempt(count_as_retry=True)), "node lost, retry"),
    ("running", "node_lost", "failed", END, "node lost, retries exhausted"),
    (
        "running",
        "resize_requeue",
        "queued",
        (*REQUEUE, NextAttempt(count_as_retry=False)),
        "resize, nodeDeallocationOption requeue",
    ),
    ("running", "resize_terminate", "failed", END, "resize, nodeDeallocationOption terminate"),
    (
        "running",
        "interrupted",
        "queued",
        (*REQUEUE, NextAttempt(count_as_retry=False)),
        "service restarted while ending an attempt",
    ),
    ("running", "interrupted_again", "failed", END, "interrupted MAX_INTERRUPTIONS times in a row"),
    ("running", "start_failed", "failed", END, "starting raised after the claim"),
    ("running", "scheduler_ended", "failed", END, "Slurm ended it (timeout, cancelled)"),
    ("running", "cluster_deleted", "failed", END, "cluster deleted under a running job"),
    ("running", "deleted", "failed", END, "job deleted while running"),
    ("terminating", "terminate", "terminating", (), "terminated twice: the first grace counts"),
    ("terminating", "terminate_handed_over", "terminating", (), "terminated twice (Slurm)"),
    ("terminating", "tasks_stopped", "failed", END, "tasks ended or grace over"),
    ("terminating", "scheduler_ended", "failed", END, "Slurm ended the cancelled job"),
    ("terminating", "node_lost", "failed", END, "node lost while terminating"),
    ("terminating", "node_lost_retry", "failed", END, "node lost while terminating: no retry"),
    ("terminating", "task_failed", "failed", END, "a task failed while terminating"),
    ("terminating", "task_failed_retry", "failed", END, "a task failed while terminating: no retry"),
    ("terminating", "succeeded", "failed", END, "finished during the grace: still terminated"),
    ("terminating", "resize_requeue", "failed", END, "resize while terminating: terminate wins"),
    ("terminating", "resize_terminate", "failed", END, "resize (terminate) while terminating"),
    ("terminating", "interrupted", "failed", END, "service restarted while terminating"),
    ("terminating", "interrupted_again", "failed", END, "the same, once too often"),
    ("terminating", "start_failed", "failed", END, "start failure seen while terminating"),
    ("terminating", "cluster_deleted", "failed", END, "cluster deleted while terminating"),
    ("terminating", "deleted", "failed", END, "job deleted while terminating"),
]

TASK_ROWS = [
    ("running", "exited", "exited", (), "its wrapper recorded an exit code"),
    ("running", "lost", "lost", (), "its wrapper vanished, or its host"),
    ("running", "killed", "killed", (), "killed when its attempt ended"),
]

REPORTED = {
    "reported_preparing": "preparing",
    "reported_idle": "idle",
    "reported_running": "running",
    "reported_unusable": "unusable",
}
NODE_ROWS = [
    ("preparing", "ready", "idle", (), "setup task exited 0 (or none)"),
    ("preparing", "setup_failed", "unusable", (), "provisioning, mounts or setup failed"),
    ("idle", "claimed", "running", (), "a job starts on it"),
    ("running", "released", "idle", (), "its job ended"),
    ("leaving", "released", "leaving", (), "its job ended; the resize removes it next"),
    ("running", "drain", "leaving", (), "resize, nodeDeallocationOption waitforjobcompletion"),
    ("idle", "unreachable", "unusable", (), "host stopped answering"),
    ("running", "unreachable", "unusable", (FailJob(),), "host stopped answering during a job"),
    ("unusable", "reachable", "idle", (), "host answers again"),
    *[
        (state, event, target, (), "Slurm reports it")
        for state in ("preparing", "idle", "running", "unusable")
        for event, target in REPORTED.items()
    ],
]


@pytest.mark.parametrize("state, event, target, effects, what", JOB_ROWS, ids=[f"{r[0]}-{r[1]}" for r in JOB_ROWS])
def test_job_transition(state, event, target, effects, what):
    transition = lc.job_transition(state, event)
    assert (transition.state, transition.effects) == (target, effects), what


@pytest.mark.parametrize("state, event, target, effects, what", TASK_ROWS, ids=[f"{r[0]}-{r[1]}" for r in TASK_ROWS])
def test_task_transition(state, event, target, effects, what):
    transition = lc.task_transition(state, event)
    assert (transition.state, transition.effects) == (target, effects), what


@pytest.mark.parametrize("state, event, target, effects, what", NODE_ROWS, ids=[f"{r[0]}-{r[1]}" for r in NODE_ROWS])
def test_node_transition(state, event, target, effects, what):
    transition = lc.node_transition(state, event)
    assert (transition.state, transition.effects) == (target, effects), what


def _unlisted(rows, states, events):
    listed = {(r[0], r[1]) for r in rows}
    return [(s.value, e.value) for s, e in itertools.product(states, events) if (s.value, e.value) not in listed]


ILLEGAL = (
    [("job", *pair) for pair in _unlisted(JOB_ROWS, JobState, JobEvent)]
    + [("task", *pair) for pair in _unlisted(TASK_ROWS, TaskState, TaskEvent)]
    + [("node", *pair) for pair in _unlisted(NODE_ROWS, NodeState, NodeEvent)]
)


@pytest.mark.parametrize("machine, state, event", ILLEGAL, ids=["-".join(case) for case in ILLEGAL])
def test_every_other_pair_is_refused_with_what_is_allowed(machine, state, event):
    step = {"job": lc.job_transition, "task": lc.task_transition, "node": lc.node_transition}[machine]
    with pytest.raises(IllegalTransition) as refused:
        step(state, event)
    message = str(refused.value)
    assert f"a {machine} in state {state!r} cannot take event {event!r}" in message
    if state in ("succeeded", "failed", "exited", "lost", "killed"):
        assert "none (a final state)" in message


def test_final_job_states_take_no_event():
    for state, event in itertools.product(("succeeded", "failed"), JobEvent):
        with pytest.raises(IllegalTransition):
            lc.job_transition(state, event.value)


def test_unknown_states_and_events_are_refused_by_name():
    with pytest.raises(IllegalTransition, match="'paused' cannot take event 'start'"):
        lc.job_transition("paused", "start")
    with pytest.raises(IllegalTransition, match="'running' cannot take event 'explode'.*terminate"):
        lc.job_transition("running", "explode")


def test_every_end_of_an_attempt_kills_all_its_tasks_with_force():
    ends = [
        (s, e)
        for (s, e), t in lc.JOB_TRANSITIONS.items()
        if t.state in ("succeeded", "failed", "queued") and s != JobState.QUEUED and e != JobEvent.OUTPUTS_FAILED
    ]
    assert ends
    for state, event in ends:
        effects = lc.job_transition(state.value, event.value).effects
        assert effects[0] == KillTasks(force=True), (state, event)
        assert ReleaseNodes() in effects, (state, event)


def test_a_preparing_node_kills_its_setup_task_when_removed():
    assert lc.REMOVAL_EFFECTS[NodeState.PREPARING] == (KillSetup(),)
    assert all(lc.REMOVAL_EFFECTS[s] == () for s in NodeState if s != NodeState.PREPARING)


@pytest.mark.parametrize(
    "used, allowed, node_lost, event",
    [
        (0, 0, False, JobEvent.TASK_FAILED),
        (0, 1, False, JobEvent.TASK_FAILED_RETRY),
        (1, 1, False, JobEvent.TASK_FAILED),  # retries exhausted
        (2, 3, True, JobEvent.NODE_LOST_RETRY),
        (3, 3, True, JobEvent.NODE_LOST),
    ],
)
def test_failure_event_spends_retries(used, allowed, node_lost, event):
    assert lc.failure_event(used, allowed, node_lost) == event


def brief(state, code=None, required=True):
    return TaskBrief(state, code, required)


@pytest.mark.parametrize(
    "phase, tasks, event",
    [
        ("main", [brief("running"), brief("exited", 0)], None),
        ("main", [brief("exited", 0), brief("exited", 0)], JobEvent.SUCCEEDED),
        ("prep", [brief("exited", 0)], JobEvent.PREP_DONE),
        ("prep", [brief("exited", 3)], JobEvent.TASK_FAILED),
        ("main", [brief("running"), brief("exited", 1)], JobEvent.TASK_FAILED),  # rank 1 failed, rank 0 runs
        ("main", [brief("running"), brief("lost")], JobEvent.TASK_FAILED),
        # parameter servers never end by themselves: the required workers decide
        ("main", [brief("exited", 0), brief("running", required=False)], JobEvent.SUCCEEDED),
        ("main", [brief("exited", 0), brief("killed", required=False)], JobEvent.SUCCEEDED),
        # the service stopped after marking the tasks killed and before the job's own state
        ("main", [brief("killed"), brief("killed")], JobEvent.INTERRUPTED),
        ("prep", [brief("killed")], JobEvent.INTERRUPTED),
        # the service stopped after claiming the nodes and before recording the tasks: not a success
        ("", [], JobEvent.INTERRUPTED),
    ],
)
def test_phase_outcome(phase, tasks, event):
    assert lc.phase_outcome(phase, tasks) == event


def test_reported_node_event_names_the_reported_state():
    assert lc.reported_node_event("unusable") == NodeEvent.REPORTED_UNUSABLE
    with pytest.raises(IllegalTransition):
        lc.reported_node_event("leaving")


def test_explain_lists_every_transition():
    text = lc.explain()
    assert len(text.splitlines()) == len(JOB_ROWS) + len(TASK_ROWS) + len(NODE_ROWS)
    assert "job   terminating  --node_lost--> failed" in text
