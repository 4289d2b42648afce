"""The job, task and node state machines, as data: `(state, event) -> (next state, effects)`.

Pure: no I/O, no store. The Store asks this module for every state it writes (and refuses a pair
that is not in a table), and the JobRunner carries out a job transition's effects in the order
given. An attempt that ends, however it ends, kills every task it started with force: a task that
exited or was lost may have left processes behind (background children, escaped sessions), and a
node must be empty before it takes the next job.

Tables (`JOB_TRANSITIONS`, `TASK_TRANSITIONS`, `NODE_TRANSITIONS`) are what the closing note and
tests/core/test_lifecycle.py show; `explain()` prints them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from enum import Enum
from typing import TypeVar


class JobState(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    TERMINATING = "terminating"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class JobPhase(str, Enum):
    """How far a job's current attempt got (the `phase` column)."""

    NONE = ""  # queued with us
    SUBMITTED = "submitted"  # queued in a scheduler backend (Slurm)
    MOUNT = "mount"  # its nodes' mount commands run (on a thread of their own: they may take minutes)
    PREP = "prep"  # running its job preparation task
    MAIN = "main"  # running the toolkit's tasks


class TaskState(str, Enum):
    RUNNING = "running"
    EXITED = "exited"
    LOST = "lost"
    KILLED = "killed"


class NodeState(str, Enum):
    PREPARING = "preparing"
    IDLE = "idle"
    RUNNING = "running"
    LEAVING = "leaving"
    UNUSABLE = "unusable"


class JobEvent(str, Enum):
    START = "start"  # our scheduler placed the job on nodes
    SCHEDULER_STARTED = "scheduler_started"  # a scheduler backend started running it
    PREP_DONE = "prep_done"  # every job preparation task exited 0: the main tasks start
    TERMINATE = "terminate"  # the user, or the wall clock
    TERMINATE_HANDED_OVER = "terminate_handed_over"  # the same, for a job a scheduler backend holds
    SUCCEEDED = "succeeded"  # every required main task exited 0
    OUTPUTS_FAILED = "outputs_failed"  # ... but the final upload of its outputs failed
    TASK_FAILED_RETRY = "task_failed_retry"  # a task failed or was lost; a retry is left
    TASK_FAILED = "task_failed"  # the same with no retry left (retries exhausted)
    NODE_LOST_RETRY = "node_lost_retry"  # a node of the job stopped answering; a retry is left
    NODE_LOST = "node_lost"  # the same with no retry left
    TASKS_STOPPED = "tasks_stopped"  # a terminating job's tasks ended (or their grace ran out)
    RESIZE_REQUEUE = "resize_requeue"  # a resize took a node (nodeDeallocationOption requeue)
    RESIZE_TERMINATE = "resize_terminate"  # the same with nodeDeallocationOption terminate
    INTERRUPTED = "interrupted"  # the service stopped while it was starting or ending the attempt
    INTERRUPTED_AGAIN = "interrupted_again"  # the same, MAX_INTERRUPTIONS times in a row: not tried again
    START_FAILED = "start_failed"  # starting it raised
    SUBMISSION_FAILED = "submission_failed"  # a scheduler backend refused it
    SCHEDULER_ENDED = "scheduler_ended"  # a scheduler backend ended it (timeout, cancelled)
    CLUSTER_DELETED = "cluster_deleted"
    DELETED = "deleted"  # the job itself was deleted while running (a queued one just goes)


class TaskEvent(str, Enum):
    EXITED = "exited"
    LOST = "lost"
    KILLED = "killed"


class NodeEvent(str, Enum):
    READY = "ready"  # provisioned, mounts shown, setup task (if any) exited 0
    SETUP_FAILED = "setup_failed"  # provisioning, the cluster's mounts or the setup task failed
    CLAIMED = "claimed"  # a job starts on it
    RELEASED = "released"  # its job ended
    UNREACHABLE = "unreachable"  # its host stopped answering (backends with node health)
    REACHABLE = "reachable"  # an unreachable host answers again
    DRAIN = "drain"  # a resize takes it once its job is done (waitforjobcompletion)
    # What a scheduler backend reports is the truth for the nodes it owns.
    REPORTED_PREPARING = "reported_preparing"
    REPORTED_IDLE = "reported_idle"
    REPORTED_RUNNING = "reported_running"
    REPORTED_UNUSABLE = "reported_unusable"


# -- effects: what the caller must do, in this order --------------------------------------------


@dataclass(frozen=True)
class ClaimNodes:
    """The placed nodes become the job's (node event CLAIMED)."""


@dataclass(frozen=True)
class PrepareAndLaunch:
    """Directories, inputs and mounts, then the first phase's tasks (prep when the job has a
    preparation task, else main)."""


@dataclass(frozen=True)
class LaunchMain:
    """The toolkit's tasks, once job preparation succeeded."""


@dataclass(frozen=True)
class KillTasks:
    """Signal every task of the attempt on its node: its whole process group and what it left
    behind. `force`: SIGKILL, and tasks still running are recorded killed; else SIGTERM."""

    force: bool


@dataclass(frozen=True)
class CancelInScheduler:
    """Ask the scheduler backend to drop the attempt; its running tasks end with the allocation.
    (A job deleted, or on a deleted cluster, is cancelled there before its transition.)"""


@dataclass(frozen=True)
class ArchiveLogs:
    """Keep the attempt's logs apart so the next attempt starts clean."""


@dataclass(frozen=True)
class FlushOutputs:
    """Unmount native mounts and upload outputs for the last time; a failure fails the job."""


@dataclass(frozen=True)
class ReleaseNodes:
    """The job's nodes are free again (node event RELEASED)."""


@dataclass(frozen=True)
class NextAttempt:
    """Back in the queue as attempt + 1; `count_as_retry` spends one of maxRetries."""

    count_as_retry: bool


@dataclass(frozen=True)
class FailJob:
    """A node event's consequence for the node's job: fail its attempt (node lost)."""


@dataclass(frozen=True)
class KillSetup:
    """A node leaves while its setup task may still run."""


Effect = (
    ClaimNodes
    | PrepareAndLaunch
    | LaunchMain
    | KillTasks
    | CancelInScheduler
    | ArchiveLogs
    | FlushOutputs
    | ReleaseNodes
    | NextAttempt
    | FailJob
    | KillSetup
)


@dataclass(frozen=True)
class Transition:
    state: str  # the next state (a JobState, TaskState or NodeState value)
    effects: tuple[Effect, ...] = ()


class IllegalTransition(ValueError):
    """A (state, event) pair that no table has: a bug in the caller, never a user's mistake."""

    def __init__(self, machine: str, state: str, event: str, allowed: Iterable[str]):
        names = ", ".join(sorted(allowed)) or "none (a final state)"
        super().__init__(
            f"a {machine} in state {state!r} cannot take event {event!r}; events allowed in {state!r}: {names}"
        )
        self.machine, self.state, self.event = machine, state, event


# -- the job machine ------------------------------------------------------------------------------

_KILL = KillTasks(force=True)
# Every end of an attempt: its tasks (and what they left behind) killed, outputs out, nodes free.
_END = (_KILL, FlushOutputs(), ReleaseNodes())
_REQUEUE = (_KILL, ArchiveLogs(), FlushOutputs(), ReleaseNodes())
_FAILED = Transition(JobState.FAILED.value, _END)

_Q, _R, _T = JobState.QUEUED, JobState.RUNNING, JobState.TERMINATING
E = JobEvent

JOB_TRANSITIONS: Mapping[tuple[JobState, JobEvent], Transition] = {
    (_Q, E.START): Transition(_R.value, (ClaimNodes(), PrepareAndLaunch())),
    (_Q, E.SCHEDULER_STARTED): Transition(_R.value),
    # Every end runs the same effects, whether anything ran or not: what did not run is a no-op.
    (_Q, E.TERMINATE): _FAILED,
    (_Q, E.TERMINATE_HANDED_OVER): Transition(_T.value, (CancelInScheduler(),)),  # queued in the scheduler
    (_Q, E.SUBMISSION_FAILED): _FAILED,
    (_Q, E.START_FAILED): _FAILED,  # raised before the claim (after it, the job is running)
    (_Q, E.CLUSTER_DELETED): _FAILED,
    # A job preparing (its inputs, mounts or prep task) is running: terminating it is the same.
    (_R, E.PREP_DONE): Transition(_R.value, (LaunchMain(),)),
    (_R, E.TERMINATE): Transition(_T.value, (KillTasks(force=False),)),
    (_R, E.TERMINATE_HANDED_OVER): Transition(_T.value, (CancelInScheduler(),)),
    (_R, E.SUCCEEDED): Transition(JobState.SUCCEEDED.value, _END),
    (_R, E.OUTPUTS_FAILED): Transition(JobState.FAILED.value),  # SUCCEEDED's final upload failed
    (_R, E.TASK_FAILED_RETRY): Transition(_Q.value, (*_REQUEUE, NextAttempt(count_as_retry=True))),
    (_R, E.TASK_FAILED): _FAILED,
    (_R, E.NODE_LOST_RETRY): Transition(_Q.value, (*_REQUEUE, NextAttempt(count_as_retry=True))),
    (_R, E.NODE_LOST): _FAILED,
    (_R, E.RESIZE_REQUEUE): Transition(_Q.value, (*_REQUEUE, NextAttempt(count_as_retry=False))),
    (_R, E.RESIZE_TERMINATE): _FAILED,
    # Restarted with an attempt half ended: it is tried again, and that is not the job's retry.
    (_R, E.INTERRUPTED): Transition(_Q.value, (*_REQUEUE, NextAttempt(count_as_retry=False))),
    (_R, E.INTERRUPTED_AGAIN): _FAILED,  # a start that takes the service down with it must not loop
    (_R, E.START_FAILED): _FAILED,
    (_R, E.SCHEDULER_ENDED): _FAILED,
    (_R, E.CLUSTER_DELETED): _FAILED,
    (_R, E.DELETED): _FAILED,
    # Terminating: whatever happens now, the job fails (the user's terminate wins over a requeue).
    (_T, E.TERMINATE): Transition(_T.value),  # asked twice: the first grace period still counts
    (_T, E.TERMINATE_HANDED_OVER): Transition(_T.value),
    (_T, E.TASKS_STOPPED): _FAILED,
    (_T, E.SCHEDULER_ENDED): _FAILED,
    (_T, E.NODE_LOST): _FAILED,
    (_T, E.NODE_LOST_RETRY): _FAILED,
    (_T, E.TASK_FAILED): _FAILED,
    (_T, E.TASK_FAILED_RETRY): _FAILED,
    (_T, E.SUCCEEDED): _FAILED,
    (_T, E.RESIZE_REQUEUE): _FAILED,
    (_T, E.RESIZE_TERMINATE): _FAILED,
    (_T, E.INTERRUPTED): _FAILED,
    (_T, E.INTERRUPTED_AGAIN): _FAILED,
    (_T, E.START_FAILED): _FAILED,
    (_T, E.CLUSTER_DELETED): _FAILED,
    (_T, E.DELETED): _FAILED,
}

# -- the task machine -----------------------------------------------------------------------------

TASK_TRANSITIONS: Mapping[tuple[TaskState, TaskEvent], Transition] = {
    (TaskState.RUNNING, TaskEvent.EXITED): Transition(TaskState.EXITED.value),
    (TaskState.RUNNING, TaskEvent.LOST): Transition(TaskState.LOST.value),
    (TaskState.RUNNING, TaskEvent.KILLED): Transition(TaskState.KILLED.value),
}

# -- the node machine -----------------------------------------------------------------------------

_P, _I, _N, _L, _U = NodeState.PREPARING, NodeState.IDLE, NodeState.RUNNING, NodeState.LEAVING, NodeState.UNUSABLE
_REPORTED = {
    NodeEvent.REPORTED_PREPARING: _P,
    NodeEvent.REPORTED_IDLE: _I,
    NodeEvent.REPORTED_RUNNING: _N,
    NodeEvent.REPORTED_UNUSABLE: _U,
}

NODE_TRANSITIONS: Mapping[tuple[NodeState, NodeEvent], Transition] = {
    (_P, NodeEvent.READY): Transition(_I.value),
    (_P, NodeEvent.SETUP_FAILED): Transition(_U.value),
    (_I, NodeEvent.CLAIMED): Transition(_N.value),
    (_N, NodeEvent.RELEASED): Transition(_I.value),
    (_L, NodeEvent.RELEASED): Transition(_L.value),  # it goes once it is free
    (_N, NodeEvent.DRAIN): Transition(_L.value),
    (_I, NodeEvent.UNREACHABLE): Transition(_U.value),
    (_N, NodeEvent.UNREACHABLE): Transition(_U.value, (FailJob(),)),
    (_U, NodeEvent.REACHABLE): Transition(_I.value),
    **{(state, event): Transition(target.value) for state in (_P, _I, _N, _U) for event, target in _REPORTED.items()},
}
# A node leaving any state is removed (a row deleted, not a state): REMOVAL_EFFECTS says what first.
REMOVAL_EFFECTS: Mapping[NodeState, tuple[Effect, ...]] = {_P: (KillSetup(),), _I: (), _N: (), _L: (), _U: ()}


S = TypeVar("S", JobState, TaskState, NodeState)
V = TypeVar("V", JobEvent, TaskEvent, NodeEvent)


def _step(
    machine: str,
    table: Mapping[tuple[S, V], Transition],
    state_type: type[S],
    event_type: type[V],
    state: str,
    event: str,
) -> Transition:
    try:
        key = (state_type(state), event_type(event))
    except ValueError:
        raise IllegalTransition(machine, state, event, _allowed(table, state)) from None
    transition = table.get(key)
    if transition is None:
        raise IllegalTransition(machine, state, event, _allowed(table, state))
    return transition


def _allowed(table: Mapping[tuple[S, V], Transition], state: str) -> list[str]:
    return [str(event.value) for (source, event) in table if source.value == state]


def job_transition(state: str, event: str) -> Transition:
    return _step("job", JOB_TRANSITIONS, JobState, JobEvent, state, event)


def task_transition(state: str, event: str) -> Transition:
    return _step("task", TASK_TRANSITIONS, TaskState, TaskEvent, state, event)


def node_transition(state: str, event: str) -> Transition:
    return _step("node", NODE_TRANSITIONS, NodeState, NodeEvent, state, event)


def reported_node_event(state: str) -> NodeEvent:
    """The event for a node state a scheduler backend reports."""
    for event, target in _REPORTED.items():
        if target.value == state:
            return event
    raise IllegalTransition("node", state, "reported", [])


# -- deciding events ------------------------------------------------------------------------------


# Attempts interrupted in a row (no attempt ended otherwise in between) before the job fails instead.
MAX_INTERRUPTIONS = 3


def failure_event(retries_used: int, max_retries: int, node_lost: bool = False) -> JobEvent:
    """What a failed attempt is: requeued while retries remain, else the job's end."""
    if retries_used < max_retries:
        return JobEvent.NODE_LOST_RETRY if node_lost else JobEvent.TASK_FAILED_RETRY
    return JobEvent.NODE_LOST if node_lost else JobEvent.TASK_FAILED


@dataclass(frozen=True)
class TaskBrief:
    state: str
    exit_code: int | None
    required: bool


def phase_outcome(phase: str, tasks: Iterable[TaskBrief]) -> JobEvent | None:
    """What a running job's current-phase tasks say: None while it goes on, else the event.

    A failed or lost task fails the attempt (TASK_FAILED, or its _RETRY twin: see
    `failure_event`). A required task recorded killed while the job still runs means the service
    stopped half-way through ending the attempt, and no task at all that it stopped while starting
    it (a phase's tasks are recorded together): INTERRUPTED (it is tried again)."""
    tasks = list(tasks)
    if not tasks:
        return JobEvent.INTERRUPTED
    if any(t.state == TaskState.LOST or (t.state == TaskState.EXITED and t.exit_code != 0) for t in tasks):
        return JobEvent.TASK_FAILED
    required = [t for t in tasks if t.required]
    if any(t.state == TaskState.RUNNING for t in required):
        return None
    if any(t.state == TaskState.KILLED for t in required):
        return JobEvent.INTERRUPTED
    return JobEvent.PREP_DONE if phase == JobPhase.PREP else JobEvent.SUCCEEDED


def explain() -> str:
    """The three tables as text, one transition a line."""
    lines = []
    for machine, table in (("job", JOB_TRANSITIONS), ("task", TASK_TRANSITIONS), ("node", NODE_TRANSITIONS)):
        for (state, event), transition in table.items():
            effects = ", ".join(type(e).__name__ + _args(e) for e in transition.effects)
            lines.append(f"{machine:5} {state.value:12} --{event.value}--> {transition.state:12} {effects}")
    return "\n".join(lines)


def _args(effect: Effect) -> str:
    names = [f.name for f in fields(effect)]
    return "(" + ", ".join(f"{name}={getattr(effect, name)!r}" for name in names) + ")" if names else ""
